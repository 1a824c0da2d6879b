"""Manipulation bridge `manipulation_bridge`: language or points in, a pick-and-place out.

Action `~/pick_place` (mimo_embodied_msgs/action/PickPlace). A goal gives an instruction ("put the
red cube in the bowl", split into object and place descriptions by core.pickplace), or the two
descriptions, or explicit points (`use_points`, frame = base frame or camera optical frame). The
bridge then

1. asks the perception node's `/mimo_embodied/instruct` (task "point") for the object, then for
   the place, and takes the first point of each that has valid depth;
2. takes the depth frame whose stamp matches the answer's image stamp (a small stamp-indexed buffer
   of its own depth + camera_info subscriptions), back-projects the pixels around the pick point
   (core.depth.depth_to_points) and moves them to the arm's base frame with the camera extrinsic
   from config (`camera_to_base.*`; tf2 is not used here);
3. computes the grasp (core.grasp), the stage poses (core.pickplace.plan_pick_place) and refuses a
   target outside the workspace limits or the max reach before any motion;
4. publishes `~/targets` (PickPlaceTarget), `~/markers` (MarkerArray) and `~/collision_object`
   (moveit_msgs/CollisionObject with the moveit executor, else a visualization_msgs/Marker);
5. executes stage by stage with the executor named by the `executor` parameter (moveit | sim |
   none), with feedback per stage. Cancelling the goal cancels the arm motion in flight.

Every failure ends the goal with success=false, the stage that failed (failed_stage) and a
readable message; the node keeps serving. One goal runs at a time; others are rejected meanwhile.

Pick-and-place instructions go to this action, not to the perception node's `~/instruct` service
(which answers questions about the current frame and is used by this node): an operator sends e.g.
`ros2 action send_goal /manipulation_bridge/pick_place mimo_embodied_msgs/action/PickPlace
"{instruction: 'put the red cube in the bowl'}" --feedback`.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker, MarkerArray

from mimo_embodied_msgs.action import PickPlace
from mimo_embodied_msgs.msg import AffordancePoint, PickPlaceTarget
from mimo_embodied_ros.core.depth import depth_to_metres, depth_to_points
from mimo_embodied_ros.core.grasp import GraspSettings, compute_grasp
from mimo_embodied_ros.core.pickplace import (
    MotionSettings,
    WorkspaceLimits,
    check_workspace,
    plan_pick_place,
    split_pick_place_instruction,
    transform_points,
)
from mimo_embodied_ros.core.types import CameraIntrinsics
from mimo_embodied_ros.executors import (
    ExecutionPlan,
    ExecutionResult,
    ExecutorConfigurationError,
    create_executor,
)
from mimo_embodied_ros.ros import manipulation_markers as mm
from mimo_embodied_ros.ros.images import (
    ImageConversionError,
    image_to_array,
    intrinsics_from_camera_info,
)
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.qos import qos_by_name
from mimo_embodied_ros.ros.query_client import QueryClient, QueryError
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_ros.ros.sync import stamp_seconds

NODE_NAME = "manipulation_bridge"
UP = (0.0, 0.0, 1.0)  # the base frame's z axis points up (REP 103)

# name -> description; defaults are in config/manipulation.yaml (ros/params.py).
PARAMETERS: dict[str, str] = {
    "executor": "What moves the arm: moveit (MoveIt 2), sim (simulator MoveArm), none.",
    "query_action": "Perception node's Query action.",
    "query_thinking": "'' (node default), 'think' or 'no_think' for the pointing queries.",
    "depth_topic": "Depth image registered to colour (the perception node's).",
    "camera_info_topic": "CameraInfo of the colour image.",
    "qos": "QoS of the depth/camera_info subscriptions: sensor_data or reliable.",
    "depth_buffer_size": "Depth frames kept to match an answer's image stamp.",
    "stamp_tolerance_s": "Max stamp difference between an answer's image and a depth frame.",
    "depth_wait_s": "How long to wait for the depth frame of an answer's stamp.",
    "camera_frame": "Camera optical frame id (explicit points may use it).",
    "base_frame": "Arm base frame: every pose is computed and sent in it.",
    "camera_to_base.translation": "Camera optical frame origin in the base frame [x, y, z], m.",
    "camera_to_base.rotation_xyzw": "Camera optical frame orientation in the base frame.",
    "perception_timeout_s": "Max wait for the Query action to appear and to answer; a query "
                            "still running then is cancelled.",
    "cloud.radius_m": "Half side of the depth window around the pick point, metres.",
    "cloud.stride": "Use every n-th depth pixel of that window.",
    "workspace.x_min": "TCP workspace box in the base frame, metres.",
    "workspace.x_max": "TCP workspace box in the base frame, metres.",
    "workspace.y_min": "TCP workspace box in the base frame, metres.",
    "workspace.y_max": "TCP workspace box in the base frame, metres.",
    "workspace.z_min": "TCP workspace box in the base frame, metres.",
    "workspace.z_max": "TCP workspace box in the base frame, metres.",
    "workspace.max_reach": "Max distance of any TCP pose from the shoulder, metres.",
    "workspace.shoulder_height": "Shoulder joint height above the base origin, metres.",
    "grasp.max_open_width": "Gripper fully open, metres.",
    "grasp.finger_clearance": "Opening beyond the object width, metres.",
    "grasp.finger_depth": "TCP below the touched surface, metres.",
    "grasp.top_down_max_tilt_deg": "Surface normals this close to up give a top-down grasp.",
    "grasp.neighbourhood_radius": "Horizontal radius of the cloud used for the grasp, metres.",
    "grasp.min_points": "Fewer cloud / object points than this -> refuse.",
    "motion.pre_grasp_distance": "Pre-grasp pose back along the approach, metres.",
    "motion.lift_height": "Lift straight up after the grasp, metres.",
    "motion.place_clearance": "Object bottom above the place point at release, metres.",
    "motion.pre_place_height": "Pre-place pose above the place pose, metres.",
    "motion.retreat_distance": "Retreat straight up after the release, metres.",
    "markers.lifetime_s": "Lifetime of RViz markers; 0 keeps them until the next target.",
    "sim.action_name": "MoveArm action of the simulator's arm.",
    "sim.server_timeout_s": "Max wait for the MoveArm action server, seconds.",
    "sim.stage_timeout_s": "Max duration of one stage, seconds.",
    "sim.require_holding": "Fail when the gripper closes on nothing.",
    "moveit.arm_group": "MoveIt planning group of the arm.",
    "moveit.hand_group": "MoveIt planning group of the gripper.",
    "moveit.tcp_link": "Link whose pose the targets are (tool centre point).",
    "moveit.finger_joints": "Finger joints of the hand group.",
    "moveit.planner_id": "Planner id; empty = the pipeline's default.",
    "moveit.max_velocity_scaling": "Velocity scaling factor, 0..1.",
    "moveit.max_acceleration_scaling": "Acceleration scaling factor, 0..1.",
    "moveit.allowed_planning_time": "Planning time per stage, seconds.",
    "moveit.move_group_action": "MoveGroup action name.",
    "moveit.execute_trajectory_action": "ExecuteTrajectory action name.",
    "moveit.cartesian_path_service": "GetCartesianPath service name.",
    "moveit.apply_scene_service": "ApplyPlanningScene service name.",
    "moveit.stage_timeout_s": "Max duration of one stage, seconds.",
}


class StageFailure(Exception):
    """A pick-and-place step that cannot go on: the failed stage and a readable reason."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


@dataclass
class LiftedPoint:
    """A perception point: its pixel, camera-frame position and the image header it came from."""

    u: float
    v: float
    camera_xyz: np.ndarray
    header: Header


@dataclass
class DepthFrame:
    depth_m: np.ndarray
    intrinsics: CameraIntrinsics  # of the colour image the answer's pixels refer to


class DepthBuffer:
    """The last few depth images and camera_infos, looked up by stamp (thread-safe)."""

    def __init__(self, size: int) -> None:
        self._depths: deque[Image] = deque(maxlen=size)
        self._infos: deque[CameraInfo] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add_depth(self, msg: Image) -> None:
        with self._lock:
            self._depths.append(msg)

    def add_camera_info(self, msg: CameraInfo) -> None:
        with self._lock:
            self._infos.append(msg)

    def at(self, stamp_s: float | None, tolerance_s: float) -> tuple[Image, CameraInfo] | None:
        """Depth nearest `stamp_s` (None = newest) within the tolerance, and the nearest info."""
        with self._lock:
            if not self._depths or not self._infos:
                return None
            if stamp_s is None:
                depth = self._depths[-1]
                stamp_s = stamp_seconds(depth.header.stamp)
            else:
                depth = min(self._depths,
                            key=lambda d: abs(stamp_seconds(d.header.stamp) - stamp_s))
                if abs(stamp_seconds(depth.header.stamp) - stamp_s) > tolerance_s:
                    return None
            info = min(self._infos, key=lambda c: abs(stamp_seconds(c.header.stamp) - stamp_s))
            return depth, info

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return len(self._depths), len(self._infos)


class ManipulationBridgeNode(Node):
    """Serves ~/pick_place: perception -> grasp -> checks -> targets -> execution."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_from_config(self, PARAMETERS, "manipulation.yaml", dynamic_numbers=True)
        self._busy = threading.Lock()
        self._buffer = DepthBuffer(int(self.param("depth_buffer_size")))
        # Services and the arm answer on their own groups while the action callback waits.
        self._client_group = ReentrantCallbackGroup()
        self._query_clients: dict[str, QueryClient] = {}
        sensor_group = ReentrantCallbackGroup()
        qos = qos_by_name(self.param("qos"))
        self.create_subscription(Image, self.param("depth_topic"), self._buffer.add_depth, qos,
                                 callback_group=sensor_group)
        self.create_subscription(CameraInfo, self.param("camera_info_topic"),
                                 self._buffer.add_camera_info, qos, callback_group=sensor_group)
        self._targets_pub = self.create_publisher(PickPlaceTarget, "~/targets", 10)
        self._markers_pub = self.create_publisher(MarkerArray, "~/markers", 10)
        kind = self.param("executor")
        try:
            self._executor = create_executor(kind, self, self._executor_settings(kind))
        except ExecutorConfigurationError as error:
            self.get_logger().fatal(str(error))
            raise
        self._collision_marker_pub = None
        if not getattr(self._executor, "publishes_collision_object", False):
            self._collision_marker_pub = self.create_publisher(Marker, "~/collision_object", 10)
        self._action = ActionServer(
            self, PickPlace, "~/pick_place", self._execute,
            goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=MutuallyExclusiveCallbackGroup(),
        )
        self.get_logger().info(f"ready: executor '{kind}', base frame '{self.param('base_frame')}'")

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _executor_settings(self, kind: str) -> dict[str, Any]:
        prefix = f"{kind}."
        return {name[len(prefix):]: self.param(name) for name in PARAMETERS
                if name.startswith(prefix)}

    # Settings read per goal, so a parameter change applies to the next goal ---------------------

    def _grasp_settings(self) -> GraspSettings:
        return GraspSettings(**self._group("grasp.", GraspSettings))

    def _motion_settings(self) -> MotionSettings:
        return MotionSettings(**self._group("motion.", MotionSettings))

    def _limits(self) -> WorkspaceLimits:
        return WorkspaceLimits(**self._group("workspace.", WorkspaceLimits))

    def _group(self, prefix: str, cls: type) -> dict[str, Any]:
        fields = cls.__dataclass_fields__
        values = {name[len(prefix):]: self.param(name) for name in PARAMETERS
                  if name.startswith(prefix)}
        return {k: (int(v) if fields[k].type in ("int", int) else float(v))
                for k, v in values.items()}

    def _camera_to_base(self) -> tuple[np.ndarray, np.ndarray]:
        translation = np.asarray(self.param("camera_to_base.translation"), dtype=float)
        rotation = np.asarray(self.param("camera_to_base.rotation_xyzw"), dtype=float)
        return translation, rotation / np.linalg.norm(rotation)

    # Action ------------------------------------------------------------------------------------

    def _on_goal(self, _: PickPlace.Goal) -> GoalResponse:
        if self._busy.locked():
            self.get_logger().warning("a pick-and-place is running: goal rejected")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, handle: ServerGoalHandle) -> PickPlace.Result:
        with self._busy:
            result = PickPlace.Result()
            stage = "parse"
            try:
                result.target, outcome = self._run(handle)
            except StageFailure as failure:
                stage, outcome = failure.stage, None
                result.message = f"{failure.stage}: {failure.message}"
            except Exception as error:  # a bug must not take the node down
                self.get_logger().error(f"pick-and-place failed unexpectedly: {error!r}")
                stage, outcome = "internal", None
                result.message = f"internal error: {error!r}"
            if outcome is not None:
                result.success = outcome.success
                result.message = outcome.message
                stage = outcome.failed_stage
            if handle.is_cancel_requested:
                result.success = False
                result.failed_stage = "cancelled"
                result.message = f"canceled during {stage or 'the last stage'}: {result.message}"
                handle.canceled()
            elif result.success:
                result.failed_stage = ""
                handle.succeed()
            else:
                result.failed_stage = stage or "execute"
                handle.abort()
            # rclpy binds a severity to each logging call site: one call per severity.
            if result.success:
                self.get_logger().info(f"pick_place succeeded: {result.message}")
            else:
                self.get_logger().warning(f"pick_place failed: {result.message}")
            return result

    def _feedback(self, handle: ServerGoalHandle, stage: str, message: str,
                  progress: float) -> None:
        handle.publish_feedback(PickPlace.Feedback(stage=stage, message=message,
                                                   progress=float(progress)))

    def _check_cancel(self, handle: ServerGoalHandle, stage: str) -> None:
        if handle.is_cancel_requested:
            raise StageFailure(stage, "canceled before any motion")

    def _run(self, handle: ServerGoalHandle) -> tuple[PickPlaceTarget, ExecutionResult]:
        goal: PickPlace.Goal = handle.request
        self._feedback(handle, "parsing", "reading the goal", 0.0)
        object_text, place_text = self._descriptions(goal)
        self._check_cancel(handle, "parse")

        self._feedback(handle, "perceiving", f"asking for '{object_text or 'the points'}'", 0.05)
        if goal.use_points:
            pick = self._explicit_point(goal.pick_point, "perceive_pick")
            place_base = self._to_base(self._explicit_point(goal.place_point, "perceive_place"))
        else:
            pick = self._perceive(object_text, "perceive_pick", "object")
            self._check_cancel(handle, "perceive_pick")
            place = self._perceive(place_text, "perceive_place", "place")
            place_base = self._to_base(place)
        self._check_cancel(handle, "perceive_place")

        self._feedback(handle, "planning", "computing the grasp and the stage poses", 0.15)
        pick_base = self._to_base(pick)
        cloud = self._local_cloud(pick)
        grasp_result = compute_grasp(cloud, pick_base, self._grasp_settings(), UP)
        if not grasp_result.ok:
            raise StageFailure("grasp", f"no grasp at the pick point ({grasp_result.status}, "
                               f"{cloud.shape[0]} cloud points)")
        grasp = grasp_result.grasp
        poses = plan_pick_place(grasp, place_base, self._motion_settings(), UP)
        header = Header(frame_id=self.param("base_frame"), stamp=pick.header.stamp)
        target = mm.target_msg(header, poses, grasp, pick_base, place_base,
                               object_text, place_text)
        self._publish(target)
        refusal = check_workspace(poses, self._limits())
        if refusal is not None:
            raise StageFailure("workspace", f"target refused before any motion: {refusal}")
        self._check_cancel(handle, "planning")

        plan = ExecutionPlan(poses=poses, frame_id=header.frame_id, obj=grasp.object)

        def on_stage(stage: str, message: str, fraction: float) -> None:
            self._feedback(handle, stage, message, 0.2 + 0.8 * fraction)

        outcome = self._executor.execute(plan, on_stage, lambda: handle.is_cancel_requested)
        if not outcome.success and not outcome.failed_stage:
            outcome.failed_stage = "execute"
        return target, outcome

    def _descriptions(self, goal: PickPlace.Goal) -> tuple[str, str]:
        if goal.use_points:
            return goal.object_description.strip(), goal.place_description.strip()
        object_text = goal.object_description.strip()
        place_text = goal.place_description.strip()
        if object_text and place_text:
            return object_text, place_text
        if goal.instruction.strip():
            split = split_pick_place_instruction(goal.instruction)
            if split is None:
                raise StageFailure("parse", f"cannot tell the object and the place in "
                                   f"'{goal.instruction}'; give object_description and "
                                   "place_description")
            return split
        raise StageFailure("parse", "the goal has no instruction, no object_description and "
                           "place_description, and use_points is false")

    # Perception --------------------------------------------------------------------------------

    def _query_client(self) -> QueryClient:
        name = self.param("query_action")
        if name not in self._query_clients:
            self._query_clients[name] = QueryClient(self, name, self._client_group)
        return self._query_clients[name]

    def _perceive(self, description: str, stage: str, role: str) -> LiftedPoint:
        """The first point with valid depth the model gives for `description`."""
        timeout = float(self.param("perception_timeout_s"))
        try:
            response = self._query_client().ask(description, "point", timeout,
                                                thinking=self.param("query_thinking"))
        except QueryError as error:
            raise StageFailure(stage, f"perception: {error} (perception timeout "
                                      f"{timeout:g} s)") from None
        points: list[AffordancePoint] = list(response.affordances.points)
        if not response.success and not points:
            raise StageFailure(stage, f"{role} '{description}' not found: {response.message}")
        if not points:
            raise StageFailure(stage, f"{role} '{description}' not found: the model gave no "
                               f"point (answer: '{response.affordances.answer[:80]}')")
        valid = [p for p in points if p.in_image and p.depth_valid]
        if not valid:
            reasons = ", ".join(sorted({p.status for p in points}))
            raise StageFailure(stage, f"{role} point for '{description}' is invalid: {reasons} "
                               f"({len(points)} point(s), none in the image with valid depth)")
        point = valid[0]
        position = np.array([point.position.x, point.position.y, point.position.z])
        return LiftedPoint(point.u, point.v, position, response.affordances.header)

    def _explicit_point(self, stamped: Any, stage: str) -> LiftedPoint:
        """A goal's PointStamped as a LiftedPoint in the camera frame (pixel from projection)."""
        frame = stamped.header.frame_id or self.param("base_frame")
        xyz = np.array([stamped.point.x, stamped.point.y, stamped.point.z], dtype=float)
        if not np.all(np.isfinite(xyz)):
            raise StageFailure(stage, "the explicit point is not finite")
        translation, rotation = self._camera_to_base()
        if frame == self.param("base_frame"):
            from scipy.spatial.transform import Rotation

            xyz = Rotation.from_quat(rotation).inv().apply(xyz - translation)
        elif frame != self.param("camera_frame"):
            raise StageFailure(stage, f"point frame '{frame}' is neither the base frame "
                               f"'{self.param('base_frame')}' nor the camera frame "
                               f"'{self.param('camera_frame')}' (no tf2 here)")
        frame_msgs = self._buffer.at(None, 0.0)
        if frame_msgs is None:
            raise StageFailure(stage, "no depth frame received yet on "
                               f"{self.param('depth_topic')}")
        info = intrinsics_from_camera_info(frame_msgs[1])
        if xyz[2] <= 0:
            raise StageFailure(stage, "the explicit point is behind the camera")
        u = info.fx * xyz[0] / xyz[2] + info.cx
        v = info.fy * xyz[1] / xyz[2] + info.cy
        return LiftedPoint(u, v, xyz, frame_msgs[0].header)

    def _to_base(self, point: LiftedPoint) -> np.ndarray:
        translation, rotation = self._camera_to_base()
        return transform_points(point.camera_xyz, translation, rotation)

    def _depth_frame(self, header: Header) -> DepthFrame:
        stamp = stamp_seconds(header.stamp)
        deadline = time.monotonic() + float(self.param("depth_wait_s"))
        while True:
            found = self._buffer.at(stamp, float(self.param("stamp_tolerance_s")))
            if found is not None or time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        if found is None:
            depths, infos = self._buffer.counts()
            raise StageFailure("grasp", f"no depth frame within "
                               f"{self.param('stamp_tolerance_s')} s of the image stamp "
                               f"{stamp:.3f} ({depths} depth, {infos} camera_info buffered from "
                               f"{self.param('depth_topic')})")
        depth_msg, info_msg = found
        try:
            depth_m = depth_to_metres(image_to_array(depth_msg), depth_msg.encoding)
            intrinsics = intrinsics_from_camera_info(info_msg)
        except (ImageConversionError, ValueError) as error:
            raise StageFailure("grasp", f"depth frame rejected: {error}") from error
        return DepthFrame(depth_m, intrinsics)

    def _local_cloud(self, pick: LiftedPoint) -> np.ndarray:
        """Base-frame points of the depth pixels within cloud.radius_m around the pick point."""
        frame = self._depth_frame(pick.header)
        height, width = frame.depth_m.shape
        k_depth = frame.intrinsics.scaled_to(width, height)
        u = pick.u * width / frame.intrinsics.width
        v = pick.v * height / frame.intrinsics.height
        half_px = float(self.param("cloud.radius_m")) * k_depth.fx / max(pick.camera_xyz[2], 1e-3)
        roi = (u - half_px, v - half_px, u + half_px, v + half_px)
        camera_points = depth_to_points(frame.depth_m, k_depth, roi,
                                        stride=int(self.param("cloud.stride")))
        translation, rotation = self._camera_to_base()
        return transform_points(camera_points, translation, rotation)

    # Outputs -----------------------------------------------------------------------------------

    def _publish(self, target: PickPlaceTarget) -> None:
        self._targets_pub.publish(target)
        self._markers_pub.publish(mm.markers_msg(target, float(self.param("markers.lifetime_s"))))
        if self._collision_marker_pub is not None and target.object_box_valid:
            self._collision_marker_pub.publish(mm.object_box_marker(target))

    def destroy_node(self) -> None:
        self._executor.close()
        self._action.destroy()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(ManipulationBridgeNode, args)


if __name__ == "__main__":
    main()
