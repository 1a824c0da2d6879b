"""The pickplace_sim node over real DDS on loopback: sensors on sim time, MoveArm, reset."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("ROS_DOMAIN_ID", "71")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never leave this machine

import rclpy  # noqa: E402
from action_msgs.msg import GoalStatus  # noqa: E402
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, qos_profile_system_default  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, JointState  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from mimo_embodied_msgs.action import MoveArm  # noqa: E402
from mimo_embodied_ros.core.parsing import parse_points  # noqa: E402
from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from mimo_embodied_sim.pickplace import top_down_quaternion  # noqa: E402
from mimo_embodied_sim.pickplace_sim_node import PickPlaceSimNode  # noqa: E402


def _wait(condition: Callable[[], object], timeout_s: float, what: str) -> object:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Graph:
    """The sim node and a client node spinning in one background executor."""

    def __init__(self, context: Context, answers_file: Path) -> None:
        self.sim = PickPlaceSimNode(context=context, parameter_overrides=[
            Parameter("width", value=320), Parameter("height", value=240),
            Parameter("real_time_factor", value=3.0), Parameter("camera_rate_hz", value=5.0),
            Parameter("episode_seed", value=4), Parameter("answers_file", value=str(answers_file)),
        ])
        self.client = Node("pickplace_sim_test_client", context=context)
        self.messages: dict[str, list] = {"color": [], "depth": [], "info": [], "clock": [],
                                          "joints": []}
        topics = (("color", Image, COLOR_TOPIC, qos_profile_sensor_data),
                  ("depth", Image, DEPTH_TOPIC, qos_profile_sensor_data),
                  ("info", CameraInfo, CAMERA_INFO_TOPIC, qos_profile_sensor_data),
                  ("clock", Clock, "/clock", qos_profile_system_default),
                  ("joints", JointState, "/joint_states", qos_profile_system_default))
        for key, message_type, topic, qos in topics:
            self.client.create_subscription(message_type, topic, self.messages[key].append, qos)
        self.move = ActionClient(self.client, MoveArm, "/pickplace_sim/move_arm")
        self.reset = self.client.create_client(Trigger, "/pickplace_sim/reset")
        self.executor = MultiThreadedExecutor(num_threads=3, context=context)
        self.executor.add_node(self.sim)
        self.executor.add_node(self.client)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        assert self.move.wait_for_server(timeout_sec=20.0)
        assert self.reset.wait_for_service(timeout_sec=20.0)

    def send(self, position: np.ndarray, cartesian: bool = False,
             feedback: list | None = None):
        goal = MoveArm.Goal(move_pose=True, cartesian=cartesian)
        goal.target = PoseStamped()
        goal.target.header.frame_id = "panda_link0"
        p, q = goal.target.pose.position, goal.target.pose.orientation
        p.x, p.y, p.z = (float(v) for v in position)
        q.x, q.y, q.z, q.w = (float(v) for v in top_down_quaternion(0.0))
        future = self.move.send_goal_async(
            goal, feedback_callback=feedback.append if feedback is not None else None)
        handle = _wait(lambda: future.done() and future.result(), 20.0, "goal acceptance")
        assert handle.accepted
        return handle

    def close(self) -> None:
        self.executor.shutdown()
        self.thread.join(timeout=10)
        self.move.destroy()
        self.client.destroy_node()
        self.sim.destroy_node()


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Graph]:
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    created = Graph(context, tmp_path_factory.mktemp("answers") / "answers.yaml")
    yield created
    created.close()
    context.try_shutdown()


def _stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def test_camera_topics_on_sim_time(graph: Graph) -> None:
    _wait(lambda: len(graph.messages["color"]) >= 4 and graph.messages["info"]
          and graph.messages["depth"] and graph.messages["joints"], 30.0, "camera frames")
    color = graph.messages["color"][-1]
    assert (color.encoding, color.width, color.height) == ("rgb8", 320, 240)
    assert color.header.frame_id == "camera_color_optical_frame"
    depth = next(d for d in graph.messages["depth"] if d.header.stamp == color.header.stamp)
    info = next(i for i in graph.messages["info"] if i.header.stamp == color.header.stamp)
    assert depth.encoding == "32FC1" and info.width == 320
    k = graph.sim.world.intrinsics()
    np.testing.assert_allclose(info.k, [k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1])
    stamps = [_stamp_s(m.header.stamp) for m in graph.messages["color"]]
    assert stamps[-1] < 120.0  # simulated seconds since start, not wall-clock time
    # 5 Hz of sim time, on the physics ticks (0.06 s of sim time each at a real-time factor of 3)
    assert np.all(np.diff(stamps) > 0.13) and 0.17 < np.mean(np.diff(stamps)) < 0.26
    clock = [_stamp_s(m.clock) for m in graph.messages["clock"]]
    assert np.all(np.diff(clock) > 0) and clock[-1] >= stamps[-1]
    joints = graph.messages["joints"][-1]
    assert joints.name[:7] == [f"panda_joint{i}" for i in range(1, 8)] and len(joints.position) == 9


def test_answers_file_written_from_ground_truth(graph: Graph) -> None:
    path = graph.sim.answers_path
    _wait(lambda: path.is_file(), 20.0, "the answers file")
    answers = yaml.safe_load(path.read_text())
    world = graph.sim.world
    for name in world.object_names() + world.receptacle_names():
        parsed = parse_points(answers[f"the {name}"])
        assert parsed.ok and parsed.points[0].label == name
        resized = graph.sim.model_resized
        u = parsed.points[0].x * world.width / resized.width
        v = parsed.points[0].y * world.height / resized.height
        assert np.hypot(*(np.subtract((u, v), world.pick_pixel(name)))) < 3.0


def test_move_arm_goal_moves_the_tcp(graph: Graph) -> None:
    target = np.array([0.45, 0.1, 0.25])
    written_before = graph.sim.answers_written
    feedback: list = []
    handle = graph.send(target, feedback=feedback)
    result_future = handle.get_result_async()
    response = _wait(lambda: result_future.done() and result_future.result(), 40.0, "result")
    assert response.status == GoalStatus.STATUS_SUCCEEDED, response.result.message
    result = response.result
    assert result.success and not result.stalled and not result.reached_goal  # arm only
    final = np.array([result.final_pose.position.x, result.final_pose.position.y,
                      result.final_pose.position.z])
    assert np.linalg.norm(final - target) < 0.005
    assert np.linalg.norm(graph.sim.world.tcp_pose()[0] - target) < 0.005
    distances = [f.feedback.distance_remaining for f in feedback]
    assert distances and distances[0] > distances[-1]
    _wait(lambda: graph.sim.answers_written > written_before, 20.0, "answers after the motion")


def test_cancel_stops_the_arm_and_reports_canceled(graph: Graph) -> None:
    world = graph.sim.world
    start = world.tcp_pose()[0]
    target = start + np.array([0.15, -0.25, -0.1])
    feedback: list = []
    handle = graph.send(target, feedback=feedback)
    _wait(lambda: np.linalg.norm(world.tcp_pose()[0] - start) > 0.03, 20.0, "the arm to move")
    cancel = handle.cancel_goal_async()
    _wait(lambda: cancel.done(), 20.0, "the cancel response")
    result_future = handle.get_result_async()
    response = _wait(lambda: result_future.done() and result_future.result(), 20.0, "result")
    assert response.status == GoalStatus.STATUS_CANCELED
    assert not response.result.success and response.result.message == "canceled"
    time.sleep(0.5)  # the arm brakes to a hold
    held = world.tcp_pose()[0]
    time.sleep(0.5)
    assert np.linalg.norm(world.tcp_pose()[0] - held) < 0.003  # holding still
    assert np.linalg.norm(held - target) > 0.03  # stopped short of the target


def test_reset_starts_a_new_episode(graph: Graph) -> None:
    before = graph.sim.world
    poses_before = {n: before.object_pose(n)[0] for n in before.object_names()}
    clock_before = _stamp_s(graph.messages["clock"][-1].clock)
    written_before = graph.sim.answers_written
    future = graph.reset.call_async(Trigger.Request())
    response = _wait(lambda: future.done() and future.result(), 30.0, "reset")
    assert response.success and "episode seed 5" in response.message
    after = graph.sim.world
    assert after is not before and after.seed == 5
    assert any(np.linalg.norm(after.object_pose(n)[0] - poses_before[n]) > 0.01
               for n in after.object_names())
    home = after.forward_kinematics(after.home_joints)[0]
    assert np.linalg.norm(after.tcp_pose()[0] - home) < 0.005  # the arm is at home
    # The reset leaves a write pending; a write of the previous scene may still have landed
    # after written_before was read, so wait until none is pending.
    _wait(lambda: graph.sim.answers_settled_at(written_before) is not None, 20.0,
          "answers after reset")
    answers = yaml.safe_load(graph.sim.answers_path.read_text())
    name = after.object_names()[0]
    point = parse_points(answers[name]).points[0]
    resized = graph.sim.model_resized
    pixel = (point.x * after.width / resized.width, point.y * after.height / resized.height)
    assert np.hypot(*(np.subtract(pixel, after.pick_pixel(name)))) < 3.0
    _wait(lambda: _stamp_s(graph.messages["clock"][-1].clock) > clock_before + 0.5, 10.0,
          "the clock to go on")
    assert all(np.diff([_stamp_s(m.clock) for m in graph.messages["clock"]]) > 0)
