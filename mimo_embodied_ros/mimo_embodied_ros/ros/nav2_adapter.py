"""Goals through Nav2's NavigateToPose action, for robots whose stack exposes it.

nav2_msgs is not installable here (no wheel), so it is imported only when this adapter is built;
without it the caller gets a clear Nav2UnavailableError. The default remains the plain /goal_pose
topic, which Nav2's bt_navigator also subscribes to.
"""

from __future__ import annotations

import threading
from typing import Any

from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.callback_groups import CallbackGroup
from rclpy.node import Node


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


class Nav2GoalSender:
    """Sends one NavigateToPose goal at a time; a new goal cancels the previous one.

    ``state`` is "idle", "pending", "active", "succeeded", "aborted", "canceled" or
    "rejected"; the navigator still judges arrival from the robot pose, and treats "aborted" /
    "rejected" as failures reported by Nav2.
    """

    def __init__(self, node: Node, action_name: str, callback_group: CallbackGroup) -> None:
        self._action_type = load_navigate_to_pose()
        self._client = ActionClient(node, self._action_type, action_name,
                                    callback_group=callback_group)
        self._action_name = action_name
        self._lock = threading.Lock()
        self._handle: Any = None
        self.state = "idle"

    def send(self, goal: PoseStamped, server_timeout_s: float = 10.0) -> None:
        """Send a goal (non-blocking after the server is found); RuntimeError if none is."""
        if not self._client.wait_for_server(timeout_sec=server_timeout_s):
            raise RuntimeError(f"Nav2 action server {self._action_name} not available")
        self.cancel()
        with self._lock:
            self.state = "pending"
        request = self._action_type.Goal(pose=goal)
        self._client.send_goal_async(request).add_done_callback(self._on_response)

    def _on_response(self, future: Any) -> None:
        handle = future.result()
        with self._lock:
            if handle is None or not handle.accepted:
                self.state = "rejected"
                return
            self._handle = handle
            self.state = "active"
        handle.get_result_async().add_done_callback(self._on_result)

    def _on_result(self, future: Any) -> None:
        from action_msgs.msg import GoalStatus

        status = future.result().status
        names = {GoalStatus.STATUS_SUCCEEDED: "succeeded", GoalStatus.STATUS_ABORTED: "aborted",
                 GoalStatus.STATUS_CANCELED: "canceled"}
        with self._lock:
            self.state = names.get(status, "aborted")
            self._handle = None

    def cancel(self) -> None:
        """Cancel the goal in flight, if any (non-blocking)."""
        with self._lock:
            handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel_goal_async()
