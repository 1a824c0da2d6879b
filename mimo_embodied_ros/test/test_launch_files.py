"""Launch files, graph files and RViz configs name only things that exist.

`ros2 launch` is not installable here, so the launch files are checked statically, and the graphs
they read are started with the in-process runner to see which topics really appear.
"""

from __future__ import annotations

import ast
import contextlib
import os
import time
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.node import Node

from mimo_embodied_ros.launch_support import PERCEPTION_ARGUMENTS, node_parameters_for
from mimo_embodied_ros.ros.params import config_dir, node_parameters
from mimo_embodied_ros.runner import load_graph, node_class, run_graph

REPO = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO / "mimo_embodied_ros"
LAUNCH_FILES = sorted((PACKAGE_DIR / "launch").glob("*.launch.py"))
GRAPH_FILES = sorted(
    p for p in (PACKAGE_DIR / "config").glob("*.yaml")
    if "nodes" in (yaml.safe_load(p.read_text()) or {})
)
RVIZ_FILES = sorted((PACKAGE_DIR / "rviz").glob("*.rviz"))
INSTALL = REPO / "install"
# The simulated graph each RViz config is checked against.
RVIZ_GRAPHS = {
    "perception.rviz": "sim_tabletop.yaml",
    "manipulation.rviz": "sim_pickplace.yaml",
    "navigation.rviz": "sim_apartment.yaml",
}


def module_constants(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                with contextlib.suppress(ValueError):
                    constants[target.id] = ast.literal_eval(node.value)
    return constants


def rviz_topics(path: Path) -> set[str]:
    topics: set[str] = set()

    def walk(item: object) -> None:
        if isinstance(item, dict):
            for key, value in item.items():
                if key == "Topic" and isinstance(value, dict):
                    topics.add(value["Value"])
                elif key.endswith("Topic") and isinstance(value, str):
                    topics.add(value)
                else:
                    walk(value)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    walk(yaml.safe_load(path.read_text()))
    return topics


def test_there_is_something_to_check():
    assert LAUNCH_FILES and GRAPH_FILES and RVIZ_FILES


@pytest.mark.parametrize("launch_file", LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_names_existing_graph_and_rviz_config(launch_file):
    compile(launch_file.read_text(), str(launch_file), "exec")
    constants = module_constants(launch_file)
    assert (PACKAGE_DIR / "config" / constants["DEFAULT_GRAPH"]).is_file()
    assert (PACKAGE_DIR / "rviz" / constants["RVIZ_CONFIG"]).is_file()
    perception_parameters = set(
        yaml.safe_load((PACKAGE_DIR / "config" / "perception.yaml").read_text())["mimo_embodied"][
            "ros__parameters"
        ].keys()
    )
    for parameter in PERCEPTION_ARGUMENTS.values():
        assert parameter.split(".")[0] in perception_parameters, parameter
    assert "graph_launch_description(DEFAULT_GRAPH, RVIZ_CONFIG)" in launch_file.read_text()


def test_launch_parameters_are_files_then_overrides_then_arguments():
    entry = {"package": "mimo_embodied_ros", "executable": "perception",
             "parameters": ["perception.yaml"], "overrides": {"backend": "scripted"}}
    files, overrides = node_parameters_for(entry, True, {"backend": "openai"})
    assert Path(files) == config_dir() / "perception.yaml"
    assert overrides == {"backend": "openai", "use_sim_time": True}
    other = {**entry, "executable": "navigator", "overrides": {}}
    assert node_parameters_for(other, False, {"backend": "openai"})[1] == {"use_sim_time": False}


@pytest.mark.parametrize("graph", GRAPH_FILES, ids=lambda p: p.name)
def test_graph_names_existing_executables_plugins_and_parameter_files(graph):
    for entry in load_graph(graph):
        package = entry["package"]
        executable = INSTALL / package / "lib" / package / entry["executable"]
        assert executable.is_file() and os.access(executable, os.X_OK), executable
        assert issubclass(node_class(entry), Node)
        for name in entry.get("parameters", []):
            parameter_file = config_dir(package) / name
            assert parameter_file.is_file(), parameter_file
            document = yaml.safe_load(parameter_file.read_text())
            assert entry["name"] in document, f"{name} has no section for node {entry['name']}"


@pytest.mark.parametrize("graph", GRAPH_FILES, ids=lambda p: p.name)
def test_graph_overrides_name_parameters_the_node_declares(graph):
    """A typo in a profile (e.g. a topic parameter) would otherwise be a silent no-op."""
    for entry in load_graph(graph):
        declared = {"use_sim_time"}
        for name in entry.get("parameters", []):
            declared |= set(node_parameters(config_dir(entry["package"]) / name, entry["name"]))
        unknown = set(entry.get("overrides") or {}) - declared
        assert not unknown, f"{graph.name}: {entry['name']} has no parameters {sorted(unknown)}"


@pytest.fixture
def context():
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "62")))
    yield context
    context.try_shutdown()


@pytest.mark.parametrize("rviz_file", RVIZ_FILES, ids=lambda p: p.name)
def test_rviz_config_shows_topics_the_nodes_publish(rviz_file, context, tmp_path):
    wanted = rviz_topics(rviz_file)
    assert wanted, "the RViz config shows no topic"
    answers = tmp_path / "answers.yaml"
    answers.write_text("'*': '[]'\n")
    overrides = {"mimo_embodied": {"scripted.answers_file": str(answers)}}
    with run_graph(RVIZ_GRAPHS[rviz_file.name], overrides, context) as runner:
        probe = Node("topic_probe", context=context)
        deadline = time.monotonic() + 15.0
        missing = wanted
        while missing and time.monotonic() < deadline:
            published = {
                name for name, _ in probe.get_topic_names_and_types()
                if probe.get_publishers_info_by_topic(name)
            }
            missing = wanted - published
            time.sleep(0.2)
        probe.destroy_node()
        assert runner.nodes
    assert not missing, f"{rviz_file.name} shows topics nobody publishes: {sorted(missing)}"
