"""Answer parsing on the official examples of model-io.md and on the ways replies go wrong."""

from __future__ import annotations

import math

import pytest

from mimo_embodied_ros.core.parsing import (
    OFFICIAL_POINT_PATTERN,
    last_boxed,
    parse_boxes,
    parse_choice,
    parse_free_text,
    parse_plan,
    parse_points,
    parse_region_target,
    parse_reply,
    split_thinking,
)
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.types import ModelBox, ModelPoint


def coords(answer) -> list[tuple[float, float]]:
    return [(point.x, point.y) for point in answer.points]


# --- split_thinking ---------------------------------------------------------------------------


def test_official_pattern_is_the_documented_one() -> None:
    assert OFFICIAL_POINT_PATTERN == r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]"


def test_split_thinking_keeps_reasoning_and_answer() -> None:
    reply = "<think>\nThe headlights are at the front.\n</think>\n\n[[237, 296], [245, 484]]"
    assert split_thinking(reply, think_mode=True) == (
        "The headlights are at the front.",
        "[[237, 296], [245, 484]]",
        "ok",
    )


def test_split_thinking_uses_the_last_think_end() -> None:
    reasoning, answer, status = split_thinking("<think>a</think>b</think> c ", True)
    assert (reasoning, answer, status) == ("a</think>b", "c", "ok")


def test_split_thinking_without_think_start_takes_everything_before() -> None:
    reply = "reasoning here</think>answer"
    assert split_thinking(reply, True) == ("reasoning here", "answer", "ok")


def test_split_thinking_missing_end_in_think_mode_is_an_empty_answer() -> None:
    reasoning, answer, status = split_thinking("<think>still thinking about [1, 2]", True)
    assert (reasoning, answer, status) == ("still thinking about [1, 2]", "", "no_think_end")


def test_split_thinking_no_think_mode() -> None:
    assert split_thinking(" the lid of the pot is [581, 399] ", False) == (
        "",
        "the lid of the pot is [581, 399]",
        "ok",
    )
    # The chat template of no-think mode may still emit an empty think block.
    assert split_thinking("<think>\n\n</think>\n\nyes", False) == ("", "yes", "ok")


@pytest.mark.parametrize("reply", ["", "   \n\t", "<think>a</think>   "])
def test_split_thinking_empty(reply: str) -> None:
    assert split_thinking(reply, True)[2] == "empty"
    assert split_thinking(reply, False)[2] == "empty"


def test_split_thinking_not_text() -> None:
    assert split_thinking(None, True) == ("", "", "not_text")  # type: ignore[arg-type]


# --- points -----------------------------------------------------------------------------------


def test_points_official_headlights_example() -> None:
    parsed = parse_points("<think>Two headlights.</think>[[237, 296], [245, 484]]", True)
    assert parsed.ok
    assert parsed.points == [ModelPoint(237.0, 296.0), ModelPoint(245.0, 484.0)]
    assert parsed.reasoning == "Two headlights."


def test_points_official_manipulation_example_in_prose() -> None:
    parsed = parse_points("the lid of the pot is [581, 399]", False)
    assert parsed.ok and coords(parsed) == [(581.0, 399.0)]
    assert parsed.points[0].label == ""


def test_points_official_json_with_labels_in_fences() -> None:
    reply = (
        "<think>mug handle on the right</think>\n```json\n"
        '[{"points": [[410, 233], [415.5, 240]], "label": "the handle of the mug"},\n'
        ' {"points": [[100, 50]], "label": "the spoon"}]\n```'
    )
    parsed = parse_points(reply, True)
    assert parsed.ok
    assert parsed.points == [
        ModelPoint(410.0, 233.0, "the handle of the mug"),
        ModelPoint(415.5, 240.0, "the handle of the mug"),
        ModelPoint(100.0, 50.0, "the spoon"),
    ]


def test_points_nested_json_and_single_pair() -> None:
    reply = '{"result": {"items": [{"points": [7, 8], "label": "knob"}]}}'
    parsed = parse_points(reply, False)
    assert parsed.points == [ModelPoint(7.0, 8.0, "knob")]


def test_points_broken_json_still_gives_points_without_labels() -> None:
    parsed = parse_points('[{"points": [[10, 20], [30, 40]], "label": "cup"', False)
    assert coords(parsed) == [(10.0, 20.0), (30.0, 40.0)]
    assert [point.label for point in parsed.points] == ["", ""]


def test_points_pairs_inside_label_text_do_not_shift_labels() -> None:
    reply = '[{"points": [[1, 2]], "label": "near [9, 9]"}, {"points": [[3, 4]], "label": "b"}]'
    parsed = parse_points(reply, False)
    # The official pattern sees the pair inside the label too; it gets no label.
    assert parsed.points == [
        ModelPoint(1.0, 2.0, "near [9, 9]"),
        ModelPoint(9.0, 9.0, ""),
        ModelPoint(3.0, 4.0, "b"),
    ]


def test_points_negative_and_decimal_numbers() -> None:
    parsed = parse_points("[-12, 3.75] and [ 0.5,-0.25 ]", False)
    assert coords(parsed) == [(-12.0, 3.75), (0.5, -0.25)]


def test_points_ignore_what_the_official_pattern_ignores() -> None:
    # Space before the comma, three numbers, exponents, and a missing </think> answer.
    parsed = parse_points("[1 , 2] [1, 2, 3] [1e3, 4] [.5, 1]", False)
    assert parsed.status == "no_coordinates" and parsed.points == []


def test_points_in_reasoning_are_not_the_answer() -> None:
    parsed = parse_points("<think>maybe [1, 2]</think>I cannot see it.", True)
    assert parsed.status == "no_coordinates"
    parsed = parse_points("<think>maybe [1, 2]", True)
    assert parsed.status == "no_think_end" and parsed.points == []
    assert parsed.reasoning == "maybe [1, 2]"


def test_points_huge_numbers_become_inf_not_errors() -> None:
    huge = "9" * 400
    parsed = parse_points(f'[{{"points": [[{huge}, 5]], "label": "far"}}]', False)
    assert parsed.ok and math.isinf(parsed.points[0].x) and parsed.points[0].y == 5.0


@pytest.mark.parametrize("garbage", ["[[", "]]]", "{\"points\": ", "\x00\ufffd", "```json\n```"])
def test_points_garbage(garbage: str) -> None:
    parsed = parse_points(garbage, False)
    assert parsed.status == "no_coordinates" and parsed.points == []


def test_points_not_text() -> None:
    assert parse_points(b"[1, 2]", False).status == "not_text"  # type: ignore[arg-type]


# --- boxes ------------------------------------------------------------------------------------


def test_boxes_json_with_label_and_score() -> None:
    reply = (
        "<think>two objects</think>```json\n"
        '[{"bbox_2d": [10, 20, 110, 220], "label": "cup", "score": 0.9},'
        ' {"bbox_2d": [5.5, 6, 7, 8], "label": "lid", "confidence": "0.25"}]\n```'
    )
    parsed = parse_boxes(reply, True)
    assert parsed.ok
    assert parsed.boxes == [
        ModelBox(10.0, 20.0, 110.0, 220.0, "cup", 0.9),
        ModelBox(5.5, 6.0, 7.0, 8.0, "lid", 0.25),
    ]


def test_boxes_score_defaults_to_nan() -> None:
    parsed = parse_boxes('[{"bbox_2d": [1, 2, 3, 4], "label": "x"}]', False)
    assert math.isnan(parsed.boxes[0].score)


def test_boxes_near_json_fallback() -> None:
    reply = "Objects: {bbox_2d: [1, 2, 30, 40], 'label': x, \"label\": \"car\" score: 0.7}\n" \
            '{"bbox_2d": [5, 6, 7, 8] "label": "truck"}'
    parsed = parse_boxes(reply, False)
    assert parsed.ok
    assert [(b.x1, b.y1, b.x2, b.y2, b.label) for b in parsed.boxes] == [
        (1.0, 2.0, 30.0, 40.0, "car"),
        (5.0, 6.0, 7.0, 8.0, "truck"),
    ]
    assert parsed.boxes[0].score == 0.7 and math.isnan(parsed.boxes[1].score)


def test_boxes_need_exactly_four_numbers() -> None:
    parsed = parse_boxes('[{"bbox_2d": [1, 2, 3]}, {"bbox_2d": [1, 2, 3, 4, 5]}]', False)
    assert parsed.status == "no_boxes" and parsed.boxes == []


def test_boxes_inverted_corners_are_dropped_not_swapped() -> None:
    reply = (
        '[{"bbox_2d": [50, 2, 10, 4], "label": "bad"}, '
        '{"bbox_2d": [1, 2, 3, 4], "label": "ok"}]'
    )
    parsed = parse_boxes(reply, False)
    assert parsed.ok and [box.label for box in parsed.boxes] == ["ok"]
    only_bad = parse_boxes('[{"bbox_2d": [1, 40, 3, 4]}]', False)
    assert only_bad.status == "invalid_box" and only_bad.boxes == []


def test_boxes_nan_is_invalid_inf_is_kept() -> None:
    assert parse_boxes('[{"bbox_2d": [NaN, 1, 2, 3]}]', False).status == "invalid_box"
    parsed = parse_boxes('[{"bbox_2d": [1, 2, Infinity, 3]}]', False)
    assert parsed.ok and math.isinf(parsed.boxes[0].x2)


def test_boxes_missing_think_end() -> None:
    parsed = parse_boxes('<think>[{"bbox_2d": [1, 2, 3, 4]}]', True)
    assert parsed.status == "no_think_end" and parsed.boxes == []


# --- choice -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "choice"),
    [
        ("<think>the box is open</think>\\boxed{Yes}", "yes"),
        ("</think>The answer is \\boxed{ NO. }", "no"),
        ("</think>\\boxed{A} ... no wait, \\boxed{B}", "B"),
        ("</think>\\boxed{\\text{(C) the red cup}}", "(C) the red cup"),
        ("</think>\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("</think>\\boxed{\\text{A} or \\text{B}}", "\\text{A} or \\text{B}"),
        ("</think>\\boxed{A} and a truncated \\boxed{B", "A"),
        ("</think>\\boxed {D}", "D"),
    ],
)
def test_choice(reply: str, choice: str) -> None:
    parsed = parse_choice(reply, True)
    assert parsed.ok and parsed.choice == choice


def test_choice_statuses() -> None:
    assert parse_choice("</think>I think it is A.", True).status == "no_boxed"
    empty = parse_choice("</think>\\boxed{ }", True)
    assert empty.status == "empty_boxed" and empty.choice == ""
    assert parse_choice("<think>\\boxed{A}", True).status == "no_think_end"


def test_last_boxed_opened_last_wins_when_nested() -> None:
    assert last_boxed("\\boxed{x \\boxed{y}}") == "y"
    assert last_boxed("no box") is None


# --- plan and free text -----------------------------------------------------------------------


def test_plan_numbered_and_bulleted_steps() -> None:
    reply = "<think>bowl left</think>Plan:\n1. Pick up the apple.\n2) Move to the bowl\n- release"
    parsed = parse_plan(reply, True)
    assert parsed.ok
    assert parsed.plan_steps == ["Pick up the apple.", "Move to the bowl", "release"]


def test_plan_single_sentence_is_one_step() -> None:
    parsed = parse_plan("Open the top drawer.", False)
    assert parsed.plan_steps == ["Open the top drawer."]


def test_free_text() -> None:
    parsed = parse_free_text("<think>red</think> The cup is red. ", True)
    assert (parsed.status, parsed.answer, parsed.reasoning) == ("ok", "The cup is red.", "red")


# --- dispatch ---------------------------------------------------------------------------------


def test_parse_reply_dispatches_on_task() -> None:
    assert coords(parse_reply(Task.POINT, "[1, 2]", False)) == [(1.0, 2.0)]
    assert len(parse_reply("detect", '[{"bbox_2d": [1, 2, 3, 4]}]', False).boxes) == 1
    assert parse_reply(Task.CHOICE, "\\boxed{A}", False).choice == "A"
    assert parse_reply(Task.PLAN, "1. a\n2. b", False).plan_steps == ["a", "b"]
    assert parse_reply(Task.ANSWER, "fine", False).answer == "fine"
    with pytest.raises(ValueError):
        parse_reply("auto", "[1, 2]", False)


@pytest.mark.parametrize("task", list(Task))
def test_parse_reply_not_text(task: Task) -> None:
    assert parse_reply(task, 42, True).status == "not_text"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("answer", "target"),
    [
        ('[{"points": [[10, 20]], "label": "bedroom", "target": "bed"}]', "bed"),
        ('```json\n[{"points": [[1, 2]], "label": "kitchen", "target": " fridge "}]\n```',
         "fridge"),
        ('Go to the kitchen. {"points": [[1, 2]], "target": "the fridge", ', "the fridge"),
        ('[{"points": [[10, 20]], "label": "bedroom"}]', None),
        ('[{"target": ""}]', None),
        ("", None),
    ],
)
def test_parse_region_target(answer, target):
    assert parse_region_target(answer) == target


def test_region_replies_are_read_as_points_with_region_labels():
    text = ('<think>Sleep means bed.</think>'
            '[{"points": [[37, 52]], "label": "bedroom", "target": "bed"}]')
    parsed = parse_reply("region", text)
    assert parsed.ok and parsed.reasoning == "Sleep means bed."
    assert [(p.x, p.y, p.label) for p in parsed.points] == [(37.0, 52.0, "bedroom")]


def test_no_think_reply_that_opens_think_and_never_closes_it_is_unfinished():
    from mimo_embodied_ros.core.parsing import split_thinking

    reasoning, answer, status = split_thinking("<think>the cup is at [10, 10] but", False)
    assert (answer, status) == ("", "no_think_end") and "[10, 10]" in reasoning
    assert split_thinking('[{"points": [[1, 2]]}]', False)[2] == "ok"
