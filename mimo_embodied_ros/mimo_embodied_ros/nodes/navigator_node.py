"""Navigator node `navigator`: an instruction -> a region on the map -> a target -> a goal pose.

NavA3-style, in three stages reported as action feedback. The model looks at a top-down picture of
/map and points at the region to go to (and names what to look for there); the base drives there.
It then turns in place in steps, asking the model whether the target is in view and, once it is,
where; the point is lifted with depth by the perception node and placed in the map frame with the
robot pose of the image's stamp. The last goal stands off from the target, faces it, and lies in
free space the robot can reach. Model calls run in the action's own thread, never in a
subscription callback; every failure ends the action with the stage and a readable reason.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import numpy as np
from geometry_msgs.msg import Point, PointStamped, Pose, PoseStamped, Twist
from nav_msgs.msg import OccupancyGrid
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.action.server import ServerGoalHandle
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from visualization_msgs.msg import MarkerArray

from mimo_embodied_msgs.action import NavigateTo, Query
from mimo_embodied_msgs.msg import NavigationGoal
from mimo_embodied_ros.core import navmap
from mimo_embodied_ros.core.navmap import GridSpec, NamedRegion
from mimo_embodied_ros.core.parsing import parse_region_target
from mimo_embodied_ros.core.pose_buffer import (
    Pose2D,
    PoseBuffer,
    PoseLookupError,
    camera_point_to_map,
)
from mimo_embodied_ros.core.prompts import visibility_question
from mimo_embodied_ros.ros.images import array_to_image
from mimo_embodied_ros.ros.nav2_adapter import Nav2GoalSender, Nav2UnavailableError
from mimo_embodied_ros.ros.navigation_markers import (
    STAGE_REGION,
    STAGE_TARGET,
    navigation_goal_msg,
    navigation_markers,
    planar_pose,
    pose_stamped,
)
from mimo_embodied_ros.ros.params import declare_from_config
from mimo_embodied_ros.ros.query_client import QueryClient, QueryError
from mimo_embodied_ros.ros.spin import spin_node
from mimo_embodied_ros.ros.sync import stamp_seconds
from mimo_embodied_ros.ros.tf_pose import TfPoseSampler, TfUnavailableError

NODE_NAME = "navigator"

STAGE_MAP = "map_reasoning"
STAGE_DRIVE = "driving_to_region"
STAGE_SCAN = "scanning"
STAGE_APPROACH = "approaching"
STAGE_CANCELLED = "cancelled"
STAGE_SETUP = "setup"

INPUT_WAIT_S = 5.0  # wait for a first map and pose before failing a navigation
POLL_S = 0.05  # period of the action thread's checks (pose, cancel, futures)
TURN_GAIN = 2.0  # rad/s per rad of heading error while scanning
MIN_TURN_SPEED = 0.15  # rad/s: slower commands may not overcome a real base's deadband

# name -> description; defaults are in config/navigation.yaml (ros/params.py).
PARAMETERS: dict[str, str] = {
    "query_action": "Query action of the perception node.",
    "query_timeout_s": "Max wait for one model answer, seconds; the query is then cancelled.",
    "map_topic": "nav_msgs/OccupancyGrid (transient local, as map_server publishes it).",
    "robot_pose_topic": "geometry_msgs/PoseStamped of base_link in the map frame.",
    "robot_pose_source": "Where the base pose comes from: topic (robot_pose_topic) or tf.",
    "base_frame": "Robot base frame looked up in TF (robot_pose_source tf).",
    "tf_rate_hz": "Rate of TF lookups of map -> base_frame (robot_pose_source tf).",
    "goal_pose_topic": "geometry_msgs/PoseStamped goals (what stock Nav2 listens to).",
    "cmd_vel_topic": "geometry_msgs/Twist for turning in place while scanning.",
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
    "scan.step_deg": "Turn per scan step, degrees.",
    "scan.max_steps": "Views per scan (8 x 45 deg = a full turn).",
    "scan.angular_speed": "Max turn rate while scanning (rad/s), closed loop on the robot pose.",
    "scan.yaw_tolerance_deg": "A scan turn is done within this heading error.",
    "scan.turn_timeout_s": "Max time for one scan turn, seconds.",
    "scan.settle_s": "Wait after a turn before asking (fresh, still image), seconds.",
    "scan.max_target_range_m": "Target points farther than this from the camera are rejected.",
    "scan.recentre_min_deg": "A target seen more than this off the heading is faced and pointed "
                             "at again before the approach, degrees (180 = never).",
    "arrival.xy_tolerance_m": "Arrived when the base is this close to the goal (m) ...",
    "arrival.yaw_tolerance_deg": "... and (final goal only) heading within this, degrees.",
    "arrival.region_timeout_s": "Max time to reach the region goal, seconds.",
    "arrival.approach_timeout_s": "Max time to reach the final goal, seconds.",
    "pose_buffer.history_s": "Robot pose history kept for lookups at image stamps, seconds.",
    "pose_buffer.tolerance_s": "Max distance of an image stamp outside that history, seconds.",
    "camera_to_base.translation": "Camera optical frame origin in base_link (m).",
    "camera_to_base.rotation_xyzw": "Optical frame orientation in base_link (x, y, z, w).",
}

SNAP_REASONS = {
    "outside_map": "lies outside the map",
    "no_free_cell_within_max_snap": "has no cell the robot fits in nearby",
    "unreachable": "cannot be reached from the robot's position",
    "no_free_cell_near_target": "has no spot around it where the robot fits",
}


class NavigationFailure(Exception):
    """A navigation ended early; carries the stage it failed in."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


class NavigationCanceled(Exception):
    """The action client asked to cancel."""


class _Run:
    """State of one navigation (the action thread owns it)."""

    def __init__(self, goal_handle: ServerGoalHandle) -> None:
        self.handle = goal_handle
        self.instruction: str = goal_handle.request.instruction.strip()
        self.region = ""
        self.target = ""
        self.reasoning = ""
        self.goal: PoseStamped | None = None
        self.target_point: PointStamped | None = None
        self.goals: list[NavigationGoal] = []
        self.sent_goal = False


class NavigatorNode(Node):
    """Serves ~/navigate_to (NavigateTo); publishes ~/goals, ~/markers and ~/map_image."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        declare_from_config(self, PARAMETERS, "navigation.yaml", dynamic_numbers=True)
        self._regions: list[NamedRegion] = navmap.parse_regions(self.param("map.regions"))
        self._io_group = ReentrantCallbackGroup()
        self._action_group = ReentrantCallbackGroup()
        self._busy = threading.Lock()
        self._map_lock = threading.Lock()
        self._map: tuple[np.ndarray, GridSpec, Header] | None = None
        self._poses = PoseBuffer(self.param("pose_buffer.history_s"),
                                 self.param("pose_buffer.tolerance_s"))

        map_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.create_subscription(OccupancyGrid, self.param("map_topic"), self._on_map, map_qos,
                                 callback_group=self._io_group)
        self._setup_error = ""
        self._tf_poses: TfPoseSampler | None = None
        if self.param("robot_pose_source") == "tf":
            try:
                self._tf_poses = TfPoseSampler(
                    self, self._add_pose, self.param("map_frame"), self.param("base_frame"),
                    self.param("tf_rate_hz"), self._io_group)
            except TfUnavailableError as error:
                self._setup_error = str(error)
        else:
            if self.param("robot_pose_source") != "topic":
                self._setup_error = ("robot_pose_source must be 'topic' or 'tf', not "
                                     f"'{self.param('robot_pose_source')}'")
            # Best effort matches both reliable and best-effort pose publishers.
            self.create_subscription(PoseStamped, self.param("robot_pose_topic"), self._on_pose,
                                     qos_profile_sensor_data, callback_group=self._io_group)
        self._goal_pub = self.create_publisher(PoseStamped, self.param("goal_pose_topic"), 10)
        self._cmd_vel_pub = self.create_publisher(Twist, self.param("cmd_vel_topic"), 10)
        self._goals_pub = self.create_publisher(NavigationGoal, "~/goals", 10)
        self._markers_pub = self.create_publisher(MarkerArray, "~/markers", 10)
        self._map_image_pub = self.create_publisher(Image, "~/map_image", map_qos)
        self._query = QueryClient(self, self.param("query_action"), self._io_group)

        self._nav2: Nav2GoalSender | None = None
        interface = self.param("goal_interface")
        if interface == "nav2_action":
            try:
                self._nav2 = Nav2GoalSender(self, self.param("nav2_action_name"), self._io_group)
            except Nav2UnavailableError as error:
                self._setup_error = str(error)
        elif interface != "goal_pose" and not self._setup_error:
            self._setup_error = (f"goal_interface must be 'goal_pose' or 'nav2_action', "
                                 f"not '{interface}'")
        if self._setup_error:
            self.get_logger().error(self._setup_error)

        self._server = ActionServer(
            self, NavigateTo, "~/navigate_to", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=lambda _: CancelResponse.ACCEPT,
            callback_group=self._action_group,
        )

    def param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # Inputs (callbacks only store) ----------------------------------------------------------

    def _on_map(self, msg: OccupancyGrid) -> None:
        info = msg.info
        q = info.origin.orientation
        try:
            # An all-zero quaternion (an unset field) means no rotation, as map_server writes it.
            quaternion = (q.x, q.y, q.z, q.w) if (q.x, q.y, q.z, q.w) != (0, 0, 0, 0) else (
                0.0, 0.0, 0.0, 1.0)
            spec = GridSpec(
                resolution=info.resolution, width=info.width, height=info.height,
                origin_x=info.origin.position.x, origin_y=info.origin.position.y,
                origin_yaw=navmap.quaternion_to_yaw(*quaternion),
            )
            grid = navmap.grid_from_message_data(np.asarray(msg.data, dtype=np.int8), spec)
        except ValueError as error:
            self.get_logger().error(f"map rejected: {error}")
            return
        with self._map_lock:
            self._map = (grid, spec, msg.header)

    def _on_pose(self, msg: PoseStamped) -> None:
        q = msg.pose.orientation
        try:
            yaw = navmap.quaternion_to_yaw(q.x, q.y, q.z, q.w)
        except ValueError:
            return
        self._add_pose(stamp_seconds(msg.header.stamp), msg.pose.position.x,
                       msg.pose.position.y, yaw)

    def _add_pose(self, stamp_s: float, x: float, y: float, yaw: float) -> None:
        self._poses.add(stamp_s, Pose2D(x, y, yaw))

    # Action ------------------------------------------------------------------------------------

    def _on_goal(self, request: NavigateTo.Goal) -> GoalResponse:
        if self._busy.locked():
            self.get_logger().warning("navigation refused: another one is running")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _execute(self, goal_handle: ServerGoalHandle) -> NavigateTo.Result:
        run = _Run(goal_handle)
        if not self._busy.acquire(blocking=False):
            goal_handle.abort()
            return self._result(run, False, STAGE_SETUP, "another navigation is running")
        try:
            self._navigate(run)
        except NavigationCanceled:
            self._stop_base(run)
            goal_handle.canceled()
            return self._result(run, False, STAGE_CANCELLED, "navigation cancelled")
        except NavigationFailure as failure:
            self._stop_base(run)
            self.get_logger().warning(f"navigation failed in {failure.stage}: {failure}")
            goal_handle.abort()
            return self._result(run, False, failure.stage, str(failure))
        except Exception as error:  # a bug must not take the node down
            self._stop_base(run)
            self.get_logger().error(f"navigation crashed: {error!r}")
            goal_handle.abort()
            return self._result(run, False, "internal", f"internal error: {error!r}")
        finally:
            self._busy.release()
        goal_handle.succeed()
        message = f"reached the {run.target} ({run.region})"
        self.get_logger().info(f"navigation done: {message}")
        return self._result(run, True, "", message)

    def _result(self, run: _Run, success: bool, stage: str, message: str) -> NavigateTo.Result:
        return NavigateTo.Result(
            success=success, message=message, failed_stage=stage, region=run.region,
            target=run.target, goal=run.goal or PoseStamped(),
            target_point=run.target_point or PointStamped(), reasoning=run.reasoning,
        )

    def _navigate(self, run: _Run) -> None:
        if self._setup_error:
            raise NavigationFailure(STAGE_SETUP, self._setup_error)
        if not run.instruction:
            raise NavigationFailure(STAGE_MAP, "instruction is empty")
        region_goal = self._map_stage(run)
        self._drive(run, STAGE_DRIVE, region_goal, None, self.param("arrival.region_timeout_s"))
        target_xyz = self._scan(run)
        self._approach(run, target_xyz)

    # Stage 1: region on the map ------------------------------------------------------------

    def _map_stage(self, run: _Run) -> Pose:
        self._feedback(run, STAGE_MAP, "asking the model which region to go to")
        # Right after start-up the latched map and the first pose may still be on their way.
        with suppress(TimeoutError):
            self._wait(run, lambda: self._map is not None and self._poses.latest() is not None,
                       INPUT_WAIT_S, wall_clock=True)
        grid, spec, _ = self._require_map(STAGE_MAP)
        robot = self._require_pose(STAGE_MAP)
        scale = int(self.param("map.pixels_per_cell"))
        image = navmap.render_map_image(grid, scale)
        if self._regions:
            image = navmap.draw_regions(image, spec, self._regions, scale)
        header = Header(frame_id=self.param("map_frame"), stamp=self.get_clock().now().to_msg())
        image_msg = array_to_image(image, "rgb8", header)
        self._map_image_pub.publish(image_msg)

        response = self._ask(run, STAGE_MAP, "region", run.instruction, image_msg)
        run.reasoning = response.reasoning
        points = list(response.affordances.points)
        if not points:
            raise NavigationFailure(STAGE_MAP, f"the model gave no point on the map "
                                               f"({response.parse_status}): {response.message}")
        point = points[0]
        if not point.in_image or not (math.isfinite(point.u) and math.isfinite(point.v)):
            raise NavigationFailure(
                STAGE_MAP, f"region point off the map: the model pointed at "
                           f"({point.u_model:.0f}, {point.v_model:.0f}), outside the "
                           f"{image.shape[1]}x{image.shape[0]} map image it saw resized")
        run.region = point.label.strip()
        run.target = parse_region_target(response.answer) or run.region
        if not run.target:
            raise NavigationFailure(STAGE_MAP, "the model named no region and no target")
        x, y = navmap.map_pixel_to_world(spec, point.u, point.v, scale)
        snapped = navmap.snap_to_free(grid, spec, x, y, self.param("robot_radius"),
                                      self.param("snap.max_distance_m"),
                                      self.param("map.unknown_is_free"))
        if not snapped.ok:
            reason = SNAP_REASONS.get(snapped.status, snapped.status)
            raise NavigationFailure(
                STAGE_MAP, f"region point off the map or blocked: ({x:.2f}, {y:.2f}) m "
                           f"{reason} ({snapped.status})")
        if not navmap.reachable(grid, spec, (robot.x, robot.y), (snapped.x, snapped.y),
                                self.param("robot_radius"), self.param("map.unknown_is_free")):
            raise NavigationFailure(
                STAGE_DRIVE, f"goal unreachable: region goal ({snapped.x:.2f}, {snapped.y:.2f}) "
                             f"is not connected to the robot at ({robot.x:.2f}, {robot.y:.2f}) "
                             f"through free space")
        yaw = math.atan2(snapped.y - robot.y, snapped.x - robot.x)
        goal = planar_pose(snapped.x, snapped.y, yaw)
        self._publish_goal(run, STAGE_REGION, goal, Point(x=x, y=y, z=0.0))
        self.get_logger().info(
            f"'{run.instruction}': region '{run.region}' at ({x:.2f}, {y:.2f}) -> goal "
            f"({snapped.x:.2f}, {snapped.y:.2f}) [{snapped.status}], looking for '{run.target}'")
        return goal

    # Stage 2: scan for the target --------------------------------------------------------------

    def _scan(self, run: _Run) -> np.ndarray:
        steps = int(self.param("scan.max_steps"))
        step_rad = math.radians(self.param("scan.step_deg"))
        seen_problems: list[str] = []
        for step in range(steps):
            if step > 0:
                self._turn(run, step_rad)
            # A still base gives a sharp image (and lets a simulator's oracle catch up).
            self._sleep(run, self.param("scan.settle_s"))
            self._feedback(run, STAGE_SCAN, f"view {step + 1}/{steps}: looking for the "
                                            f"{run.target}")
            answer = self._ask(run, STAGE_SCAN, "choice", visibility_question(run.target))
            if answer.answer.strip().lower().startswith("yes"):
                response = self._ask(run, STAGE_SCAN, "point", run.target)
                target, problem = self._target_in_map(response)
                if target is not None:
                    return self._recentre(run, target)
                seen_problems.append(problem)
                self.get_logger().warning(f"'{run.target}' in view {step + 1} but: {problem}")
        turned = math.degrees(step_rad) * (steps - 1)
        if seen_problems:
            raise NavigationFailure(
                STAGE_SCAN, f"the {run.target} was seen in {len(seen_problems)} of {steps} views "
                            f"but never located in 3D: {seen_problems[-1]}")
        raise NavigationFailure(
            STAGE_SCAN, f"target never seen: no {run.target} in {steps} views "
                        f"({turned:.0f} deg turned in place in the {run.region or 'region'})")

    def _recentre(self, run: _Run, target: np.ndarray) -> np.ndarray:
        """Face a target first seen off to one side and point at it again.

        An object entering the view is cut by the frame, so the first point lies on whatever
        part shows; seen head-on, the point moves to the object's middle and its depth is read
        away from the image border. If the second look fails, the first point stands."""
        robot = self._require_pose(STAGE_SCAN)
        offset = navmap.wrap_angle(math.atan2(target[1] - robot.y, target[0] - robot.x)
                                   - robot.yaw)
        if abs(offset) <= math.radians(self.param("scan.recentre_min_deg")):
            return target
        self._turn(run, offset)
        self._sleep(run, self.param("scan.settle_s"))
        self._feedback(run, STAGE_SCAN, f"facing the {run.target} to point at it again")
        again, problem = self._target_in_map(self._ask(run, STAGE_SCAN, "point", run.target))
        if again is None:
            self.get_logger().warning(
                f"'{run.target}' lost after turning to face it ({problem}); keeping the first "
                f"point")
            return target
        return again

    def _target_in_map(self, response: Query.Result) -> tuple[np.ndarray | None, str]:
        """The target point in the map frame (median of the depth-valid points), or why not."""
        if not response.success and not response.affordances.points:
            return None, f"pointing failed: {response.message}"
        stamp = stamp_seconds(response.affordances.header.stamp)
        try:
            pose = self._poses.at(stamp)
        except PoseLookupError as error:
            return None, f"no robot pose at the image stamp: {error}"
        translation = self.param("camera_to_base.translation")
        rotation = self.param("camera_to_base.rotation_xyzw")
        max_range = self.param("scan.max_target_range_m")
        statuses, located = [], []
        for p in response.affordances.points:
            position = np.array([p.position.x, p.position.y, p.position.z])
            if not p.in_image:
                statuses.append("outside the image")
            elif not p.depth_valid or not np.all(np.isfinite(position)):
                statuses.append(f"depth invalid ({p.status})")
            elif np.linalg.norm(position) > max_range:
                statuses.append(f"{np.linalg.norm(position):.1f} m away (max {max_range} m)")
            else:
                located.append(camera_point_to_map(position, pose, translation, rotation))
        if not located:
            detail = ", ".join(statuses) or "the model gave no point"
            return None, f"depth invalid at the target: {detail}"
        return np.median(np.array(located), axis=0), "ok"

    def _turn(self, run: _Run, angle: float) -> None:
        """Turn in place by ``angle`` with /cmd_vel, closed loop on the robot pose."""
        start = self._require_pose(STAGE_SCAN)
        goal_yaw = navmap.wrap_angle(start.yaw + angle)
        tolerance = math.radians(self.param("scan.yaw_tolerance_deg"))
        max_speed = float(self.param("scan.angular_speed"))
        timeout = self.param("scan.turn_timeout_s")
        try:
            self._wait(run, lambda: self._turn_step(goal_yaw, tolerance, max_speed), timeout)
        except TimeoutError:
            yaw = self._require_pose(STAGE_SCAN).yaw
            raise NavigationFailure(
                STAGE_SCAN, f"turn in place did not finish within {timeout} s "
                            f"(heading {math.degrees(yaw):.0f} deg, wanted "
                            f"{math.degrees(goal_yaw):.0f} deg)") from None
        finally:
            self._cmd_vel_pub.publish(Twist())

    def _turn_step(self, goal_yaw: float, tolerance: float, max_speed: float) -> bool:
        error = navmap.wrap_angle(goal_yaw - self._require_pose(STAGE_SCAN).yaw)
        if abs(error) <= tolerance:
            return True
        speed = float(np.clip(TURN_GAIN * error, -max_speed, max_speed))
        if abs(speed) < MIN_TURN_SPEED:
            speed = math.copysign(min(MIN_TURN_SPEED, max_speed), error)
        twist = Twist()
        twist.angular.z = speed
        self._cmd_vel_pub.publish(twist)
        return False

    # Stage 3: approach -------------------------------------------------------------------------

    def _approach(self, run: _Run, target_xyz: np.ndarray) -> None:
        grid, spec, _ = self._require_map(STAGE_APPROACH)
        robot = self._require_pose(STAGE_APPROACH)
        target_xy = (float(target_xyz[0]), float(target_xyz[1]))
        goal = navmap.standoff_goal(
            grid, spec, (robot.x, robot.y), target_xy, self.param("standoff_m"),
            self.param("robot_radius"), self.param("snap.standoff_max_m"),
            self.param("map.unknown_is_free"),
        )
        target_point = Point(x=float(target_xyz[0]), y=float(target_xyz[1]),
                             z=float(target_xyz[2]))
        run.target_point = PointStamped(header=self._map_header(), point=target_point)
        if not goal.ok:
            reason = SNAP_REASONS.get(goal.status, goal.status)
            raise NavigationFailure(
                STAGE_APPROACH, f"goal unreachable: the {run.target} at ({target_xy[0]:.2f}, "
                                f"{target_xy[1]:.2f}) {reason} ({goal.status})")
        pose = planar_pose(goal.x, goal.y, goal.yaw)
        self._publish_goal(run, STAGE_TARGET, pose, target_point)
        self._drive(run, STAGE_APPROACH, pose, goal.yaw, self.param("arrival.approach_timeout_s"))

    # Motion ------------------------------------------------------------------------------------

    def _drive(self, run: _Run, stage: str, goal: Pose, yaw: float | None,
               timeout_s: float) -> None:
        """Send a goal and wait until the robot pose is within the arrival tolerances."""
        stamped = pose_stamped(self.param("map_frame"), self.get_clock().now().to_msg(), goal)
        run.goal = stamped
        self._send_goal(run, stage, stamped)
        self._feedback(run, stage, f"driving to ({goal.position.x:.2f}, {goal.position.y:.2f})")
        xy_tolerance = self.param("arrival.xy_tolerance_m")
        yaw_tolerance = math.radians(self.param("arrival.yaw_tolerance_deg"))

        def arrived() -> bool:
            if self._nav2 is not None and self._nav2.state in ("aborted", "rejected"):
                raise NavigationFailure(stage, f"Nav2 {self._nav2.state} the goal")
            pose = self._require_pose(stage)
            close = math.hypot(goal.position.x - pose.x, goal.position.y - pose.y) <= xy_tolerance
            return close and (yaw is None or
                              abs(navmap.wrap_angle(yaw - pose.yaw)) <= yaw_tolerance)

        try:
            self._wait(run, arrived, timeout_s)
        except TimeoutError:
            pose = self._require_pose(stage)
            distance = math.hypot(goal.position.x - pose.x, goal.position.y - pose.y)
            raise NavigationFailure(
                stage, f"did not reach the goal ({goal.position.x:.2f}, {goal.position.y:.2f}) "
                       f"within {timeout_s:.0f} s: robot at ({pose.x:.2f}, {pose.y:.2f}), "
                       f"{distance:.2f} m away") from None

    def _send_goal(self, run: _Run, stage: str, goal: PoseStamped) -> None:
        run.sent_goal = True
        if self._nav2 is not None:
            try:
                self._nav2.send(goal)
            except RuntimeError as error:
                raise NavigationFailure(stage, str(error)) from None
            return
        # A goal published before the base's subscription is matched would be lost.
        try:
            self._wait(run, lambda: self._goal_pub.get_subscription_count() > 0, 5.0)
        except TimeoutError:
            raise NavigationFailure(
                stage, f"nothing subscribes to {self.param('goal_pose_topic')}: "
                       "is Nav2 (or the simulator) running?") from None
        self._goal_pub.publish(goal)

    def _stop_base(self, run: _Run) -> None:
        """Zero velocity, and (if a goal was sent) replace it with the current pose."""
        self._cmd_vel_pub.publish(Twist())
        if not run.sent_goal:
            return
        if self._nav2 is not None:
            self._nav2.cancel()
            return
        latest = self._poses.latest()
        if latest is not None:
            pose = latest[1]
            here = planar_pose(pose.x, pose.y, pose.yaw)
            self._goal_pub.publish(
                pose_stamped(self.param("map_frame"), self.get_clock().now().to_msg(), here))

    # Helpers -----------------------------------------------------------------------------------

    def _ask(self, run: _Run, stage: str, task: str, instruction: str,
             image: Image | None = None) -> Query.Result:
        """One query; waits in this (action) thread, honouring cancellation."""
        try:
            response = self._query.ask(instruction, task, self.param("query_timeout_s"),
                                       image=image,
                                       should_stop=lambda: run.handle.is_cancel_requested)
        except QueryError as error:
            if error.reason == "stopped":
                raise NavigationCanceled() from None
            raise NavigationFailure(stage, str(error)) from None
        if response is None:
            raise NavigationFailure(stage, f"the {task} query returned nothing")
        # A failed query with points (e.g. all outside the image) is judged by the caller.
        if not response.success and not response.affordances.points:
            raise NavigationFailure(stage, f"the {task} query failed: {response.message}")
        return response

    def _wait(self, run: _Run, condition: Callable[[], bool], timeout_s: float,
              wall_clock: bool = False) -> None:
        """Poll ``condition`` until true; NavigationCanceled on cancel, TimeoutError on timeout.

        Timeouts run on the node clock (sim time in simulation); a clock that stops advancing
        still ends the wait after ten times the timeout of wall time.
        """
        start_clock = self._clock_s()
        start_wall = time.monotonic()
        while True:
            if run.handle.is_cancel_requested:
                raise NavigationCanceled()
            if condition():
                return
            wall = time.monotonic() - start_wall
            elapsed = wall if wall_clock else self._clock_s() - start_clock
            if elapsed > timeout_s or wall > 10.0 * timeout_s + 10.0:
                raise TimeoutError()
            time.sleep(POLL_S)

    def _sleep(self, run: _Run, seconds: float) -> None:
        if seconds <= 0.0:
            return
        with suppress(TimeoutError):
            self._wait(run, lambda: False, seconds)

    def _clock_s(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _require_map(self, stage: str) -> tuple[np.ndarray, GridSpec, Header]:
        with self._map_lock:
            current = self._map
        if current is None:
            raise NavigationFailure(stage, f"no map received on {self.param('map_topic')}")
        return current

    def _require_pose(self, stage: str) -> Pose2D:
        latest = self._poses.latest()
        if latest is None:
            raise NavigationFailure(
                stage, f"no robot pose received on {self.param('robot_pose_topic')}")
        return latest[1]

    def _map_header(self) -> Header:
        return Header(frame_id=self.param("map_frame"), stamp=self.get_clock().now().to_msg())

    def _feedback(self, run: _Run, stage: str, message: str) -> None:
        self.get_logger().info(f"[{stage}] {message}")
        run.handle.publish_feedback(NavigateTo.Feedback(
            stage=stage, message=message, current_goal=run.goal or PoseStamped()))

    def _publish_goal(self, run: _Run, stage: str, goal: Pose, point: Point) -> None:
        header = self._map_header()
        msg = navigation_goal_msg(header, stage, run.target, run.region, goal,
                                  point, run.reasoning)
        run.goals.append(msg)
        self._goals_pub.publish(msg)
        self._markers_pub.publish(navigation_markers(header, run.goals, self._regions))


def main(args: list[str] | None = None) -> None:
    spin_node(NavigatorNode, args)


if __name__ == "__main__":
    main()
