"""The manipulation bridge over DDS: perception node (scripted) + bridge + a real MoveArm server.

One graph serves every test of this file (starting nodes and DDS discovery dominate the time); each
test writes the answers the scripted model gives, and changes bridge parameters it needs, then
restores them. The camera looks straight down at a table (base z = 0) with a 4 cm cube on it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
from action_msgs.msg import GoalStatus
from arm_server import LinearArmServer
from conftest import PERCEPTION_ENTRY, CameraFeed, spin_until, write_answers
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TransformStamped
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header

from mimo_embodied_msgs.action import PickPlace
from mimo_embodied_msgs.msg import PickPlaceTarget
from mimo_embodied_ros.core.resize import smart_resize
from mimo_embodied_ros.core.types import CameraIntrinsics
from mimo_embodied_ros.executors import ExecutorConfigurationError
from mimo_embodied_ros.nodes.manipulation_bridge_node import ManipulationBridgeNode
from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics
from mimo_embodied_ros.ros.params import config_dir
from mimo_embodied_ros.runner import GraphRunner, load_graph
from mimo_embodied_sim.answers import pointing_answer

BRIDGE_ENTRY = {
    "package": "mimo_embodied_ros",
    "plugin": "mimo_embodied_ros.nodes.manipulation_bridge_node:ManipulationBridgeNode",
    "name": "manipulation_bridge",
    "parameters": ["manipulation.yaml"],
}
WIDTH, HEIGHT = 320, 240
K = CameraIntrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=WIDTH, height=HEIGHT)
CAMERA_POSITION = np.array([0.5, 0.1, 0.9])
# Optical x = -base y, optical y = -base x, optical z = -base z (looking down).
CAMERA_ROTATION = Rotation.from_matrix([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
CUBE_CENTER_XY, CUBE_SIZE = np.array([0.5, 0.0]), 0.04
PLACE_XY = np.array([0.45, 0.25])
RESIZED = smart_resize(HEIGHT, WIDTH, max_pixels=1003520, min_pixels=3136)


def pixel_of(base_xyz: np.ndarray) -> tuple[float, float]:
    camera = CAMERA_ROTATION.inv().apply(np.asarray(base_xyz) - CAMERA_POSITION)
    return K.fx * camera[0] / camera[2] + K.cx, K.fy * camera[1] / camera[2] + K.cy


def render_depth(cube: bool = True) -> np.ndarray:
    """Depth (metres) of the table plane and the cube's top face, seen straight down."""
    cols, rows = np.meshgrid(np.arange(WIDTH) + 0.0, np.arange(HEIGHT) + 0.0)
    rays = np.stack(((cols - K.cx) / K.fx, (rows - K.cy) / K.fy, np.ones_like(cols)), axis=-1)
    directions = CAMERA_ROTATION.apply(rays.reshape(-1, 3)).reshape(HEIGHT, WIDTH, 3)
    depth = np.full((HEIGHT, WIDTH), CAMERA_POSITION[2], dtype=np.float32)  # table at z = 0
    top_depth = CAMERA_POSITION[2] - CUBE_SIZE
    top_xy = CAMERA_POSITION[:2] + directions[..., :2] * top_depth
    on_top = np.all(np.abs(top_xy - CUBE_CENTER_XY) <= CUBE_SIZE / 2, axis=-1)
    if cube:
        depth[on_top] = top_depth
    return depth


def answer(base_xyz: np.ndarray | None, label: str) -> str:
    if base_xyz is None:
        return "<think>\nI cannot see it.\n</think>\n[]"
    return pointing_answer([pixel_of(base_xyz)], (WIDTH, HEIGHT), RESIZED, label)


CUBE_TOP = np.array([*CUBE_CENTER_XY, CUBE_SIZE])
PLACE = np.array([*PLACE_XY, 0.0])


class Graph:
    """Perception + bridge (sim executor) + arm server + camera + an action client."""

    def __init__(self, context: Context, answers_file: Path) -> None:
        self.context = context
        self.answers_file = answers_file
        self.set_answers({"the red cube": answer(CUBE_TOP, "the red cube"),
                          "the blue plate": answer(PLACE, "the blue plate")})
        quaternion = CAMERA_ROTATION.as_quat()
        self.runner = GraphRunner(
            [PERCEPTION_ENTRY, BRIDGE_ENTRY],
            {
                "mimo_embodied": {"backend": "scripted",
                                  "scripted.answers_file": str(answers_file),
                                  "debug_image.max_rate_hz": 0.0},
                "manipulation_bridge": {
                    "executor": "sim",
                    "camera_to_base.translation": CAMERA_POSITION.tolist(),
                    "camera_to_base.rotation_xyzw": quaternion.tolist(),
                    "perception_timeout_s": 10.0,
                    "diagnostics_period_s": 0.2,
                },
            },
            context,
        )
        self.bridge = self.runner.nodes["manipulation_bridge"]
        self.arm = LinearArmServer(context)
        self.camera = CameraFeed(context)
        self.client_node = Node("test_pick_place_client", context=context)
        self.targets: list[PickPlaceTarget] = []
        self.client_node.create_subscription(
            PickPlaceTarget, "/manipulation_bridge/targets", self.targets.append, 10)
        self.diagnostics: list[DiagnosticStatus] = []
        self.client_node.create_subscription(
            DiagnosticArray, "/diagnostics",
            lambda m: self.diagnostics.extend(
                s for s in m.status if s.name == "manipulation_bridge: manipulation"), 10)
        self.client = ActionClient(self.client_node, PickPlace, "/manipulation_bridge/pick_place")
        self.executor = SingleThreadedExecutor(context=context)
        for node in (self.client_node, self.camera.node):
            self.executor.add_node(node)
        self.depth = render_depth()
        self.rgb = np.full((HEIGHT, WIDTH, 3), 128, dtype=np.uint8)
        self.publish_frame()
        assert self.client.wait_for_server(timeout_sec=20.0), "pick_place action never appeared"

    def set_answers(self, answers: dict[str, str]) -> None:
        write_answers(self.answers_file, answers)
        time.sleep(0.01)  # a new mtime_ns even on coarse clocks: the backend re-reads the file

    def publish_frame(self) -> None:
        """Publish frames until both the perception node and the bridge have one."""
        sync = self.runner.nodes["mimo_embodied"]._sync
        before = sync.counts["synced"]
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            self.camera.publish(self.rgb, self.depth, K)
            self.executor.spin_once(timeout_sec=0.1)
            if sync.counts["synced"] > before and self.bridge.frames.received["depth"] > 0:
                return
        raise AssertionError("the nodes never received a camera frame")

    def set_bridge(self, **values: Any) -> None:
        self.bridge.set_parameters([Parameter(k, value=v) for k, v in values.items()])

    def send(self, goal: PickPlace.Goal, timeout_s: float = 30.0,
             cancel_when: Any = None) -> tuple[int, PickPlace.Result, list[str]]:
        stages: list[str] = []
        future = self.client.send_goal_async(goal, lambda f: stages.append(f.feedback.stage))
        assert spin_until(self.executor, future.done, 10.0), "goal never answered"
        handle = future.result()
        assert handle.accepted
        result_future = handle.get_result_async()
        if cancel_when is not None:
            assert spin_until(self.executor, cancel_when, timeout_s), "cancel condition never met"
            handle.cancel_goal_async()
        assert spin_until(self.executor, result_future.done, timeout_s), "no result in time"
        response = result_future.result()
        return response.status, response.result, stages

    def close(self) -> None:
        self.executor.shutdown()
        self.client.destroy()
        self.client_node.destroy_node()
        self.camera.node.destroy_node()
        self.arm.close()
        self.runner.shutdown()


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    harness = Graph(context, tmp_path_factory.mktemp("bridge") / "answers.yaml")
    yield harness
    harness.close()
    context.try_shutdown()


@pytest.fixture(autouse=True)
def fresh_arm(graph: Graph) -> Iterator[None]:
    graph.arm.goals.clear()
    graph.arm.speed_m_s = 2.0
    graph.targets.clear()
    yield
    graph.set_bridge(**{"workspace.max_reach": 0.855,
                        "query_action": "/mimo_embodied/query",
                        "perception_timeout_s": 10.0})


def test_instruction_executes_every_stage_on_the_arm(graph: Graph) -> None:
    status, result, stages = graph.send(
        PickPlace.Goal(instruction="put the red cube on the blue plate"))
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert result.success and result.failed_stage == ""
    assert stages[:3] == ["parsing", "perceiving", "planning"]
    assert stages[3:] == ["pre_grasp", "open_gripper", "grasp", "close_gripper", "lift",
                          "pre_place", "place", "open_gripper", "retreat", "done"]
    target = result.target
    assert target.header.frame_id == "panda_link0"
    assert target.approach == "top_down"
    grasp = np.array([target.grasp.position.x, target.grasp.position.y, target.grasp.position.z])
    assert np.linalg.norm(grasp[:2] - CUBE_CENTER_XY) < 0.01
    assert 0.0 < grasp[2] < CUBE_SIZE
    assert abs(target.object_width - CUBE_SIZE) < 0.01
    place = np.array([target.place.position.x, target.place.position.y])
    assert np.linalg.norm(place - PLACE_XY) < 0.01
    # The arm got the grasp pose as a straight move, then a close command.
    moves = [g for g in graph.arm.goals if g.move_pose]
    assert len(moves) == 6 and len(graph.arm.goals) == 9
    assert moves[1].cartesian and abs(moves[1].target.pose.position.z - grasp[2]) < 1e-6
    assert spin_until(graph.executor, lambda: graph.targets, 5.0), "no ~/targets message"


def test_object_not_found(graph: Graph) -> None:
    graph.set_answers({"the green pear": answer(None, "the green pear"),
                       "the blue plate": answer(PLACE, "the blue plate")})
    status, result, _ = graph.send(PickPlace.Goal(object_description="the green pear",
                                                  place_description="the blue plate"))
    assert status == GoalStatus.STATUS_ABORTED
    assert not result.success and result.failed_stage == "perceive_pick"
    assert "not found" in result.message and "the green pear" in result.message
    assert graph.arm.goals == []


@pytest.mark.parametrize("where", ["outside_image", "no_depth"])
def test_place_point_invalid(graph: Graph, where: str) -> None:
    if where == "outside_image":
        place = pointing_answer([(WIDTH + 30, 20)], (WIDTH, HEIGHT), RESIZED, "the shelf")
    else:  # a pixel whose depth is a hole
        graph.depth = render_depth()
        u, v = pixel_of(PLACE)
        graph.depth[int(v) - 10: int(v) + 10, int(u) - 10: int(u) + 10] = np.nan
        graph.publish_frame()
        place = answer(PLACE, "the shelf")
    graph.set_answers({"the red cube": answer(CUBE_TOP, "the red cube"), "the shelf": place})
    try:
        status, result, _ = graph.send(PickPlace.Goal(instruction="put the red cube on the shelf"))
    finally:
        graph.depth = render_depth()
        graph.publish_frame()
    assert status == GoalStatus.STATUS_ABORTED
    assert result.failed_stage == "perceive_place", result.message
    assert "invalid" in result.message
    assert graph.arm.goals == []


def test_target_out_of_reach(graph: Graph) -> None:
    graph.set_answers({"the red cube": answer(CUBE_TOP, "the red cube"),
                       "the blue plate": answer(PLACE, "the blue plate")})
    graph.set_bridge(**{"workspace.max_reach": 0.45})
    status, result, _ = graph.send(PickPlace.Goal(instruction="put the red cube on the blue plate"))
    assert status == GoalStatus.STATUS_ABORTED
    assert result.failed_stage == "workspace"
    assert "max reach 0.45" in result.message and "before any motion" in result.message
    assert graph.arm.goals == []  # refused before any motion
    # The refused target is still published for the operator to inspect.
    assert spin_until(graph.executor, lambda: graph.targets, 5.0)


def test_perception_timeout(graph: Graph) -> None:
    graph.set_bridge(query_action="/nobody/query", perception_timeout_s=1.0)
    started = time.monotonic()
    status, result, _ = graph.send(PickPlace.Goal(instruction="put the red cube on the blue plate"))
    assert status == GoalStatus.STATUS_ABORTED
    assert result.failed_stage == "perceive_pick"
    assert "perception timeout" in result.message and "/nobody/query" in result.message
    assert time.monotonic() - started < 10.0
    # The node keeps serving: the next goal with the right service succeeds.
    graph.set_bridge(query_action="/mimo_embodied/query", perception_timeout_s=10.0)
    status, result, _ = graph.send(PickPlace.Goal(instruction="put the red cube on the blue plate"))
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message


def test_perception_slower_than_timeout_cancels_the_query(graph: Graph) -> None:
    backend = graph.runner.nodes["mimo_embodied"]._engine.backend
    backend.delay_s = 5.0  # the scripted model's latency
    graph.set_bridge(perception_timeout_s=0.5)
    try:
        status, result, _ = graph.send(PickPlace.Goal(instruction="put the red cube on the "
                                                                  "blue plate"))
    finally:
        backend.delay_s = 0.0
    assert status == GoalStatus.STATUS_ABORTED
    assert result.failed_stage == "perceive_pick"
    assert "no model answer" in result.message and "perception timeout" in result.message
    # The timed-out query was cancelled, so the model is free at once: the next goal does not
    # wait for the abandoned 5 s answer.
    graph.set_bridge(perception_timeout_s=10.0)
    started = time.monotonic()
    status, result, _ = graph.send(PickPlace.Goal(instruction="put the red cube on the "
                                                              "blue plate"))
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert time.monotonic() - started < 4.5


def test_cancel_mid_motion(graph: Graph) -> None:
    graph.set_answers({"the red cube": answer(CUBE_TOP, "the red cube"),
                       "the blue plate": answer(PLACE, "the blue plate")})
    graph.arm.speed_m_s = 0.02  # slow enough to cancel during the first motion
    status, result, stages = graph.send(
        PickPlace.Goal(instruction="put the red cube on the blue plate"),
        cancel_when=graph.arm.moving.is_set)
    assert status == GoalStatus.STATUS_CANCELED
    assert not result.success and result.failed_stage == "cancelled"
    assert "canceled" in result.message
    assert graph.arm.canceled_goals == 1
    assert len(graph.arm.goals) == 1  # nothing was sent after the cancel
    first = graph.arm.goals[0].target.pose.position
    target = np.array([first.x, first.y, first.z])
    assert np.linalg.norm(graph.arm.position - target) > 0.01  # stopped short of the target
    assert not graph.arm.moving.is_set()
    assert "pre_grasp" in stages


def test_explicit_points_skip_perception(graph: Graph) -> None:
    graph.set_answers({})  # the model is not asked: any question would fail
    goal = PickPlace.Goal(use_points=True)
    goal.pick_point.header.frame_id = "panda_link0"
    goal.pick_point.point.x, goal.pick_point.point.y, goal.pick_point.point.z = CUBE_TOP.tolist()
    goal.place_point.header.frame_id = "camera_color_optical_frame"
    place_camera = CAMERA_ROTATION.inv().apply(PLACE - CAMERA_POSITION)
    goal.place_point.point.x, goal.place_point.point.y, goal.place_point.point.z = (
        place_camera.tolist())
    status, result, _ = graph.send(goal)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    place = result.target.place_point
    np.testing.assert_allclose([place.x, place.y, place.z], PLACE, atol=1e-9)
    assert np.linalg.norm(np.array([result.target.grasp.position.x,
                                    result.target.grasp.position.y]) - CUBE_CENTER_XY) < 0.01
    goal.place_point.header.frame_id = "map"
    status, result, _ = graph.send(goal)
    assert result.failed_stage == "perceive_place" and "'map'" in result.message


def test_bridge_and_perception_pair_colour_and_depth_with_one_tolerance() -> None:
    """One stamp tolerance across nodes: the bridge's sync_slop_s is the perception node's."""
    import yaml

    def params(name: str, node: str) -> dict:
        return yaml.safe_load((config_dir() / name).read_text())[node]["ros__parameters"]

    perception = params("perception.yaml", "mimo_embodied")
    bridge = params("manipulation.yaml", "manipulation_bridge")
    assert bridge["sync_slop_s"] == perception["sync_slop_s"] == 0.05
    assert "stamp_tolerance_s" not in bridge and "depth_buffer_size" not in bridge


def test_slow_model_with_a_30_hz_camera_still_finds_the_frames_depth(graph: Graph) -> None:
    """The model answers 3 s after the frame it saw while the camera sends 30 frames a second
    (about 200 frames during the two queries; the old 30-frame buffer forgot the frame). Frames
    sent 1.5 s after the goal show the table without the cube, so only the frame the model saw
    has the cube's depth: a grasp on the cube proves the bridge used that frame's depth."""
    backend = graph.runner.nodes["mimo_embodied"]._engine.backend
    graph.set_answers({"the red cube": answer(CUBE_TOP, "the red cube"),
                       "the blue plate": answer(PLACE, "the blue plate")})
    with_cube, without_cube = render_depth(), render_depth(cube=False)
    rgb = graph.rgb
    state = {"depth": with_cube, "frames": 0}
    stop = threading.Event()
    camera = graph.camera

    def run_camera() -> None:  # 30 Hz stamps on the wall clock, colour/depth/info alike
        start, index = time.monotonic(), 0
        while not stop.is_set():
            nanoseconds = 100_000 * 10**9 + index * 10**9 // 30
            header = Header(frame_id="camera_color_optical_frame")
            header.stamp.sec, header.stamp.nanosec = divmod(nanoseconds, 10**9)
            camera.image_pub.publish(array_to_image(rgb, "rgb8", header))
            camera.depth_pub.publish(array_to_image(state["depth"], "32FC1", header))
            camera.info_pub.publish(camera_info_from_intrinsics(K, header))
            state["frames"] += 1
            index += 1
            time.sleep(max(0.0, start + index / 30 - time.monotonic()))

    thread = threading.Thread(target=run_camera, daemon=True)
    thread.start()
    backend.delay_s = 3.0
    try:
        time.sleep(0.5)  # both nodes hold 30 Hz frames
        timer = threading.Timer(1.5, lambda: state.update(depth=without_cube))
        timer.start()
        started, frames_before = time.monotonic(), state["frames"]
        status, result, _ = graph.send(PickPlace.Goal(instruction="put the red cube on the "
                                                                  "blue plate"), timeout_s=60.0)
        frames_during = state["frames"] - frames_before
    finally:
        backend.delay_s = 0.0
        stop.set()
        thread.join(timeout=5.0)
        camera._stamp = 200_000  # later frames of other tests stay newer than these
        graph.publish_frame()
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    assert time.monotonic() - started >= 6.0 and frames_during > 120  # two 3 s answers at 30 Hz
    grasp = result.target.grasp.position
    assert np.linalg.norm(np.array([grasp.x, grasp.y]) - CUBE_CENTER_XY) < 0.01
    assert 0.0 < grasp.z < CUBE_SIZE  # in the cube's top face: the held frame's depth
    assert result.executed


def test_a_second_goal_while_one_runs_is_rejected_with_the_reason(graph: Graph) -> None:
    graph.set_answers({"the red cube": answer(CUBE_TOP, "the red cube"),
                       "the blue plate": answer(PLACE, "the blue plate")})
    graph.arm.speed_m_s = 0.02  # the first goal is still moving when the second arrives
    goal = PickPlace.Goal(instruction="put the red cube on the blue plate")
    first = graph.client.send_goal_async(goal)
    assert spin_until(graph.executor, first.done, 10.0)
    first_result = first.result().get_result_async()
    assert spin_until(graph.executor, graph.arm.moving.is_set, 20.0)
    status, result, _ = graph.send(goal)
    assert status == GoalStatus.STATUS_ABORTED
    assert not result.success and not result.executed and result.failed_stage == "busy"
    assert "another pick-and-place goal is running" in result.message
    first.result().cancel_goal_async()
    assert spin_until(graph.executor, first_result.done, 20.0)
    assert first_result.result().status == GoalStatus.STATUS_CANCELED
    assert len([g for g in graph.arm.goals if g.move_pose]) == 1  # the second never moved


class StandInTfBuffer:
    """Stands in for tf2_ros.Buffer (no wheels here): lookup_transform(target, source, time,
    timeout) -> TransformStamped, the fixed camera's pose at any stamp; records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, float]] = []

    def lookup_transform(self, target: str, source: str, time: Any, timeout: Any) -> Any:
        self.calls.append((target, source, time.nanoseconds * 1e-9))
        msg = TransformStamped()
        t, q = msg.transform.translation, msg.transform.rotation
        t.x, t.y, t.z = CAMERA_POSITION.tolist()
        q.x, q.y, q.z, q.w = CAMERA_ROTATION.as_quat().tolist()
        return msg


@pytest.fixture
def stand_in_tf2(monkeypatch: pytest.MonkeyPatch) -> StandInTfBuffer:
    """A tf2_ros module whose Buffer is the stand-in and whose listener does nothing."""
    buffer = StandInTfBuffer()
    module = types.SimpleNamespace(Buffer=lambda: buffer, TransformListener=lambda *_: None)
    monkeypatch.setitem(sys.modules, "tf2_ros", module)
    return buffer


def test_moveit_allowed_without_an_extrinsic_when_the_camera_pose_comes_from_tf(
        graph: Graph, stand_in_tf2: StandInTfBuffer) -> None:
    """gazebo.yaml / isaac_sim.yaml: executor moveit with no calibrated extrinsic, camera pose
    from TF: the placeholder refusal does not apply (the next step is the moveit_msgs import)."""
    for name in ("gazebo.yaml", "isaac_sim.yaml"):
        bridge = next(e for e in load_graph(name) if e["name"] == "manipulation_bridge")
        assert bridge["overrides"]["executor"] == "moveit"
        assert bridge["overrides"]["camera_pose_source"] == "tf"
    overrides = [Parameter("executor", value="moveit"), Parameter("camera_pose_source",
                                                                   value="tf")]
    if importlib.util.find_spec("moveit_msgs") is None:
        with pytest.raises(ExecutorConfigurationError, match="moveit_msgs"):
            ManipulationBridgeNode(context=graph.context, namespace="/tf_moveit",
                                   parameter_overrides=overrides)


def test_wrist_camera_pose_from_tf_at_the_stamp_the_model_saw(
        graph: Graph, stand_in_tf2: StandInTfBuffer) -> None:
    """camera_pose_source tf with the identity placeholder as camera_to_base: the grasp lands on
    the cube only if each point used TF at the stamp of the image the model saw."""
    wrist = ManipulationBridgeNode(context=graph.context, namespace="/wrist", parameter_overrides=[
        Parameter("camera_pose_source", value="tf"), Parameter("diagnostics_period_s", value=0.2)])
    executor = MultiThreadedExecutor(num_threads=3, context=graph.context)
    executor.add_node(wrist)
    threading.Thread(target=executor.spin, daemon=True).start()
    client = ActionClient(graph.client_node, PickPlace, "/wrist/manipulation_bridge/pick_place")
    try:
        assert client.wait_for_server(timeout_sec=20.0)
        deadline = time.monotonic() + 10.0
        while wrist.frames.received["depth"] == 0 and time.monotonic() < deadline:
            graph.publish_frame()
        sent = client.send_goal_async(PickPlace.Goal(instruction="put the red cube on the blue "
                                                                 "plate"))
        assert spin_until(graph.executor, sent.done, 10.0)
        done = sent.result().get_result_async()
        assert spin_until(graph.executor, done.done, 20.0)
        result = done.result().result
        assert spin_until(graph.executor, lambda: any(
            {kv.key: kv.value for kv in s.values}.get("camera_pose_source") == "tf"
            for s in graph.diagnostics), 5.0), "no diagnostics naming the tf source"
    finally:
        client.destroy()
        executor.shutdown(timeout_sec=2.0)
        wrist.destroy_node()
    assert result.success, result.message
    grasp = result.target.grasp.position
    assert np.linalg.norm(np.array([grasp.x, grasp.y]) - CUBE_CENTER_XY) < 0.01
    image_stamp = result.target.header.stamp.sec + result.target.header.stamp.nanosec * 1e-9
    assert any(call[:2] == ("panda_link0", "camera_color_optical_frame")
               and abs(call[2] - image_stamp) < 1e-6 for call in stand_in_tf2.calls)
    assert len(stand_in_tf2.calls) == 2  # one lookup per query (pick, place)


def test_tf_source_without_tf2_refused_at_start(graph: Graph) -> None:
    if importlib.util.find_spec("tf2_ros") is not None:
        pytest.skip("tf2_ros is installed")
    with pytest.raises(ExecutorConfigurationError, match="tf2_ros is not installed"):
        ManipulationBridgeNode(context=graph.context, namespace="/no_tf",
                               parameter_overrides=[Parameter("camera_pose_source", value="tf")])


def test_diagnostics_report_source_frames_stage_and_outcomes(graph: Graph) -> None:
    """/diagnostics: static camera pose here (no tf2_ros), frames buffered, the goal counts and
    last outcome; WARN once the depth input is stale."""
    status, result, _ = graph.send(PickPlace.Goal(instruction="put the red cube on the blue "
                                                              "plate"))
    assert status == GoalStatus.STATUS_SUCCEEDED, result.message
    graph.diagnostics.clear()

    def latest() -> dict[str, str]:
        return {kv.key: kv.value for kv in graph.diagnostics[-1].values}

    assert spin_until(graph.executor, lambda: graph.diagnostics, 5.0), "no /diagnostics"
    values = latest()
    assert values["camera_pose_source"] == "static" and values["executor"] == "sim"
    assert int(values["frames_buffered"]) >= 1 and values["stage"] == "idle"
    assert int(values["goals_succeeded"]) >= 1 and values["last_outcome"].startswith("succeeded")
    assert {"goals_failed", "goals_cancelled", "goals_refused", "depth_age_s"} <= set(values)
    graph.set_bridge(stale_after_s=0.0)
    try:
        assert spin_until(graph.executor, lambda: graph.diagnostics[-1].level
                          == DiagnosticStatus.WARN, 5.0)
        assert "stale" in graph.diagnostics[-1].message
    finally:
        graph.set_bridge(stale_after_s=2.0)


def test_moveit_refused_with_the_placeholder_extrinsic(graph: Graph) -> None:
    """manipulation.yaml's camera_to_base is the identity placeholder and no TF here (or the
    static source named): moveit is refused with the reason before anything (even before
    looking for moveit_msgs)."""
    with pytest.raises(ExecutorConfigurationError, match="placeholder") as error:
        ManipulationBridgeNode(context=graph.context, namespace="/refusal_test",
                               parameter_overrides=[Parameter("executor", value="moveit"),
                                                    Parameter("camera_pose_source",
                                                              value="static")])
    assert "camera_to_base" in str(error.value) and "calibration" in str(error.value)
    calibrated = [Parameter("executor", value="moveit"),
                  Parameter("camera_to_base.translation", value=CAMERA_POSITION.tolist()),
                  Parameter("camera_to_base.rotation_xyzw",
                            value=CAMERA_ROTATION.as_quat().tolist())]
    if importlib.util.find_spec("moveit_msgs") is None:  # past the check: the import is next
        with pytest.raises(ExecutorConfigurationError, match="moveit_msgs"):
            ManipulationBridgeNode(context=graph.context, namespace="/refusal_test",
                                   parameter_overrides=calibrated)


def test_none_executor_result_says_not_executed(graph: Graph) -> None:
    """The default executor publishes the target and moves nothing; the result's field says so."""
    dry = ManipulationBridgeNode(
        context=graph.context, namespace="/dry_run",
        parameter_overrides=[
            Parameter("camera_to_base.translation", value=CAMERA_POSITION.tolist()),
            Parameter("camera_to_base.rotation_xyzw", value=CAMERA_ROTATION.as_quat().tolist())])
    executor = MultiThreadedExecutor(num_threads=2, context=graph.context)
    executor.add_node(dry)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    client = ActionClient(graph.client_node, PickPlace, "/dry_run/manipulation_bridge/pick_place")
    try:
        assert client.wait_for_server(timeout_sec=20.0)
        deadline = time.monotonic() + 10.0
        while dry.frames.received["depth"] == 0 and time.monotonic() < deadline:
            graph.publish_frame()
        goal = PickPlace.Goal(use_points=True)
        goal.pick_point.header.frame_id = goal.place_point.header.frame_id = "panda_link0"
        goal.pick_point.point.x, goal.pick_point.point.y, goal.pick_point.point.z = (
            CUBE_TOP.tolist())
        goal.place_point.point.x, goal.place_point.point.y, goal.place_point.point.z = (
            PLACE.tolist())
        sent = client.send_goal_async(goal)
        assert spin_until(graph.executor, sent.done, 10.0)
        done = sent.result().get_result_async()
        assert spin_until(graph.executor, done.done, 20.0)
        result = done.result().result
    finally:
        client.destroy()
        executor.shutdown(timeout_sec=2.0)
        dry.destroy_node()
    assert result.success and not result.executed, result.message
    assert "not executed" in result.message
    assert graph.arm.goals == []


def test_shutdown_cancels_the_motion_in_flight(graph: Graph) -> None:
    """destroy_node() with a goal moving the arm: the arm goal is cancelled, the goal ends with
    failed_stage 'shutdown' and the reason, before the node goes away."""
    bridge = ManipulationBridgeNode(
        context=graph.context, namespace="/shutdown_test",
        parameter_overrides=[
            Parameter("executor", value="sim"),
            Parameter("camera_to_base.translation", value=CAMERA_POSITION.tolist()),
            Parameter("camera_to_base.rotation_xyzw", value=CAMERA_ROTATION.as_quat().tolist())])
    executor = MultiThreadedExecutor(num_threads=3, context=graph.context)
    executor.add_node(bridge)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    client = ActionClient(graph.client_node, PickPlace,
                          "/shutdown_test/manipulation_bridge/pick_place")
    graph.arm.speed_m_s = 0.02
    canceled_before = graph.arm.canceled_goals
    try:
        assert client.wait_for_server(timeout_sec=20.0)
        deadline = time.monotonic() + 10.0
        while bridge.frames.received["depth"] == 0 and time.monotonic() < deadline:
            graph.publish_frame()
        goal = PickPlace.Goal(use_points=True)
        goal.pick_point.header.frame_id = goal.place_point.header.frame_id = "panda_link0"
        goal.pick_point.point.x, goal.pick_point.point.y, goal.pick_point.point.z = (
            CUBE_TOP.tolist())
        goal.place_point.point.x, goal.place_point.point.y, goal.place_point.point.z = (
            PLACE.tolist())
        sent = client.send_goal_async(goal)
        assert spin_until(graph.executor, sent.done, 10.0)
        done = sent.result().get_result_async()
        assert spin_until(graph.executor, graph.arm.moving.is_set, 20.0)
        bridge.destroy_node()  # waits for the cancelled motion to end
        assert spin_until(graph.executor, done.done, 10.0)
    finally:
        client.destroy()
        executor.shutdown(timeout_sec=2.0)
    assert graph.arm.canceled_goals == canceled_before + 1
    assert not graph.arm.moving.is_set()
    result = done.result().result
    assert not result.success and result.failed_stage == "shutdown"
    assert "shutting down" in result.message
