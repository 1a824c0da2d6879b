"""Thousands of hostile model answers through the perception node's service and action.

Nothing a model or a server returns may end the process: every answer gets a result with a
message, no callback raises (the graph's executor counts any that do), and a normal query works
afterwards.
"""

from __future__ import annotations

import json
import os

import numpy as np
from action_msgs.msg import GoalStatus
from conftest import wait_for
from hostile_answers import hostile_cases

from mimo_embodied_ros.core.resize import smart_resize, source_to_model
from mimo_embodied_ros.core.types import CameraIntrinsics, ImageSize

WIDTH, HEIGHT = 160, 120
K = CameraIntrinsics(fx=130.0, fy=130.0, cx=79.5, cy=59.5, width=WIDTH, height=HEIGHT)
TARGET = (100.0, 70.0)
GOOD = "point at the target"
COUNT = int(os.environ.get("MIMO_HOSTILE_ANSWERS", "2000"))


def good_answer() -> str:
    resized = smart_resize(HEIGHT, WIDTH, max_pixels=1003520)
    x, y = source_to_model(*TARGET, resized, ImageSize(WIDTH, HEIGHT))
    return "<think>ok</think>" + json.dumps([{"points": [[x, y]], "label": "target"}])


def test_hostile_answers_through_service_and_action_never_end_the_node(perception, tmp_path):
    cases = hostile_cases(COUNT, seed=8)
    answers = {f"hostile case {index}": text for index, (_, text) in enumerate(cases)}
    answers[GOOD] = good_answer()
    answers_file = tmp_path / "answers.json"
    answers_file.write_text(json.dumps(answers))  # ASCII-escaped: lone surrogates survive
    harness = perception(**{"backend": "scripted", "scripted.answers_file": str(answers_file),
                            "debug_image.max_rate_hz": 10000.0})  # draw every answer
    wait_for(lambda: harness.node._active, what="node active")
    rgb = np.random.default_rng(0).integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    depth = np.full((HEIGHT, WIDTH), 0.9, np.float32)
    harness.publish_until_received(rgb, depth, K)

    failures_with_message = 0
    internal_errors = []
    for index, (task, _) in enumerate(cases):
        instruction = f"hostile case {index}"
        if index % 2:
            response = harness.instruct(instruction, task=task, timeout_s=30.0)
        else:
            outcome = harness.query(instruction, task=task, timeout_s=30.0)
            assert outcome.status in (GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_ABORTED)
            response = outcome.result
        assert response.message, f"case {index} ({task}) came back without a message"
        assert response.task == task
        failures_with_message += not response.success
        if "internal error" in response.message:
            internal_errors.append((index, response.message))

    assert harness.runner.callback_errors == 0  # no exception escaped any callback
    # The guard turns a bug into a failed result; hostile text itself must not need it.
    assert not internal_errors, internal_errors[:3]
    assert failures_with_message > COUNT // 4  # the cases are hostile: most are refused
    response = harness.instruct(GOOD)
    assert response.success, response.message
    point = response.affordances.points[0]
    assert abs(point.u - TARGET[0]) < 1.0 and abs(point.v - TARGET[1]) < 1.0
    assert point.depth_valid and abs(point.position.z - 0.9) < 1e-3
