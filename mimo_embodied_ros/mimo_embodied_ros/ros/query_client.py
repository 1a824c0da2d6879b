"""The one client of the perception node's `~/query` action, shared by the bridge and the navigator.

A query that outlives its caller's patience is cancelled, and the perception node then stops the
generation, so the model is free for the next question at once (a service call could not do
that: an abandoned call keeps the model busy until it finishes).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rclpy.action import ActionClient
from rclpy.node import Node
from sensor_msgs.msg import Image

from mimo_embodied_msgs.action import Query

POLL_S = 0.01


class QueryError(Exception):
    """Why a query produced no result: ``reason`` is "unavailable", "timeout" or "stopped"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def wait_until(done: Callable[[], bool], timeout_s: float,
               should_stop: Callable[[], bool] = lambda: False) -> str:
    """Poll ``done`` on the wall clock: "done", "timeout" or "stopped" (``should_stop`` held)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if should_stop():
            return "stopped"
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(POLL_S)
    return "done"


class QueryClient:
    """Sends Query goals and waits for their results in the caller's (action) thread.

    The node must spin on a multi-threaded executor and ``callback_group`` must let the client's
    responses run while the caller's callback waits (a Reentrant or separate group).
    """

    def __init__(self, node: Node, action_name: str, callback_group: Any = None) -> None:
        self.action_name = action_name
        self._client = ActionClient(node, Query, action_name, callback_group=callback_group)

    def ask(
        self,
        instruction: str,
        task: str,
        timeout_s: float,
        thinking: str = "",
        image: Image | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Query.Result:
        """The result of one query; QueryError when there is none (the goal is then cancelled)."""
        started = time.monotonic()
        if not self._client.wait_for_server(timeout_sec=min(timeout_s, 10.0)):
            raise QueryError("unavailable", f"perception action {self.action_name} is not "
                                            f"available")
        goal = Query.Goal(instruction=instruction, task=task, thinking=thinking)
        if image is not None:
            goal.image = image
        sent = self._client.send_goal_async(goal)
        remaining = lambda: max(timeout_s - (time.monotonic() - started), 0.0)  # noqa: E731
        outcome = wait_until(sent.done, remaining(), should_stop)
        if outcome != "done":
            sent.add_done_callback(lambda future: self._cancel(future.result()))
            raise self._error(outcome, instruction, timeout_s)
        handle = sent.result()
        if handle is None or not handle.accepted:
            raise QueryError("unavailable", f"perception refused the query '{instruction[:60]}'")
        result = handle.get_result_async()
        outcome = wait_until(result.done, remaining(), should_stop)
        if outcome != "done":
            self._cancel(handle)
            raise self._error(outcome, instruction, timeout_s)
        return result.result().result

    @staticmethod
    def _cancel(handle: Any) -> None:
        if handle is not None and handle.accepted:
            handle.cancel_goal_async()  # the perception node stops the generation

    @staticmethod
    def _error(outcome: str, instruction: str, timeout_s: float) -> QueryError:
        if outcome == "stopped":
            return QueryError("stopped", f"the query '{instruction[:60]}' was cancelled")
        return QueryError("timeout", f"no model answer to '{instruction[:60]}' within "
                                     f"{timeout_s:g} s; the query was cancelled")
