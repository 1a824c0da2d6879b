"""Recording over DDS (issue 12): the perception node records every query it answers; the bag
reads back with rosbags and replays with the recorded answers to identical results.

Skipped until the node declares the record.* parameters (record.folder, record.max_megabytes,
record.max_queries_per_file, record.queue_size) and keeps its QueryRecorder as `node.recorder`.
"""

from __future__ import annotations

import io
import math

import pytest
from conftest import wait_for, write_answers
from test_perception_node import GOOD, MAX_PIXELS, K, pointing_answer, scene

from mimo_embodied_ros.nodes.perception_node import PARAMETERS
from mimo_embodied_ros.recording import TOPICS
from mimo_embodied_ros.replay import read_queries, replay

pytestmark = pytest.mark.skipif(
    "record.folder" not in PARAMETERS, reason="the perception node has no record.* parameters yet")
N = 3


def test_node_records_queries_that_replay_identically(perception, tmp_path):
    from rosbags.highlevel import AnyReader

    answers = write_answers(tmp_path / "answers.yaml", {
        GOOD: pointing_answer(), "is there a red cube?": "<think>yes</think>\\boxed{Yes}"})
    folder = tmp_path / "rec"
    harness = perception(**{
        "backend": "scripted", "scripted.answers_file": answers, "model.max_pixels": MAX_PIXELS,
        "record.folder": str(folder), "record.max_megabytes": 64,
        "record.max_queries_per_file": 2, "record.queue_size": 8})
    wait_for(lambda: harness.node._active, what="node active")
    rgb, depth = scene()
    harness.publish_until_received(rgb, depth, K)
    for instruction in [GOOD] * (N - 1) + ["is there a red cube?"]:
        assert harness.instruct(instruction).success
    recorder = harness.node.recorder
    assert recorder.flush(10.0)
    recorder.close()  # the node closes it again at shutdown: idempotent
    assert recorder.status()["record_queries_written"] == str(N)
    bags = sorted(p for p in folder.iterdir() if (p / "metadata.yaml").exists())
    assert len(bags) == 2  # rotated after two queries
    with AnyReader(bags) as reader:
        counts: dict[str, int] = {}
        for connection, _, raw in reader.messages():
            reader.deserialize(raw, connection.msgtype)
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
    assert counts[TOPICS["color"]] == N and counts[TOPICS["request"]] == N
    assert counts[TOPICS["depth"]] == N and counts[TOPICS["camera_info"]] == N
    assert counts[TOPICS["affordances"]] == N - 1
    queries = read_queries(folder)
    assert [q.instruction for q in queries] == [GOOD] * (N - 1) + ["is there a red cube?"]
    out = io.StringIO()
    same = replay(queries, "recorded", out=out)
    assert all(c.same for c in same), out.getvalue()
    assert all(c.px == 0.0 and c.d3 == 0.0 for c in same if not math.isnan(c.px))
    other = io.StringIO()
    replay(queries, "recorded", {"model.max_pixels": 50176}, out=other)
    lines = other.getvalue().splitlines()
    assert len(lines) == N + 1 and lines[-1].startswith(f"replay: {N} queries")
