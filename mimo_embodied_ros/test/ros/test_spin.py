"""Console-script body: a node spins until rclpy shuts down, then is destroyed cleanly."""

from __future__ import annotations

import threading
import time

import rclpy
from rclpy.node import Node

from mimo_embodied_ros.ros.spin import spin_node


class ProbeNode(Node):
    destroyed = False

    def destroy_node(self) -> None:
        ProbeNode.destroyed = True
        super().destroy_node()


def test_spin_node_returns_and_destroys_the_node_on_shutdown():
    made: list[Node] = []

    def make_node() -> Node:
        node = ProbeNode("spin_probe")
        node.create_timer(0.01, lambda: None)
        made.append(node)
        return node

    worker = threading.Thread(target=spin_node, args=(make_node, [], 1), daemon=True)
    worker.start()
    deadline = time.monotonic() + 10.0
    while not made and time.monotonic() < deadline:
        time.sleep(0.05)
    assert made, "the node was never made"
    rclpy.shutdown()
    worker.join(timeout=10.0)
    assert not worker.is_alive(), "spin_node did not return after shutdown"
    assert ProbeNode.destroyed


def test_guarded_executor_survives_a_callback_that_raises():
    from rclpy.context import Context

    from mimo_embodied_ros.ros.spin import GuardedExecutor

    context = Context()
    rclpy.init(context=context)
    node = Node("raising_probe", context=context)
    ticks: list[int] = []

    def tick() -> None:
        ticks.append(1)
        if len(ticks) == 2:
            raise RuntimeError("a bad message")

    node.create_timer(0.02, tick)
    executor = GuardedExecutor(num_threads=2, context=context)
    executor.add_node(node)
    worker = threading.Thread(target=executor.spin, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 10.0
        while len(ticks) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(ticks) >= 6, "the executor stopped after the exception"
        assert executor.callback_errors >= 1  # logged and counted
        assert worker.is_alive()
    finally:
        executor.shutdown()
        node.destroy_node()
        context.try_shutdown()
