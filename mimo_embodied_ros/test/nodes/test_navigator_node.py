"""The navigator over real DDS: its action, goals, scan turns, and every named failure path.

Around the real navigator node run two small real rclpy nodes: a kinematic base (publishes /map
and /robot_pose, drives to /goal_pose, turns on /cmd_vel) and a perception stand-in serving
/mimo_embodied/instruct from the test's geometric ground truth (region point on the map image,
yes/no visibility from the robot's heading, the target's camera-frame position at the pose
stamp). The closed loop with the real perception node and simulator is
mimo_embodied_sim/test/test_eval_navigation.py.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import rclpy
from action_msgs.msg import GoalStatus
from conftest import wait_for
from geometry_msgs.msg import Point, PoseStamped, Twist
from nav_msgs.msg import OccupancyGrid
from rclpy.action import ActionClient, ActionServer
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from scipy.spatial.transform import Rotation

from mimo_embodied_msgs.action import NavigateTo, Query
from mimo_embodied_msgs.msg import AffordancePoint, NavigationGoal
from mimo_embodied_ros.core import navmap
from mimo_embodied_ros.core.navmap import GridSpec
from mimo_embodied_ros.core.prompts import visibility_question
from mimo_embodied_ros.nodes.navigator_node import NavigatorNode
from mimo_embodied_ros.ros.navigation_markers import planar_pose
from mimo_embodied_ros.ros.sync import stamp_seconds
from mimo_embodied_ros.runner import GraphRunner

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "62")

RES = 0.1
TICK_S = 0.04  # fake base physics and pose period
SCALE = 2  # navigation.yaml map.pixels_per_cell
CAMERA_T = np.array([0.2, 0.0, 1.0])  # navigation.yaml camera_to_base
CAMERA_Q = np.array([-0.5, 0.5, -0.5, 0.5])
HALF_FOV = math.radians(45.0)  # a wide camera: 90 deg scan steps leave no gaps
START = (1.0, 1.0, 0.0)
BEDROOM_CENTRE = (4.5, 2.0)
BED = (5.0, 3.2)  # a 0.6 m square bed (occupied cells) in the bedroom

NAVIGATOR_ENTRY = {
    "package": "mimo_embodied_ros",
    "plugin": "mimo_embodied_ros.nodes.navigator_node:NavigatorNode",
    "name": "navigator",
    "parameters": ["navigation.yaml"],
    "overrides": {
        "scan.step_deg": 90.0, "scan.max_steps": 4, "scan.angular_speed": 3.0,
        "scan.settle_s": 0.05, "query_timeout_s": 20.0,
        # Generous: the fake base needs ~1 s, but a loaded 2-core machine can stall callbacks.
        "arrival.region_timeout_s": 40.0, "arrival.approach_timeout_s": 40.0,
        "scan.turn_timeout_s": 30.0,
    },
}


def apartment(door_open: bool = True) -> np.ndarray:
    """A 6 x 4 m flat: living room x 0..3, bedroom x 3..6, a 1 m door at y 1.5..2.5, a bed."""
    grid = np.zeros((40, 60), dtype=np.int8)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = 100
    grid[:, 30] = 100
    if door_open:
        grid[15:25, 30] = 0
    grid[29:35, 47:53] = 100  # the bed, centred on BED
    grid[1:4, 55:59] = -1  # an unexplored corner
    return grid


SPEC = GridSpec(RES, 60, 40)


class FakeBase:
    """A kinematic base: drives straight to /goal_pose, then turns to its heading; /cmd_vel
    turns it in place (and drops the goal, as Nav2's velocity smoother would be overridden)."""

    def __init__(self, context: Context) -> None:
        self.node = Node("fake_base", context=context)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.map_pub = self.node.create_publisher(OccupancyGrid, "/map", latched)
        self.pose_pub = self.node.create_publisher(PoseStamped, "/robot_pose", 10)
        self.node.create_subscription(PoseStamped, "/goal_pose", self._on_goal, 10)
        self.node.create_subscription(Twist, "/cmd_vel", self._on_cmd_vel, 10)
        self.lock = threading.Lock()
        self.goals: list[PoseStamped] = []
        self.cmd_vels: list[Twist] = []
        self.reset(START, apartment())
        self.node.create_timer(TICK_S, self._tick)
        self.last_stamp = 0.0

    def reset(self, pose: tuple[float, float, float], grid: np.ndarray) -> None:
        with self.lock:
            self.x, self.y, self.yaw = pose
            self.goal: tuple[float, float, float] | None = None
            self.turn_rate = 0.0
            self.goals.clear()
            self.cmd_vels.clear()
        msg = OccupancyGrid()
        msg.header.frame_id = "map"
        msg.info.resolution = RES
        msg.info.width, msg.info.height = SPEC.width, SPEC.height
        msg.info.origin.orientation.w = 1.0
        msg.data = grid.reshape(-1).astype(int).tolist()
        self.map_pub.publish(msg)

    def _on_goal(self, msg: PoseStamped) -> None:
        q = msg.pose.orientation
        with self.lock:
            self.goals.append(msg)
            self.goal = (msg.pose.position.x, msg.pose.position.y,
                         navmap.quaternion_to_yaw(q.x, q.y, q.z, q.w))
            self.turn_rate = 0.0

    def _on_cmd_vel(self, msg: Twist) -> None:
        with self.lock:
            self.cmd_vels.append(msg)
            self.goal = None
            self.turn_rate = msg.angular.z

    def _tick(self) -> None:
        dt = TICK_S
        with self.lock:
            if self.goal is not None:
                gx, gy, gyaw = self.goal
                dx, dy = gx - self.x, gy - self.y
                distance = math.hypot(dx, dy)
                step = min(distance, 4.0 * dt)
                if distance > 1e-6:
                    self.x += dx / distance * step
                    self.y += dy / distance * step
                else:
                    error = navmap.wrap_angle(gyaw - self.yaw)
                    self.yaw += float(np.clip(error, -4.0 * dt, 4.0 * dt))
            else:
                self.yaw = navmap.wrap_angle(self.yaw + self.turn_rate * dt)
            pose = planar_pose(self.x, self.y, self.yaw)
        msg = PoseStamped(pose=pose)
        msg.header.frame_id = "map"
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self.last_stamp = stamp_seconds(msg.header.stamp)
        self.pose_pub.publish(msg)

    def pose(self) -> tuple[float, float, float]:
        with self.lock:
            return self.x, self.y, self.yaw


@dataclass
class PerceptionScript:
    """What the perception stand-in answers (changed per test)."""

    region_pixel: tuple[float, float] | None = None  # None: the bedroom centre's pixel
    region_label: str = "bedroom"
    target: str = "bed"
    target_xy: tuple[float, float] | None = BED  # None: nowhere in the flat
    depth_valid: bool = True
    valid_points: int | None = None  # depth turns invalid after this many point answers
    choice_delay_s: float = 0.0
    calls: list[tuple[str, str]] = field(default_factory=list)
    point_bearings: list[float] = field(default_factory=list)  # target off the heading, rad


class PerceptionStandIn:
    """Serves /mimo_embodied/query from the base's true pose and the script's geometry."""

    def __init__(self, context: Context, base: FakeBase) -> None:
        self.node = Node("perception_stand_in", context=context)
        self.base = base
        self.script = PerceptionScript()
        self.server = ActionServer(self.node, Query, "/mimo_embodied/query", self._on_query,
                                   callback_group=ReentrantCallbackGroup())

    def _on_query(self, goal_handle: Any) -> Query.Result:
        result = self._on_instruct(goal_handle.request, Query.Result())
        goal_handle.succeed()
        return result

    def _target_in_camera(self) -> tuple[np.ndarray, bool]:
        x, y, yaw = self.base.pose()
        if self.script.target_xy is None:
            return np.full(3, np.nan), False
        tx, ty = self.script.target_xy
        bearing = navmap.wrap_angle(math.atan2(ty - y, tx - x) - yaw)
        visible = abs(bearing) < HALF_FOV and math.hypot(tx - x, ty - y) < 6.0
        c, s = math.cos(yaw), math.sin(yaw)
        in_base = np.array([c * (tx - x) + s * (ty - y), -s * (tx - x) + c * (ty - y), 0.5])
        in_camera = Rotation.from_quat(CAMERA_Q).inv().apply(in_base - CAMERA_T)
        return in_camera, visible

    def _on_instruct(self, request: Query.Goal, response: Query.Result) -> Any:
        script = self.script
        script.calls.append((request.task, request.instruction))
        response.task = request.task
        response.success = True
        if request.task == "region":
            width, height = request.image.width, request.image.height
            u, v = script.region_pixel or navmap.world_to_map_pixel(SPEC, *BEDROOM_CENTRE, SCALE)
            inside = 0 <= u < width and 0 <= v < height
            response.answer = json.dumps(
                [{"points": [[u, v]], "label": script.region_label, "target": script.target}])
            response.reasoning = f"To do that I go to the {script.region_label}."
            response.affordances.points = [AffordancePoint(
                label=script.region_label, u=u if inside else math.nan,
                v=v if inside else math.nan, u_model=u, v_model=v, in_image=inside,
                status="ok" if inside else "outside_image")]
            response.success = inside
            response.message = "ok" if inside else "no point lies in the image"
        elif request.task == "choice":
            time.sleep(script.choice_delay_s)
            _, visible = self._target_in_camera()
            asked_for = request.instruction == visibility_question(script.target)
            response.answer = "yes" if visible and asked_for else "no"
        elif request.task == "point":
            stamp = self.base.node.get_clock().now().to_msg()
            if script.target_xy is not None:
                x, y, yaw = self.base.pose()
                script.point_bearings.append(navmap.wrap_angle(
                    math.atan2(script.target_xy[1] - y, script.target_xy[0] - x) - yaw))
            position, visible = self._target_in_camera()
            response.affordances.header.stamp = stamp
            response.affordances.header.frame_id = "camera_color_optical_frame"
            points_asked = sum(1 for task, _ in script.calls if task == "point")
            valid = visible and script.depth_valid and (
                script.valid_points is None or points_asked <= script.valid_points)
            point = AffordancePoint(label=request.instruction, u=320.0, v=240.0, in_image=True,
                                    depth_valid=valid,
                                    status="ok" if valid else "no_valid_depth")
            point.position = (Point(x=float(position[0]), y=float(position[1]),
                                    z=float(position[2])) if valid
                              else Point(x=math.nan, y=math.nan, z=math.nan))
            response.affordances.points = [point]
        return response


class Harness:
    """Navigator (from the graph runner) + base + perception stand-in + an action client."""

    def __init__(self, context: Context) -> None:
        self.runner = GraphRunner([NAVIGATOR_ENTRY], context=context)
        self.navigator: NavigatorNode = self.runner.nodes["navigator"]
        self.base = FakeBase(context)
        self.perception = PerceptionStandIn(context, self.base)
        self.client_node = Node("navigate_client", context=context)
        self.client = ActionClient(self.client_node, NavigateTo, "/navigator/navigate_to")
        self.goals: list[NavigationGoal] = []
        self.client_node.create_subscription(NavigationGoal, "/navigator/goals",
                                             self.goals.append, 10)
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        for node in (self.base.node, self.perception.node, self.client_node):
            self.executor.add_node(node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        assert self.client.wait_for_server(timeout_sec=20.0), "navigate_to never appeared"

    def reset(self, grid: np.ndarray | None = None, **script: Any) -> None:
        self.base.reset(START, apartment() if grid is None else grid)
        self.perception.script = PerceptionScript(**script)
        self.goals.clear()
        # The navigator has the new map and a pose from after the reset.
        stamp = self.base.last_stamp
        wait_for(lambda: self.navigator._poses.latest()
                   and self.navigator._poses.latest()[0] > stamp + 0.05, 5.0)

    def navigate(self, instruction: str, cancel_when: Callable[[list], bool] | None = None,
                 timeout_s: float = 120.0) -> tuple[int, NavigateTo.Result, list]:
        feedback: list = []
        sent = self.client.send_goal_async(NavigateTo.Goal(instruction=instruction),
                                           feedback_callback=lambda m: feedback.append(
                                               m.feedback))
        handle = wait_for(lambda: sent.done() and sent.result(), 10.0)
        assert handle.accepted
        result = handle.get_result_async()
        if cancel_when is not None:
            wait_for(lambda: cancel_when(feedback) or result.done(), timeout_s)
            handle.cancel_goal_async()
        wait_for(result.done, timeout_s)
        return result.result().status, result.result().result, feedback

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        for node in (self.base.node, self.perception.node, self.client_node):
            node.destroy_node()
        self.runner.shutdown()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    h = Harness(context)
    yield h
    h.close()
    context.try_shutdown()


def stages(feedback: list) -> list[str]:
    """Stage names in order, repeats collapsed."""
    out: list[str] = []
    for f in feedback:
        if not out or out[-1] != f.stage:
            out.append(f.stage)
    return out


def test_navigates_from_instruction_to_a_goal_facing_the_target(harness: Harness):
    harness.reset()
    status, result, feedback = harness.navigate("I want to sleep")
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert result.success and result.failed_stage == ""
    assert (result.region, result.target) == ("bedroom", "bed")
    assert "bedroom" in result.reasoning
    assert stages(feedback) == ["map_reasoning", "driving_to_region", "scanning", "approaching"]
    # The target point is the bed, lifted from the camera frame with the pose at the stamp.
    assert (result.target_point.point.x, result.target_point.point.y) == pytest.approx(BED,
                                                                                      abs=0.05)
    x, y, yaw = harness.base.pose()
    goal = result.goal.pose
    assert math.hypot(goal.position.x - x, goal.position.y - y) < 0.2
    assert math.hypot(BED[0] - x, BED[1] - y) == pytest.approx(0.75, abs=0.4)
    assert abs(navmap.wrap_angle(math.atan2(BED[1] - y, BED[0] - x) - yaw)) < math.radians(15)
    col, row = navmap.world_to_cell(SPEC, x, y)
    assert navmap.free_space_mask(apartment(), SPEC, 0.25)[row, col]
    # The bed is not in view from the region goal: the base turned with /cmd_vel, then stopped.
    turns = [t.angular.z for t in harness.base.cmd_vels]
    assert any(abs(w) > 0.1 for w in turns) and turns[-1] == 0.0
    assert [g.stage for g in harness.goals] == ["map_region", "egocentric_target"]
    assert harness.goals[0].region == "bedroom" and harness.goals[1].target == "bed"
    region_goal = harness.goals[0].goal.position
    assert (region_goal.x, region_goal.y) == pytest.approx(BEDROOM_CENTRE, abs=0.1)
    assert [g.header.frame_id for g in harness.base.goals] == ["map", "map"]


def test_target_seen_off_centre_is_faced_and_pointed_at_again(harness: Harness):
    # From the region goal (heading ~16 deg) the bed (bearing ~67 deg) enters the view only after
    # the first 90 deg turn, ~39 deg to the right of the heading: the navigator faces it and asks
    # again before approaching. (How far the turn overshoots depends on the machine's timing, so
    # the bearing is only required to exceed scan.recentre_min_deg, 10 deg, by a margin.)
    harness.reset()
    status, result, _ = harness.navigate("I want to sleep")
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    first, *again = harness.perception.script.point_bearings
    assert abs(first) > math.radians(15)
    assert len(again) == 1 and abs(again[0]) < math.radians(5)
    assert (result.target_point.point.x, result.target_point.point.y) == pytest.approx(BED,
                                                                                      abs=0.05)


def test_first_point_stands_when_the_second_look_fails(harness: Harness):
    harness.reset(valid_points=1)
    status, result, _ = harness.navigate("I want to sleep")
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert len(harness.perception.script.point_bearings) == 2
    assert (result.target_point.point.x, result.target_point.point.y) == pytest.approx(BED,
                                                                                      abs=0.05)


def test_target_never_seen_after_full_scan(harness: Harness):
    harness.reset(target="unicorn", target_xy=None)  # the model says "no" in every view
    status, result, feedback = harness.navigate("I want to ride")
    assert status == GoalStatus.STATUS_ABORTED
    assert not result.success and result.failed_stage == "scanning"
    assert "never seen" in result.message and "unicorn" in result.message
    questions = [i for task, i in harness.perception.script.calls if task == "choice"]
    assert questions == [visibility_question("unicorn")] * 4  # scan.max_steps views
    assert [t for t, _ in harness.perception.script.calls].count("point") == 0
    assert harness.base.cmd_vels[-1].angular.z == 0.0
    # The node keeps serving: the next navigation succeeds.
    harness.reset()
    status, result, _ = harness.navigate("I want to sleep")
    assert status == GoalStatus.STATUS_SUCCEEDED and result.success, result.message


def test_region_point_off_map(harness: Harness):
    harness.reset(region_pixel=(-40.0, 30.0))
    status, result, _ = harness.navigate("I want to sleep")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.failed_stage == "map_reasoning" and "off the map" in result.message
    assert harness.base.goals == []  # nothing was sent to the base


def test_depth_invalid_at_target(harness: Harness):
    harness.reset(depth_valid=False)
    status, result, _ = harness.navigate("I want to sleep")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.failed_stage == "scanning"
    assert "depth invalid" in result.message and "bed" in result.message
    assert len(harness.goals) == 1  # only the region goal: no standoff goal from bad depth


def test_goal_unreachable(harness: Harness):
    harness.reset(grid=apartment(door_open=False))
    status, result, _ = harness.navigate("I want to sleep")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.failed_stage == "driving_to_region"
    assert "unreachable" in result.message
    assert harness.base.goals == []


def test_cancel(harness: Harness):
    harness.reset(target="unicorn", target_xy=None, choice_delay_s=0.3)
    status, result, feedback = harness.navigate(
        "I want to ride", cancel_when=lambda fb: any(f.stage == "scanning" for f in fb))
    assert status == GoalStatus.STATUS_CANCELED
    assert not result.success and result.failed_stage == "cancelled"
    time.sleep(0.3)
    x, y, yaw = harness.base.pose()
    assert harness.base.cmd_vels[-1].angular.z == 0.0 and harness.base.cmd_vels[-1].linear.x == 0
    last_goal = harness.base.goals[-1].pose
    assert math.hypot(last_goal.position.x - x, last_goal.position.y - y) < 0.05
    # Cancelled while driving too: the base stops short of the region goal.
    harness.reset()
    status, result, _ = harness.navigate(
        "I want to sleep", cancel_when=lambda fb: any(f.stage == "driving_to_region" for f in fb))
    assert status == GoalStatus.STATUS_CANCELED
    time.sleep(0.3)
    x, y, _ = harness.base.pose()
    assert math.hypot(x - BEDROOM_CENTRE[0], y - BEDROOM_CENTRE[1]) > 0.5
    stopped = harness.base.goals[-1].pose.position
    assert math.hypot(stopped.x - x, stopped.y - y) < 0.4  # pose latency: a few ticks at 4 m/s


def test_nav2_action_without_nav2_msgs_fails_clearly(ros_context: Context):
    node = NavigatorNode(context=ros_context,
                         parameter_overrides=[Parameter("goal_interface", value="nav2_action")])
    try:
        assert "nav2_msgs" in node._setup_error and "goal_pose" in node._setup_error
    finally:
        node.destroy_node()


@pytest.mark.skipif(importlib.util.find_spec("tf2_ros") is not None, reason="tf2_ros is installed")
def test_tf_pose_source_without_tf2_fails_clearly(ros_context: Context):
    node = NavigatorNode(context=ros_context,
                         parameter_overrides=[Parameter("robot_pose_source", value="tf")])
    try:
        assert "tf2_ros" in node._setup_error and "'topic'" in node._setup_error
    finally:
        node.destroy_node()


def test_unknown_pose_source_fails_clearly(ros_context: Context):
    node = NavigatorNode(context=ros_context,
                         parameter_overrides=[Parameter("robot_pose_source", value="gps")])
    try:
        assert "robot_pose_source must be 'topic' or 'tf'" in node._setup_error
    finally:
        node.destroy_node()
