"""The perception node's ~/query action and its self-check, over real DDS.

The action has the Instruct service's request and result, adds feedback while the model
generates, and its cancel stops the generation; a second query waits (queue depth one) or is
refused with the reason. The self-check at configure shows that the model answers, at which image
size, and that its text is not garbage; a failed self-check fails configure with the reason.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from action_msgs.msg import GoalStatus
from conftest import spin_until, wait_for, write_answers
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.action import ActionClient

from mimo_embodied_msgs.action import Query
from mimo_embodied_ros.core.types import CameraIntrinsics

K = CameraIntrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=320, height=240)
POINT_ANSWER = '<think>There.</think>[{"points": [[100, 80]], "label": "cup"}]'


def frame() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), np.full((240, 320), 1.0, np.float32)


def diagnostics(harness) -> dict[str, str]:
    """The values of the node's next /diagnostics status."""
    statuses: list = []
    subscription = harness.client.create_subscription(
        DiagnosticArray, "/diagnostics", lambda msg: statuses.extend(msg.status), 10)
    try:
        assert spin_until(harness.executor, lambda: statuses, 10.0), "no diagnostics"
    finally:
        harness.client.destroy_subscription(subscription)
    return {kv.key: kv.value for kv in statuses[-1].values}


def test_cancel_mid_generation_stops_the_model_and_the_next_query_runs(perception, tiny_qwen_dir):
    harness = perception(**{
        "backend": "transformers", "transformers.model_path": str(tiny_qwen_dir),
        "transformers.device": "cpu", "model.max_pixels": 50176,
        "model.max_new_tokens": 100000,  # the tiny model never ends: a forced long generation
    })
    wait_for(lambda: harness.node._active, 60.0, "model loaded, self-check passed, node active")
    assert diagnostics(harness)["self_check"].startswith("self-check passed")
    rgb, depth = frame()
    harness.publish_until_received(rgb, depth, K)
    client = ActionClient(harness.client, Query, "/mimo_embodied/query")
    assert client.wait_for_server(timeout_sec=20.0)
    feedback: list = []
    sent = client.send_goal_async(Query.Goal(instruction="describe the scene", task="answer",
                                             thinking="no_think"),
                                  feedback_callback=lambda msg: feedback.append(msg.feedback))
    assert spin_until(harness.executor, sent.done, 20.0)
    result = sent.result().get_result_async()
    assert spin_until(harness.executor,
                      lambda: any(f.tokens_generated >= 64 for f in feedback), 30.0)
    assert any(f.phase == "generating" and f.text_so_far for f in feedback)
    cancelled_at = time.monotonic()
    sent.result().cancel_goal_async()
    assert spin_until(harness.executor, result.done, 10.0)
    stopped_s = time.monotonic() - cancelled_at
    assert result.result().status == GoalStatus.STATUS_CANCELED
    assert "cancelled" in result.result().result.message
    assert stopped_s < 1.5  # backend stop < 0.5 s (backend test) plus DDS round trips
    started = time.monotonic()  # the model is free at once
    outcome = harness.query("describe the scene", task="answer", thinking="no_think",
                            cancel_after_s=0.3)
    assert outcome.status == GoalStatus.STATUS_CANCELED
    assert time.monotonic() - started < 3.0


@pytest.fixture
def slow_node(perception, tmp_path):
    def start(**overrides):
        answers = write_answers(tmp_path / "answers.yaml", {"*": POINT_ANSWER})
        harness = perception(**{"backend": "scripted", "scripted.answers_file": answers,
                                "scripted.delay_s": 1.5, **overrides})
        wait_for(lambda: harness.node._active, what="node active")
        rgb, depth = frame()
        harness.publish_until_received(rgb, depth, K)
        return harness
    return start


def _send(harness, instruction: str):
    client = getattr(harness.client, "query_client", None)
    if client is None:
        client = harness.client.query_client = ActionClient(harness.client, Query,
                                                            "/mimo_embodied/query")
    assert client.wait_for_server(timeout_sec=20.0)
    sent = client.send_goal_async(Query.Goal(instruction=instruction, task="point"))
    assert spin_until(harness.executor, sent.done, 10.0)
    return sent.result().get_result_async()


def test_second_query_waits_at_depth_one_and_a_third_is_refused(slow_node):
    harness = slow_node(queue_policy="queue")
    first = _send(harness, "the cup")
    time.sleep(0.3)  # the first holds the model
    second = _send(harness, "the cup again")
    time.sleep(0.3)  # the second waits for the model
    third = _send(harness, "the cup a third time")
    assert spin_until(harness.executor, lambda: first.done() and second.done() and third.done(),
                      15.0)
    assert first.result().result.success and second.result().result.success
    refused = third.result().result
    assert not refused.success
    assert "busy with 'the cup'" in refused.message and "queue depth one" in refused.message


def test_second_query_is_refused_with_policy_reject(slow_node):
    harness = slow_node(queue_policy="reject")
    first = _send(harness, "the cup")
    time.sleep(0.3)
    response = harness.instruct("the cup again")  # the service shares the same engine
    assert not response.success and "queue_policy: reject" in response.message
    assert spin_until(harness.executor, first.done, 10.0)
    assert first.result().result.success


class GarbageServer:
    """An OpenAI-compatible server whose model writes only '!' (float16 weights do that)."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers["Content-Length"]))
                body = json.dumps({"model": "mimo", "choices": [
                    {"message": {"role": "assistant", "content": "!" * 64}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_self_check_fails_configure_on_a_garbage_backend(perception):
    server = GarbageServer()
    try:
        harness = perception(**{"backend": "openai", "openai.base_url": server.url,
                                "openai.timeout_s": 10.0, "openai.retries": 0})
        values = diagnostics(harness)
        assert values["active"] == "False"
        assert "self-check FAILED" in values["self_check"] and "garbage" in values["self_check"]
        assert "bfloat16" in values["self_check"]
        assert "unconfigured" in harness.instruct("point at the cup").message
    finally:
        server.close()


def test_self_check_behind_a_server_with_a_smaller_cap_fails_configure(perception,
                                                                     grounding_servers):
    """The released launcher's cap (100352) is below the node's: the server would shrink every
    image again, so configure fails and says which sizes and which setting."""
    harness = perception(**{"backend": "openai", "openai.base_url": grounding_servers[100352],
                            "openai.model": "tiny", "openai.timeout_s": 60.0,
                            "openai.retries": 0})
    values = diagnostics(harness)
    assert values["active"] == "False"
    reason = values["self_check"]
    assert "self-check FAILED" in reason and "mismatch" in reason
    assert "1288x728" in reason and "max_pixels" in reason


def test_self_check_behind_a_server_with_the_same_cap_passes(perception, grounding_servers):
    harness = perception(**{"backend": "openai", "openai.base_url": grounding_servers[1003520],
                            "openai.model": "tiny", "openai.timeout_s": 60.0,
                            "openai.retries": 0})
    wait_for(lambda: harness.node._active, 60.0, "node active")
    values = diagnostics(harness)
    assert values["self_check"].startswith("self-check passed")
    assert "image_check: verified" in values["self_check"]
    assert "points_at_target: yes" in values["self_check"]  # the server pointed at the disk
