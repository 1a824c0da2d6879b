"""Shared body of launch/*.launch.py: start the nodes of a graph file (config/*.yaml), plus RViz.

The graph files are the same ones the in-process runner reads (runner.py), so a launch on the robot
and a test here start the same nodes with the same parameter files. ``launch`` and ``launch_ros``
are imported inside the functions: this module stays importable where they are not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mimo_embodied_ros.ros.params import config_dir
from mimo_embodied_ros.runner import load_graph

PACKAGE = "mimo_embodied_ros"

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
INTEGER_PARAMETERS = {"model.max_pixels"}


def node_parameters_for(
    entry: dict[str, Any], use_sim_time: bool, perception_overrides: dict[str, Any]
) -> list[Any]:
    """Parameter files of a graph entry, then its overrides, use_sim_time and launch arguments."""
    config = config_dir(entry["package"])
    files = [str(config / name) for name in entry.get("parameters", [])]
    overrides = {**(entry.get("overrides") or {}), "use_sim_time": use_sim_time}
    if entry["executable"] == "perception":
        overrides.update(perception_overrides)
    return [*files, overrides]


def _graph_nodes(context: Any) -> list[Any]:
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    def argument(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    perception_overrides: dict[str, Any] = {}
    for name, parameter in PERCEPTION_ARGUMENTS.items():
        value: Any = argument(name)
        if value:
            perception_overrides[parameter] = (
                int(value) if parameter in INTEGER_PARAMETERS else value
            )
    use_sim_time = argument("use_sim_time") == "true"
    return [
        Node(
            package=entry["package"],
            executable=entry["executable"],
            name=entry.get("name"),
            parameters=node_parameters_for(entry, use_sim_time, perception_overrides),
            remappings=list((entry.get("remappings") or {}).items()),
            output="screen",
        )
        for entry in load_graph(argument("graph"))
    ]


def graph_launch_description(default_graph: str, rviz_config: str) -> Any:
    """A LaunchDescription with arguments graph, use_sim_time, rviz and the perception ones."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    rviz_path = Path(get_package_share_directory(PACKAGE)) / "rviz" / rviz_config
    arguments = [
        DeclareLaunchArgument("graph", default_value=default_graph,
                              description="Graph file in mimo_embodied_ros/config/ (or a path)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true under Gazebo / Isaac Sim (they publish /clock)"),
        DeclareLaunchArgument("rviz", default_value="false", description="Start RViz too"),
        *[DeclareLaunchArgument(name, default_value="") for name in PERCEPTION_ARGUMENTS],
    ]
    rviz = Node(package="rviz2", executable="rviz2", arguments=["-d", str(rviz_path)],
                condition=IfCondition(LaunchConfiguration("rviz")), output="screen")
    return LaunchDescription([*arguments, OpaqueFunction(function=_graph_nodes), rviz])
