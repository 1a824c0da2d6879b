"""Readers of MiMo-Embodied replies, following the official evaluation code (model-io.md).

Every parser takes whatever text a backend returned and never raises on it: model output is
untrusted input and a node must keep running. Anything odd is reported in ``ParsedAnswer.status``
("ok" or a short reason). Inputs that are not ``str`` give status "not_text".
"""

from __future__ import annotations

import bisect
import functools
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterator

from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.types import ModelBox, ModelPoint, ParsedAnswer

OFFICIAL_POINT_PATTERN = r"\[\s*(-?\d+(?:\.\d+)?),\s*(-?\d+(?:\.\d+)?)\s*\]"
THINK_START = "<think>"
THINK_END = "</think>"

_POINT_RE = re.compile(OFFICIAL_POINT_PATTERN)
_NUMBER = r"(-?\d+(?:\.\d+)?)"
# Near-JSON fallback: a bbox_2d key (quoted or not) followed by a list of four numbers.
_BOX_RE = re.compile(
    r"""["']?bbox_2d["']?\s*:\s*\[\s*""" + r"\s*,\s*".join([_NUMBER] * 4) + r"\s*\]"
)
_LABEL_RE = re.compile(r"""["']?label["']?\s*:\s*"((?:[^"\\]|\\.)*)\"""")
_TARGET_RE = re.compile(r"""["']?target["']?\s*:\s*"((?:[^"\\]|\\.)*)\"""")
_SCORE_RE = re.compile(
    r"""["']?(?:score|confidence)["']?\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"""
)
_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)
_BOXED_TOKEN_RE = re.compile(r"\\boxed\s*\{|\{|\}")
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
    is all answer.
    """
    if not isinstance(text, str):
        return "", "", "not_text"
    if not text.strip():
        return "", "", "empty"
    end = text.rfind(THINK_END)
    if end < 0:
        if think_mode:
            start = text.find(THINK_START)
            reasoning = text[start + len(THINK_START):] if start >= 0 else text
            return reasoning.strip(), "", "no_think_end"
        return "", text.strip(), "ok"
    before = text[:end]
    start = before.find(THINK_START)
    reasoning = before[start + len(THINK_START):] if start >= 0 else before
    answer = text[end + len(THINK_END):].strip()
    return reasoning.strip(), answer, "ok" if answer else "empty"


def _json_candidates(answer: str) -> Iterator[str]:
    """Texts that may hold the JSON answer: fenced blocks, the whole answer, its bracketed span."""
    yield from (match.group(1) for match in _FENCE_RE.finditer(answer))
    yield answer
    for opening, closing in ("[]", "{}"):
        first, last = answer.find(opening), answer.rfind(closing)
        if 0 <= first < last:
            yield answer[first:last + 1]


def _load_json(answer: str) -> object | None:
    """The first candidate that decodes as JSON, else None (never raises)."""
    for candidate in _json_candidates(answer):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            continue
    return None


def _dicts_with(tree: object, keys: tuple[str, ...]) -> list[dict]:
    """Every dict in a decoded JSON tree that has one of ``keys``, in document order."""
    found: list[dict] = []
    stack: list[object] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if any(key in node for key in keys):
                found.append(node)
            else:
                stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_float(value: object) -> float:
    """A JSON number as float; ints too large for a float become inf instead of raising."""
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


def _label_text(value: object) -> str:
    """A JSON label as text (non-strings in JSON notation; "" for none or unprintable)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return ""


def _json_pairs(points: object) -> list[tuple[float, float]]:
    """The [x, y] pairs of one JSON "points" value (a list of pairs or one pair)."""
    if isinstance(points, list) and len(points) == 2 and all(map(_is_number, points)):
        return [(_as_float(points[0]), _as_float(points[1]))]
    if not isinstance(points, list):
        return []
    return [
        (_as_float(pair[0]), _as_float(pair[1]))
        for pair in points
        if isinstance(pair, list) and len(pair) == 2 and all(map(_is_number, pair))
    ]


def _labelled_pairs(answer: str) -> list[tuple[float, float, str]]:
    """(x, y, label) of the official JSON list [{"points": [...], "label": ...}], if it parses."""
    tree = _load_json(answer)
    labelled: list[tuple[float, float, str]] = []
    for entry in _dicts_with(tree, ("points",)):
        label = _label_text(entry.get("label"))
        labelled.extend((x, y, label) for x, y in _json_pairs(entry.get("points")))
    return labelled


@_never_raises
def parse_points(text: str, think_mode: bool = True) -> ParsedAnswer:
    """Points: every [x, y] pair the official pattern finds in the answer, as floats.

    The official scorer casts coordinates to int; floats are kept here so that sub-pixel answers
    survive the rescale to the source image. Labels come from the official JSON
    (``[{"points": [[x, y], ...], "label": ...}]``, optionally in ```json fences) when it parses
    and its pairs line up with the pattern's; otherwise the label is "". Overflowing numbers
    become inf and are kept: the coordinate mapping reports them as outside the image.
    """
    reasoning, answer, status = split_thinking(text, think_mode)
    if status != "ok":
        return ParsedAnswer(status=status, answer=answer, reasoning=reasoning)
    labelled = _labelled_pairs(answer)
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
    return ParsedAnswer(
        status="ok" if points else "no_coordinates",
        answer=answer,
        reasoning=reasoning,
        points=points,
    )


def _score(entry: dict) -> float:
    for key in ("score", "confidence"):
        value = entry.get(key)
        if _is_number(value):
            return _as_float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    return math.nan


def _json_boxes(answer: str) -> list[ModelBox]:
    """Boxes from dicts whose "bbox_2d" is a list of exactly four numbers."""
    boxes = []
    for entry in _dicts_with(_load_json(answer), ("bbox_2d",)):
        corners = entry["bbox_2d"]
        if isinstance(corners, list) and len(corners) == 4 and all(map(_is_number, corners)):
            x1, y1, x2, y2 = map(_as_float, corners)
            boxes.append(ModelBox(x1, y1, x2, y2, _label_text(entry.get("label")), _score(entry)))
    return boxes


def _unescape(raw: str) -> str:
    """A label read by regex, with its JSON escapes decoded when they are valid."""
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw


def _object_end(text: str, start: int, limit: int) -> int:
    """Index of the first "}" outside a double-quoted string in text[start:limit], else limit."""
    in_string = escaped = False
    for index in range(start, limit):
        char = text[index]
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "}":
            return index
    return limit


def _regex_boxes(answer: str) -> list[ModelBox]:
    """Boxes from near-JSON text, each with the label/score found in its own {...} object."""
    boxes = []
    matches = list(_BOX_RE.finditer(answer))
    previous_object_end = 0
    for index, match in enumerate(matches):
        next_start = matches[index + 1].start() if index + 1 < len(matches) else len(answer)
        object_end = _object_end(answer, match.end(), next_start)
        context = answer[previous_object_end:match.start()] + answer[match.end():object_end]
        previous_object_end = object_end
        try:
            x1, y1, x2, y2 = (float(value) for value in match.groups())
        except ValueError:
            continue
        label_match = _LABEL_RE.search(context)
        score_match = _SCORE_RE.search(context)
        label = _unescape(label_match.group(1)) if label_match else ""
        try:
            score = float(score_match.group(1)) if score_match else math.nan
        except ValueError:
            score = math.nan
        boxes.append(ModelBox(x1, y1, x2, y2, label, score))
    return boxes


def _is_valid_box(box: ModelBox) -> bool:
    """Corners top-left then bottom-right and no NaN (inf is kept for the bounds check)."""
    corners = (box.x1, box.y1, box.x2, box.y2)
    return not any(map(math.isnan, corners)) and box.x1 <= box.x2 and box.y1 <= box.y2


@_never_raises
def parse_boxes(text: str, think_mode: bool = True) -> ParsedAnswer:
    """2D boxes from ``bbox_2d`` lists of four numbers: JSON first, a tolerant regex after.

    Boxes whose corners are not top-left then bottom-right are dropped, not swapped: the status
    says "invalid_box" only when no valid box remains ("no_boxes" when there was none at all).
    """
    reasoning, answer, status = split_thinking(text, think_mode)
    if status != "ok":
        return ParsedAnswer(status=status, answer=answer, reasoning=reasoning)
    candidates = _json_boxes(answer) or _regex_boxes(answer)
    boxes = [box for box in candidates if _is_valid_box(box)]
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
    expect exactly ``yes`` / ``no``). Status "no_boxed" when there is no box, "empty_boxed" when
    the box is empty.
    """
    reasoning, answer, status = split_thinking(text, think_mode)
    if status != "ok":
        return ParsedAnswer(status=status, answer=answer, reasoning=reasoning)
    content = last_boxed(answer)
    if content is None:
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
    for entry in _dicts_with(_load_json(answer), ("target",)):
        target = entry.get("target")
        if isinstance(target, str) and target.strip():
            return target.strip()
    match = _TARGET_RE.search(answer)
    if match and match.group(1).strip():
        return _unescape(match.group(1)).strip()
    return None


def parse_reply(task: Task | str, text: str, think_mode: bool = True) -> ParsedAnswer:
    """Read a reply with the parser of its task (ValueError on an unknown task, never on text)."""
    return _PARSERS[Task(task)](text, think_mode)
