"""The perception node over real DDS: a good request, and the bad-input matrix.

Every bad case must give success=false with a readable reason, leave the node running, and the
next good request must succeed.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from conftest import spin_until, wait_for, write_answers
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image

from mimo_embodied_msgs.msg import Affordances
from mimo_embodied_ros.core.resize import smart_resize, source_to_model
from mimo_embodied_ros.core.types import CameraIntrinsics, ImageSize
from mimo_embodied_ros.ros.images import rgb_to_compressed

WIDTH, HEIGHT = 640, 480
K = CameraIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=WIDTH, height=HEIGHT)
PLANE_Z = 1.2
TARGET = (400.0, 300.0)  # source pixel the scripted model points at
GOOD = "point at the target"
MAX_PIXELS = 100352


def scene() -> tuple[np.ndarray, np.ndarray]:
    rgb = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    rgb[..., 1] = 90
    rgb[280:320, 380:420] = (200, 30, 30)
    depth = np.full((HEIGHT, WIDTH), PLANE_Z, np.float32)
    return rgb, depth


def pointing_answer(think: bool = True) -> str:
    resized = smart_resize(HEIGHT, WIDTH, max_pixels=MAX_PIXELS)
    x, y = source_to_model(*TARGET, resized, ImageSize(WIDTH, HEIGHT))
    body = json.dumps([{"points": [[round(x), round(y)]], "label": "the target"}])
    return f"<think>The red square is the target.</think>{body}" if think else body


@pytest.fixture
def answers(tmp_path):
    return write_answers(
        tmp_path / "answers.yaml",
        {
            GOOD: pointing_answer(),
            "unfinished thought": "<think>The target is probably at [10, 10] but",
            "long thought": "<think>Let me look at every object on the table in turn, first",
            "long thought /no_think": pointing_answer(think=False),
            "garbage": "\x00}{][ lorem ipsum [[[ ]]] \\boxed{ <think>",
            "is there a red cube on the table?": "<think>I see one.</think>\\boxed{Yes}",
            "what is the next step to tidy the table?":
                "1. Pick up the red cube.\n2. Put it in the tray.",
        },
    )


@pytest.fixture
def node(perception, answers):
    harness = perception(**{"backend": "scripted", "scripted.answers_file": answers,
                            "model.max_pixels": MAX_PIXELS})
    wait_for(lambda: harness.node._active, what="node active")
    return harness


def assert_good_request(harness, header=None) -> None:
    rgb, depth = scene()
    if header is None:
        header = harness.publish_until_received(rgb, depth, K)
    response = harness.instruct(GOOD)
    assert response.success, response.message
    assert response.task == "point"
    point = response.affordances.points[0]
    # The scripted answer is in resized pixels; rounding there costs < 1 source pixel.
    assert abs(point.u - TARGET[0]) < 2.0 and abs(point.v - TARGET[1]) < 2.0
    assert point.depth_valid and abs(point.position.z - PLANE_Z) < 1e-3
    expected_x = (point.u - K.cx) * PLANE_Z / K.fx
    assert abs(point.position.x - expected_x) < 1e-3
    assert response.affordances.header.stamp == header.stamp
    assert response.affordances.header.frame_id == header.frame_id


def test_good_request_publishes_points_with_source_header(node):
    rgb, depth = scene()
    received = []
    node.client.create_subscription(
        Affordances, "/mimo_embodied/affordances", received.append, 10
    )
    header = node.publish_until_received(rgb, depth, K)
    assert_good_request(node, header)
    assert spin_until(node.executor, lambda: received, 5.0), "nothing published on ~/affordances"
    assert received[0].header.stamp == header.stamp
    assert received[0].raw_text == pointing_answer()
    assert received[0].reasoning.strip() == "The red square is the target."


def test_service_called_before_any_frame(node):
    response = node.instruct(GOOD)
    assert not response.success
    assert "no colour image received yet" in response.message
    assert_good_request(node)


def test_unknown_image_encoding(node):
    rgb, depth = scene()
    msg = Image(height=HEIGHT, width=WIDTH, encoding="yuv422", step=WIDTH * 2,
                data=bytes(WIDTH * HEIGHT * 2))
    node.publish_until_received(rgb, depth, K, image_msg=msg)
    response = node.instruct(GOOD)
    assert not response.success
    assert "unsupported image encoding 'yuv422'" in response.message
    assert_good_request(node)


def test_image_and_camera_info_size_mismatch(node):
    rgb, depth = scene()
    small = CameraIntrinsics(fx=262.5, fy=262.5, cx=159.5, cy=119.5, width=320, height=240)
    node.publish_until_received(rgb, depth, small)
    response = node.instruct(GOOD)
    assert not response.success
    assert "camera_info is 320x240 but the colour image is 640x480" in response.message
    assert_good_request(node)


def test_missing_camera_info(node):
    rgb, depth = scene()
    node.publish_until_received(rgb, depth, None)
    response = node.instruct(GOOD)
    assert not response.success
    assert "no camera_info received" in response.message
    assert_good_request(node)


def test_all_invalid_depth(node):
    rgb, _ = scene()
    node.publish_until_received(rgb, np.full((HEIGHT, WIDTH), np.nan, np.float32), K)
    response = node.instruct(GOOD)
    assert not response.success
    assert "none has valid depth" in response.message
    point = response.affordances.points[0]  # the 2D point is still reported, not lost
    assert point.in_image and not point.depth_valid and np.isnan(point.position.z)
    assert_good_request(node)


def test_depth_units_16uc1_millimetres_equal_32fc1_metres(node):
    rgb, depth = scene()
    node.publish_until_received(rgb, depth, K, depth_encoding="32FC1")
    metres = node.instruct(GOOD).affordances.points[0].position
    millimetres = np.round(depth * 1000).astype(np.uint16)
    node.publish_until_received(rgb, millimetres, K, depth_encoding="16UC1")
    response = node.instruct(GOOD)
    assert response.success, response.message
    converted = response.affordances.points[0].position
    assert abs(converted.z - PLANE_Z) < 1e-3 and abs(converted.z - metres.z) < 1e-3
    assert abs(converted.x - metres.x) < 1e-3 and abs(converted.y - metres.y) < 1e-3


def test_depth_at_half_resolution_uses_scaled_intrinsics(node):
    rgb, depth = scene()
    node.publish_until_received(rgb, depth[::2, ::2].copy(), K)
    assert_good_request(node, header=None)


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("point at " + "x" * 10_000, "10009 characters long; the limit is 2000"),
        (b"point at the \xff\xfe cube".decode("utf-8", errors="replace"), "were not UTF-8"),
        ("point at the \x07 cube", "control character"),
    ],
    ids=["empty", "whitespace", "10kb", "non_utf8_bytes", "control_characters"],
)
def test_hostile_instructions(node, instruction, reason):
    rgb, depth = scene()
    node.publish_until_received(rgb, depth, K)
    response = node.instruct(instruction)
    assert not response.success
    assert response.message.startswith("instruction rejected:")
    assert reason.lower() in response.message.lower(), response.message
    assert_good_request(node)


def test_thinking_without_end_is_retried_in_no_think_mode(node):
    rgb, depth = scene()
    node.publish_until_received(rgb, depth, K)
    response = node.instruct("long thought")
    assert response.success, response.message
    assert response.retried_no_think
    assert "no-think" in response.message
    point = response.affordances.points[0]
    assert abs(point.u - TARGET[0]) <= 1.0 and abs(point.v - TARGET[1]) <= 1.0
    assert_good_request(node)


def test_answer_without_think_end_fails_with_policy_fail(perception, answers):
    node = perception(**{"backend": "scripted", "scripted.answers_file": answers,
                         "model.max_pixels": MAX_PIXELS, "model.on_no_think_end": "fail"})
    wait_for(lambda: node.node._active, what="node active")
    rgb, depth = scene()
    node.publish_until_received(rgb, depth, K)
    response = node.instruct("unfinished thought")
    assert not response.retried_no_think
    assert not response.success
    assert response.parse_status == "no_think_end"
    assert "</think>" in response.message
    assert response.reasoning  # the operator still sees what the model was thinking
    assert not response.affordances.points  # the [10, 10] inside the thought is not an answer
    assert_good_request(node)


def test_garbage_answer(node):
    rgb, depth = scene()
    node.publish_until_received(rgb, depth, K)
    response = node.instruct("garbage", thinking="no_think")
    assert not response.success
    assert response.raw_text.startswith("\ufffd}{][")  # kept whole, NUL made visible
    assert "could not be read" in response.message or "no coordinates" in response.message
    assert_good_request(node)


def test_unknown_task_and_thinking_values(node):
    rgb, depth = scene()
    node.publish_until_received(rgb, depth, K)
    assert "unknown task 'dance'" in node.instruct(GOOD, task="dance").message
    assert "thinking must be" in node.instruct(GOOD, thinking="maybe").message
    assert_good_request(node)


class ModelServer:
    """Loopback OpenAI-compatible endpoint standing in for a vLLM server with the 7B weights.

    It answers with the scripted pointing answer; `delay_s` makes it slow. It binds 127.0.0.1.
    """

    def __init__(self, port: int) -> None:
        self.delay_s = 0.0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length))
                text = request["messages"][-1]["content"][-1]["text"]
                time.sleep(owner.delay_s)
                body = json.dumps({
                    "choices": [{"message": {"role": "assistant", "content": pointing_answer()}}],
                    "usage": {"prompt_tokens": len(text)},
                }).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def openai_node(perception):
    port = free_port()
    harness = perception(**{"backend": "openai", "openai.base_url": f"http://127.0.0.1:{port}/v1",
                            "openai.timeout_s": 1.0, "openai.retries": 0,
                            "model.max_pixels": MAX_PIXELS, "self_check.mode": "warn"})
    wait_for(lambda: harness.node._active, what="node active")
    harness.port = port
    return harness


def test_backend_server_down(openai_node):
    rgb, depth = scene()
    openai_node.publish_until_received(rgb, depth, K)
    started = time.monotonic()
    response = openai_node.instruct(GOOD)
    assert not response.success
    assert "model backend failed (unavailable)" in response.message
    assert time.monotonic() - started < 5.0
    server = ModelServer(openai_node.port)  # the server comes up: the next request works
    try:
        assert_good_request(openai_node)
    finally:
        server.close()


def test_backend_timeout(openai_node):
    server = ModelServer(openai_node.port)
    try:
        server.delay_s = 3.0
        rgb, depth = scene()
        openai_node.publish_until_received(rgb, depth, K)
        started = time.monotonic()
        response = openai_node.instruct(GOOD)
        assert not response.success
        assert "model backend failed (timeout)" in response.message
        assert time.monotonic() - started < 2.9
        server.delay_s = 0.0
        assert_good_request(openai_node)
    finally:
        server.close()


def test_compressed_colour_images(perception, answers):
    harness = perception(**{"backend": "scripted", "scripted.answers_file": answers,
                            "model.max_pixels": MAX_PIXELS, "image_transport": "compressed"})
    publisher = harness.camera.node.create_publisher(
        CompressedImage, "/camera/camera/color/image_raw/compressed", qos_profile_sensor_data)
    rgb, depth = scene()
    compressed = rgb_to_compressed(rgb, fmt="png")
    header = harness.publish_until_received(rgb, depth, K, image_publisher=publisher,
                                            image_msg=compressed)
    response = harness.instruct(GOOD)
    assert response.success, response.message
    assert response.affordances.header.stamp == header.stamp
    assert response.affordances.points[0].depth_valid


def test_continuous_mode_reruns_the_standing_instruction_once_per_new_frame(perception, answers):
    harness = perception(**{"backend": "scripted", "scripted.answers_file": answers,
                            "model.max_pixels": MAX_PIXELS, "continuous.instruction": GOOD,
                            "continuous.task": "point", "continuous.max_rate_hz": 20.0})
    received: list[Affordances] = []
    harness.client.create_subscription(Affordances, "/mimo_embodied/affordances",
                                       received.append, 10)
    rgb, depth = scene()
    first = harness.publish_until_received(rgb, depth, K)
    assert spin_until(harness.executor, lambda: received, 5.0), "no continuous result"
    spin_until(harness.executor, lambda: False, 0.5)  # the same frame must not be re-run
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in received}
    assert len(received) == len(stamps), "a frame was answered twice"
    second = harness.publish_until_received(rgb, depth, K)
    assert spin_until(harness.executor, lambda: received[-1].header.stamp == second.stamp, 5.0)
    assert received[0].header.stamp == first.stamp
    assert received[-1].points[0].depth_valid


def change_state(harness, client, transition_id: int) -> bool:
    """One lifecycle transition through /mimo_embodied/change_state, as an operator would."""
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
    assert spin_until(harness.executor, future.done, 30.0)
    return future.result().success


def test_lifecycle_unloads_and_reloads_the_model_over_ros(node):
    # One client for every transition: each new client needs DDS discovery again.
    client = node.client.create_client(ChangeState, "/mimo_embodied/change_state")
    assert client.wait_for_service(timeout_sec=20.0), "lifecycle service never appeared"
    assert change_state(node, client, Transition.TRANSITION_DEACTIVATE)
    rgb, depth = scene()
    received = node.node._sync.counts["image"]
    for _ in range(5):  # an inactive node has no camera subscriptions: frames are not even read
        node.camera.publish(rgb, depth, K)
        time.sleep(0.05)
    response = node.instruct(GOOD)
    assert not response.success and "node is inactive" in response.message
    assert node.node._sync.counts["image"] == received
    assert change_state(node, client, Transition.TRANSITION_CLEANUP)
    assert "node is unconfigured" in node.instruct(GOOD).message  # the model is unloaded
    assert change_state(node, client, Transition.TRANSITION_CONFIGURE)
    assert change_state(node, client, Transition.TRANSITION_ACTIVATE)
    assert_good_request(node)



def test_diagnostics_report_missing_inputs_then_the_last_query(node):
    statuses: list = []
    node.client.create_subscription(
        DiagnosticArray, "/diagnostics", lambda m: statuses.extend(m.status), 10)
    assert spin_until(node.executor, lambda: statuses, 5.0), "no /diagnostics"
    assert statuses[-1].level == DiagnosticStatus.WARN
    assert statuses[-1].message == "no colour image received yet"
    assert_good_request(node)
    statuses.clear()
    assert spin_until(node.executor, lambda: statuses, 5.0)
    values = {kv.key: kv.value for kv in statuses[-1].values}
    assert statuses[-1].level == DiagnosticStatus.OK
    assert values["backend"] == "scripted" and values["inputs"] == "ok"
    assert values["last_query"] == "1 of 1 point(s) located in 3D"


def test_choice_and_plan_tasks_answer_in_text(node):
    rgb, depth = scene()
    node.publish_until_received(rgb, depth, K)
    choice = node.instruct("is there a red cube on the table?")
    assert choice.success and choice.task == "choice"
    assert choice.answer == "yes" and choice.reasoning == "I see one."
    plan = node.instruct("what is the next step to tidy the table?", thinking="no_think")
    assert plan.success and plan.task == "plan"
    assert list(plan.plan_steps) == ["Pick up the red cube.", "Put it in the tray."]


def test_region_query_on_a_request_image_needs_no_camera(perception, tmp_path):
    """A map image sent with the request is answered in its own pixels, with no depth."""
    from mimo_embodied_ros.core.parsing import parse_region_target
    from mimo_embodied_ros.ros.images import array_to_image

    map_w, map_h = 200, 160
    resized = smart_resize(map_h, map_w, max_pixels=MAX_PIXELS)
    x, y = source_to_model(150.0, 40.0, resized, ImageSize(map_w, map_h))
    body = json.dumps([{"points": [[round(x), round(y)]], "label": "bedroom", "target": "bed"}])
    answers = write_answers(
        tmp_path / "region.yaml", {"I want to sleep": f"<think>Bed.</think>{body}"}
    )
    harness = perception(**{"backend": "scripted", "scripted.answers_file": answers,
                            "model.max_pixels": MAX_PIXELS})
    wait_for(lambda: harness.node._active, what="node active")
    received = []
    harness.client.create_subscription(
        Affordances, "/mimo_embodied/affordances", received.append, 10
    )
    image = array_to_image(np.full((map_h, map_w, 3), 255, np.uint8), "rgb8")
    image.header.frame_id = "map"
    response = harness.instruct("I want to sleep", task="region", image=image)
    assert response.success, response.message
    assert response.task == "region"
    point = response.affordances.points[0]
    assert abs(point.u - 150.0) < 1.5 and abs(point.v - 40.0) < 1.5
    assert point.in_image and not point.depth_valid
    assert point.label == "bedroom" and response.affordances.header.frame_id == "map"
    assert parse_region_target(response.answer) == "bed"
    spin_until(harness.executor, lambda: received, 0.5)
    assert not received, "map-image points must not be published as camera-frame affordances"

    broken = array_to_image(np.zeros((4, 4), np.uint16), "mono16")
    response = harness.instruct("I want to sleep", task="region", image=broken)
    assert not response.success and "request image rejected" in response.message
