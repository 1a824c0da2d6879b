"""The pick-and-place stage machine's ports over the manipulation bridge's ROS interfaces.

Perception through the perception node's ~/query action, the depth of the frame the model saw
(ros/depth_buffer.py), and the camera pose in the base frame at that frame's stamp (TF per
query, so a wrist camera works, or the static extrinsic; ros/tf_lookup.py), carried by each
point. A missing transform is a stage failure naming the frames and the stamp.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from rclpy.action.server import ServerGoalHandle
from scipy.spatial.transform import Rotation

from mimo_embodied_msgs.action import PickPlace
from mimo_embodied_msgs.msg import AffordancePoint
from mimo_embodied_ros.core.pickplace import transform_points
from mimo_embodied_ros.core.pickplace_stages import (
    PerceivedPoint,
    PlannedTarget,
    StageFailure,
    local_cloud,
)
from mimo_embodied_ros.ros.depth_buffer import FrameHold
from mimo_embodied_ros.ros.images import intrinsics_from_camera_info
from mimo_embodied_ros.ros.query_client import QueryError
from mimo_embodied_ros.ros.sync import stamp_seconds
from mimo_embodied_ros.ros.tf_lookup import TfLookupError

if TYPE_CHECKING:
    from mimo_embodied_ros.nodes.manipulation_bridge_node import ManipulationBridgeNode


class BridgePorts:
    """The stage machine's ports for one goal (core.pickplace_stages.PickPlacePorts)."""

    def __init__(self, node: ManipulationBridgeNode, handle: ServerGoalHandle) -> None:
        self.node, self.handle = node, handle

    def feedback(self, stage: str, message: str, progress: float) -> None:
        self.node.tracker.set_stage(stage)
        self.handle.publish_feedback(PickPlace.Feedback(stage=stage, message=message,
                                                        progress=float(progress)))

    def cancel_requested(self) -> bool:
        return self.handle.is_cancel_requested or self.node._stopping.is_set()

    def perceive(self, description: str, stage: str, role: str) -> PerceivedPoint:
        """The first point with valid depth the model gives, with a hold on its frames."""
        node = self.node
        timeout = float(node.param("perception_timeout_s"))
        hold = node.frames.hold()  # before the query: the frame it runs on is kept
        try:
            response = node.query_client().ask(description, "point", timeout,
                                               thinking=node.param("query_thinking"),
                                               should_stop=self.cancel_requested)
            points: list[AffordancePoint] = list(response.affordances.points)
            if not points:
                why = response.message if not response.success else (
                    f"the model gave no point (answer: '{response.affordances.answer[:80]}')")
                raise StageFailure(stage, f"{role} '{description}' not found: {why}")
            valid = [p for p in points if p.in_image and p.depth_valid]
            if not valid:
                reasons = ", ".join(sorted({p.status for p in points}))
                raise StageFailure(stage, f"{role} point for '{description}' is invalid: "
                                   f"{reasons} ({len(points)} point(s), none in the image with "
                                   "valid depth)")
        except QueryError as error:
            hold.release()
            raise StageFailure(stage, f"perception: {error} (perception timeout "
                                      f"{timeout:g} s)") from None
        except BaseException:
            hold.release()
            raise
        p, header = valid[0], response.affordances.header
        pose = self._camera_pose(header.stamp, header.frame_id, stage, hold)
        return PerceivedPoint(p.u, p.v, np.array([p.position.x, p.position.y, p.position.z]),
                              stamp_seconds(header.stamp), hold, pose)

    def _camera_pose(self, stamp: Any, frame_id: str, stage: str, hold: FrameHold) -> Any:
        """The camera pose in the base frame at the image stamp (TF per query: wrist cameras)."""
        try:
            return self.node.camera_pose.at(stamp, frame_id)
        except TfLookupError as error:
            hold.release()
            raise StageFailure(stage, f"camera pose: {error}") from None

    def explicit_point(self, xyz: np.ndarray, frame_id: str, stage: str) -> PerceivedPoint:
        """A goal's point in the camera frame, its pixel projected in the newest frame."""
        node = self.node
        frame = frame_id or node.param("base_frame")
        if frame not in (node.param("base_frame"), node.param("camera_frame")):
            raise StageFailure(stage, f"point frame '{frame}' is neither the base frame "
                               f"'{node.param('base_frame')}' nor the camera frame "
                               f"'{node.param('camera_frame')}'")
        hold = node.frames.hold()
        newest = hold.at(None, 0.0)
        if newest is None:
            hold.release()
            raise StageFailure(stage, f"no depth frame received yet on {node.param('depth_topic')}")
        pose = self._camera_pose(newest.depth.header.stamp, newest.depth.header.frame_id, stage,
                                 hold)  # the camera pose of the newest frame
        if frame == node.param("base_frame"):
            xyz = Rotation.from_quat(pose[1]).inv().apply(xyz - pose[0])
        if xyz[2] <= 0:
            hold.release()
            raise StageFailure(stage, "the explicit point is behind the camera")
        k = intrinsics_from_camera_info(newest.camera_info)
        return PerceivedPoint(k.fx * xyz[0] / xyz[2] + k.cx, k.fy * xyz[1] / xyz[2] + k.cy, xyz,
                              newest.stamp_s, hold, pose)

    def to_base(self, point: PerceivedPoint) -> np.ndarray:
        return transform_points(point.camera_xyz, *point.camera_pose)

    def local_cloud(self, point: PerceivedPoint) -> np.ndarray:
        """Base-frame points of the depth pixels within cloud.radius_m around the pick point,
        from the depth frame of the image the model saw (held since the query was sent)."""
        node = self.node
        slop = float(node.param("sync_slop_s"))
        hold: FrameHold = point.frames
        found = hold.at(point.stamp_s, slop, wait_s=float(node.param("depth_wait_s")))
        if found is None:
            raise StageFailure("grasp", f"no depth frame within {slop:g} s (sync_slop_s) of the "
                               f"image stamp {point.stamp_s:.3f}: held {hold.describe()}; "
                               f"buffered now {node.frames.describe()} from "
                               f"{node.param('depth_topic')}")
        try:
            depth_m, k = found.arrays()
        except ValueError as error:
            raise StageFailure("grasp", f"depth frame rejected: {error}") from error
        return local_cloud(depth_m, k, point, float(node.param("cloud.radius_m")),
                           int(node.param("cloud.stride")), *point.camera_pose)

    def publish(self, target: PlannedTarget) -> None:
        self.node.publish(target)

    def execute(self, target: PlannedTarget, on_stage: Callable[[str, str, float], None],
                should_cancel: Callable[[], bool]) -> Any:
        return self.node.execute_plan(target, on_stage, should_cancel)

    def release(self, point: PerceivedPoint) -> None:
        if isinstance(point.frames, FrameHold):
            point.frames.release()
