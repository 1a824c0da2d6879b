"""`make demo` end to end: one pick-and-place episode through the real node graph."""

from __future__ import annotations

import json

import cv2

from mimo_embodied_sim import demo


def test_demo_places_the_object_and_writes_summary_and_images(tmp_path, capsys):
    assert demo.main(["--out", str(tmp_path), "--seed", "3"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["backend"] == "scripted"
    assert summary["success"] is True and summary["action_success"] is True
    assert summary["executed"] is True  # the sim executor moved the arm
    assert "rests in" in summary["ground_truth"]
    assert summary["wall_s"] > 0
    stages = [s["stage"] for s in summary["stages"]]
    assert stages.index("grasp") < stages.index("lift") < stages.index("place")
    assert summary["pick_point_to_object_center_m"] < 0.05
    # The demo's queries were recorded; replayed with their recorded answers they give the same
    # points.
    from mimo_embodied_ros import replay

    assert summary["recording"] == str(tmp_path / "recording")
    capsys.readouterr()
    assert replay.main([summary["recording"]]) == 0
    assert "replay: 2 queries, 2 same within 2 px" in capsys.readouterr().out
    for name in ("before.png", "after.png"):
        image = cv2.imread(str(tmp_path / name))
        assert image is not None and image.shape[:2] == (480, 640)
