"""The body of every console script (`ros2 run` / launch): one node on a multi-threaded executor."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node


def spin_node(make_node: Callable[[], Node], args: list[str] | None = None,
              num_threads: int = 4) -> None:
    """Init rclpy, spin the node until Ctrl-C or shutdown, then destroy it and shut down.

    Multi-threaded because the nodes serve long service/action calls in their own callback groups
    while subscriptions keep flowing.
    """
    rclpy.init(args=args)
    node = None
    try:
        node = make_node()
        executor = MultiThreadedExecutor(num_threads=num_threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
