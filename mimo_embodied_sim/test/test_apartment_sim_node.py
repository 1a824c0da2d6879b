"""The apartment sim node over real DDS on loopback: map, camera, pose, goals, cmd_vel, answers."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator

import numpy as np
import pytest
import yaml

os.environ.setdefault("ROS_DOMAIN_ID", "74")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never leave this machine

import rclpy  # noqa: E402
from geometry_msgs.msg import PoseStamped, PoseWithCovarianceStamped, Twist  # noqa: E402
from nav_msgs.msg import OccupancyGrid, Path  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, qos_profile_system_default  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from mimo_embodied_ros.core.prompts import visibility_question  # noqa: E402
from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from mimo_embodied_ros.ros.images import image_to_array  # noqa: E402
from mimo_embodied_sim.apartment_sim_node import MAP_QOS, ApartmentSimNode  # noqa: E402


@pytest.fixture()
def graph(tmp_path) -> Iterator[tuple[SingleThreadedExecutor, ApartmentSimNode, Node, dict]]:
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    answers_file = tmp_path / "answers.yaml"
    overrides = [Parameter("width", value=320), Parameter("height", value=240),
                 Parameter("real_time_factor", value=4.0),
                 Parameter("answers_file", value=str(answers_file)),
                 Parameter("settle_s", value=0.3)]
    sim = ApartmentSimNode(context=context, parameter_overrides=overrides)
    listener = Node("apartment_test_listener", context=context)
    inbox: dict[str, list] = {"map": [], "pose": [], "color": [], "depth": [], "info": [],
                              "clock": [], "plan": [], "answers_file": [answers_file]}
    listener.create_subscription(OccupancyGrid, "/map", inbox["map"].append, MAP_QOS)
    listener.create_subscription(PoseWithCovarianceStamped, "/amcl_pose", inbox["pose"].append,
                                 qos_profile_system_default)
    listener.create_subscription(Image, COLOR_TOPIC, inbox["color"].append,
                                 qos_profile_sensor_data)
    listener.create_subscription(Image, DEPTH_TOPIC, inbox["depth"].append,
                                 qos_profile_sensor_data)
    listener.create_subscription(CameraInfo, CAMERA_INFO_TOPIC, inbox["info"].append,
                                 qos_profile_sensor_data)
    listener.create_subscription(Clock, "/clock", inbox["clock"].append,
                                 qos_profile_system_default)
    listener.create_subscription(Path, "/apartment_sim/plan", inbox["plan"].append,
                                 qos_profile_system_default)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sim)
    executor.add_node(listener)
    yield executor, sim, listener, inbox
    executor.shutdown()
    sim.destroy_node()
    listener.destroy_node()
    rclpy.try_shutdown(context=context)


def spin_until(executor: SingleThreadedExecutor, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
    return bool(condition())


def stamp_s(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def test_map_camera_and_answers(graph):
    executor, sim, _, inbox = graph
    assert spin_until(executor, lambda: inbox["map"] and inbox["depth"] and inbox["info"]
                      and len(inbox["color"]) >= 2, 20.0)
    grid, spec = sim.world.grid()
    message = inbox["map"][-1]
    assert message.header.frame_id == "map"
    assert (message.info.width, message.info.height) == (spec.width, spec.height)
    assert message.info.resolution == pytest.approx(0.05)
    assert message.info.origin.position.x == pytest.approx(spec.origin_x)
    assert np.array_equal(np.array(message.data, dtype=np.int8), grid.reshape(-1))

    color, depth, info = inbox["color"][-1], inbox["depth"][-1], inbox["info"][-1]
    assert color.encoding == "rgb8" and depth.encoding == "16UC1"
    assert color.header.frame_id == "camera_color_optical_frame"
    assert (color.width, color.height) == (320, 240)
    assert info.k[0] == pytest.approx(sim.world.intrinsics().fx)
    # Stamped with sim time: frames 1 / camera_rate_hz of sim time apart, matching /clock.
    stamps = [stamp_s(m.header.stamp) for m in inbox["color"]]
    assert stamps[1] - stamps[0] == pytest.approx(1.0 / sim.camera_rate_hz, abs=0.03)
    assert stamps[-1] <= sim.world.time + 1e-6
    clocks = lambda: [stamp_s(m.clock) for m in inbox["clock"]]  # noqa: E731
    assert spin_until(executor, lambda: clocks() and max(clocks()) >= stamps[1], 10.0)
    tick = sim.tick_sim_s
    assert any(abs(c - stamps[1]) <= tick + 1e-6 for c in clocks())  # /clock runs with frames
    millimetres = image_to_array(depth)
    assert millimetres.dtype == np.uint16 and (millimetres > 0).mean() > 0.9

    answers = yaml.safe_load(inbox["answers_file"][0].read_text())
    for entry in sim.world.instruction_table():
        assert entry.target in answers[entry.instruction]
    for name in sim.world.target_names():
        assert visibility_question(name) in answers and f"the {name}" in answers


def test_goal_pose_drives_and_cmd_vel_turns(graph):
    executor, sim, listener, inbox = graph
    goal_publisher = listener.create_publisher(PoseStamped, "/goal_pose",
                                               qos_profile_system_default)
    cmd_publisher = listener.create_publisher(Twist, "/cmd_vel", qos_profile_system_default)
    assert spin_until(executor, lambda: inbox["pose"], 20.0)
    start = np.array(sim.world.pose()[:2])
    goal = sim.world.rooms[sim.world.object_truth(sim.world.episode().target).room].center
    message = PoseStamped()
    message.header.frame_id = "map"
    message.pose.position.x, message.pose.position.y = goal
    message.pose.orientation.w = 1.0
    assert spin_until(executor, lambda: goal_publisher.get_subscription_count() > 0, 20.0)
    goal_publisher.publish(message)
    assert spin_until(executor, lambda: inbox["plan"], 20.0)
    assert len(inbox["plan"][-1].poses) > 2
    assert spin_until(executor, lambda: sim.world.goal_status()[0] == "succeeded", 30.0), \
        sim.world.goal_status()
    last = inbox["pose"][-1].pose.pose.position
    assert inbox["pose"][-1].header.frame_id == "map"
    assert inbox["pose"][-1].pose.covariance[0] > 0.0  # as AMCL: a pose with its covariance
    assert math.dist((last.x, last.y), goal) < math.dist(start, goal) / 4
    assert sim.world.collisions == 0

    # /cmd_vel turns it in place (and the answers file is rewritten once it rests).
    written = sim.answers_written
    yaw_before = sim.world.pose()[2]
    twist = Twist()
    twist.angular.z = 1.0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline and abs(
            math.remainder(sim.world.pose()[2] - yaw_before, math.tau)) < 0.5:
        cmd_publisher.publish(twist)
        spin_until(executor, lambda: False, 0.1)
    turned = abs(math.remainder(sim.world.pose()[2] - yaw_before, math.tau))
    assert turned >= 0.5
    assert spin_until(executor, lambda: sim.answers_written > written, 10.0)


def test_reset_service_starts_next_episode(graph):
    executor, sim, listener, inbox = graph
    client = listener.create_client(Trigger, "/apartment_sim/reset")
    assert client.wait_for_service(timeout_sec=20.0)
    seed = sim.seed
    future = client.call_async(Trigger.Request())
    assert spin_until(executor, future.done, 20.0)
    assert future.result().success and sim.seed == seed + 1
    assert sim.world.episode() == sim.world.instruction_table()[(seed + 1) % len(
        sim.world.instruction_table())]


def test_failing_tick_is_logged_and_the_loop_goes_on(graph, monkeypatch):
    executor, sim, _, inbox = graph
    real_tick, failures = sim.tick, []

    def tick_failing_twice() -> None:
        if len(failures) < 2:
            failures.append(True)
            raise RuntimeError("renderer lost its context")
        real_tick()

    monkeypatch.setattr(sim, "tick", tick_failing_twice)
    assert spin_until(executor, lambda: len(failures) == 2, 10.0)
    time_after_failures = sim.world.time
    poses_before = len(inbox["pose"])
    assert spin_until(executor, lambda: sim.world.time > time_after_failures + 0.5
                      and len(inbox["pose"]) > poses_before, 10.0)
    assert sim._loop.is_alive()


def test_base_keeps_its_goal_when_cmd_vel_arrives(graph):
    """Nav2 never drops a goal for a foreign /cmd_vel: the stand-in keeps pursuing it (the two
    publishers fight) and reaches it once /cmd_vel goes quiet."""
    executor, sim, listener, inbox = graph
    goal_publisher = listener.create_publisher(PoseStamped, "/goal_pose",
                                               qos_profile_system_default)
    cmd_publisher = listener.create_publisher(Twist, "/cmd_vel", qos_profile_system_default)
    assert spin_until(executor, lambda: inbox["pose"] and goal_publisher.get_subscription_count()
                      > 0 and cmd_publisher.get_subscription_count() > 0, 20.0)
    goal = sim.world.rooms[sim.world.object_truth(sim.world.episode().target).room].center
    message = PoseStamped()
    message.header.frame_id = "map"
    message.pose.position.x, message.pose.position.y = goal
    message.pose.orientation.w = 1.0
    goal_publisher.publish(message)
    assert spin_until(executor, lambda: sim.world.goal_status()[0] == "active", 20.0)
    twist = Twist()
    twist.angular.z = 1.0
    for _ in range(10):
        cmd_publisher.publish(twist)
        spin_until(executor, lambda: False, 0.05)
    assert sim.world.goal_status()[0] == "active"
    assert spin_until(executor, lambda: sim.world.goal_status()[0] == "succeeded", 60.0), \
        sim.world.goal_status()
    x, y, yaw = sim.world.pose()
    assert math.dist((x, y), goal) <= 0.27 and abs(math.remainder(yaw, math.tau)) <= 0.27
