"""Property-based fuzzing of the parsers: no input text makes them raise, results are well typed,
and on official-format answers the points equal what the official evaluation pattern reads; on
tuple, bare-list and 0-1 answers they read what the official scorer's fallbacks read.
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
    TUPLE_POINT_PATTERN,
    parse_boxes,
    parse_choice,
    parse_points,
    parse_reply,
    split_thinking,
)
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.types import OK_STATUSES, ModelBox, ModelPoint, ParsedAnswer


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
    "(", ")", "((", "))", "0.5", "0.25", "1.0", "bbox", '"box_2d": ', '"box": ', "[1, 2, 3, 4]",
    "(10, 20)", "(0.5, 0.5)", "[0.1, 0.2, 0.3, 0.4]", "(1, 2, 30, 40)", "-Infinity",
]


def expected_answer(text: str, think_mode: bool) -> str:
    """The official rule, written independently: text after the last </think>; a reply that
    opens <think> and never closes it is unfinished thinking in either mode (no answer)."""
    if "</think>" in text:
        return text.split("</think>")[-1].strip()
    unfinished = text.lstrip().startswith("<think>")
    return "" if think_mode or unfinished else text.strip()


def official_points(answer: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(OFFICIAL_POINT_PATTERN, answer)]


def tuple_points(answer: str) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in re.findall(TUPLE_POINT_PATTERN, answer)]


def all_in_unit_interval(values: list[float]) -> bool:
    return bool(values) and all(0.0 <= value <= 1.0 for value in values)


def expected_point_status(points: list[tuple[float, float]], found_as: str) -> str:
    """The status rule of model-io.md, written independently of the parser."""
    if not points:
        return "no_coordinates"
    if all_in_unit_interval([value for point in points for value in point]):
        return "normalized_points"
    return found_as


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
        assert box.normalized == all_in_unit_interval(list(corners))
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
    got = [(p.x, p.y) for p in points.points]
    if points.status in ("not_text", "empty", "no_think_end"):
        assert got == []
        return
    pairs, found_as = official_points(answer) or tuple_points(answer), "ok"
    if not pairs:
        # Only boxes: their centres (the box reader is checked on its own below).
        boxes = parse_boxes(answer, False).boxes
        pairs = [(b.x1 / 2 + b.x2 / 2, b.y1 / 2 + b.y2 / 2) for b in boxes]
        pairs, found_as = [(x, y) for x, y in pairs if x == x and y == y], "box_centres"
    assert got == pairs
    assert points.status == expected_point_status(pairs, found_as)
    assert points.ok == (points.status in OK_STATUSES)


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
    coordinates = [float(value) for pairs, _ in groups for pair in pairs for value in pair]
    assert parsed.status == ("normalized_points" if all_in_unit_interval(coordinates) else "ok")
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
    key=st.sampled_from(["bbox_2d", "bbox", "box_2d", "box", "region"]),
)
def test_generated_boxes_round_trip(
    boxes: list[tuple[list[str], str, float | None]], near_json: bool, key: str
) -> None:
    entries = []
    for corners, label, score in boxes:
        fields = [f'"{key}": [{", ".join(corners)}]', f'"label": {json.dumps(label)}']
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
        (*map(float, corners), label, score, all_in_unit_interval(list(map(float, corners))))
        for corners, label, score in boxes
        if valid(corners)
    ]
    got = [
        (b.x1, b.y1, b.x2, b.y2, b.label, None if math.isnan(b.score) else b.score, b.normalized)
        for b in parsed.boxes
    ]
    assert got == expected
    assert parsed.status == ("ok" if expected else "invalid_box")


prose = st.text(
    alphabet=st.characters(blacklist_characters="[]()<>{}", blacklist_categories=["Cs", "Nd"]),
    max_size=12,
)
unit_number = st.one_of(
    st.sampled_from(["0", "1", "0.5", "1.0", "0.000001"]),
    st.from_regex(r"0\.[0-9]{1,6}", fullmatch=True),
)


@fuzz(300)
@given(
    pairs=st.lists(st.tuples(number_text(), number_text()), min_size=1, max_size=5),
    gaps=st.lists(prose, min_size=6, max_size=6),
    spaces=st.sampled_from(["", " ", "  "]),
)
def test_tuple_points_are_the_fallback(
    pairs: list[tuple[str, str]], gaps: list[str], spaces: str
) -> None:
    rendered = [f"({spaces}{x},{spaces}{y}{spaces})" for x, y in pairs]
    spans = zip(gaps[: len(rendered)], rendered, strict=True)
    answer = "".join(gap + pair for gap, pair in spans) + gaps[-1]
    parsed = parse_points(answer, False)
    expected = [(float(x), float(y)) for x, y in pairs]
    assert [(p.x, p.y) for p in parsed.points] == expected
    assert parsed.status == expected_point_status(expected, "ok")
    # One official [x, y] pair anywhere and the tuples are ignored.
    with_pair = parse_points(answer + " [700, 800]", False)
    assert [(p.x, p.y) for p in with_pair.points] == [(700.0, 800.0)] and with_pair.ok


@fuzz(300)
@given(
    boxes=st.lists(st.lists(number_text(), min_size=4, max_size=4), min_size=1, max_size=3),
    brackets=st.sampled_from(["[]", "()"]),
    before=prose,
)
def test_first_bare_box_is_read(boxes: list[list[str]], brackets: str, before: str) -> None:
    opening, closing = brackets
    answer = before + " ".join(f"{opening}{', '.join(corners)}{closing}" for corners in boxes)
    parsed = parse_boxes(answer, False)
    assert_well_typed(parsed)
    first = [float(value) for value in boxes[0]]
    if first[0] <= first[2] and first[1] <= first[3]:
        assert parsed.status == "ok"
        assert [(b.x1, b.y1, b.x2, b.y2) for b in parsed.boxes] == [tuple(first)]
        assert parsed.boxes[0].normalized == all_in_unit_interval(first)
        assert parsed.boxes[0].label == "" and math.isnan(parsed.boxes[0].score)
    else:
        assert parsed.status == "invalid_box" and parsed.boxes == []


@fuzz(300)
@given(
    pairs=st.lists(st.tuples(unit_number, unit_number), min_size=1, max_size=4),
    form=st.sampled_from(["json", "tuples", "prose"]),
)
def test_normalized_points_are_flagged_not_ok(pairs: list[tuple[str, str]], form: str) -> None:
    if form == "json":
        rendered = ", ".join(f"[{x}, {y}]" for x, y in pairs)  # as written (json.dumps: 1e-06)
        answer = f'[{{"points": [{rendered}], "label": "a"}}]'
    elif form == "tuples":
        answer = "at " + " and ".join(f"({x}, {y})" for x, y in pairs)
    else:
        answer = "at " + " and ".join(f"[{x}, {y}]" for x, y in pairs)
    parsed = parse_points(answer, False)
    assert parsed.status == "normalized_points" and not parsed.ok
    assert [(p.x, p.y) for p in parsed.points] == [(float(x), float(y)) for x, y in pairs]


@fuzz(200)
@given(
    corners=st.lists(st.one_of(number_text(), unit_number), min_size=4, max_size=4),
    key=st.sampled_from(["bbox_2d", "bbox", "box_2d", "box", None]),
)
def test_box_only_pointing_reply_gives_centres(corners: list[str], key: str | None) -> None:
    listed = f"[{', '.join(corners)}]"
    answer = f'[{{"{key}": {listed}, "label": "mug"}}]' if key else f"The mug: {listed}"
    parsed = parse_points(answer, False)
    assert_well_typed(parsed)
    x1, y1, x2, y2 = map(float, corners)
    if not (x1 <= x2 and y1 <= y2):
        assert parsed.status == "no_coordinates"
        return
    centre = (x1 / 2 + x2 / 2, y1 / 2 + y2 / 2)
    assert [(p.x, p.y) for p in parsed.points] == [centre]
    assert parsed.points[0].label == ("mug" if key else "")
    assert parsed.status == expected_point_status([centre], "box_centres")


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


ADVERSARIAL_50KB = {
    "nested brackets": "[" * 25000 + "]" * 25000,
    "nested parentheses": "(" * 25000 + ")" * 25000,
    "nested lists of digits": "[1, " * 12500,
    "nested tuples of digits": "(1, " * 12500,
    "digit run in a bracket": "[" + "7" * 50000,
    "decimal run in a tuple": "(0." + "1" * 50000,
    "almost boxes": "[1, 2, 3, " * 5000,
    "almost tuple boxes": "(1, 2, 3, " * 5000,
    "letter run then a key": "a" * 50000 + ": [1, 2, 3, 4]",
    "word keys": "key: " * 10000,
    "keys without a box": '"bbox": [1, 2, ' * 3000,
    "spaces in a box": "[1," + " " * 50000 + "2",
    "yes flood": "yes" * 17000,
    "mixed": "[[(1, 2, [3, (4, 0.5" * 2500,
}


def test_each_50kb_adversarial_answer_parses_in_well_under_a_second() -> None:
    """No pattern backtracks catastrophically: each 50 kB answer, all parsers, under 0.5 s."""
    for name, answer in ADVERSARIAL_50KB.items():
        assert len(answer) >= 45000, name
        started = time.perf_counter()
        for task in Task:
            assert_well_typed(parse_reply(task, answer, False))
        assert time.perf_counter() - started < 0.5, name
