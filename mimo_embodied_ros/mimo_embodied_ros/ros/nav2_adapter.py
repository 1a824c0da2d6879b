"""Goals through Nav2's NavigateToPose action, for robots whose stack exposes it.

nav2_msgs is not installable here (no wheel), so it is imported only when this adapter is built;
without it the caller gets a clear Nav2UnavailableError. The default remains the plain /goal_pose
topic, which Nav2's bt_navigator also subscribes to.

Every callback is keyed on the goal it belongs to (:class:`GoalBook`): a new goal supersedes the
old one, and the old goal's late response or result (Nav2 answers a preempted goal with ABORTED
or CANCELED, possibly after the new goal was accepted) never changes the state of the current
one. The bookkeeping is plain code, tested with out-of-order answers; the sender takes the action
type as an argument so it can be tested against a stand-in action of the same shape.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node

ACTIVE_STATES = ("pending", "active")


class Nav2UnavailableError(RuntimeError):
    """nav2_msgs cannot be imported, so the NavigateToPose action cannot be used."""


def load_navigate_to_pose() -> Any:
    """The NavigateToPose action type, or Nav2UnavailableError saying what to do instead."""
    try:
        from nav2_msgs.action import NavigateToPose
    except ImportError as error:
        raise Nav2UnavailableError(
            f"goal_interface 'nav2_action' needs nav2_msgs, which is not importable ({error}); "
            "install Nav2 (ros-<distro>-nav2-msgs) or set goal_interface to 'goal_pose'"
        ) from error
    return NavigateToPose


class GoalBook:
    """Which goal is current, and its state; events of any other goal are ignored.

    ``state``: "idle", "pending", "active", "succeeded", "aborted", "canceled", "rejected".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys = itertools.count(1)
        self.current: int | None = None
        self.state = "idle"
        self.handle: Any = None
        self.ignored = 0  # late events of superseded goals

    def new_goal(self) -> tuple[int, Any]:
        """Key of a new current goal, and the handle of the goal it supersedes (to cancel)."""
        with self._lock:
            key = next(self._keys)
            previous = self.handle if self.state in ACTIVE_STATES else None
            self.current, self.state, self.handle = key, "pending", None
            return key, previous

    def responded(self, key: int, accepted: bool, handle: Any) -> bool:
        """The server's answer to goal ``key``; False when ``key`` is no longer current."""
        with self._lock:
            if key != self.current:
                self.ignored += 1
                return False
            self.state = "active" if accepted else "rejected"
            self.handle = handle if accepted else None
            return True

    def finished(self, key: int, state: str) -> bool:
        """Goal ``key`` ended with ``state``; False (ignored) when it is not the current one."""
        with self._lock:
            if key != self.current:
                self.ignored += 1
                return False
            self.state, self.handle = state, None
            return True

    def take_handle(self) -> Any:
        """The current goal's handle to cancel (the goal stays current until it ends)."""
        with self._lock:
            return self.handle if self.state in ACTIVE_STATES else None


class Nav2GoalSender:
    """Sends one NavigateToPose goal at a time; a new goal cancels and supersedes the previous.

    ``action_type`` defaults to nav2_msgs' NavigateToPose; ``goal_field`` names the goal's
    PoseStamped field ("pose" there)."""

    def __init__(self, node: Node, action_name: str, callback_group: CallbackGroup,
                 action_type: Any = None, goal_field: str = "pose") -> None:
        self._action_type = action_type if action_type is not None else load_navigate_to_pose()
        self._goal_field = goal_field
        self._client = ActionClient(node, self._action_type, action_name,
                                    callback_group=callback_group)
        self._action_name = action_name
        self.book = GoalBook()

    @property
    def state(self) -> str:
        return self.book.state

    def send(self, goal: PoseStamped, server_timeout_s: float = 10.0) -> int:
        """Send a goal (non-blocking once the server is found); its key. RuntimeError if no
        server."""
        if not self._client.wait_for_server(timeout_sec=server_timeout_s):
            raise RuntimeError(f"Nav2 action server {self._action_name} not available")
        key, previous = self.book.new_goal()
        if previous is not None:
            previous.cancel_goal_async()
        request = self._action_type.Goal(**{self._goal_field: goal})
        self._client.send_goal_async(request).add_done_callback(
            lambda future: self._on_response(key, future))
        return key

    def _on_response(self, key: int, future: Any) -> None:
        handle = future.result()
        accepted = handle is not None and handle.accepted
        if not self.book.responded(key, accepted, handle):
            if accepted:
                handle.cancel_goal_async()  # superseded before it was accepted
            return
        if accepted:
            handle.get_result_async().add_done_callback(
                lambda result: self._on_result(key, result))

    def _on_result(self, key: int, future: Any) -> None:
        from action_msgs.msg import GoalStatus

        names = {GoalStatus.STATUS_SUCCEEDED: "succeeded", GoalStatus.STATUS_ABORTED: "aborted",
                 GoalStatus.STATUS_CANCELED: "canceled"}
        self.book.finished(key, names.get(future.result().status, "aborted"))

    def cancel(self) -> None:
        """Cancel the current goal, if any (non-blocking; its result ends it)."""
        handle = self.book.take_handle()
        if handle is not None:
            handle.cancel_goal_async()
        elif self.book.state == "pending":
            # Not accepted yet: supersede it, so its acceptance is cancelled on arrival.
            self.book.new_goal()
            self.book.finished(self.book.current, "canceled")
