"""Launch the node graph of config/<graph> (default robot.yaml) with launch_ros, plus RViz.

    ros2 launch mimo_embodied_ros perception.launch.py model_path:=/models/MiMo-Embodied-7B
    ros2 launch mimo_embodied_ros perception.launch.py backend:=openai \
        base_url:=http://gpu-server:8000/v1
    ros2 launch mimo_embodied_ros perception.launch.py graph:=sim_tabletop.yaml rviz:=true

The graph file is the same one the in-process runner reads (mimo_embodied_ros/runner.py).
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from mimo_embodied_ros.ros.params import config_dir
from mimo_embodied_ros.runner import load_graph

PACKAGE = "mimo_embodied_ros"
DEFAULT_GRAPH = "robot.yaml"
RVIZ_CONFIG = "perception.rviz"

# launch argument -> perception node parameter; empty values keep the YAML defaults.
PERCEPTION_ARGUMENTS = {
    "backend": "backend",
    "model_path": "transformers.model_path",
    "base_url": "openai.base_url",
    "model": "openai.model",
    "max_pixels": "model.max_pixels",
    "image_topic": "image_topic",
    "depth_topic": "depth_topic",
    "camera_info_topic": "camera_info_topic",
}


def _graph_nodes(context):
    graph = LaunchConfiguration("graph").perform(context)
    use_sim_time = LaunchConfiguration("use_sim_time").perform(context) == "true"
    overrides = {
        parameter: LaunchConfiguration(argument).perform(context)
        for argument, parameter in PERCEPTION_ARGUMENTS.items()
        if LaunchConfiguration(argument).perform(context)
    }
    if "model.max_pixels" in overrides:
        overrides["model.max_pixels"] = int(overrides["model.max_pixels"])
    actions = []
    for entry in load_graph(graph):
        config = config_dir(entry["package"])
        parameters = [str(config / name) for name in entry.get("parameters", [])]
        node_overrides = {**(entry.get("overrides") or {}), "use_sim_time": use_sim_time}
        if entry["executable"] == "perception":
            node_overrides.update(overrides)
        actions.append(
            Node(
                package=entry["package"],
                executable=entry["executable"],
                name=entry.get("name"),
                parameters=[*parameters, node_overrides],
                remappings=list((entry.get("remappings") or {}).items()),
                output="screen",
            )
        )
    return actions


def generate_launch_description() -> LaunchDescription:
    rviz_config = Path(get_package_share_directory(PACKAGE)) / "rviz" / RVIZ_CONFIG
    arguments = [
        DeclareLaunchArgument("graph", default_value=DEFAULT_GRAPH,
                              description="Graph file in mimo_embodied_ros/config/"),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        DeclareLaunchArgument("rviz", default_value="false", description="Start RViz too"),
        *[DeclareLaunchArgument(name, default_value="") for name in PERCEPTION_ARGUMENTS],
    ]
    rviz = Node(package="rviz2", executable="rviz2", arguments=["-d", str(rviz_config)],
                condition=IfCondition(LaunchConfiguration("rviz")), output="screen")
    return LaunchDescription([*arguments, OpaqueFunction(function=_graph_nodes), rviz])
