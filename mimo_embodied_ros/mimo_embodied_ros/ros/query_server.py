"""The perception node's `~/query` action server: goals in, throttled feedback, cancel events.

The node gives it one function, ``answer(request, cancel, on_progress) -> (result, header)`` and a
``fill(result_msg, result, header)``; this module turns a cancel request into the event the
backend watches, and the backend's progress into Query feedback.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.node import Node

from mimo_embodied_msgs.action import Query
from mimo_embodied_ros.backends.base import Progress
from mimo_embodied_ros.core.text import safe_text

FEEDBACK_PERIOD_S = 0.2  # at most five "generating" feedback messages a second per query
FEEDBACK_TEXT_CHARS = 2000  # the tail of the text so far that feedback carries


class QueryActionServer:
    """Serves mimo_embodied_msgs/action/Query with the node's answer and fill functions."""

    def __init__(self, node: Node, name: str, answer: Callable[..., tuple[Any, Any]],
                 fill: Callable[[Any, Any, Any], Any], callback_group: Any) -> None:
        self._answer, self._fill = answer, fill
        self._cancel_events: dict[bytes, threading.Event] = {}
        self._server = ActionServer(
            node, Query, name, self._execute, callback_group=callback_group,
            goal_callback=lambda _: GoalResponse.ACCEPT, cancel_callback=self._on_cancel)

    def _event(self, goal_handle: Any) -> threading.Event:
        return self._cancel_events.setdefault(bytes(goal_handle.goal_id.uuid), threading.Event())

    def _on_cancel(self, goal_handle: Any) -> CancelResponse:
        self._event(goal_handle).set()  # the backend stops the generation
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle: Any) -> Query.Result:
        cancel = self._event(goal_handle)
        started = time.monotonic()
        last_sent = [0.0]

        def feedback(progress: Progress) -> None:
            now = time.monotonic()
            if progress.phase == "generating" and now - last_sent[0] < FEEDBACK_PERIOD_S:
                return
            last_sent[0] = now
            goal_handle.publish_feedback(Query.Feedback(
                phase=progress.phase, tokens_generated=max(int(progress.tokens), 0),
                text_so_far=safe_text(progress.text[-FEEDBACK_TEXT_CHARS:]),
                elapsed_s=now - started))

        feedback(Progress("waiting"))
        try:
            result, header = self._answer(goal_handle.request, cancel, feedback)
            response = self._fill(Query.Result(), result, header)
        finally:
            self._cancel_events.pop(bytes(goal_handle.goal_id.uuid), None)
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
        elif response.success:
            goal_handle.succeed()
        else:
            goal_handle.abort()
        return response

    def destroy(self) -> None:
        self._server.destroy()
