"""Perception + NavA3-style navigator sending goals to Nav2 (graph config/robot_navigation.yaml).

Start Nav2 (bringup with your map) first, then:
    ros2 launch mimo_embodied_ros navigation.launch.py model_path:=/models/MiMo-Embodied-7B \
        rviz:=true
    ros2 launch mimo_embodied_ros navigation.launch.py graph:=isaac_sim.yaml use_sim_time:=true
"""

from mimo_embodied_ros.launch_support import graph_launch_description

DEFAULT_GRAPH = "robot_navigation.yaml"
RVIZ_CONFIG = "navigation.rviz"


def generate_launch_description():
    return graph_launch_description(DEFAULT_GRAPH, RVIZ_CONFIG)
