"""QueryEngine without ROS: one query at a time, queue depth one or reject, cancel while waiting."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import yaml

from mimo_embodied_ros.backends.scripted import ScriptedBackend
from mimo_embodied_ros.perception import Frame, QuerySettings
from mimo_embodied_ros.query_engine import QueryEngine

SETTINGS = QuerySettings(require_depth=False)
FRAME = Frame(rgb=np.zeros((56, 56, 3), np.uint8))


@pytest.fixture
def engine(tmp_path):
    path = tmp_path / "answers.yaml"
    path.write_text(yaml.safe_dump({"*": '<think>.</think>[{"points": [[10, 10]]}]'}))
    engine = QueryEngine("queue")
    engine.set_backend(ScriptedBackend(path, delay_s=0.6))
    return engine


def _in_thread(engine, instruction, **kwargs):
    out = {}
    thread = threading.Thread(target=lambda: out.update(
        result=engine.run(FRAME, instruction, "point", SETTINGS, **kwargs)))
    thread.start()
    return thread, out


def test_queue_depth_one(engine):
    first, first_out = _in_thread(engine, "a")
    time.sleep(0.2)
    second, second_out = _in_thread(engine, "b")
    time.sleep(0.2)
    third = engine.run(FRAME, "c", "point", SETTINGS)
    first.join(5)
    second.join(5)
    assert first_out["result"].success and second_out["result"].success
    assert not third.success and "queue depth one" in third.message
    assert engine.counts["rejected"] == 1 and engine.counts["queries"] == 2


def test_reject_policy_and_no_wait(engine):
    engine.policy = "reject"
    first, out = _in_thread(engine, "a")
    time.sleep(0.2)
    refused = engine.run(FRAME, "b", "point", SETTINGS)
    skipped = engine.run(FRAME, "c", "point", SETTINGS, wait=False)
    first.join(5)
    assert out["result"].success
    assert "queue_policy: reject" in refused.message and "skipped" in skipped.message


def test_cancel_while_waiting_and_while_running(engine):
    first_cancel = threading.Event()
    first, first_out = _in_thread(engine, "a", cancel=first_cancel)
    time.sleep(0.1)
    second_cancel = threading.Event()
    second, second_out = _in_thread(engine, "b", cancel=second_cancel)
    time.sleep(0.1)
    second_cancel.set()
    second.join(2)
    assert "cancelled while it waited" in second_out["result"].message
    first_cancel.set()
    started = time.monotonic()
    first.join(2)
    assert time.monotonic() - started < 0.3
    assert first_out["result"].error_kind == "cancelled"


def test_a_backend_bug_is_a_failed_result(engine):
    class Broken:
        name, model_id = "broken", "broken"

        def generate(self, request):
            raise ZeroDivisionError("bug")

        def close(self):
            pass

    engine.set_backend(Broken())
    result = engine.run(FRAME, "a", "point", SETTINGS)
    assert not result.success and result.error_kind == "internal"
    assert engine.counts["internal"] == 1


def test_a_server_backend_runs_queries_side_by_side(engine):
    """With max_concurrent 2 (a batching server) two queries overlap instead of queueing."""
    engine.max_concurrent = 2
    started = time.monotonic()
    first, first_out = _in_thread(engine, "left camera")
    second, second_out = _in_thread(engine, "right camera")
    first.join(5)
    second.join(5)
    assert first_out["result"].success and second_out["result"].success
    assert time.monotonic() - started < 1.1  # two 0.6 s answers at once, not 1.2 s in a row
    third_cancel = threading.Event()
    engine.max_concurrent = 1
    blocker, _ = _in_thread(engine, "a")
    time.sleep(0.1)
    waiter, waiter_out = _in_thread(engine, "b", cancel=third_cancel)
    time.sleep(0.1)
    assert engine.cancel_running()  # stops the running one; the waiter then runs
    blocker.join(2)
    waiter.join(3)
    assert waiter_out["result"].success
