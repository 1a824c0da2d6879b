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

from mimo_embodied_ros.launch_support import (
    LAUNCH_ARGUMENTS,
    PARAMETER_ARGUMENTS,
    node_specs,
)
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
    assert "graph_launch_description(DEFAULT_GRAPH, RVIZ_CONFIG)" in launch_file.read_text()


def _spec(specs, executable):
    return next(spec for spec in specs if spec.executable == executable)


def _merged(spec) -> dict:
    """The parameters a node ends with: its files, then dicts, later ones winning."""
    merged: dict = {}
    for item in spec.parameters:
        if isinstance(item, dict):
            merged.update(item)
        else:
            merged.update(node_parameters(Path(item), spec.name))
    return merged


def test_every_launch_argument_has_a_description():
    for argument in LAUNCH_ARGUMENTS:
        assert argument.description, argument.name
        if argument.choices:
            assert argument.default in argument.choices or argument.name == "graph"


def test_camera_arguments_reach_every_node_that_declares_them():
    specs = node_specs({"graph": "robot_manipulation.yaml", "image_topic": "/cam/color",
                        "depth_topic": "/cam/aligned_depth", "camera_info_topic": "/cam/info"})
    perception, bridge = _spec(specs, "perception"), _spec(specs, "manipulation_bridge")
    assert _merged(perception)["depth_topic"] == "/cam/aligned_depth"
    assert _merged(perception)["image_topic"] == "/cam/color"
    assert _merged(bridge)["depth_topic"] == "/cam/aligned_depth"  # not only the perception node
    assert _merged(bridge)["camera_info_topic"] == "/cam/info"
    assert "image_topic" not in _merged(bridge)  # the bridge declares no colour topic


@pytest.mark.parametrize("name", sorted(PARAMETER_ARGUMENTS))
def test_each_parameter_argument_sets_its_parameter(name):
    value = {"max_pixels": "12345", "backend": "openai"}.get(name, "/some/value")
    specs = node_specs({"graph": "robot.yaml", name: value})
    parameter = PARAMETER_ARGUMENTS[name]
    expected = 12345 if name == "max_pixels" else value
    assert _merged(_spec(specs, "perception"))[parameter] == expected
    untouched = _merged(_spec(node_specs({"graph": "robot.yaml"}), "perception"))
    assert untouched.get(parameter) != expected  # empty arguments keep the YAML defaults


def test_use_sim_time_left_unset_keeps_the_graphs_value():
    graph_says = _merged(_spec(node_specs({"graph": "gazebo.yaml"}), "perception"))
    assert graph_says["use_sim_time"] is True
    forced = _merged(_spec(node_specs({"graph": "gazebo.yaml", "use_sim_time": "false"}),
                           "perception"))
    assert forced["use_sim_time"] is False
    with pytest.raises(ValueError, match="use_sim_time"):
        node_specs({"graph": "gazebo.yaml", "use_sim_time": "yes"})


def test_params_file_comes_after_the_graph_and_before_the_arguments(tmp_path):
    user = tmp_path / "mine.yaml"
    user.write_text("/**:\n  ros__parameters:\n    backend: openai\n    qos: reliable\n")
    spec = _spec(node_specs({"graph": "sim_tabletop.yaml", "params_file": str(user)}),
                 "perception")
    assert spec.parameters[-1] == str(user)
    assert _merged(spec)["backend"] == "openai" and _merged(spec)["qos"] == "reliable"
    spec = _spec(node_specs({"graph": "sim_tabletop.yaml", "params_file": str(user),
                             "backend": "scripted"}), "perception")
    assert _merged(spec)["backend"] == "scripted"  # an argument beats the file


def test_the_packages_graph_wins_over_a_stray_file_in_the_working_directory(tmp_path,
                                                                           monkeypatch):
    (tmp_path / "robot.yaml").write_text("nodes:\n  - {package: x, executable: y}\n")
    monkeypatch.chdir(tmp_path)
    assert [s.executable for s in node_specs({"graph": "robot.yaml"})] == ["perception"]
    explicit = node_specs({"graph": str(tmp_path / "robot.yaml")})
    assert [s.executable for s in explicit] == ["y"]  # a path is a path


def test_the_tabletop_sim_graph_gives_the_scripted_backend_current_answers():
    """graph:=sim_tabletop.yaml answers from the shipped file, which matches the scene."""
    from mimo_embodied_ros.core.resize import smart_resize
    from mimo_embodied_sim.perception_demo import SETTLE_S, scripted_answers
    from mimo_embodied_sim.tabletop import TabletopScene

    merged = _merged(_spec(node_specs({"graph": "sim_tabletop.yaml"}), "perception"))
    assert merged["backend"] == "scripted"
    shipped = config_dir() / merged["scripted.answers_file"]
    scene = TabletopScene(seed=0)
    try:
        scene.step(int(SETTLE_S / scene.timestep))
        expected = scripted_answers(scene, smart_resize(scene.height, scene.width,
                                                        max_pixels=1003520))
    finally:
        scene.close()
    assert yaml.safe_load(shipped.read_text()) == expected


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
            declared |= set(node_parameters(config_dir(entry["package"]) / name))
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
