"""Readers of MiMo-Embodied replies, following the official evaluation code (model-io.md).

Every parser takes whatever text a backend returned and never raises on it: model output is
untrusted input and a node must keep running. Anything odd is reported in ``ParsedAnswer.status``
("ok", "box_centres" or a short reason; ``ParsedAnswer.ok`` tells which count as read). Inputs
that are not ``str`` give status "not_text". Beyond the official formats the parsers read what
the official scorer also accepts: ``(x, y)`` tuples, boxes under any key, bare four-number lists,
and they flag 0-1 (normalized) answers the prompt did not ask for.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import defaultdict
from collections.abc import Callable

from mimo_embodied_ros.core.box_parsing import (
    as_float,
    box_centre,
    dicts_with,
    find_boxes,
    is_normalized,
    is_number,
    is_valid_box,
    label_text,
    load_json,
    unescape,
)
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.types import ModelPoint, ParsedAnswer

OFFICIAL_POINT_PATTERN = r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]"
# The scorer's fallback when no [x, y] pair is found: (x, y) tuples, same numbers and spacing.
TUPLE_POINT_PATTERN = r"\(\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\)"
THINK_START = "<think>"
THINK_END = "</think>"

_POINT_RE = re.compile(OFFICIAL_POINT_PATTERN)
_TUPLE_RE = re.compile(TUPLE_POINT_PATTERN)
_TARGET_RE = re.compile(r"""["']?target["']?\s*:\s*"((?:[^"\\]|\\.)*)\"""")
_BOXED_TOKEN_RE = re.compile(r"\\boxed\s*\{|\{|\}")
# The leading word yes / no of an answer without \boxed{}: not followed by another letter.
_LEADING_YES_NO_RE = re.compile(r"(yes|no)(?![^\W\d_])", re.IGNORECASE)
_TEXT_WRAPPER_RE = re.compile(r"^\\(?:text|textbf|mathrm|mathbf)\s*\{(.*)\}$", re.DOTALL)
# [ \t] rather than \s: \s would cross newlines and make blank-line floods quadratic.
_STEP_RE = re.compile(
    r"^[ \t]*(?:(?:step[ \t]*)?\d+[ \t]*[.):]|[-*\u2022])[ \t]+(.*\S)[ \t]*$",
    re.IGNORECASE | re.MULTILINE,
)

ParserFn = Callable[[str, bool], ParsedAnswer]


def _never_raises(parser: ParserFn) -> ParserFn:
    """Guard a parser: non-text gives "not_text"; an unforeseen bug gives "parse_error".

    The tests assert "parse_error" never appears, so this guard catches regressions in
    production without hiding them in development.
    """

    @functools.wraps(parser)
    def guarded(text: str, think_mode: bool = True) -> ParsedAnswer:
        if not isinstance(text, str):
            return ParsedAnswer(status="not_text")
        try:
            return parser(text, think_mode)
        except Exception:  # noqa: BLE001 - model output must never crash a node
            return ParsedAnswer(status="parse_error", answer=text)

    return guarded


def split_thinking(text: str, think_mode: bool = True) -> tuple[str, str, str]:
    """Split a reply into (reasoning, answer, status).

    The answer is the text after the last ``</think>``; the reasoning is what lies between
    ``<think>`` and that ``</think>`` (or everything before it). In thinking mode a reply without
    ``</think>`` has an empty answer (the official scorer treats it as empty) and status
    "no_think_end", its text kept as reasoning for the operator. In no-think mode such a reply
    is all answer, unless it begins with ``<think>``: then it is unfinished thinking too.
    """
    if not isinstance(text, str):
        return "", "", "not_text"
    if not text.strip():
        return "", "", "empty"
    end = text.rfind(THINK_END)
    if end < 0:
        # A reply that opens <think> and never closes it is unfinished thinking in either mode.
        if think_mode or text.lstrip().startswith(THINK_START):
            start = text.find(THINK_START)
            reasoning = text[start + len(THINK_START):] if start >= 0 else text
            return reasoning.strip(), "", "no_think_end"
        return "", text.strip(), "ok"
    before = text[:end]
    start = before.find(THINK_START)
    reasoning = before[start + len(THINK_START):] if start >= 0 else before
    answer = text[end + len(THINK_END):].strip()
    return reasoning.strip(), answer, "ok" if answer else "empty"


def _json_pairs(points: object) -> list[tuple[float, float]]:
    """The [x, y] pairs of one JSON "points" value (a list of pairs or one pair)."""
    if isinstance(points, list) and len(points) == 2 and all(map(is_number, points)):
        return [(as_float(points[0]), as_float(points[1]))]
    if not isinstance(points, list):
        return []
    return [
        (as_float(pair[0]), as_float(pair[1]))
        for pair in points
        if isinstance(pair, list) and len(pair) == 2 and all(map(is_number, pair))
    ]


def _labelled_pairs(tree: object) -> list[tuple[float, float, str]]:
    """(x, y, label) of the official JSON list [{"points": [...], "label": ...}], if it parsed."""
    labelled: list[tuple[float, float, str]] = []
    for entry in dicts_with(tree, ("points",)):
        label = label_text(entry.get("label"))
        labelled.extend((x, y, label) for x, y in _json_pairs(entry.get("points")))
    return labelled


def _pattern_points(answer: str, tree: object) -> list[ModelPoint]:
    """Every [x, y] pair of the official pattern, labelled from the JSON where the pairs agree."""
    labelled = _labelled_pairs(tree)
    # Walk the pattern's pairs and the JSON's pairs in order, matching equal coordinates; pairs
    # the pattern finds outside the JSON points (e.g. inside a label) keep the label "".
    json_indices: dict[tuple[float, float], list[int]] = defaultdict(list)
    for index, (x, y, _) in enumerate(labelled):
        json_indices[(x, y)].append(index)
    points: list[ModelPoint] = []
    next_labelled = 0
    for x_text, y_text in _POINT_RE.findall(answer):
        try:
            x, y = float(x_text), float(y_text)
        except ValueError:  # \d also matches digits float() may not know
            continue
        label = ""
        candidates = json_indices.get((x, y), [])
        position = bisect.bisect_left(candidates, next_labelled)
        if position < len(candidates):
            label = labelled[candidates[position]][2]
            next_labelled = candidates[position] + 1
        points.append(ModelPoint(x=x, y=y, label=label))
    return points


def _tuple_points(answer: str) -> list[ModelPoint]:
    """Every (x, y) tuple of the answer: the scorer's fallback when no [x, y] pair is found."""
    points = []
    for x_text, y_text in _TUPLE_RE.findall(answer):
        try:
            points.append(ModelPoint(x=float(x_text), y=float(y_text)))
        except ValueError:
            continue
    return points


def _box_centre_points(answer: str, tree: object) -> list[ModelPoint]:
    """The centres of the valid boxes of a reply that held boxes where points were asked for."""
    points = []
    for box in filter(is_valid_box, find_boxes(answer, tree)):
        x, y = box_centre(box)
        if x == x and y == y:  # -inf and inf corners have no centre (NaN)
            points.append(ModelPoint(x=x, y=y, label=box.label))
    return points


def _points_status(points: list[ModelPoint], found_as: str) -> str:
    """ "no_coordinates", "normalized_points" (every coordinate in [0, 1]) or ``found_as``."""
    if not points:
        return "no_coordinates"
    if is_normalized([value for point in points for value in (point.x, point.y)]):
        return "normalized_points"
    return found_as


@_never_raises
def parse_points(text: str, think_mode: bool = True) -> ParsedAnswer:
    """Points: every [x, y] pair the official pattern finds in the answer, as floats.

    The official scorer casts coordinates to int; floats are kept here so that sub-pixel answers
    survive the rescale to the source image. Labels come from the official JSON
    (``[{"points": [[x, y], ...], "label": ...}]``, optionally in ```json fences) when it parses
    and its pairs line up with the pattern's; otherwise the label is "". Overflowing numbers
    become inf and are kept: the coordinate mapping reports them as outside the image.

    When no pair is found: ``(x, y)`` tuples (status "ok"), else the centres of the reply's boxes
    (any key, or the first bare four-number list; status "box_centres", which counts as ok).
    Points whose coordinates all lie in [0, 1] are listed with status "normalized_points"
    (not ok): a 0-1 answer the prompt did not ask for, never to be lifted as pixels.
    """
    reasoning, answer, status = split_thinking(text, think_mode)
    if status != "ok":
        return ParsedAnswer(status=status, answer=answer, reasoning=reasoning)
    tree = load_json(answer)
    points = _pattern_points(answer, tree) or _tuple_points(answer)
    found_as = "ok"
    if not points:
        points, found_as = _box_centre_points(answer, tree), "box_centres"
    return ParsedAnswer(
        status=_points_status(points, found_as),
        answer=answer,
        reasoning=reasoning,
        points=points,
    )


@_never_raises
def parse_boxes(text: str, think_mode: bool = True) -> ParsedAnswer:
    """2D boxes: lists of four numbers under any key (``bbox_2d`` first), JSON then near-JSON.

    When no keyed box is found, the first bare ``[a, b, c, d]`` or ``(a, b, c, d)``, as the
    official scorer. Boxes whose values all lie in [0, 1] are kept with ``normalized=True``: the
    caller scales them by the resized width and height. Boxes whose corners are not top-left then
    bottom-right are dropped, not swapped: the status says "invalid_box" only when no valid box
    remains ("no_boxes" when there was none at all).
    """
    reasoning, answer, status = split_thinking(text, think_mode)
    if status != "ok":
        return ParsedAnswer(status=status, answer=answer, reasoning=reasoning)
    candidates = find_boxes(answer, load_json(answer))
    boxes = [box for box in candidates if is_valid_box(box)]
    status = "ok" if boxes else ("invalid_box" if candidates else "no_boxes")
    return ParsedAnswer(status=status, answer=answer, reasoning=reasoning, boxes=boxes)


def last_boxed(answer: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (nested braces matched), or None.

    "Last" means the one opened last, as in the official scorer; one linear pass, so long
    adversarial text cannot make it slow.
    """
    open_stack: list[tuple[bool, int]] = []  # (is a \boxed{, content start)
    last: tuple[int, int] | None = None
    for token in _BOXED_TOKEN_RE.finditer(answer):
        if token.group() == "}":
            if open_stack:
                is_boxed, content_start = open_stack.pop()
                if is_boxed and (last is None or content_start > last[0]):
                    last = (content_start, token.start())
        else:
            open_stack.append((token.group() != "{", token.end()))
    return None if last is None else answer[last[0]:last[1]]


@_never_raises
def parse_choice(text: str, think_mode: bool = True) -> ParsedAnswer:
    """Multiple choice / yes-no: the content of the last \\boxed{...}, stripped.

    A box holding only ``\\text{...}`` is unwrapped; yes and no are lower-cased (the benchmarks
    expect exactly ``yes`` / ``no``). Without a box, an answer that begins with the word yes or
    no ("Yes, the drawer is open.") gives that word (the robot-friendly reading of model-io.md);
    otherwise the status is "no_boxed". "empty_boxed" when the box is empty.
    """
    reasoning, answer, status = split_thinking(text, think_mode)
    if status != "ok":
        return ParsedAnswer(status=status, answer=answer, reasoning=reasoning)
    content = last_boxed(answer)
    if content is None:
        leading = _LEADING_YES_NO_RE.match(answer)
        if leading:
            choice = leading.group(1).lower()
            return ParsedAnswer(status="ok", answer=answer, reasoning=reasoning, choice=choice)
        return ParsedAnswer(status="no_boxed", answer=answer, reasoning=reasoning)
    choice = content.strip()
    wrapped = _TEXT_WRAPPER_RE.match(choice)
    if wrapped and last_boxed("\\boxed{" + wrapped.group(1) + "}") == wrapped.group(1):
        choice = wrapped.group(1).strip()
    if choice.rstrip(".").lower() in ("yes", "no"):
        choice = choice.rstrip(".").lower()
    return ParsedAnswer(
        status="ok" if choice else "empty_boxed", answer=answer, reasoning=reasoning, choice=choice
    )


@_never_raises
def parse_plan(text: str, think_mode: bool = True) -> ParsedAnswer:
    """A plan: the answer text, split into steps at numbered or bulleted lines.

    An answer without such lines is one step.
    """
    reasoning, answer, status = split_thinking(text, think_mode)
    if status != "ok":
        return ParsedAnswer(status=status, answer=answer, reasoning=reasoning)
    steps = _STEP_RE.findall(answer) or [answer]
    return ParsedAnswer(status="ok", answer=answer, reasoning=reasoning, plan_steps=steps)


@_never_raises
def parse_free_text(text: str, think_mode: bool = True) -> ParsedAnswer:
    """A free-form answer: the text after the reasoning."""
    reasoning, answer, status = split_thinking(text, think_mode)
    return ParsedAnswer(status=status, answer=answer, reasoning=reasoning)


_PARSERS: dict[Task, ParserFn] = {
    Task.POINT: parse_points,
    Task.DETECT: parse_boxes,
    Task.CHOICE: parse_choice,
    Task.PLAN: parse_plan,
    Task.ANSWER: parse_free_text,
    Task.REGION: parse_points,
}


def parse_region_target(answer: str) -> str | None:
    """The "target" of a region answer (the object to look for in that region), or None.

    Reads the first JSON object with a text "target" field; falls back to a tolerant pattern for
    answers that are almost JSON. The caller passes the answer (text after </think>).
    """
    if not isinstance(answer, str):
        return None
    for entry in dicts_with(load_json(answer), ("target",)):
        target = entry.get("target")
        if isinstance(target, str) and target.strip():
            return target.strip()
    match = _TARGET_RE.search(answer)
    if match and match.group(1).strip():
        return unescape(match.group(1)).strip()
    return None


def parse_reply(task: Task | str, text: str, think_mode: bool = True) -> ParsedAnswer:
    """Read a reply with the parser of its task (ValueError on an unknown task, never on text)."""
    return _PARSERS[Task(task)](text, think_mode)
