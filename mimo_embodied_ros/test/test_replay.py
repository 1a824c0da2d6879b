"""replay.py: recorded answers reproduce the recorded results exactly; other caps and backends
print one line per query; --write bags replay again; a camera bag written with rosbags alone
(sqlite3, the Humble default storage) replays with --instruction."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from recording_fixtures import HEIGHT, PLANE_Z, POINT, TARGET, WIDTH, K, record_queries, scene
from recording_fixtures import write_answers as write_answer_file
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer

from mimo_embodied_ros import replay as replay_module
from mimo_embodied_ros.backends.scripted import ScriptedBackend
from mimo_embodied_ros.recording import QueryRecorder, bag_typestore
from mimo_embodied_ros.replay import ReplayError, bag_paths, read_queries, replay

N = 4


@pytest.fixture
def recorded(tmp_path):
    answers = write_answer_file(tmp_path / "answers.yaml")
    with QueryRecorder(tmp_path / "rec", max_queries=3) as recorder:  # two bags
        results = record_queries(recorder, answers, count=N)
    return tmp_path / "rec", results


def test_recorded_answers_reproduce_the_results_exactly(recorded):
    folder, results = recorded
    queries = read_queries(folder)
    assert len(queries) == N and len(bag_paths(folder)) == 2
    out = io.StringIO()
    comparisons = replay(queries, "recorded", out=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == N + 1
    assert lines[-1].startswith(f"replay: {N} queries, {N} same within 2 px, 0 different")
    for comparison, result in zip(comparisons, results, strict=True):
        assert comparison.same is True, comparison.line()
        assert comparison.status == ("ok" if result.success else "failed")
    spatial = [c for c in comparisons if not math.isnan(c.px)]
    assert len(spatial) == 3  # point, detect, point after the no-think retry
    assert all(c.px == 0.0 for c in spatial)  # bit for bit: same pixels
    assert all(c.d3 == 0.0 for c in spatial if not math.isnan(c.d3))  # same 3D points
    assert sum(not math.isnan(c.d3) for c in spatial) == 3


def test_cli_with_another_cap_and_no_think_prints_a_line_per_query(recorded, capsys):
    folder, _ = recorded
    code = replay_module.main([str(folder), "--set", "model.max_pixels=50176",
                               "--thinking", "no_think"])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == N + 1 and lines[-1].startswith(f"replay: {N} queries")
    assert "'point at the red square'" in lines[0] and "px=" in lines[0] and "time=" in lines[0]
    # The recorded coordinates are in the 230400-pixel image; read in a smaller one they move.
    assert "DIFFERENT" in lines[0]


def test_scripted_backend_from_exported_answers(recorded, tmp_path, capsys):
    folder, _ = recorded
    answers = tmp_path / "exported.yaml"
    code = replay_module.main([str(folder), "--backend", "scripted", "--answers-out",
                               str(answers), "--set", f"scripted.answers_file={answers}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "4 instruction(s) written" in out
    assert f"replay: {N} queries, {N} same within 2 px" in out


def test_write_out_mcap_holds_originals_and_replayed_results(recorded, tmp_path, capsys):
    folder, _ = recorded
    out_file = tmp_path / "replayed.mcap"
    assert replay_module.main([str(folder), "--write", str(out_file)]) == 0
    assert out_file.is_file() and not (tmp_path / "replayed.bagdir").exists()
    with AnyReader([out_file]) as reader:
        topics = {c.topic for c in reader.connections}
    assert {"/mimo_embodied/record/color", "/mimo_embodied/replay/affordances",
            "/mimo_embodied/replay/objects", "/mimo_embodied/replay/result"} <= topics
    capsys.readouterr()
    again = replay(read_queries(out_file), "recorded", out=io.StringIO())
    assert len(again) == N and all(c.same for c in again)


def write_camera_bag(path, frames: int = 3) -> None:
    """A camera bag as `ros2 bag record` on Humble writes it: sqlite3, rosbags' serializer."""
    store = bag_typestore()
    Image = store.types["sensor_msgs/msg/Image"]
    CameraInfo = store.types["sensor_msgs/msg/CameraInfo"]
    Header = store.types["std_msgs/msg/Header"]
    Time = store.types["builtin_interfaces/msg/Time"]
    RegionOfInterest = store.types["sensor_msgs/msg/RegionOfInterest"]
    rgb, depth = scene()
    depth_mm = np.round(depth * 1000).astype(np.uint16)  # a RealSense's 16UC1 millimetres
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        color = writer.add_connection("/camera/color/image_raw", Image.__msgtype__,
                                      typestore=store)
        deep = writer.add_connection("/camera/aligned_depth_to_color/image_raw",
                                     Image.__msgtype__, typestore=store)
        info = writer.add_connection("/camera/color/camera_info", CameraInfo.__msgtype__,
                                     typestore=store)
        for index in range(frames):
            header = Header(stamp=Time(sec=10 + index, nanosec=0),
                            frame_id="camera_color_optical_frame")
            t = (10 + index) * 10**9
            depth_header = Header(stamp=Time(sec=10 + index, nanosec=3_000_000),
                                  frame_id=header.frame_id)
            writer.write(color, t, store.serialize_cdr(Image(
                header=header, height=HEIGHT, width=WIDTH, encoding="rgb8", is_bigendian=0,
                step=WIDTH * 3, data=rgb.reshape(-1)), Image.__msgtype__))
            writer.write(info, t + 1, store.serialize_cdr(CameraInfo(
                header=header, height=HEIGHT, width=WIDTH, distortion_model="plumb_bob",
                d=np.zeros(5), k=np.array([K.fx, 0, K.cx, 0, K.fy, K.cy, 0, 0, 1.0]),
                r=np.eye(3).reshape(-1), p=np.array([K.fx, 0, K.cx, 0, 0, K.fy, K.cy, 0, 0, 0,
                                                     1.0, 0]),
                binning_x=0, binning_y=0,
                roi=RegionOfInterest(x_offset=0, y_offset=0, height=0, width=0,
                                     do_rectify=False)), CameraInfo.__msgtype__))
            writer.write(deep, t + 2, store.serialize_cdr(Image(
                header=depth_header, height=HEIGHT, width=WIDTH, encoding="16UC1",
                is_bigendian=0, step=WIDTH * 2, data=depth_mm.view(np.uint8).reshape(-1)),
                Image.__msgtype__))


def test_a_camera_bag_written_with_rosbags_replays(tmp_path, capsys):
    bag = tmp_path / "camera_bag"
    write_camera_bag(bag)
    answers = write_answer_file(tmp_path / "answers.yaml")
    out_file = tmp_path / "on_camera.mcap"
    code = replay_module.main([str(bag), "--backend", "scripted", "--set",
                               f"scripted.answers_file={answers}", "--set",
                               "model.max_pixels=230400", "--instruction", POINT,
                               "--write", str(out_file)])
    assert code == 0
    out = capsys.readouterr().out
    assert "colour /camera/color/image_raw, depth /camera/aligned_depth_to_color/image_raw" in out
    assert out.count(": ok parse=ok") == 3 and "replay: 3 queries" in out
    # The replayed bag is a recording: read back, the points sit on the plane at the target.
    queries = read_queries(out_file)
    assert len(queries) == 3
    with AnyReader([out_file]) as reader:
        [conn] = [c for c in reader.connections if c.topic == "/mimo_embodied/replay/affordances"]
        points = [reader.deserialize(raw, conn.msgtype).points[0]
                  for _, _, raw in reader.messages(connections=[conn])]
    for point in points:
        assert abs(point.u - TARGET[0]) < 2 and abs(point.v - TARGET[1]) < 2
        assert point.depth_valid and point.position.z == pytest.approx(PLANE_Z - 0.05, abs=2e-3)


def test_another_instruction_on_a_recording_runs_with_a_model_backend(recorded, tmp_path):
    folder, _ = recorded
    answers = write_answer_file(tmp_path / "answers.yaml")
    out = io.StringIO()
    backend_overrides = {"scripted.answers_file": str(answers)}
    comparisons = replay(read_queries(folder)[:1], "scripted", backend_overrides,
                         instructions=["detect the red square"], out=out)
    assert comparisons[0].same is None and comparisons[0].status == "ok"
    assert "new" in out.getvalue().splitlines()[0]


def test_unfinished_bags_and_bad_options_are_explained(tmp_path, recorded):
    (tmp_path / "crashed" / "mimo_query_x").mkdir(parents=True)
    with pytest.raises(ReplayError, match="unfinished bags"):
        bag_paths(tmp_path / "crashed")
    folder, _ = recorded
    with pytest.raises(ReplayError, match="unknown --set"):
        replay(read_queries(folder), "recorded", {"model.max_pixel": 1}, out=io.StringIO())
    assert replay_module.main([str(tmp_path / "missing")]) == 2


def test_recorded_backend_answers_like_the_scripted_one(recorded):
    folder, results = recorded
    query = read_queries(folder)[0]
    backend = replay_module.RecordedBackend(folder.parent)
    assert backend.use(query)
    assert isinstance(backend._backend, ScriptedBackend)
    assert backend._backend.answer_for(POINT) == results[0].reply.text
