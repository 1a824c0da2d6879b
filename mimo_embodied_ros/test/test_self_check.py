"""The configure-time self-check without ROS."""

from __future__ import annotations

import yaml

from mimo_embodied_ros.backends.scripted import ScriptedBackend
from mimo_embodied_ros.perception import QuerySettings
from mimo_embodied_ros.self_check import (
    INSTRUCTION,
    looks_like_garbage,
    run_self_check,
    synthetic_frame,
)


def test_garbage_is_one_character_repeated():
    assert looks_like_garbage("!!!!!!!!!!!!!!!!")
    assert looks_like_garbage("! ! ! ! ! ! ! ! ! x")
    assert not looks_like_garbage('[{"points": [[10, 20]], "label": "cup"}]')
    assert not looks_like_garbage("!!!")  # too short to judge


def test_synthetic_frame_has_the_disk_where_it_says():
    frame, (u, v) = synthetic_frame(640, 480)
    assert tuple(frame.rgb[v, u]) == (220, 20, 20)
    assert tuple(frame.rgb[0, 0]) == (128, 128, 128)


def test_a_model_that_points_at_the_disk_passes(tmp_path):
    frame, (u, v) = synthetic_frame(1280, 720)  # 1288x728 resized: scale ~1.006
    path = tmp_path / "a.yaml"
    x, y = round(u * 1288 / 1280), round(v * 728 / 720)
    path.write_text(yaml.safe_dump({INSTRUCTION: f'[{{"points": [[{x}, {y}]]}}]'}))
    report = run_self_check(ScriptedBackend(path), QuerySettings(), max_new_tokens=16)
    assert report.ok, report.reason
    assert report.findings["image"] == "1280x720 sent as 1288x728"
    assert report.findings["points_at_target"] == "yes"


def test_garbage_text_fails_with_the_reason(tmp_path):
    path = tmp_path / "a.yaml"
    path.write_text(yaml.safe_dump({INSTRUCTION: "!" * 40}))
    report = run_self_check(ScriptedBackend(path), QuerySettings(), max_new_tokens=16)
    assert not report.ok and "garbage" in report.reason and "bfloat16" in report.reason
    assert "FAILED" in report.summary()
