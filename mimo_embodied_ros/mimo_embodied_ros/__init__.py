"""ROS 2 integration of MiMo-Embodied-7B: perception, manipulation and navigation nodes."""
