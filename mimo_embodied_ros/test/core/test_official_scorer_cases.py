"""What the official scorer also reads (model-io.md, "Reading the answer"), and what a robot flags.

One named test per case: (x, y) tuples, boxes under any key, bare four-number lists and tuples,
normalized (0-1) boxes and points, boxes in a pointing reply, yes/no without \\boxed{}.
"""

from __future__ import annotations

import math

import pytest

from mimo_embodied_ros.core.parsing import parse_boxes, parse_choice, parse_points, parse_reply
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.types import OK_STATUSES, ModelBox, ModelPoint, ParsedAnswer


def coords(parsed: ParsedAnswer) -> list[tuple[float, float]]:
    return [(point.x, point.y) for point in parsed.points]


def corners(parsed: ParsedAnswer) -> list[tuple[float, float, float, float]]:
    return [(box.x1, box.y1, box.x2, box.y2) for box in parsed.boxes]


# --- statuses ---------------------------------------------------------------------------------


def test_ok_statuses_are_ok_and_box_centres_only() -> None:
    assert set(OK_STATUSES) == {"ok", "box_centres"}
    assert ParsedAnswer(status="box_centres").ok
    assert not ParsedAnswer(status="normalized_points").ok
    assert not ParsedAnswer(status="no_coordinates").ok


def test_model_box_normalized_defaults_to_false() -> None:
    assert ModelBox(1, 2, 3, 4).normalized is False
    assert ModelBox(1, 2, 3, 4, "cup", 0.5, normalized=True).normalized is True


# --- points -----------------------------------------------------------------------------------


def test_points_tuple_fallback() -> None:
    parsed = parse_points("<think>two handles</think>The handles are at (412, 233) and (98,7.5).")
    assert parsed.status == "ok"
    assert parsed.points == [ModelPoint(412.0, 233.0), ModelPoint(98.0, 7.5)]


def test_points_tuples_ignored_when_brackets_exist() -> None:
    parsed = parse_points("first guess (1, 2), final answer [581, 399]", False)
    assert parsed.ok and coords(parsed) == [(581.0, 399.0)]


def test_points_tuple_fallback_follows_the_official_spacing() -> None:
    # As the official pattern: no space before the comma, no three-number tuples.
    parsed = parse_points("(1 , 2) (1, 2, 3) (x, 4)", False)
    assert parsed.status == "no_coordinates" and parsed.points == []


def test_points_all_normalized_are_listed_but_not_ok() -> None:
    parsed = parse_points('[{"points": [[0.41, 0.23], [0.5, 1]], "label": "handle"}]', False)
    assert parsed.status == "normalized_points" and not parsed.ok
    assert parsed.points == [ModelPoint(0.41, 0.23, "handle"), ModelPoint(0.5, 1.0, "handle")]


def test_points_normalized_tuples_are_flagged_too() -> None:
    assert parse_points("at (0.25, 0.75)", False).status == "normalized_points"


def test_points_one_pixel_coordinate_above_one_is_not_normalized() -> None:
    parsed = parse_points("[[0.4, 0.2], [0.5, 12]]", False)
    assert parsed.status == "ok" and coords(parsed) == [(0.4, 0.2), (0.5, 12.0)]
    # Negative values are not 0-1 answers either (they are outside the image, said later).
    assert parse_points("[-0.5, 0.5]", False).status == "ok"


def test_points_box_centres_in_a_pointing_reply() -> None:
    reply = '<think>a box</think>[{"bbox_2d": [100, 40, 200, 90], "label": "mug"}]'
    parsed = parse_points(reply)
    assert parsed.status == "box_centres" and parsed.ok
    assert parsed.points == [ModelPoint(150.0, 65.0, "mug")]


def test_points_box_centres_from_any_key_and_bare_lists() -> None:
    keyed = parse_points('{"box": [10, 20, 31, 41], "label": "lid"}', False)
    assert keyed.points == [ModelPoint(20.5, 30.5, "lid")] and keyed.status == "box_centres"
    bare = parse_points("The mug is in [10, 20, 30, 40].", False)
    assert bare.points == [ModelPoint(20.0, 30.0)] and bare.status == "box_centres"


def test_points_normalized_box_centres_are_normalized_points() -> None:
    parsed = parse_points('[{"bbox_2d": [0.1, 0.2, 0.3, 0.4], "label": "mug"}]', False)
    assert parsed.status == "normalized_points" and not parsed.ok
    assert coords(parsed) == [pytest.approx((0.2, 0.3))]


def test_points_invalid_boxes_give_no_centres() -> None:
    parsed = parse_points('[{"bbox_2d": [200, 40, 100, 90]}]', False)
    assert parsed.status == "no_coordinates" and parsed.points == []


def test_points_unbounded_box_has_no_centre() -> None:
    parsed = parse_points('[{"bbox_2d": [-Infinity, 1, Infinity, 3]}]', False)
    assert parsed.status == "no_coordinates" and parsed.points == []


def test_points_pairs_beat_box_centres() -> None:
    parsed = parse_points('[{"bbox_2d": [100, 40, 200, 90]}, {"points": [[5, 6]]}]', False)
    assert parsed.status == "ok" and coords(parsed) == [(5.0, 6.0)]


# --- boxes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["bbox", "box_2d", "box", "region"])
def test_boxes_under_other_keys(key: str) -> None:
    parsed = parse_boxes(f'[{{"{key}": [10, 20, 110, 220], "label": "cup", "score": 0.5}}]', False)
    assert parsed.ok and parsed.boxes == [ModelBox(10.0, 20.0, 110.0, 220.0, "cup", 0.5)]


def test_boxes_bbox_2d_key_wins_within_one_object() -> None:
    parsed = parse_boxes('{"crop": [0, 0, 500, 500], "bbox_2d": [1, 2, 3, 4]}', False)
    assert corners(parsed) == [(1.0, 2.0, 3.0, 4.0)]


def test_boxes_other_keys_in_near_json() -> None:
    parsed = parse_boxes("{box_2d: [1, 2, 30, 40], label: x} {'bbox': [5, 6, 7, 8]", False)
    assert parsed.ok and corners(parsed) == [(1.0, 2.0, 30.0, 40.0), (5.0, 6.0, 7.0, 8.0)]


def test_boxes_bare_list() -> None:
    parsed = parse_boxes("The cup is at [10, 20, 110, 220], the lid at [1, 2, 3, 4].", False)
    assert parsed.ok and corners(parsed) == [(10.0, 20.0, 110.0, 220.0)]  # the first, as scored
    assert parsed.boxes[0].label == "" and math.isnan(parsed.boxes[0].score)


def test_boxes_tuple() -> None:
    parsed = parse_boxes("<think>cup</think>Answer: (10, 20.5, 110, 220)")
    assert parsed.ok and corners(parsed) == [(10.0, 20.5, 110.0, 220.0)]


def test_boxes_first_bare_box_of_either_bracket() -> None:
    parsed = parse_boxes("(1, 2, 3, 4) then [10, 20, 30, 40]", False)
    assert corners(parsed) == [(1.0, 2.0, 3.0, 4.0)]


def test_boxes_keyed_beat_bare() -> None:
    parsed = parse_boxes('[5, 6, 7, 8] {"bbox_2d": [1, 2, 3, 4]}', False)
    assert corners(parsed) == [(1.0, 2.0, 3.0, 4.0)]


def test_boxes_bare_box_with_inverted_corners_is_invalid() -> None:
    parsed = parse_boxes("[110, 20, 10, 220]", False)
    assert parsed.status == "invalid_box" and parsed.boxes == []


def test_boxes_normalized_flag() -> None:
    parsed = parse_boxes(
        '[{"bbox_2d": [0.1, 0.2, 0.5, 1], "label": "a"}, {"bbox_2d": [0, 0, 1, 2], "label": "b"}]',
        False,
    )
    assert parsed.ok  # the caller scales normalized boxes; the parser does not know the size
    assert [(box.label, box.normalized) for box in parsed.boxes] == [("a", True), ("b", False)]
    assert corners(parsed)[0] == (0.1, 0.2, 0.5, 1.0)  # not scaled here


def test_boxes_bare_normalized_tuple_is_flagged() -> None:
    parsed = parse_boxes("(0.1, 0.2, 0.3, 0.4)", False)
    assert parsed.ok and parsed.boxes[0].normalized


# --- yes / no ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "choice"),
    [
        ("</think>Yes, the drawer is open.", "yes"),
        ("</think>NO", "no"),
        ("</think>no.", "no"),
        ("</think>Yes\nThe bed is on the left.", "yes"),
    ],
)
def test_choice_leading_yes_no_without_boxed(reply: str, choice: str) -> None:
    parsed = parse_choice(reply, True)
    assert parsed.status == "ok" and parsed.choice == choice


@pytest.mark.parametrize("answer", ["Nothing is there.", "Yesterday", "Nope", "I think yes."])
def test_choice_no_leading_yes_no_word_is_no_boxed(answer: str) -> None:
    parsed = parse_choice(answer, False)
    assert parsed.status == "no_boxed" and parsed.choice is None


def test_choice_boxed_beats_leading_word() -> None:
    parsed = parse_reply(Task.CHOICE, "</think>No doubt: \\boxed{yes}", True)
    assert parsed.ok and parsed.choice == "yes"
