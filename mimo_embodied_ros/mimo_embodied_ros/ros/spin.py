"""The body of every console script (`ros2 run` / launch): one node on a multi-threaded executor
that survives an exception in any callback."""

from __future__ import annotations

from collections.abc import Callable

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor, ShutdownException
from rclpy.node import Node


class GuardedExecutor(MultiThreadedExecutor):
    """A MultiThreadedExecutor whose spin() logs and counts a callback's exception and goes on.

    rclpy re-raises an exception from any callback out of ``spin()``, so one bad message would
    end the process and every node in it. Here it is logged with the callback's error and
    counted in ``callback_errors``; the other callbacks keep running.
    """

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003 - as MultiThreadedExecutor
        super().__init__(*args, **kwargs)
        self.callback_errors = 0
        self._logger = rclpy.logging.get_logger("mimo_embodied.executor")

    def spin(self) -> None:
        while self._context.ok() and not self._is_shutdown:
            try:
                self.spin_once()
            except (ExternalShutdownException, ShutdownException, KeyboardInterrupt):
                raise
            except Exception as error:  # noqa: BLE001 - one callback must not end the process
                self.callback_errors += 1
                self._logger.error(
                    f"a callback raised {error!r}; the node goes on "
                    f"({self.callback_errors} callback error(s) so far)")


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
        executor = GuardedExecutor(num_threads=num_threads)
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
