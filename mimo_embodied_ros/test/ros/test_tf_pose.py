"""The TF pose source is import-guarded: without tf2_ros it refuses clearly, naming the fallback."""

from __future__ import annotations

import importlib.util
import os

import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node

from mimo_embodied_ros.ros.tf_pose import TfPoseSampler, TfUnavailableError


@pytest.mark.skipif(importlib.util.find_spec("tf2_ros") is not None, reason="tf2_ros is installed")
def test_without_tf2_the_sampler_refuses_and_points_to_the_topic_source():
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "62")))
    node = Node("tf_pose_probe", context=context)
    try:
        with pytest.raises(TfUnavailableError, match="robot_pose_source to 'topic'"):
            TfPoseSampler(node, lambda *_: None, "map", "base_link", 20.0)
    finally:
        node.destroy_node()
        context.try_shutdown()
