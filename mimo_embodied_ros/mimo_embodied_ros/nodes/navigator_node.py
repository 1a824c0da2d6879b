"""Navigator node `navigator`: an instruction -> a region on the map -> a target -> a goal pose.

A thin ROS shell over the NavA3 stages (core/nava3_stages.py: map region, drive, scan,
approach), reported as action feedback. Model calls go through the perception node's ~/query
action (ros/query_client.py) in the action's own thread, never in a subscription callback; the
base moves only through goals (ros/base_motion.py: turns in place are goals too); the robot pose
comes from /amcl_pose (PoseWithCovarianceStamped, as AMCL publishes it) or TF, into a pose
history that covers the longest model wait; the camera pose in the base frame comes from TF at
each image's stamp or from the static camera_to_base (camera_pose_source, ros/tf_lookup.py).
Every failure ends the action with the stage and a readable reason; cancellation and shutdown
stop the base (goal cancelled, then zero velocity). /diagnostics reports the stage, the pose age,
the camera pose source and the goals by outcome (ros/navigator_io.py is the stages' ROS view).
"""

from __future__ import annotations

import math
import threading
from contextlib import suppress
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, PointStamped, PoseStamped, PoseWithCovarianceStamped
from nav_msgs.msg import OccupancyGrid
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from mimo_embodied_msgs.action import NavigateTo
from mimo_embodied_msgs.msg import NavigationGoal
from mimo_embodied_ros.core import navmap
from mimo_embodied_ros.core.nava3_stages import (
    NavA3,
    NavA3Config,
    NavA3Run,
    StageCancelled,
    StageFailure,
)
from mimo_embodied_ros.core.navmap import GridSpec
from mimo_embodied_ros.core.pose_buffer import Pose2D, PoseBuffer
from mimo_embodied_ros.ros.base_motion import BaseMotion, MotionConfig
from mimo_embodied_ros.ros.nav2_adapter import Nav2GoalSender, Nav2UnavailableError
from mimo_embodied_ros.ros.navigation_markers import planar_pose, pose_stamped
from mimo_embodied_ros.ros.navigator_io import NavigatorIo
from mimo_embodied_ros.ros.node_diagnostics import GoalTracker, age_text, publish_diagnostics
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.query_client import QueryClient
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_ros.ros.sync import stamp_seconds
from mimo_embodied_ros.ros.tf_lookup import CameraPose, TfLookupError, camera_pose_for
from mimo_embodied_ros.ros.tf_pose import TfPoseSampler, TfUnavailableError

NODE_NAME = "navigator"
STAGE_CANCELLED = "cancelled"
STAGE_SETUP = "setup"

# name -> description; defaults are in config/navigation.yaml (ros/params.py).
PARAMETERS: dict[str, str] = {
    "query_action": "Query action of the perception node.",
    "query_timeout_s": "Max wait for one model answer, seconds; the query is then cancelled.",
    "map_topic": "nav_msgs/OccupancyGrid (transient local, as map_server publishes it).",
    "robot_pose_topic": "geometry_msgs/PoseWithCovarianceStamped of the base in the map frame "
                        "(AMCL's /amcl_pose).",
    "robot_pose_source": "Where the base pose comes from: topic (robot_pose_topic) or tf.",
    "base_frame": "Robot base frame looked up in TF (robot_pose_source tf; the camera pose).",
    "tf_rate_hz": "Rate of TF lookups of map -> base_frame (robot_pose_source tf).",
    "goal_pose_topic": "geometry_msgs/PoseStamped goals (what stock Nav2 listens to).",
    "cmd_vel_topic": "geometry_msgs/Twist: only a zero twist, after the goal has ended.",
    "goal_interface": "goal_pose (topic) or nav2_action (NavigateToPose, needs nav2_msgs).",
    "nav2_action_name": "Nav2 action used when goal_interface is nav2_action.",
    "map_frame": "Frame of goals and target points.",
    "map.pixels_per_cell": "Map image scale shown to the model: pixels per grid cell.",
    "map.regions": "Named regions drawn on the map image: 'name: x_min, y_min, x_max, y_max' "
                   "(map metres), separated by ';'.",
    "map.unknown_is_free": "Treat unknown cells as free when snapping and checking reachability.",
    "robot_radius": "Footprint radius (m): goals keep this clearance from obstacles.",
    "standoff_m": "Distance (m) from the target point to the final goal, facing the target.",
    "snap.max_distance_m": "Max move (m) of the region point to the nearest cell the robot fits.",
    "snap.standoff_max_m": "The final goal may lie up to standoff_m + this from the target (m).",
    "scan.step_deg": "Turn per scan step, degrees (each turn is a goal: position, new heading).",
    "scan.max_steps": "Views per scan (8 x 45 deg = a full turn).",
    "scan.turn_timeout_s": "Max time for one scan turn, seconds.",
    "scan.settle_s": "Wait after a turn before asking (fresh, still image), seconds.",
    "scan.max_target_range_m": "Target points farther than this from the camera are rejected.",
    "scan.recentre_min_deg": "A target seen more than this off the heading is faced and pointed "
                             "at again before the approach, degrees (180 = never; keep it above "
                             "the goal checker's yaw tolerance).",
    "arrival.xy_tolerance_m": "A /goal_pose goal is reached within this distance (m; at least "
                              "the goal checker's, Nav2 default 0.25) ...",
    "arrival.yaw_tolerance_deg": "... and this heading error (deg; Nav2 default 0.25 rad) ...",
    "arrival.still_s": "... once the base has stood still this long (s).",
    "arrival.region_timeout_s": "Max time to reach the region goal, seconds.",
    "arrival.approach_timeout_s": "Max time to reach the final goal, seconds.",
    "pose_buffer.history_s": "Robot pose history kept for lookups at image stamps, seconds; "
                             "raised to query_timeout_s + pose_buffer.margin_s.",
    "pose_buffer.margin_s": "Pose history beyond the longest model wait, seconds.",
    "pose_buffer.tolerance_s": "Max distance of an image stamp outside that history, seconds.",
    "camera_to_base.translation": "Camera optical frame origin in base_link (m).",
    "camera_to_base.rotation_xyzw": "Optical frame orientation in base_link (x, y, z, w).",
    "camera_pose_source": "Camera pose in base_frame: auto (tf when tf2_ros is installed, else "
                          "static), tf (TF at each image's stamp), static (camera_to_base). Read "
                          "at start.",
    "camera_frame": "Camera optical frame for TF when the image header has none.",
    "tf_timeout_s": "Max wait for the TF camera pose at an image stamp, seconds.",
    "diagnostics_period_s": "Period of /diagnostics status, seconds.",
    "stale_after_s": "Diagnostics WARN when the newest robot pose is older than this, seconds.",
}


class NavigatorNode(Node):
    """Serves ~/navigate_to (NavigateTo); publishes ~/goals, ~/markers and ~/map_image."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_from_config(self, PARAMETERS, "navigation.yaml", dynamic_numbers=True)
        p = self.param
        self._io_group = ReentrantCallbackGroup()
        self._busy = threading.Lock()
        self._closing = False
        self._map_lock = threading.Lock()
        self._map: tuple[np.ndarray, GridSpec] | None = None
        self.pose_history_s = max(float(p("pose_buffer.history_s")),
                                  float(p("query_timeout_s")) + float(p("pose_buffer.margin_s")))
        self._poses = PoseBuffer(self.pose_history_s, p("pose_buffer.tolerance_s"))

        map_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(OccupancyGrid, p("map_topic"), self._on_map, map_qos,
                                 callback_group=self._io_group)
        self._setup_error = ""
        self.tracker = GoalTracker()
        self.camera_pose = CameraPose("static", self._camera_to_base, lambda: p("base_frame"),
                                      lambda: p("camera_frame"), lambda: p("tf_timeout_s"))
        try:
            self.camera_pose = camera_pose_for(self, self._camera_to_base)
        except (ValueError, TfLookupError) as error:
            self._setup_error = str(error)
        if p("robot_pose_source") == "tf":
            try:
                self._tf_poses = TfPoseSampler(self, self._add_pose, p("map_frame"),
                                               p("base_frame"), p("tf_rate_hz"), self._io_group)
            except TfUnavailableError as error:
                self._setup_error = self._setup_error or str(error)
        else:
            if p("robot_pose_source") != "topic" and not self._setup_error:
                self._setup_error = ("robot_pose_source must be 'topic' or 'tf', not "
                                     f"'{p('robot_pose_source')}'")
            # Best effort matches reliable (AMCL: reliable, transient local) and best-effort
            # publishers alike.
            self.create_subscription(PoseWithCovarianceStamped, p("robot_pose_topic"),
                                     self._on_pose, qos_profile_sensor_data,
                                     callback_group=self._io_group)
        self._goals_pub = self.create_publisher(NavigationGoal, "~/goals", 10)
        self._markers_pub = self.create_publisher(MarkerArray, "~/markers", 10)
        self._map_image_pub = self.create_publisher(Image, "~/map_image", map_qos)
        self._query = QueryClient(self, p("query_action"), self._io_group)

        nav2 = None
        if p("goal_interface") == "nav2_action":
            try:
                nav2 = Nav2GoalSender(self, p("nav2_action_name"), self._io_group)
            except Nav2UnavailableError as error:
                self._setup_error = self._setup_error or str(error)
        elif p("goal_interface") != "goal_pose" and not self._setup_error:
            self._setup_error = (f"goal_interface must be 'goal_pose' or 'nav2_action', "
                                 f"not '{p('goal_interface')}'")
        self.motion = BaseMotion(self, MotionConfig(
            goal_interface=p("goal_interface"), goal_pose_topic=p("goal_pose_topic"),
            cmd_vel_topic=p("cmd_vel_topic"), nav2_action_name=p("nav2_action_name"),
            map_frame=p("map_frame"), xy_tolerance_m=p("arrival.xy_tolerance_m"),
            yaw_tolerance_rad=math.radians(p("arrival.yaw_tolerance_deg")),
            still_s=p("arrival.still_s"), turn_timeout_s=p("scan.turn_timeout_s")),
            self._poses, self._io_group, nav2)
        if self._setup_error:
            self.get_logger().error(self._setup_error)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(p("diagnostics_period_s")), self._publish_diagnostics)
        self._server = ActionServer(
            self, NavigateTo, "~/navigate_to", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup())

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    def _config(self) -> NavA3Config:
        p = self.param
        return NavA3Config(
            pixels_per_cell=int(p("map.pixels_per_cell")),
            regions=tuple(navmap.parse_regions(p("map.regions"))),
            unknown_is_free=p("map.unknown_is_free"), robot_radius=p("robot_radius"),
            standoff_m=p("standoff_m"), snap_max_distance_m=p("snap.max_distance_m"),
            standoff_max_m=p("snap.standoff_max_m"),
            scan_step_rad=math.radians(p("scan.step_deg")), scan_max_steps=int(p("scan.max_steps")),
            settle_s=p("scan.settle_s"), max_target_range_m=p("scan.max_target_range_m"),
            recentre_min_rad=math.radians(p("scan.recentre_min_deg")),
            region_timeout_s=p("arrival.region_timeout_s"),
            approach_timeout_s=p("arrival.approach_timeout_s"),
            camera_translation=tuple(p("camera_to_base.translation")),
            camera_rotation_xyzw=tuple(p("camera_to_base.rotation_xyzw")))

    def _camera_to_base(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.asarray(self.param("camera_to_base.translation"), dtype=float),
                np.asarray(self.param("camera_to_base.rotation_xyzw"), dtype=float))

    def _publish_diagnostics(self) -> None:
        latest, problems = self._poses.latest(), []
        age = None if latest is None else self.get_clock().now().nanoseconds * 1e-9 - latest[0]
        source = self.param("robot_pose_source")
        where = (f"TF {self.param('map_frame')} -> {self.param('base_frame')}" if source == "tf"
                 else self.param("robot_pose_topic"))
        if self._setup_error:
            problems.append(self._setup_error)
        if age is None:
            problems.append(f"no robot pose received ({where})")
        elif age > float(self.param("stale_after_s")):
            problems.append(f"robot pose stale: the newest is {age:.1f} s old ({where})")
        if self._map is None:
            problems.append(f"no map received on {self.param('map_topic')}")
        values = {"robot_pose_source": source, "pose_age_s": age_text(age),
                  "map": "ok" if self._map is not None else "missing",
                  "camera_pose_source": self.camera_pose.source,
                  "camera_pose": self.camera_pose.describe(),
                  "goal_interface": self.param("goal_interface"), **self.tracker.values()}
        publish_diagnostics(self, self._diagnostics_pub, f"{self.get_name()}: navigation",
                            values, problems)

    # Inputs (callbacks only store) ----------------------------------------------------------

    def _on_map(self, msg: OccupancyGrid) -> None:
        info, q = msg.info, msg.info.origin.orientation
        try:
            # An all-zero quaternion (an unset field) means no rotation, as map_server writes it.
            quaternion = (q.x, q.y, q.z, q.w) if (q.x, q.y, q.z, q.w) != (0, 0, 0, 0) else (
                0.0, 0.0, 0.0, 1.0)
            spec = GridSpec(resolution=info.resolution, width=info.width, height=info.height,
                            origin_x=info.origin.position.x, origin_y=info.origin.position.y,
                            origin_yaw=navmap.quaternion_to_yaw(*quaternion))
            grid = navmap.grid_from_message_data(np.asarray(msg.data, dtype=np.int8), spec)
        except ValueError as error:
            self.get_logger().error(f"map rejected: {error}")
            return
        with self._map_lock:
            self._map = (grid, spec)

    def _on_pose(self, msg: PoseWithCovarianceStamped) -> None:
        pose = msg.pose.pose
        q = pose.orientation
        try:
            yaw = navmap.quaternion_to_yaw(q.x, q.y, q.z, q.w)
        except ValueError:
            return
        self._add_pose(stamp_seconds(msg.header.stamp), pose.position.x, pose.position.y, yaw)

    def _add_pose(self, stamp_s: float, x: float, y: float, yaw: float) -> None:
        self._poses.add(stamp_s, Pose2D(x, y, yaw))

    # Action ------------------------------------------------------------------------------------

    def _on_goal(self, _request: NavigateTo.Goal) -> GoalResponse:
        if self._busy.locked() or self._closing:
            self.get_logger().warning("navigation refused: another one is running")
            self.tracker.refused("another navigation is running")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle: ServerGoalHandle) -> NavigateTo.Result:
        run = NavA3Run(goal_handle.request.instruction.strip())
        if not self._busy.acquire(blocking=False):
            goal_handle.abort()
            return self._result(run, False, STAGE_SETUP, "another navigation is running")
        success, stage, message = False, "", ""
        self.tracker.start(run.instruction)
        try:
            if self._setup_error:
                raise StageFailure(STAGE_SETUP, self._setup_error)
            NavA3(self._config(), NavigatorIo(self, goal_handle)).run(run)
            success, message = True, f"reached the {run.target} ({run.region})"
        except StageCancelled:
            stage, message = STAGE_CANCELLED, "navigation cancelled"
        except StageFailure as failure:
            stage, message = failure.stage, str(failure)
        except Exception as error:  # a bug must not take the node down
            stage, message = "internal", f"internal error: {error!r}"
        finally:
            if not success:
                self.motion.stop(wait=not self._closing)
            self.tracker.finish("succeeded" if success else "cancelled" if stage ==
                                STAGE_CANCELLED else "failed", f"{stage + ': ' if stage else ''}"
                                f"{message}")
            self._busy.release()
        with suppress(Exception):  # the node may be shutting down
            if success:
                goal_handle.succeed()
            elif goal_handle.is_cancel_requested:
                goal_handle.canceled()
            else:
                goal_handle.abort()
            self.get_logger().info(f"navigation {'done' if success else 'failed'}: "
                                   f"{stage + ': ' if stage else ''}{message}")
        return self._result(run, success, stage, message)

    def _result(self, run: NavA3Run, success: bool, stage: str, message: str) -> (
            NavigateTo.Result):
        goal = PoseStamped()
        if run.goal is not None:
            goal = pose_stamped(self.param("map_frame"), self.get_clock().now().to_msg(),
                                planar_pose(run.goal.x, run.goal.y, run.goal.yaw))
        point = PointStamped()
        if run.target_point is not None:
            x, y, z = run.target_point
            point = PointStamped(header=self._map_header(), point=Point(x=x, y=y, z=z))
        return NavigateTo.Result(success=success, message=message, failed_stage=stage,
                                 region=run.region, target=run.target, goal=goal,
                                 target_point=point, reasoning=run.reasoning)

    def _map_header(self) -> Header:
        return Header(frame_id=self.param("map_frame"), stamp=self.get_clock().now().to_msg())

    def stopping(self) -> bool:
        """The node is shutting down (destroy_node, or its executor was shut down)."""
        executor = self.executor
        return self._closing or executor is None or getattr(executor, "_is_shutdown", False)

    def destroy_node(self) -> None:
        """Stop the base first: cancel (replace) the goal, then a zero twist."""
        self._closing = True
        with suppress(Exception):
            self.motion.stop(wait=False)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    spin_node(NavigatorNode, args)


if __name__ == "__main__":
    main()
