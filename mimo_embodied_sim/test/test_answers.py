"""Scripted answers read back, through the official pattern and the project's parser, as the
ground-truth pixels they were made from."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from mimo_embodied_ros.core.parsing import parse_boxes, parse_points
from mimo_embodied_ros.core.resize import smart_resize
from mimo_embodied_ros.core.types import ImageSize
from mimo_embodied_sim.answers import (
    WILDCARD_KEY,
    box_answer,
    pointing_answer,
    to_resized_pixel,
    write_answers_file,
)
from mimo_embodied_sim.tabletop import TabletopScene

# The evaluation's point pattern (shared/model-io.md); the scorer casts matches to int.
OFFICIAL_POINT = re.compile(r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]")
SOURCE = ImageSize(640, 480)
# The release's evaluation cap (128 visual tokens) and the README's (4096 tokens).
RESIZED_SIZES = [smart_resize(480, 640, max_pixels=100_352),
                 smart_resize(480, 640, max_pixels=3_211_264)]


@pytest.fixture(scope="module")
def scene() -> TabletopScene:
    with TabletopScene(width=SOURCE.width, height=SOURCE.height, seed=5) as tabletop:
        yield tabletop


def _to_source(x: float, y: float, resized: ImageSize) -> tuple[float, float]:
    return x * SOURCE.width / resized.width, y * SOURCE.height / resized.height


@pytest.mark.parametrize("resized", RESIZED_SIZES, ids=lambda size: f"{size.width}x{size.height}")
def test_pointing_answer_maps_back_to_the_ground_truth_pixel(
    scene: TabletopScene, resized: ImageSize
) -> None:
    for target in ("red cube", "mug/handle", "placemat"):
        u, v = scene.target_pixel(target)
        text = pointing_answer([(u, v)], SOURCE, resized, f"the {target}")
        assert text.startswith("<think>") and "</think>" in text
        answer = text.rsplit("</think>", 1)[1]
        matches = OFFICIAL_POINT.findall(answer)
        assert len(matches) == 1
        x, y = (int(float(value)) for value in matches[0])
        assert 0 <= x < resized.width and 0 <= y < resized.height
        back_u, back_v = _to_source(x, y, resized)
        # Rounding to the resized grid costs at most half a resized pixel in source pixels.
        scale = SOURCE.width / resized.width
        assert abs(back_u - u) <= 0.5 * scale + 1e-9 and abs(back_v - v) <= 0.5 * scale + 1e-9
        if scale <= 2.0:
            assert abs(back_u - u) <= 1.0 and abs(back_v - v) <= 1.0
        parsed = parse_points(text, think_mode=True)
        assert parsed.ok and [(p.x, p.y) for p in parsed.points] == [(x, y)]
        assert parsed.points[0].label == f"the {target}"


def test_pointing_answer_is_the_models_json_layout() -> None:
    resized = RESIZED_SIZES[1]
    text = pointing_answer([(100.4, 200.6), (320.0, 240.0)], SOURCE, resized, 'the "red" cube',
                           think=False)
    expected_points = [list(to_resized_pixel(100.4, 200.6, SOURCE, resized)),
                       list(to_resized_pixel(320.0, 240.0, SOURCE, resized))]
    assert json.loads(text) == [{"points": expected_points, "label": 'the "red" cube'}]
    assert text.startswith('[{"points": [[') and "<think>" not in text
    assert all(isinstance(value, int) for point in json.loads(text)[0]["points"]
               for value in point)


def test_box_answer_maps_back_to_the_ground_truth_box(scene: TabletopScene) -> None:
    resized = RESIZED_SIZES[1]
    box = scene.target_box("blue cylinder")
    text = box_answer([box], SOURCE, resized, "the blue cylinder")
    entries = json.loads(text.rsplit("</think>", 1)[1])
    assert list(entries[0]) == ["bbox_2d", "label"]
    x1, y1, x2, y2 = entries[0]["bbox_2d"]
    assert x1 < x2 and y1 < y2
    back = (*_to_source(x1, y1, resized), *_to_source(x2, y2, resized))
    np.testing.assert_allclose(back, box, atol=1.0)
    parsed = parse_boxes(text, think_mode=True)
    assert parsed.ok and (parsed.boxes[0].x1, parsed.boxes[0].y2) == (x1, y2)


def test_noise_is_seeded_and_scaled() -> None:
    resized = SOURCE  # no resize: noise is all that moves the points
    points = [(320.0, 240.0)] * 400
    noisy = json.loads(pointing_answer(points, SOURCE, resized, "x", think=False, noise_px=3.0,
                                       seed=1))[0]["points"]
    again = json.loads(pointing_answer(points, SOURCE, resized, "x", think=False, noise_px=3.0,
                                       seed=1))[0]["points"]
    other = json.loads(pointing_answer(points, SOURCE, resized, "x", think=False, noise_px=3.0,
                                       seed=2))[0]["points"]
    assert noisy == again and noisy != other
    offsets = np.asarray(noisy, dtype=float) - (320.0, 240.0)
    assert np.std(offsets) == pytest.approx(3.0, rel=0.15)


def test_answers_file_round_trips_through_yaml(tmp_path) -> None:
    mapping = {
        "the handle of the mug": pointing_answer([(500.0, 260.0)], SOURCE, RESIZED_SIZES[0],
                                                 "the handle of the mug"),
        "red: cube? #1": box_answer([(10, 20, 30, 40)], SOURCE, SOURCE, "red cube"),
        WILDCARD_KEY: "<think>\nnothing\n</think>\n[]",
    }
    path = write_answers_file(tmp_path / "answers" / "scripted.yaml", mapping)
    assert yaml.safe_load(path.read_text(encoding="utf-8")) == mapping
    with pytest.raises(TypeError):
        write_answers_file(tmp_path / "bad.yaml", {"x": 1})  # type: ignore[dict-item]


def test_answers_file_is_replaced_whole_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "answers.yaml"
    write_answers_file(path, {"a": "first"})
    write_answers_file(path, {"b": "second"})
    assert yaml.safe_load(path.read_text()) == {"b": "second"}
    assert [p.name for p in tmp_path.iterdir()] == ["answers.yaml"]
