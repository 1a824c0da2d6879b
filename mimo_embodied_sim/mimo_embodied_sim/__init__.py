"""Headless MuJoCo worlds bridged to ROS 2 topics, with ground truth for tests and the demo."""
