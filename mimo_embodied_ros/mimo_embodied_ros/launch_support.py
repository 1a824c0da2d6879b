"""Shared body of launch/*.launch.py: the nodes of a graph file (config/*.yaml), plus RViz.

What a launch starts is computed as plain data by `node_specs(arguments)` (tested here, where
`launch_ros` cannot be installed); the launch files only turn those specs into launch_ros Nodes.
The graph files are the ones the in-process runner reads (runner.py), so a launch on the robot and
a test here start the same nodes with the same parameter files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimo_embodied_ros.ros.params import config_dir, node_parameters
from mimo_embodied_ros.runner import load_graph

PACKAGE = "mimo_embodied_ros"


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str
    choices: tuple[str, ...] = ()


# Launch argument -> the parameter it sets, in every node of the graph that declares it.
PARAMETER_ARGUMENTS = {
    "backend": "backend",
    "model_path": "transformers.model_path",
    "base_url": "openai.base_url",
    "model": "openai.model",
    "max_pixels": "model.max_pixels",
    "answers_file": "scripted.answers_file",
    "image_topic": "image_topic",
    "depth_topic": "depth_topic",
    "camera_info_topic": "camera_info_topic",
}
INTEGER_PARAMETERS = {"model.max_pixels"}

LAUNCH_ARGUMENTS = (
    LaunchArgument("graph", "", "Graph file: a name in mimo_embodied_ros/config/ (the package's "
                   "file wins over one of the same name in the working directory) or a path"),
    LaunchArgument("use_sim_time", "", "true under Gazebo / Isaac Sim (they publish /clock), "
                   "false on a robot; empty keeps the graph's value", ("", "true", "false")),
    LaunchArgument("rviz", "false", "Start RViz with this launch file's config",
                   ("true", "false")),
    LaunchArgument("params_file", "", "Your own ROS 2 parameter file, applied to every node "
                   "after the package's files and the graph's overrides"),
    LaunchArgument("backend", "", "Model backend of the perception node; empty keeps the "
                   "graph's", ("", "transformers", "openai", "scripted")),
    LaunchArgument("model_path", "", "Local MiMo-Embodied-7B checkpoint folder (transformers)"),
    LaunchArgument("base_url", "", "OpenAI-compatible server, e.g. http://gpu-box:8000/v1"),
    LaunchArgument("model", "", "Model name the server serves"),
    LaunchArgument("max_pixels", "", "Image-size cap (pixels); the server must use the same"),
    LaunchArgument("answers_file", "", "Answers file of the scripted backend (simulation)"),
    LaunchArgument("image_topic", "", "Colour image topic of every node that reads it"),
    LaunchArgument("depth_topic", "", "Depth topic (registered to colour) of every node that "
                   "reads it"),
    LaunchArgument("camera_info_topic", "", "CameraInfo topic of every node that reads it"),
)


@dataclass
class NodeSpec:
    """One node a launch starts: what launch_ros.actions.Node is given."""

    package: str
    executable: str
    name: str | None
    namespace: str | None
    parameters: list[Any] = field(default_factory=list)  # files (str) and dicts, later wins
    remappings: list[tuple[str, str]] = field(default_factory=list)


def declared_parameters(entry: dict[str, Any]) -> set[str]:
    """The parameters a graph entry's node declares (its parameter files' keys)."""
    config = config_dir(entry["package"])
    declared = {"use_sim_time"}
    for name in entry.get("parameters", []):
        declared |= set(node_parameters(config / name, entry.get("name")))
    return declared


def node_specs(arguments: dict[str, str]) -> list[NodeSpec]:
    """The nodes a launch with these argument values starts (missing arguments: defaults)."""
    values = {argument.name: argument.default for argument in LAUNCH_ARGUMENTS}
    values.update({key: value for key, value in arguments.items() if value is not None})
    for argument in LAUNCH_ARGUMENTS:
        if argument.choices and values[argument.name] not in argument.choices:
            raise ValueError(f"launch argument {argument.name}:={values[argument.name]} is not "
                             f"one of {argument.choices}")
    specs = []
    for entry in load_graph(values["graph"]):
        declared = declared_parameters(entry)
        from_arguments: dict[str, Any] = {}
        if values["use_sim_time"]:
            from_arguments["use_sim_time"] = values["use_sim_time"] == "true"
        for name, parameter in PARAMETER_ARGUMENTS.items():
            if values[name] and parameter in declared:
                from_arguments[parameter] = (
                    int(values[name]) if parameter in INTEGER_PARAMETERS else values[name])
        config = config_dir(entry["package"])
        parameters: list[Any] = [str(config / name) for name in entry.get("parameters", [])]
        if entry.get("overrides"):
            parameters.append(dict(entry["overrides"]))
        if values["params_file"]:
            parameters.append(values["params_file"])
        if from_arguments:
            parameters.append(from_arguments)
        specs.append(NodeSpec(
            package=entry["package"], executable=entry["executable"], name=entry.get("name"),
            namespace=entry.get("namespace"), parameters=parameters,
            remappings=list((entry.get("remappings") or {}).items())))
    return specs


def _graph_nodes(context: Any) -> list[Any]:  # pragma: no cover - needs launch_ros
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    arguments = {a.name: LaunchConfiguration(a.name).perform(context) for a in LAUNCH_ARGUMENTS}
    return [
        Node(package=spec.package, executable=spec.executable, name=spec.name,
             namespace=spec.namespace, parameters=spec.parameters, remappings=spec.remappings,
             output="screen")
        for spec in node_specs(arguments)
    ]


def graph_launch_description(default_graph: str, rviz_config: str) -> Any:  # pragma: no cover
    """A LaunchDescription with LAUNCH_ARGUMENTS (graph defaulting to ``default_graph``)."""
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    rviz_path = Path(get_package_share_directory(PACKAGE)) / "rviz" / rviz_config
    declared = [
        DeclareLaunchArgument(
            a.name, default_value=default_graph if a.name == "graph" else a.default,
            description=a.description, **({"choices": list(a.choices)} if a.choices else {}))
        for a in LAUNCH_ARGUMENTS
    ]
    rviz = Node(package="rviz2", executable="rviz2", arguments=["-d", str(rviz_path)],
                condition=IfCondition(LaunchConfiguration("rviz")), output="screen")
    return LaunchDescription([*declared, OpaqueFunction(function=_graph_nodes), rviz])
