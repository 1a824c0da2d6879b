"""Perception + manipulation bridge driving MoveIt 2 (graph config/robot_manipulation.yaml).

Start MoveIt's move_group for the arm first, then:
    ros2 launch mimo_embodied_ros manipulation.launch.py model_path:=/models/MiMo-Embodied-7B \
        rviz:=true
    ros2 launch mimo_embodied_ros manipulation.launch.py graph:=gazebo.yaml use_sim_time:=true
"""

from mimo_embodied_ros.launch_support import graph_launch_description

DEFAULT_GRAPH = "robot_manipulation.yaml"
RVIZ_CONFIG = "manipulation.rviz"


def generate_launch_description():
    return graph_launch_description(DEFAULT_GRAPH, RVIZ_CONFIG)
