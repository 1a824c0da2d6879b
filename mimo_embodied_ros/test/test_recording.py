"""QueryRecorder: rosbag2 (MCAP) files readable by rosbags alone, rotation, a full queue that
drops and warns, and write failures that become a status instead of an exception."""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path

import pytest
from recording_fixtures import (
    CHOICE,
    DETECT,
    POINT,
    WIDTH,
    query_recording,
    record_queries,
    write_answers,
)
from rosbags.highlevel import AnyReader

from mimo_embodied_ros import recording
from mimo_embodied_ros.backends.scripted import ScriptedBackend
from mimo_embodied_ros.recording import TOPICS, QueryRecorder, bag_typestore


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def warning(self, message: str) -> None:
        self.lines.append(("warning", message))

    def error(self, message: str) -> None:
        self.lines.append(("error", message))


def bags(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / "metadata.yaml").exists())


def test_recorded_queries_read_back_with_rosbags_alone(tmp_path):
    with QueryRecorder(tmp_path / "rec", max_bytes=0, max_queries=0) as recorder:
        results = record_queries(recorder, write_answers(tmp_path / "a.yaml"), count=4)
        assert recorder.flush()
    status = recorder.status()
    assert status["record_queries_written"] == "4" and status["record_files"] == "1"
    assert status["record_last_error"] == "none" and status["record_state"] == "closed"
    [bag] = bags(tmp_path / "rec")
    assert (bag / f"{bag.name}.mcap").exists()
    # rosbags' own deserializer, with the definitions stored in the bag (no rclpy involved).
    with AnyReader([bag]) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        assert types[TOPICS["color"]] == "sensor_msgs/msg/Image"
        assert types[TOPICS["camera_info"]] == "sensor_msgs/msg/CameraInfo"
        assert types[TOPICS["affordances"]] == "mimo_embodied_msgs/msg/Affordances"
        assert types[TOPICS["objects"]] == "mimo_embodied_msgs/msg/Objects3D"
        seen: dict[str, list] = {}
        stamps: dict[int, set[str]] = {}
        for connection, timestamp, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            seen.setdefault(connection.topic, []).append(msg)
            stamps.setdefault(timestamp, set()).add(connection.topic)
    assert len(stamps) == 4  # one bag timestamp per query
    requests = [json.loads(m.data) for m in seen[TOPICS["request"]]]
    assert [r["seq"] for r in requests] == [1, 2, 3, 4]
    assert [r["instruction"] for r in requests[:3]] == [POINT, DETECT, CHOICE]
    assert requests[0]["settings"]["max_pixels"] == 230400 and requests[0]["backend"] == "scripted"
    assert requests[1]["stamp"] == {"sec": 2, "nanosec": 0}
    assert seen[TOPICS["color"]][0].width == WIDTH and seen[TOPICS["depth"]][0].encoding == "32FC1"
    outcome = [json.loads(m.data) for m in seen[TOPICS["result"]]]
    assert outcome[0]["raw_text"] == results[0].reply.text
    assert outcome[3]["retried_no_think"] is True
    [points] = seen[TOPICS["affordances"]][:1]
    assert points.points[0].u == pytest.approx(results[0].points[0].u)
    assert len(seen[TOPICS["affordances"]]) == 2 and len(seen[TOPICS["objects"]]) == 1


def test_bag_type_hashes_match_the_installed_interfaces(tmp_path):
    """ros2 bag play checks the type hash: the bag's must be what rosidl generated."""
    import sys

    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    def share(package: str) -> Path:
        try:
            return Path(get_package_share_directory(package))
        except PackageNotFoundError:  # the wheels' prefix is the venv itself
            return Path(sys.prefix) / "share" / package

    store = bag_typestore()
    for msgtype in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "std_msgs/msg/String",
                    "mimo_embodied_msgs/msg/Affordances", "mimo_embodied_msgs/msg/Objects3D"):
        package, _, name = msgtype.split("/")
        described = share(package) / "msg" / f"{name}.json"
        expected = json.loads(described.read_text())["type_hashes"][0]["hash_string"]
        assert store.hash_rihs01(msgtype) == expected, msgtype


def test_rotation_by_query_count_and_by_size(tmp_path):
    answers = write_answers(tmp_path / "a.yaml")
    with QueryRecorder(tmp_path / "count", max_bytes=0, max_queries=2) as recorder:
        record_queries(recorder, answers, count=5)
    assert len(bags(tmp_path / "count")) == 3
    with QueryRecorder(tmp_path / "size", max_bytes=400_000, max_queries=0) as recorder:
        record_queries(recorder, answers, count=3)  # ~0.54 MB of images per query
    assert len(bags(tmp_path / "size")) == 3
    assert recorder.status()["record_queries_written"] == "3"


def test_full_queue_drops_counts_and_warns_without_blocking(tmp_path, monkeypatch):
    log = Log()
    recorder = QueryRecorder(tmp_path / "rec", queue_size=2, logger=log, warn_every=5)
    gate = threading.Event()
    original = recorder._write

    def slow_write(*args):
        gate.wait(10.0)
        original(*args)

    monkeypatch.setattr(recorder, "_write", slow_write)
    answers = write_answers(tmp_path / "a.yaml")
    item, _ = query_recording(ScriptedBackend(answers), POINT)
    accepted, slowest = [], 0.0
    for _ in range(13):
        started = time.perf_counter()
        accepted.append(recorder.submit(item))
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.05  # never waits for the writer
    dropped = accepted.count(False)
    assert dropped >= 10 and accepted[:2] == [True, True]
    assert recorder.status()["record_dropped_queue_full"] == str(dropped)
    warnings = [m for level, m in log.lines if level == "warning"]
    assert len(warnings) == len(range(1, dropped + 1, 5))  # the first drop, then one per 5
    assert "queue full" in warnings[0]
    gate.set()
    recorder.close()
    assert recorder.status()["record_queries_written"] == str(13 - dropped)


def test_unwritable_folder_is_a_status_not_an_exception(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    log = Log()
    with QueryRecorder(blocker / "rec", logger=log) as recorder:
        record_queries(recorder, write_answers(tmp_path / "a.yaml"), count=2)
        assert recorder.flush()
        status = recorder.status()
    assert status["record_state"] == "error"
    assert status["record_failed"] == "2" and status["record_queries_written"] == "0"
    assert "a_file" in status["record_last_error"]
    assert [level for level, _ in log.lines] == ["error"]  # said once, not per query


def test_disk_full_then_space_again(tmp_path, monkeypatch):
    recorder = QueryRecorder(tmp_path / "rec", retry_s=0.0)
    answers = write_answers(tmp_path / "a.yaml")
    real = recording.BagWriter.write_messages

    def full(self, messages, timestamp_ns):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recording.BagWriter, "write_messages", full)
    record_queries(recorder, answers, count=1)
    assert recorder.flush()
    assert "No space left" in recorder.status()["record_last_error"]
    assert recorder.status()["record_state"] == "error"
    monkeypatch.setattr(recording.BagWriter, "write_messages", real)
    record_queries(recorder, answers, count=2)
    assert recorder.flush()
    assert recorder.status()["record_state"] == "recording"
    recorder.close()
    assert recorder.status()["record_queries_written"] == "2"
    assert len(bags(tmp_path / "rec")) == 1  # the aborted bag left no metadata.yaml


def test_idle_bag_is_finished_while_the_recorder_runs(tmp_path):
    recorder = QueryRecorder(tmp_path / "rec", idle_close_s=0.2)
    record_queries(recorder, write_answers(tmp_path / "a.yaml"), count=1)
    deadline = time.monotonic() + 5.0
    while not bags(tmp_path / "rec") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(bags(tmp_path / "rec")) == 1  # readable although nobody closed the recorder
    assert recorder.status()["record_state"] == "idle"
    recorder.close()
    assert not recorder.submit(object())  # closed: refused, no exception
