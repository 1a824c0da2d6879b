"""Perception on the robot's RGB-D camera (graph config/robot.yaml), optionally with RViz.

    ros2 launch mimo_embodied_ros perception.launch.py model_path:=/models/MiMo-Embodied-7B
    ros2 launch mimo_embodied_ros perception.launch.py backend:=openai \
        base_url:=http://gpu-server:8000/v1
    ros2 launch mimo_embodied_ros perception.launch.py graph:=sim_tabletop.yaml rviz:=true
"""

from mimo_embodied_ros.launch_support import graph_launch_description

DEFAULT_GRAPH = "robot.yaml"
RVIZ_CONFIG = "perception.rviz"


def generate_launch_description():
    return graph_launch_description(DEFAULT_GRAPH, RVIZ_CONFIG)
