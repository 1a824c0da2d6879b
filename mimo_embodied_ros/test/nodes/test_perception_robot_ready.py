"""The perception node as a real robot meets it: unregistered depth, runtime parameter changes,
renamed and namespaced instances for two cameras, reliable QoS; all over real DDS."""

from __future__ import annotations

import json
import time

import numpy as np
from conftest import CameraFeed, call_instruct, wait_for, write_answers
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy

from mimo_embodied_ros.core.resize import smart_resize, source_to_model
from mimo_embodied_ros.core.types import CameraIntrinsics, ImageSize
from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from mimo_embodied_ros.runner import GraphRunner

WIDTH, HEIGHT = 320, 240
K = CameraIntrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=WIDTH, height=HEIGHT)
PERCEPTION = {"package": "mimo_embodied_ros", "executable": "perception",
              "plugin": "mimo_embodied_ros.nodes.perception_node:PerceptionNode",
              "parameters": ["perception.yaml"]}


def answer_at(u: float, v: float) -> str:
    resized = smart_resize(HEIGHT, WIDTH, max_pixels=1003520)
    x, y = source_to_model(u, v, resized, ImageSize(WIDTH, HEIGHT))
    return "<think>.</think>" + json.dumps([{"points": [[x, y]], "label": "target"}])


def frame(depth_m: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return rgb, np.full((HEIGHT, WIDTH), depth_m, np.float32)


def test_depth_in_another_frame_is_refused_with_the_aligned_topic_hint(perception, tmp_path):
    answers = write_answers(tmp_path / "a.yaml", {"*": answer_at(100, 80)})
    node = perception(**{"backend": "scripted", "scripted.answers_file": answers})
    wait_for(lambda: node.node._active, what="node active")
    rgb, depth = frame()
    node.publish_until_received(rgb, depth, K, depth_frame_id="camera_depth_optical_frame")
    response = node.instruct("point at the target")
    assert not response.success
    assert "camera_depth_optical_frame" in response.message
    assert "camera_color_optical_frame" in response.message
    assert "aligned_depth_to_color" in response.message
    # The good request: depth in the colour frame is lifted.
    node.publish_until_received(rgb, depth, K)
    response = node.instruct("point at the target")
    assert response.success and response.affordances.points[0].depth_valid


def test_a_known_registration_can_be_allowed(perception, tmp_path):
    answers = write_answers(tmp_path / "a.yaml", {"*": answer_at(100, 80)})
    node = perception(**{"backend": "scripted", "scripted.answers_file": answers,
                         "depth.assume_registered": True})
    wait_for(lambda: node.node._active, what="node active")
    rgb, depth = frame()
    node.publish_until_received(rgb, depth, K, depth_frame_id="zed_depth_frame")
    assert node.instruct("point at the target").success


def _set(node: Node, name: str, value: object):
    return node.set_parameters([Parameter(name, value=value)])[0]


def test_parameter_changes_are_applied_or_refused_with_the_reason(perception, tmp_path):
    answers = write_answers(tmp_path / "a.yaml", {"*": answer_at(100, 80)})
    harness = perception(**{"backend": "scripted", "scripted.answers_file": answers})
    wait_for(lambda: harness.node._active, what="node active")
    node = harness.node
    refused = _set(node, "image_topic", "/elsewhere")
    assert not refused.successful and "deactivate the node first" in refused.reason
    refused = _set(node, "scripted.delay_s", 1.0)
    assert not refused.successful and "next configure" in refused.reason
    refused = _set(node, "model.on_no_think_end", "maybe")
    assert not refused.successful and "retry_no_think" in refused.reason
    refused = _set(node, "depth_window", 4)
    assert not refused.successful and "odd" in refused.reason
    refused = _set(node, "diagnostics_period_s", 5.0)
    assert not refused.successful and "read-only" in refused.reason.lower()
    applied = _set(node, "model.think", False)
    assert applied.successful and node.get_parameter("model.think").value is False
    rgb, depth = frame()
    harness.publish_until_received(rgb, depth, K)
    assert harness.instruct("point at the target").success  # the node goes on


def test_renamed_and_namespaced_nodes_serve_their_own_cameras(ros_context, tmp_path):
    """Two perception nodes, /left/cam_left and /right/cam_right, each on its own camera."""
    left = write_answers(tmp_path / "left.yaml", {"*": answer_at(60, 50)})
    right = write_answers(tmp_path / "right.yaml", {"*": answer_at(250, 180)})
    entries = []
    for side, answers in (("left", left), ("right", right)):
        entries.append({**PERCEPTION, "name": f"cam_{side}", "namespace": side,
                        "overrides": {"backend": "scripted", "scripted.answers_file": answers,
                                      "image_topic": f"/{side}{COLOR_TOPIC}",
                                      "depth_topic": f"/{side}{DEPTH_TOPIC}",
                                      "camera_info_topic": f"/{side}{CAMERA_INFO_TOPIC}"}})
    runner = GraphRunner(entries, context=ros_context)
    client = Node("two_camera_client", context=ros_context)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(client)
    cameras = {side: CameraFeed(ros_context, f"camera_{side}", prefix=f"/{side}")
               for side in ("left", "right")}
    try:
        assert set(runner.nodes) == {"cam_left", "cam_right"}
        depths = {"left": 0.8, "right": 1.6}
        for side, camera in cameras.items():
            rgb, depth = frame(depths[side])
            node = runner.nodes[f"cam_{side}"]
            wait_for(lambda node=node: node._active, what=f"{side} active")
            for _ in range(50):
                camera.publish(rgb, depth, K)
                if node._sync.latest() is not None:
                    break
                time.sleep(0.1)
        for side, (u, _) in (("left", (60, 50)), ("right", (250, 180))):
            response = call_instruct(client, executor, "point at the target",
                                     service=f"/{side}/cam_{side}/instruct")
            assert response.success, response.message
            point = response.affordances.points[0]
            assert abs(point.u - u) < 1.0
            assert abs(point.position.z - depths[side]) < 1e-3  # its own camera's depth
    finally:
        executor.shutdown()
        client.destroy_node()
        for camera in cameras.values():
            camera.node.destroy_node()
        runner.shutdown()


def test_reliable_qos_is_reported_reliable_by_the_graph(perception, tmp_path):
    answers = write_answers(tmp_path / "a.yaml", {"*": answer_at(100, 80)})
    harness = perception(**{"backend": "scripted", "scripted.answers_file": answers,
                            "qos": "reliable"})
    wait_for(lambda: harness.node._active, what="node active")

    def reliability() -> list:
        infos = harness.client.get_subscriptions_info_by_topic(COLOR_TOPIC)
        return [info.qos_profile.reliability for info in infos
                if info.node_name == "mimo_embodied"]

    policies = wait_for(reliability, what="the node's image subscription in the graph")
    assert policies == [ReliabilityPolicy.RELIABLE]
