"""The NavA3 stages' view of the robot and the model over the navigator node's ROS interfaces.

Model calls go through the perception node's ~/query action in the action's own thread; a point
answer carries the camera pose in the base frame at the stamp of the image the model saw (TF
looked up per query, or the static extrinsic; ros/tf_lookup.py).
"""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any

import numpy as np
from geometry_msgs.msg import Point, PoseStamped
from rclpy.action.server import ServerGoalHandle
from sensor_msgs.msg import Image

from mimo_embodied_msgs.action import NavigateTo, Query
from mimo_embodied_msgs.msg import NavigationGoal
from mimo_embodied_ros.core.nava3_stages import (
    CameraPoint,
    NavA3Run,
    PointAnswer,
    RegionAnswer,
    RegionPoint,
    StageCancelled,
    StageFailure,
)
from mimo_embodied_ros.core.navmap import GridSpec
from mimo_embodied_ros.core.parsing import parse_region_target
from mimo_embodied_ros.core.pose_buffer import Pose2D
from mimo_embodied_ros.ros.base_motion import MotionFailed, MotionStopped, wait_until
from mimo_embodied_ros.ros.images import array_to_image
from mimo_embodied_ros.ros.navigation_markers import (
    navigation_goal_msg,
    navigation_markers,
    planar_pose,
    pose_stamped,
)
from mimo_embodied_ros.ros.query_client import QueryError
from mimo_embodied_ros.ros.sync import stamp_seconds
from mimo_embodied_ros.ros.tf_lookup import TfLookupError

if TYPE_CHECKING:
    from mimo_embodied_ros.nodes.navigator_node import NavigatorNode

INPUT_WAIT_S = 5.0  # wait for a first map and pose before failing a navigation


class NavigatorIo:
    """The NavA3 stages' view of the robot and the model, over the node's ROS interfaces."""

    def __init__(self, node: NavigatorNode, handle: ServerGoalHandle) -> None:
        self.node, self.handle = node, handle
        self.goals: list[NavigationGoal] = []
        self.current_goal = PoseStamped()

    def should_stop(self) -> bool:
        return self.handle.is_cancel_requested or self.node.stopping()

    def _waiting(self, call: Any, stage: str) -> Any:
        try:
            return call()
        except MotionStopped:
            raise StageCancelled() from None
        except (MotionFailed, RuntimeError) as error:
            raise StageFailure(stage, str(error)) from None

    def map(self) -> tuple[np.ndarray, GridSpec] | None:
        with suppress(TimeoutError, MotionStopped):  # right after start-up: on their way
            wait_until(self.node, lambda: self.node._map is not None and self.pose() is not None,
                       INPUT_WAIT_S, self.should_stop, wall_clock=True)
        if self.should_stop():
            raise StageCancelled()
        with self.node._map_lock:
            return self.node._map

    def pose(self) -> Pose2D | None:
        return self.node.motion.pose()

    def pose_at(self, stamp_s: float) -> Pose2D:
        return self.node._poses.at(stamp_s)

    def _ask(self, stage: str, task: str, instruction: str, image: Image | None = None) -> (
            Query.Result):
        try:
            response = self.node._query.ask(instruction, task, self.node.param("query_timeout_s"),
                                            image=image, should_stop=self.should_stop)
        except QueryError as error:
            if error.reason == "stopped":
                raise StageCancelled() from None
            raise StageFailure(stage, str(error)) from None
        if response is None:
            raise StageFailure(stage, f"the {task} query returned nothing")
        # A failed query with points (e.g. all outside the image) is judged by the stages.
        if not response.success and not response.affordances.points:
            raise StageFailure(stage, f"the {task} query failed: {response.message}")
        return response

    def ask_region(self, instruction: str, image: np.ndarray) -> RegionAnswer:
        message = array_to_image(image, "rgb8", self.node._map_header())
        self.node._map_image_pub.publish(message)
        r = self._ask("map_reasoning", "region", instruction, message)
        points = [RegionPoint(p.u, p.v, p.u_model, p.v_model, p.in_image, p.label)
                  for p in r.affordances.points]
        return RegionAnswer(points, r.answer, r.reasoning, parse_region_target(r.answer) or "",
                            r.parse_status, r.message)

    def ask_choice(self, question: str) -> str:
        return self._ask("scanning", "choice", question).answer

    def ask_point(self, target: str) -> PointAnswer:
        r = self._ask("scanning", "point", target)
        points = [CameraPoint((p.position.x, p.position.y, p.position.z), p.in_image,
                              p.depth_valid, p.status) for p in r.affordances.points]
        header = r.affordances.header
        try:  # the camera pose of the image the model saw
            pose = self.node.camera_pose.at(header.stamp, header.frame_id)
        except TfLookupError as error:
            raise StageFailure("scanning", f"camera pose: {error}") from None
        return PointAnswer(stamp_seconds(header.stamp), points, r.success, r.message,
                           (tuple(pose[0]), tuple(pose[1])))

    def drive(self, stage: str, x: float, y: float, yaw: float, timeout_s: float) -> None:
        self.current_goal = pose_stamped(self.node.param("map_frame"),
                                         self.node.get_clock().now().to_msg(),
                                         planar_pose(x, y, yaw))
        self.feedback(stage, f"driving to ({x:.2f}, {y:.2f})")
        self._waiting(lambda: self.node.motion.go(x, y, yaw, timeout_s, self.should_stop), stage)

    def turn_to(self, stage: str, yaw: float) -> None:
        self._waiting(lambda: self.node.motion.turn_to(yaw, self.should_stop), stage)

    def settle(self, seconds: float) -> None:
        if seconds > 0.0:
            with suppress(TimeoutError):
                self._waiting(lambda: wait_until(self.node, lambda: False, seconds,
                                                 self.should_stop), "scanning")

    def feedback(self, stage: str, message: str) -> None:
        self.node.tracker.set_stage(stage)
        self.node.get_logger().info(f"[{stage}] {message}")
        self.handle.publish_feedback(NavigateTo.Feedback(stage=stage, message=message,
                                                         current_goal=self.current_goal))

    def goal_chosen(self, kind: str, goal: Pose2D, point: tuple[float, float, float],
                    run: NavA3Run) -> None:
        header = self.node._map_header()
        msg = navigation_goal_msg(header, kind, run.target, run.region,
                                  planar_pose(goal.x, goal.y, goal.yaw),
                                  Point(x=float(point[0]), y=float(point[1]), z=float(point[2])),
                                  run.reasoning)
        self.goals.append(msg)
        self.node._goals_pub.publish(msg)
        self.node._markers_pub.publish(navigation_markers(header, self.goals,
                                                          self.node._config().regions))
        self.node.get_logger().info(f"'{run.instruction}': {kind} goal ({goal.x:.2f}, "
                                    f"{goal.y:.2f}), region '{run.region}', target "
                                    f"'{run.target}'")
