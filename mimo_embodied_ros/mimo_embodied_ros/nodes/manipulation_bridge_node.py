"""Manipulation bridge `manipulation_bridge`: language or points in, a pick-and-place out.

Action `~/pick_place` (mimo_embodied_msgs/action/PickPlace): an instruction ("put the red cube in
the bowl"), or object and place descriptions, or explicit points (`use_points`; base or camera
frame). The stages are the ROS-free state machine core/pickplace_stages.py; this node wires its
ports: the perception node's `~/query` action (task "point"); the depth of the image the model
saw, held from the moment the query is sent (ros/depth_buffer.py, paired within `sync_slop_s`,
the perception node's tolerance); the camera pose in the base frame at the stamp of the image
the model saw (`camera_pose_source`: TF per query, so a wrist camera works, or the static
`camera_to_base.*`; ros/tf_lookup.py); `~/targets`, `~/markers`, `~/collision_object`,
`/diagnostics`; the executor named by `executor` (moveit | sim | none).

Nothing moves before an operator says so: the default executor is `none` (result executed=false);
`moveit` is refused while the camera pose is the static placeholder (identity) and TF is not
used. One goal at a time: a second one is aborted at once with failed_stage "busy" and the
reason. A cancel, or the node shutting down, cancels the arm motion in flight.

    ros2 action send_goal /manipulation_bridge/pick_place mimo_embodied_msgs/action/PickPlace \
      "{instruction: 'put the red cube in the bowl'}" --feedback
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from visualization_msgs.msg import Marker, MarkerArray

from mimo_embodied_msgs.action import PickPlace
from mimo_embodied_msgs.msg import PickPlaceTarget
from mimo_embodied_ros.core.grasp import GraspSettings
from mimo_embodied_ros.core.pickplace import (
    MotionSettings,
    WorkspaceLimits,
    placeholder_extrinsic,
)
from mimo_embodied_ros.core.pickplace_stages import (
    PickPlaceOutcome,
    PickPlaceStages,
    PlannedTarget,
)
from mimo_embodied_ros.executors import (
    EXECUTOR_PARAMETERS,
    ExecutionPlan,
    ExecutorConfigurationError,
    create_executor,
)
from mimo_embodied_ros.ros import manipulation_markers as mm
from mimo_embodied_ros.ros.depth_buffer import FrameBuffer
from mimo_embodied_ros.ros.manipulation_ports import BridgePorts
from mimo_embodied_ros.ros.node_diagnostics import (
    GoalTracker,
    age_text,
    input_age,
    publish_diagnostics,
)
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.qos import qos_by_name
from mimo_embodied_ros.ros.query_client import QueryClient
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_ros.ros.tf_lookup import TfLookupError, camera_pose_for

NODE_NAME = "manipulation_bridge"
SHUTDOWN_WAIT_S = 5.0  # how long destroy_node waits for a cancelled motion to stop

# name -> description; defaults are in config/manipulation.yaml (ros/params.py).
PARAMETERS: dict[str, str] = {
    "executor": "What moves the arm: moveit (MoveIt 2), sim (simulator MoveArm), none.",
    "query_action": "Perception node's Query action.",
    "query_thinking": "'' (node default), 'think' or 'no_think' for the pointing queries.",
    "depth_topic": "Depth image registered to colour (the perception node's).",
    "camera_info_topic": "CameraInfo of the colour image.",
    "qos": "QoS of the depth/camera_info subscriptions: sensor_data or reliable.",
    "sync_slop_s": "Max stamp difference of a colour/depth pair, seconds (the perception "
                   "node's sync_slop_s).",
    "frame_window_s": "Seconds of depth frames (by stamp) buffered, and kept after a query is "
                      "sent, for the frame the model saw.",
    "depth_wait_s": "How long to wait for the depth frame of an answer's stamp.",
    "camera_frame": "Camera optical frame id (explicit points may use it; TF looks up the "
                    "image header's frame, this one when the header has none).",
    "camera_pose_source": "Camera pose in base_frame: auto (tf when tf2_ros is installed, else "
                          "static), tf (TF at each image's stamp: wrist cameras), static "
                          "(camera_to_base). Read at start.",
    "tf_timeout_s": "Max wait for the TF camera pose at an image stamp, seconds.",
    "diagnostics_period_s": "Period of /diagnostics status, seconds.",
    "stale_after_s": "Diagnostics WARN when no depth image arrived for this long, seconds.",
    "base_frame": "Arm base frame: every pose is computed and sent in it.",
    "camera_to_base.translation": "Camera optical frame origin in the base frame [x, y, z], m.",
    "camera_to_base.rotation_xyzw": "Camera optical frame orientation in the base frame.",
    "perception_timeout_s": "Max wait for the Query action to appear and to answer; a query "
                            "still running then is cancelled.",
    "cloud.radius_m": "Half side of the depth window around the pick point, metres.",
    "cloud.stride": "Use every n-th depth pixel of that window.",
    **{f"workspace.{axis}_{end}": "TCP workspace box in the base frame, metres."
       for axis in "xyz" for end in ("min", "max")},
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
    **EXECUTOR_PARAMETERS,
}


class ManipulationBridgeNode(Node):
    """Serves ~/pick_place: the stage machine of core/pickplace_stages.py with ROS ports."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_from_config(self, PARAMETERS, "manipulation.yaml", dynamic_numbers=True)
        self._busy = threading.Lock()
        self._stopping = threading.Event()
        self.frames = FrameBuffer(float(self.param("frame_window_s")))
        self._client_group = ReentrantCallbackGroup()
        self._query_clients: dict[str, QueryClient] = {}
        sensor_group = ReentrantCallbackGroup()
        qos = qos_by_name(self.param("qos"))
        self.create_subscription(Image, self.param("depth_topic"), self.frames.add_depth, qos,
                                 callback_group=sensor_group)
        self.create_subscription(CameraInfo, self.param("camera_info_topic"),
                                 self.frames.add_camera_info, qos, callback_group=sensor_group)
        self._targets_pub = self.create_publisher(PickPlaceTarget, "~/targets", 10)
        self.tracker = GoalTracker()
        try:
            self.camera_pose = camera_pose_for(self, self.camera_to_base)
        except (ValueError, TfLookupError) as error:
            self.get_logger().fatal(str(error))
            raise ExecutorConfigurationError(str(error)) from None
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(self.param("diagnostics_period_s")), self._publish_diagnostics)
        self._markers_pub = self.create_publisher(MarkerArray, "~/markers", 10)
        kind = self.param("executor")
        try:
            refusal = self._refusal(kind)
            if refusal is not None:
                raise ExecutorConfigurationError(refusal)
            self._executor = create_executor(kind, self, self._executor_settings(kind))
        except ExecutorConfigurationError as error:
            self.get_logger().fatal(str(error))
            raise
        self._collision_marker_pub = None
        if not getattr(self._executor, "publishes_collision_object", False):
            self._collision_marker_pub = self.create_publisher(Marker, "~/collision_object", 10)
        # Reentrant: a second goal's callback runs (and is refused) while the first one runs.
        self._action = ActionServer(
            self, PickPlace, "~/pick_place", self._execute,
            goal_callback=lambda _: GoalResponse.ACCEPT,
            cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )
        self.get_logger().info(f"ready: executor '{kind}', base frame '{self.param('base_frame')}'"
                               f", camera pose: {self.camera_pose.describe()}")

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _executor_settings(self, kind: str) -> dict[str, Any]:
        prefix = f"{kind}."
        return {name[len(prefix):]: self.param(name) for name in PARAMETERS
                if name.startswith(prefix)}

    def _refusal(self, kind: str) -> str | None:
        """Why the executor `kind` may not move the arm now (None: it may)."""
        if kind != "moveit" or self.camera_pose.source == "tf":
            return None
        why = placeholder_extrinsic(self.param("camera_to_base.translation"),
                                    self.param("camera_to_base.rotation_xyzw"))
        if why is None:
            return None
        return (f"executor 'moveit' refused: {why}, and the camera pose does not come from TF "
                "(camera_pose_source static, or auto without tf2_ros); set camera_pose_source "
                "tf, or camera_to_base.translation / rotation_xyzw to your hand-eye calibration "
                "(check the poses with executor 'none' in RViz first)")

    def _stages(self, handle: ServerGoalHandle) -> PickPlaceStages:
        """The stage machine for one goal, with settings read now (parameter changes apply)."""
        return PickPlaceStages(BridgePorts(self, handle), GraspSettings(**self._group("grasp.",
                               GraspSettings)), MotionSettings(**self._group("motion.",
                               MotionSettings)), WorkspaceLimits(**self._group("workspace.",
                               WorkspaceLimits)))

    def _group(self, prefix: str, cls: type) -> dict[str, Any]:
        fields = cls.__dataclass_fields__
        values = {name[len(prefix):]: self.param(name) for name in PARAMETERS
                  if name.startswith(prefix)}
        return {k: (int(v) if fields[k].type in ("int", int) else float(v))
                for k, v in values.items()}

    def camera_to_base(self) -> tuple[np.ndarray, np.ndarray]:
        translation = np.asarray(self.param("camera_to_base.translation"), dtype=float)
        rotation = np.asarray(self.param("camera_to_base.rotation_xyzw"), dtype=float)
        return translation, rotation / np.linalg.norm(rotation)

    def _publish_diagnostics(self) -> None:
        age, problems = input_age(self.frames.last_depth_monotonic,
                                  f"depth image on {self.param('depth_topic')}",
                                  float(self.param("stale_after_s")))
        values = {"executor": self._executor.kind, "camera_pose_source": self.camera_pose.source,
                  "camera_pose": self.camera_pose.describe(), "depth_age_s": age_text(age),
                  "frames_buffered": str(self.frames.buffered()), **self.tracker.values()}
        publish_diagnostics(self, self._diagnostics_pub, f"{self.get_name()}: manipulation",
                            values, problems)

    # Action ------------------------------------------------------------------------------------

    def _execute(self, handle: ServerGoalHandle) -> PickPlace.Result:
        if not self._busy.acquire(blocking=False):
            message = ("busy: another pick-and-place goal is running; this goal was not started "
                       "(cancel the running goal or wait for its result)")
            self.get_logger().warning(f"pick_place goal refused: {message}")
            self.tracker.refused(message)
            handle.abort()
            return PickPlace.Result(success=False, executed=False, failed_stage="busy",
                                    message=message)
        self.tracker.start(handle.request.instruction or handle.request.object_description
                           or "explicit points")
        result = PickPlace.Result(message="internal error")
        try:
            result = self._run(handle)
            return result
        finally:
            self.tracker.finish("succeeded" if result.success else "cancelled" if
                                result.failed_stage == "cancelled" else "failed", result.message)
            self._busy.release()

    def _run(self, handle: ServerGoalHandle) -> PickPlace.Result:
        result = PickPlace.Result()
        refusal = self._refusal(self._executor.kind)
        if refusal is not None:
            outcome = PickPlaceOutcome(False, refusal, failed_stage="refused")
        else:
            try:
                outcome = self._stages(handle).run(mm.pick_place_request(handle.request))
            except Exception as error:  # a bug must not take the node down
                self.get_logger().error(f"pick-and-place failed unexpectedly: {error!r}")
                outcome = PickPlaceOutcome(False, f"internal error: {error!r}", "internal")
        result.success, result.executed = outcome.success, outcome.executed
        result.message, result.failed_stage = outcome.message, outcome.failed_stage
        if outcome.target is not None:
            result.target = self._target_msg(outcome.target)
        stopped = handle.is_cancel_requested or self._stopping.is_set()
        if stopped:
            result.success = False
            result.failed_stage = "cancelled" if handle.is_cancel_requested else "shutdown"
            last = outcome.states[-1] if outcome.states else "the last stage"
            reason = "canceled" if handle.is_cancel_requested else "the bridge is shutting down"
            result.message = f"{reason} during {last}: {result.message}"
        if handle.is_cancel_requested:
            handle.canceled()
        elif result.success:
            handle.succeed()
        else:
            handle.abort()
        # rclpy binds a severity to each logging call site: one call per severity.
        if result.success:
            self.get_logger().info(f"pick_place succeeded: {result.message}")
        else:
            self.get_logger().warning(f"pick_place failed: {result.message}")
        return result

    def _target_msg(self, target: PlannedTarget) -> PickPlaceTarget:
        return mm.planned_target_msg(target, self.param("base_frame"))

    def publish(self, target: PlannedTarget) -> None:
        msg = self._target_msg(target)
        self._targets_pub.publish(msg)
        self._markers_pub.publish(mm.markers_msg(msg, float(self.param("markers.lifetime_s"))))
        if self._collision_marker_pub is not None and msg.object_box_valid:
            self._collision_marker_pub.publish(mm.object_box_marker(msg))

    def query_client(self) -> QueryClient:
        name = self.param("query_action")
        if name not in self._query_clients:
            self._query_clients[name] = QueryClient(self, name, self._client_group)
        return self._query_clients[name]

    def execute_plan(self, target: PlannedTarget, on_stage: Callable[[str, str, float], None],
                     should_cancel: Callable[[], bool]) -> Any:
        plan = ExecutionPlan(poses=target.poses, frame_id=self.param("base_frame"),
                             obj=target.grasp.object)
        return self._executor.execute(plan, on_stage, should_cancel)

    def destroy_node(self) -> None:
        """Cancel a motion in flight (the running goal sees the stop) and wait for it to end."""
        self._stopping.set()
        deadline = time.monotonic() + SHUTDOWN_WAIT_S
        while self._busy.locked() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._executor.close()
        self._action.destroy()
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(ManipulationBridgeNode, args)


if __name__ == "__main__":
    main()
