"""Real rclpy graphs for node tests: an isolated DDS context per test, a camera feed, a client."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import rclpy
import yaml
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from mimo_embodied_msgs.action import Query
from mimo_embodied_msgs.srv import Instruct
from mimo_embodied_ros.core.types import CameraIntrinsics
from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics
from mimo_embodied_ros.runner import GraphRunner, load_graph

# Tests never leave loopback (../shared/environment.md); the Makefile sets these too.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "62")

PERCEPTION_ENTRY = next(e for e in load_graph("robot.yaml") if e["name"] == "mimo_embodied")


@pytest.fixture
def ros_context() -> Iterator[Context]:
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    yield context
    context.try_shutdown()


def write_answers(path, answers: dict[str, str]) -> str:
    path.write_text(yaml.safe_dump(answers, allow_unicode=True))
    return str(path)


class CameraFeed:
    """A plain rclpy node playing an RGB-D camera: publishes crafted frames with equal headers."""

    def __init__(self, context: Context, name: str = "test_camera", prefix: str = "") -> None:
        self.node = Node(name, context=context)
        qos = qos_profile_sensor_data
        self.image_pub = self.node.create_publisher(Image, prefix + COLOR_TOPIC, qos)
        self.depth_pub = self.node.create_publisher(Image, prefix + DEPTH_TOPIC,
                                                    qos)
        self.info_pub = self.node.create_publisher(CameraInfo,
                                                   prefix + CAMERA_INFO_TOPIC, qos)
        self._stamp = 1

    def publish(
        self,
        rgb: np.ndarray,
        depth: np.ndarray | None,
        intrinsics: CameraIntrinsics | None,
        image_encoding: str = "rgb8",
        depth_encoding: str = "32FC1",
        image_msg: Image | CompressedImage | None = None,
        image_publisher: Publisher | None = None,
        depth_frame_id: str | None = None,
    ) -> Header:
        header = Header(frame_id="camera_color_optical_frame")
        header.stamp.sec = self._stamp
        self._stamp += 1
        if image_msg is not None:
            image_msg.header = header
        (image_publisher or self.image_pub).publish(
            image_msg or array_to_image(rgb, image_encoding, header)
        )
        if depth is not None:
            depth_header = Header(stamp=header.stamp, frame_id=depth_frame_id or header.frame_id)
            self.depth_pub.publish(array_to_image(depth, depth_encoding, depth_header))
        if intrinsics is not None:
            self.info_pub.publish(camera_info_from_intrinsics(intrinsics, header))
        return header


def poll(condition: Callable[[], Any], timeout_s: float) -> Any:
    """`condition()`'s first truthy value within `timeout_s` (checked every 20 ms), else None."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value or None
        time.sleep(0.02)


def wait_for(condition: Callable[[], Any], timeout_s: float = 10.0, what: str = "") -> Any:
    value = poll(condition, timeout_s)
    if value is None:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what or condition}")
    return value


def spin_until(executor: SingleThreadedExecutor, condition: Callable[[], Any],
               timeout_s: float = 10.0) -> bool:
    """Spin a test-side executor until `condition()` holds; False on timeout."""
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    return bool(condition())


def call_instruct(
    client_node: Node, executor: SingleThreadedExecutor, instruction: str, task: str = "",
    thinking: str = "", timeout_s: float = 60.0, image: Image | None = None,
    service: str = "/mimo_embodied/instruct",
) -> Instruct.Response:
    """Call an Instruct service over DDS from a separate node and wait for the answer.

    The client is made once per node and service: each new client needs DDS discovery again,
    which on a loaded machine can take seconds when a discovery packet has to be resent.
    """
    clients = client_node.__dict__.setdefault("instruct_clients", {})
    client = clients.get(service)
    if client is None:
        client = clients[service] = client_node.create_client(Instruct, service)
    assert client.wait_for_service(timeout_sec=20.0), "instruct service never appeared"
    request = Instruct.Request(instruction=instruction, task=task, thinking=thinking)
    if image is not None:
        request.image = image
    future = client.call_async(request)
    spin_until(executor, future.done, timeout_s)
    assert future.done(), f"no answer to '{instruction[:40]}' within {timeout_s} s"
    return future.result()


class QueryOutcome:
    """What one ~/query goal gave: final status, result and every feedback message."""

    def __init__(self, status: int, result: Query.Result, feedback: list) -> None:
        self.status, self.result, self.feedback = status, result, feedback


def send_query(
    client_node: Node, executor: SingleThreadedExecutor, instruction: str, task: str = "",
    thinking: str = "", timeout_s: float = 60.0, cancel_after_s: float | None = None,
) -> QueryOutcome:
    """Send one /mimo_embodied/query goal over DDS and wait for its result (optionally cancel)."""
    client = getattr(client_node, "query_client", None)
    if client is None:
        client = ActionClient(client_node, Query, "/mimo_embodied/query")
        client_node.query_client = client
    assert client.wait_for_server(timeout_sec=20.0), "query action never appeared"
    feedback: list = []
    sent = client.send_goal_async(Query.Goal(instruction=instruction, task=task,
                                             thinking=thinking),
                                  feedback_callback=lambda msg: feedback.append(msg.feedback))
    assert spin_until(executor, sent.done, timeout_s), "query goal never answered"
    handle = sent.result()
    assert handle.accepted
    result = handle.get_result_async()
    if cancel_after_s is not None:
        spin_until(executor, result.done, cancel_after_s)
        handle.cancel_goal_async()
    assert spin_until(executor, result.done, timeout_s), f"no result for '{instruction[:40]}'"
    return QueryOutcome(result.result().status, result.result().result, feedback)


class PerceptionHarness:
    """The perception node from robot.yaml with overrides, a camera feed and a client node."""

    def __init__(self, context: Context, overrides: dict[str, Any]) -> None:
        self.runner = GraphRunner([PERCEPTION_ENTRY], {"mimo_embodied": overrides}, context)
        self.node = self.runner.nodes["mimo_embodied"]
        self.camera = CameraFeed(context)
        self.client = Node("test_client", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.client)

    def publish_until_received(self, *args: Any, **kwargs: Any) -> Header:
        """Publish a frame until the node holds it as its newest synced frame.

        Best-effort QoS may drop the first frames, and a frame counted as received may still
        lack its depth: only the stamp of the node's newest colour/depth pair says which frame a
        query will use.
        """
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            header = self.camera.publish(*args, **kwargs)
            if poll(lambda stamp=header.stamp: self._newest_stamp() == stamp, 0.5):
                time.sleep(0.1)  # camera_info is published last
                return header
        raise AssertionError("the perception node never received a frame")

    def _newest_stamp(self) -> Any:
        frame = self.node._sync.latest()
        return None if frame is None else frame.image.header.stamp

    def instruct(self, instruction: str, **kwargs: Any) -> Instruct.Response:
        return call_instruct(self.client, self.executor, instruction, **kwargs)

    def query(self, instruction: str, **kwargs: Any) -> QueryOutcome:
        return send_query(self.client, self.executor, instruction, **kwargs)

    def close(self) -> None:
        self.executor.shutdown()
        self.client.destroy_node()
        self.camera.node.destroy_node()
        self.runner.shutdown()


@pytest.fixture
def perception(ros_context: Context) -> Iterator[Callable[..., PerceptionHarness]]:
    harnesses: list[PerceptionHarness] = []

    def start(**overrides: Any) -> PerceptionHarness:
        harness = PerceptionHarness(ros_context, overrides)
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        harness.close()
