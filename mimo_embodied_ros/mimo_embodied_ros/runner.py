"""In-process runner: starts a node graph described in config/*.yaml in one process.

`ros2 launch` is the way on a robot; this runner reads the same graph files (launch/*.launch.py
read them too), so tests, the demo and the benchmarks run exactly the nodes and parameter files a
launch would, without the launch tooling.

A graph file:
    nodes:
      - package: mimo_embodied_ros       # ROS package (launch) ...
        executable: perception           # ... and its console script (launch)
        plugin: mimo_embodied_ros.nodes.perception_node:PerceptionNode  # class (this runner)
        parameters: [perception.yaml]    # files in the package's config/ folder, in order
        overrides: {backend: scripted}   # flat parameter overrides (dotted names)
        remappings: {/camera/camera/color/image_raw: /sim/image}
"""

from __future__ import annotations

import argparse
import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import rclpy
import yaml
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter

from mimo_embodied_ros.ros.params import config_dir
from mimo_embodied_ros.ros.spin import GuardedExecutor


def load_graph(path: str | Path) -> list[dict[str, Any]]:
    """The node entries of a graph file: a bare name is this package's config/ file (a file of
    that name in the working directory does not shadow it), anything else a path."""
    candidate = Path(path)
    packaged = config_dir() / str(path)
    if candidate.name == str(path) and packaged.is_file() or not candidate.is_file():
        candidate = packaged
    document = yaml.safe_load(candidate.read_text()) or {}
    nodes = document.get("nodes")
    if not isinstance(nodes, list) or not nodes:
        raise ValueError(f"{candidate} has no 'nodes' list")
    return nodes


def node_cli_args(entry: dict[str, Any]) -> list[str]:
    """--ros-args for one node entry: its parameter files and remappings."""
    args = ["--ros-args"]
    if entry.get("name"):  # as launch_ros's Node(name=...): the node runs under this name
        args += ["-r", f"__node:={entry['name']}"]
    if entry.get("namespace"):
        args += ["-r", f"__ns:=/{entry['namespace'].strip('/')}"]
    for name in entry.get("parameters", []):
        args += ["--params-file", str(config_dir(entry["package"]) / name)]
    for source, target in (entry.get("remappings") or {}).items():
        args += ["-r", f"{source}:={target}"]
    return args


def node_class(entry: dict[str, Any]) -> type[Node]:
    module_name, _, class_name = entry["plugin"].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


class GraphRunner:
    """The nodes of a graph spinning on a multi-threaded executor in a background thread."""

    def __init__(
        self,
        entries: list[dict[str, Any]],
        overrides: dict[str, dict[str, Any]] | None = None,
        context: Context | None = None,
        num_threads: int = 6,
    ) -> None:
        self.nodes: dict[str, Node] = {}
        self._executor = GuardedExecutor(num_threads=num_threads, context=context)
        overrides = overrides or {}
        try:
            for entry in entries:
                params = {**(entry.get("overrides") or {})}
                key = entry.get("name") or entry["plugin"]
                params.update(overrides.get(key, {}))
                node = node_class(entry)(
                    context=context,
                    cli_args=node_cli_args(entry),
                    parameter_overrides=[Parameter(k, value=v) for k, v in params.items()],
                )
                self.nodes[node.get_name()] = node
                self._executor.add_node(node)
        except Exception:
            self.shutdown()
            raise
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    @property
    def callback_errors(self) -> int:
        """Exceptions raised by callbacks of this graph's nodes (logged; the nodes go on)."""
        return self._executor.callback_errors

    def _spin(self) -> None:
        with suppress(ExternalShutdownException):
            self._executor.spin()

    def shutdown(self) -> None:
        self._executor.shutdown(timeout_sec=5.0)
        if hasattr(self, "_thread"):
            self._thread.join(timeout=5.0)
        # rclpy 7.1's Executor.shutdown returns without waiting for callbacks in flight (it tests
        # its shutdown flag right after setting it); wait for the worker pool so that no callback
        # publishes on a node being destroyed.
        workers = getattr(self._executor, "_executor", None)
        if workers is not None:
            workers.shutdown(wait=True)
        for node in self.nodes.values():
            node.destroy_node()
        self.nodes.clear()


@contextmanager
def run_graph(
    graph: str | Path | list[dict[str, Any]],
    overrides: dict[str, dict[str, Any]] | None = None,
    context: Context | None = None,
) -> Iterator[GraphRunner]:
    """Start a graph (file or entries), yield it, and always tear it down."""
    entries = load_graph(graph) if isinstance(graph, str | Path) else graph
    runner = GraphRunner(entries, overrides, context)
    try:
        yield runner
    finally:
        runner.shutdown()


def _parse_set(values: list[str]) -> dict[str, dict[str, Any]]:
    overrides: dict[str, dict[str, Any]] = {}
    for item in values:
        target, _, value = item.partition("=")
        node, _, name = target.partition(":")
        overrides.setdefault(node, {})[name] = yaml.safe_load(value)
    return overrides


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("graph", help="graph file, or a file name in mimo_embodied_ros/config/")
    parser.add_argument("--set", action="append", default=[], metavar="NODE:PARAM=VALUE",
                        help="parameter override, e.g. mimo_embodied:backend=openai")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    try:
        with run_graph(args.graph, _parse_set(args.set)) as runner:
            runner._thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
