"""How the navigator moves the base: goals to Nav2, never /cmd_vel behind Nav2's back.

Nav2 never drops a goal because someone else publishes /cmd_vel (two publishers then fight), so
every motion here is a goal: a drive is a goal pose, a turn in place is a goal at the current
position with the new heading. The only /cmd_vel this module sends is a zero twist to stop the
base, and only after the goal has been cancelled and has ended.

Outcomes: the navigate_to_pose action reports one (ros/nav2_adapter.py); a /goal_pose topic does
not, so a goal counts as reached when the pose is within the goal checker's tolerance (position
AND heading, as Nav2's goal checker) and the base has stood still for ``still_s``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from geometry_msgs.msg import PoseStamped, Twist
from rclpy.callback_groups import CallbackGroup
from rclpy.duration import Duration
from rclpy.node import Node

from mimo_embodied_ros.core.navmap import wrap_angle
from mimo_embodied_ros.core.pose_buffer import Pose2D, PoseBuffer
from mimo_embodied_ros.ros.nav2_adapter import Nav2GoalSender
from mimo_embodied_ros.ros.navigation_markers import planar_pose, pose_stamped

ACK_TIMEOUT = Duration(seconds=0.5)
"""How long a shutdown waits for the base to acknowledge the goal replacement and the stop."""

POLL_S = 0.05


class MotionFailed(RuntimeError):
    """The base did not reach a goal (Nav2 aborted or rejected it, or it timed out)."""


class MotionStopped(Exception):
    """``should_stop`` turned true while waiting (a cancel, or the node shutting down)."""


@dataclass(frozen=True)
class MotionConfig:
    goal_interface: str = "goal_pose"  # goal_pose | nav2_action
    goal_pose_topic: str = "/goal_pose"
    cmd_vel_topic: str = "/cmd_vel"
    nav2_action_name: str = "/navigate_to_pose"
    map_frame: str = "map"
    xy_tolerance_m: float = 0.3  # >= the goal checker's (Nav2 default 0.25 m)
    yaw_tolerance_rad: float = 0.3  # >= the goal checker's (Nav2 default 0.25 rad)
    still_s: float = 0.3  # /goal_pose only: reached = in tolerance and still this long
    turn_timeout_s: float = 15.0
    stop_timeout_s: float = 5.0


def wait_until(node: Node, condition: Callable[[], bool], timeout_s: float,
               should_stop: Callable[[], bool], wall_clock: bool = False) -> None:
    """Poll ``condition``; MotionStopped when ``should_stop``, TimeoutError after ``timeout_s``.

    Timeouts run on the node clock (sim time in simulation); a clock that stops advancing still
    ends the wait after ten times the timeout of wall time."""
    clock = node.get_clock()
    start_clock = clock.now().nanoseconds * 1e-9
    start_wall = time.monotonic()
    while True:
        if should_stop():
            raise MotionStopped()
        if condition():
            return
        wall = time.monotonic() - start_wall
        elapsed = wall if wall_clock else clock.now().nanoseconds * 1e-9 - start_clock
        if elapsed > timeout_s or wall > 10.0 * timeout_s + 10.0:
            raise TimeoutError()
        time.sleep(POLL_S)


class BaseMotion:
    """Goals (drives, turns in place), their outcomes, and stopping the base."""

    def __init__(self, node: Node, config: MotionConfig, poses: PoseBuffer,
                 callback_group: CallbackGroup, nav2: Nav2GoalSender | None = None) -> None:
        self._node = node
        self.config = config
        self._poses = poses
        self._nav2 = nav2
        self._goal_pub = node.create_publisher(PoseStamped, config.goal_pose_topic, 10)
        self._cmd_vel_pub = node.create_publisher(Twist, config.cmd_vel_topic, 10)
        self.goal: Pose2D | None = None  # the goal in flight (None once it ended)

    # Goals ------------------------------------------------------------------------------------

    def go(self, x: float, y: float, yaw: float, timeout_s: float,
           should_stop: Callable[[], bool]) -> None:
        """Send a goal and wait for its outcome; MotionFailed / MotionStopped otherwise."""
        goal = Pose2D(x, y, yaw)
        self._send(goal, should_stop)
        try:
            wait_until(self._node, lambda: self._reached(goal), timeout_s, should_stop)
        except TimeoutError:
            pose = self.pose()
            where = "no pose" if pose is None else (
                f"robot at ({pose.x:.2f}, {pose.y:.2f}, {math.degrees(pose.yaw):.0f} deg), "
                f"{math.hypot(x - pose.x, y - pose.y):.2f} m away")
            raise MotionFailed(f"did not reach the goal ({x:.2f}, {y:.2f}, "
                               f"{math.degrees(yaw):.0f} deg) within {timeout_s:.0f} s: "
                               f"{where}") from None
        self.goal = None

    def turn_to(self, yaw: float, should_stop: Callable[[], bool]) -> None:
        """Turn in place: a goal at the current position with the new heading."""
        pose = self.pose()
        if pose is None:
            raise MotionFailed("no robot pose to turn from")
        try:
            self.go(pose.x, pose.y, yaw, self.config.turn_timeout_s, should_stop)
        except MotionFailed as error:
            raise MotionFailed(f"turn in place failed: {error}") from None

    def _send(self, goal: Pose2D, should_stop: Callable[[], bool]) -> None:
        stamped = pose_stamped(self.config.map_frame, self._node.get_clock().now().to_msg(),
                               planar_pose(goal.x, goal.y, goal.yaw))
        self.goal = goal
        if self._nav2 is not None:
            self._nav2.send(stamped)
            return
        # A goal published before the base's subscription is matched would be lost.
        try:
            wait_until(self._node, lambda: self._goal_pub.get_subscription_count() > 0, 5.0,
                       should_stop, wall_clock=True)
        except TimeoutError:
            raise MotionFailed(f"nothing subscribes to {self.config.goal_pose_topic}: is Nav2 "
                               "(or the simulator) running?") from None
        self._sent_at = self._clock_s()
        self._goal_pub.publish(stamped)

    def _reached(self, goal: Pose2D) -> bool:
        if self._nav2 is not None:
            state = self._nav2.state
            if state in ("aborted", "rejected", "canceled"):
                raise MotionFailed(f"Nav2 {state} the goal")
            return state == "succeeded"
        pose = self.pose()
        if pose is None or not self._within(goal, pose):
            return False
        return self._still_since(self._sent_at)

    def _within(self, goal: Pose2D, pose: Pose2D) -> bool:
        return (math.hypot(goal.x - pose.x, goal.y - pose.y) <= self.config.xy_tolerance_m and
                abs(wrap_angle(goal.yaw - pose.yaw)) <= self.config.yaw_tolerance_rad)

    def _still_since(self, since_s: float) -> bool:
        """The pose has not moved (1 cm, 0.01 rad) since ``since_s`` for at least still_s."""
        latest = self._poses.latest()
        if latest is None or latest[0] - since_s < self.config.still_s - 1e-6:
            return False
        stamp, pose = latest
        try:
            before = self._poses.at(stamp - self.config.still_s)
        except LookupError:
            return False
        return (math.hypot(pose.x - before.x, pose.y - before.y) < 0.01 and
                abs(wrap_angle(pose.yaw - before.yaw)) < 0.01)

    # Stopping ---------------------------------------------------------------------------------

    def stop(self, should_stop: Callable[[], bool] = lambda: False, wait: bool = True) -> None:
        """Cancel the goal in flight, wait (``wait``) until it ended, then a zero twist.

        With /goal_pose there is no cancel: the goal is replaced by the current pose, which the
        goal checker accepts at once. Without ``wait`` (shutdown) each message is waited on until
        the base's reliable subscriptions acknowledged it (at most ACK_TIMEOUT): messages on two
        topics are not ordered by DDS, and a node destroyed at once would drop its queue."""
        if self.goal is not None:
            if self._nav2 is not None:
                self._nav2.cancel()
                ended = lambda: self._nav2.state not in ("pending", "active")  # noqa: E731
            else:
                pose = self.pose()
                if pose is not None:
                    self._goal_pub.publish(pose_stamped(
                        self.config.map_frame, self._node.get_clock().now().to_msg(),
                        planar_pose(pose.x, pose.y, pose.yaw)))
                    self._sent_at = self._clock_s()
                    if not wait:  # shutting down: the goal must land before the twist below
                        self._goal_pub.wait_for_all_acked(ACK_TIMEOUT)
                ended = lambda: pose is None or self._still_since(self._sent_at)  # noqa: E731
            if wait:
                try:
                    wait_until(self._node, ended, self.config.stop_timeout_s, should_stop,
                               wall_clock=True)
                except (TimeoutError, MotionStopped):
                    self._node.get_logger().warning("the base did not confirm the stop")
            self.goal = None
        self._cmd_vel_pub.publish(Twist())
        if not wait:  # the node may be destroyed next: do not let the stop die in its queue
            self._cmd_vel_pub.wait_for_all_acked(ACK_TIMEOUT)

    # Helpers ----------------------------------------------------------------------------------

    def pose(self) -> Pose2D | None:
        latest = self._poses.latest()
        return None if latest is None else latest[1]

    def _clock_s(self) -> float:
        return self._node.get_clock().now().nanoseconds * 1e-9
