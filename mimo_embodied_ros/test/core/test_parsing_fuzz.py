"""Property-based fuzzing of the parsers: no input text makes them raise, results are well typed,
and on official-format answers the points equal what the official evaluation pattern reads.
"""

from __future__ import annotations

import json
import math
import re
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimo_embodied_ros.core.parsing import (
    OFFICIAL_POINT_PATTERN,
    parse_boxes,
    parse_choice,
    parse_points,
    parse_reply,
    split_thinking,
)
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.types import ModelBox, ModelPoint, ParsedAnswer


def fuzz(max_examples: int) -> settings:
    """Settings of one fuzz test: no per-example deadline (the CI machine has 2 slow cores)."""
    return settings(
        max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


FRAGMENTS = [
    "<think>", "</think>", "[", "]", "[[", "]]", ",", ", ", " ", "\n", "-", ".", "0", "1", "7",
    "42", "999", "3.5", "1e400", "9" * 40, '"', "{", "}", ":", "bbox_2d", '"bbox_2d": ', "points",
    '"points": ', '"label": ', '"cup"', "score", "\\boxed{", "\\text{", "yes", "No", "(A)", "1. ",
    "- ", "```json\n", "```", "NaN", "Infinity", "null", "true", "\ufffd", "\ud800", "\x00", "٣",
]


def expected_answer(text: str, think_mode: bool) -> str:
    """The official rule, written independently: text after the last </think>."""
    if "</think>" in text:
        return text.split("</think>")[-1].strip()
    return "" if think_mode else text.strip()


def official_points(answer: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(OFFICIAL_POINT_PATTERN, answer)]


def assert_well_typed(parsed: ParsedAnswer) -> None:
    assert isinstance(parsed, ParsedAnswer)
    assert isinstance(parsed.status, str) and parsed.status
    assert parsed.status != "parse_error", "a parser hit an unforeseen exception"
    assert isinstance(parsed.answer, str) and isinstance(parsed.reasoning, str)
    for point in parsed.points:
        assert isinstance(point, ModelPoint)
        assert isinstance(point.x, float) and isinstance(point.y, float)
        assert isinstance(point.label, str)
    for box in parsed.boxes:
        assert isinstance(box, ModelBox)
        corners = (box.x1, box.y1, box.x2, box.y2)
        assert all(isinstance(value, float) and not math.isnan(value) for value in corners)
        assert box.x1 <= box.x2 and box.y1 <= box.y2
        assert isinstance(box.label, str) and isinstance(box.score, float)
    assert parsed.choice is None or isinstance(parsed.choice, str)
    assert all(isinstance(step, str) and step for step in parsed.plan_steps)
    if parsed.ok:
        assert parsed.answer


def check_every_parser(text: str, think_mode: bool) -> None:
    reasoning, answer, status = split_thinking(text, think_mode)
    assert all(isinstance(part, str) for part in (reasoning, answer, status))
    assert answer == expected_answer(text, think_mode)
    for task in Task:
        parsed = parse_reply(task, text, think_mode)
        assert_well_typed(parsed)
        assert parsed.answer == answer
    points = parse_points(text, think_mode)
    assert [(p.x, p.y) for p in points.points] == official_points(answer)
    assert points.ok == bool(points.points)


fragment_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)), max_size=40
).map("".join)

json_values = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
        st.text(max_size=8), st.sampled_from(["bbox_2d", "points", "label", "score"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.sampled_from(["bbox_2d", "points", "label", "score", "confidence"]),
                      st.text(max_size=6)),
            children,
            max_size=4,
        ),
    ),
    max_leaves=25,
)


@fuzz(700)
@given(text=st.text(), think_mode=st.booleans())
def test_arbitrary_text_never_raises(text: str, think_mode: bool) -> None:
    check_every_parser(text, think_mode)


@fuzz(900)
@given(text=fragment_text, think_mode=st.booleans())
def test_fragment_text_never_raises(text: str, think_mode: bool) -> None:
    check_every_parser(text, think_mode)


@fuzz(500)
@given(
    value=json_values,
    wrapper=st.sampled_from(["{}", "</think>{}", "```json\n{}\n```", "Answer: {} done", "{}]]"]),
    think_mode=st.booleans(),
)
def test_random_json_never_raises(value: object, wrapper: str, think_mode: bool) -> None:
    check_every_parser(wrapper.format(json.dumps(value)), think_mode)


def number_text() -> st.SearchStrategy[str]:
    """Numbers as the official pattern accepts them: optional minus, digits, optional decimals."""
    return st.builds(
        lambda minus, whole, frac: f"{minus}{whole}{frac}",
        st.sampled_from(["", "-"]),
        st.integers(min_value=0, max_value=10**6).map(str),
        st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,6}", fullmatch=True)),
    )


label_text = st.text(
    alphabet=st.characters(blacklist_characters="[<", blacklist_categories=["Cs"]), max_size=20
)


@fuzz(600)
@given(
    groups=st.lists(
        st.tuples(st.lists(st.tuples(number_text(), number_text()), min_size=1, max_size=4),
                  label_text),
        min_size=1,
        max_size=4,
    ),
    reasoning=st.one_of(st.none(), st.text(max_size=40)),
    fenced=st.booleans(),
    spaces=st.sampled_from(["", " ", "  "]),
)
def test_official_format_points_match_official_pattern(
    groups: list[tuple[list[tuple[str, str]], str]],
    reasoning: str | None,
    fenced: bool,
    spaces: str,
) -> None:
    entries = []
    for pairs, label in groups:
        rendered = ", ".join(f"[{spaces}{x},{spaces}{y}{spaces}]" for x, y in pairs)
        entries.append(f'{{"points": [{rendered}], "label": {json.dumps(label)}}}')
    answer = "[" + ", ".join(entries) + "]"
    if fenced:
        answer = f"```json\n{answer}\n```"
    think_mode = reasoning is not None
    reply = f"<think>{reasoning}</think>\n{answer}" if think_mode else answer

    parsed = parse_points(reply, think_mode)
    assert parsed.ok
    found = re.findall(OFFICIAL_POINT_PATTERN, reply.split("</think>")[-1])
    assert [(int(p.x), int(p.y)) for p in parsed.points] == [
        (int(float(x)), int(float(y))) for x, y in found
    ]
    generated = [(x, y, label) for pairs, label in groups for x, y in pairs]
    assert [(p.x, p.y, p.label) for p in parsed.points] == [
        (float(x), float(y), label) for x, y, label in generated
    ]


@fuzz(300)
@given(
    boxes=st.lists(
        st.tuples(st.lists(number_text(), min_size=4, max_size=4), label_text,
                  st.one_of(st.none(), st.floats(0, 1))),
        min_size=1,
        max_size=5,
    ),
    near_json=st.booleans(),
)
def test_generated_boxes_round_trip(
    boxes: list[tuple[list[str], str, float | None]], near_json: bool
) -> None:
    entries = []
    for corners, label, score in boxes:
        fields = [f'"bbox_2d": [{", ".join(corners)}]', f'"label": {json.dumps(label)}']
        if score is not None:
            fields.append(f'"score": {score!r}')
        entries.append("{" + ", ".join(fields) + "}")
    # Near-JSON: no list brackets and no commas between objects, so JSON decoding fails.
    answer = " ".join(entries) if near_json else "[" + ", ".join(entries) + "]"
    parsed = parse_boxes(answer, False)
    assert_well_typed(parsed)

    def valid(c: list[str]) -> bool:
        return float(c[0]) <= float(c[2]) and float(c[1]) <= float(c[3])

    expected = [
        (*map(float, corners), label, score)
        for corners, label, score in boxes
        if valid(corners)
    ]
    got = [
        (b.x1, b.y1, b.x2, b.y2, b.label, None if math.isnan(b.score) else b.score)
        for b in parsed.boxes
    ]
    assert got == expected
    assert parsed.status == ("ok" if expected else "invalid_box")


@fuzz(300)
@given(
    content=st.text(alphabet=st.characters(blacklist_characters="{}\\"), max_size=20),
    before=st.text(max_size=20).filter(lambda t: "</think>" not in t),
)
def test_boxed_content_round_trip(content: str, before: str) -> None:
    parsed = parse_choice(f"<think>x</think>{before}\\boxed{{{content}}}", True)
    assert_well_typed(parsed)
    expected = content.strip()
    if expected.rstrip(".").lower() in ("yes", "no"):
        expected = expected.rstrip(".").lower()
    assert parsed.choice == expected
    assert parsed.status == ("ok" if expected else "empty_boxed")


def test_pathological_inputs_are_fast_and_safe() -> None:
    """Long adversarial replies (a runaway model) must not stall a node or raise."""
    deep_label = '[{"points": [[1, 2]], "label": ' + "[" * 990 + "]" * 990 + "}]"
    replies = [
        "\\boxed{" * 20000, "[" + "1" * 200000, "\n" * 100000 + "x", "[" * 100000,
        "{" * 100000, "```" * 30000, "bbox_2d: [1, 2, 3, 4] " * 10000, '"label": "' * 20000,
        "[1, 2]" * 30000, "<think>" * 30000, "1. " * 50000, deep_label,
    ]
    started = time.perf_counter()
    for reply in replies:
        for task in Task:
            for think_mode in (True, False):
                assert_well_typed(parse_reply(task, reply, think_mode))
    assert time.perf_counter() - started < 20.0
