"""The perception node with real model backends: a tiny random Qwen2.5-VL in-process
(transformers, the same from_pretrained path as MiMo-Embodied-7B) and behind a real
`transformers serve` process on loopback (openai backend).

A random model writes random text, so these tests check the plumbing around the model: the
request reaches it with the image, its raw text comes back whole with a parse status and timings,
and the node stays up.
"""

from __future__ import annotations

import numpy as np
from conftest import wait_for

from mimo_embodied_ros.core.types import CameraIntrinsics

K = CameraIntrinsics(fx=300.0, fy=300.0, cx=159.5, cy=119.5, width=320, height=240)
PARSE_STATUSES = {"ok", "empty", "no_think_end", "no_coordinates", "no_boxes", "invalid_box",
                  "no_boxed", "empty_boxed", "normalized_points", "box_centres"}


def frame() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), np.full((240, 320), 1.0, np.float32)


def assert_model_reply(response, model_id: str) -> None:
    """The reply of a real model run: raw text, a parse status, a reason, timings."""
    assert response.task == "point"
    assert response.parse_status in PARSE_STATUSES
    assert response.message  # success or not, a readable reason
    affordances = response.affordances
    assert affordances.model_id.startswith(model_id)  # a server may add a revision
    assert affordances.raw_text == response.raw_text
    assert affordances.timings.model_ms > 0.0
    assert affordances.timings.total_ms >= affordances.timings.model_ms
    if response.success:  # a random model may, by chance, write a valid point
        assert affordances.points


def test_transformers_backend_through_the_node(perception, tiny_qwen_dir):
    harness = perception(**{
        "backend": "transformers", "transformers.model_path": str(tiny_qwen_dir),
        "transformers.device": "cpu", "model.max_pixels": 50176, "model.max_new_tokens": 12,
    })
    wait_for(lambda: harness.node._active, 60.0, "model loaded and node active")
    rgb, depth = frame()
    harness.publish_until_received(rgb, depth, K)
    for thinking in ("think", "no_think"):
        response = harness.instruct("point at the red cube", thinking=thinking)
        assert_model_reply(response, tiny_qwen_dir.name)
    assert harness.node._engine.backend.name == "transformers"


def test_transformers_backend_with_a_missing_checkpoint_keeps_the_node_up(perception, tmp_path):
    harness = perception(**{"backend": "transformers",
                            "transformers.model_path": str(tmp_path / "nowhere")})
    # Configure failed, so the node never subscribed to the camera; it still answers why not.
    response = harness.instruct("point at the red cube")
    assert not response.success
    assert "unconfigured" in response.message
    assert "no config.json" in harness.node._last["message"]


def test_openai_backend_through_the_node_with_a_real_server(perception, served_tiny_qwen,
                                                            tiny_qwen_dir):
    harness = perception(**{
        "backend": "openai", "openai.base_url": served_tiny_qwen,
        "openai.model": str(tiny_qwen_dir), "openai.timeout_s": 60.0, "openai.retries": 0,
        "model.max_pixels": 50176, "model.max_new_tokens": 12,
    })
    wait_for(lambda: harness.node._active, 20.0, "node active")
    rgb, depth = frame()
    harness.publish_until_received(rgb, depth, K)
    response = harness.instruct("point at the red cube", thinking="no_think")
    assert_model_reply(response, str(tiny_qwen_dir))
