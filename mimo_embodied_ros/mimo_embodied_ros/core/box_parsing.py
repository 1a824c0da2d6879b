"""Tolerant JSON reading and 2D box extraction, shared by the reply parsers (model-io.md).

Boxes are read as the official scorer reads them, whatever the key: a list of exactly four numbers
(``bbox_2d``, ``bbox``, ``box_2d``, ``box`` or any other key), from JSON first, then from near-JSON
text, and, when no keyed box is found, the first bare ``[a, b, c, d]`` or ``(a, b, c, d)``. A box
whose four values all lie in [0, 1] is marked ``normalized``; the caller, who knows the resized
image size, scales it. Nothing here raises on model text; every pattern is anchored so that
50 kB of adversarial text is read in linear time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator

from mimo_embodied_ros.core.types import ModelBox

NUMBER = r"(-?\d+(?:\.\d+)?)"
BOX_KEYS = ("bbox_2d", "bbox", "box_2d", "box")
_FOUR_NUMBERS = r"\s*,\s*".join([NUMBER] * 4)
# Near-JSON: a key (quoted or not) followed by a list of four numbers. The look-behind starts a
# key only at a word start, so a long run of letters cannot make ``\w*`` backtrack quadratically.
_KEYED_BOX_RE = re.compile(
    r"""(?<![\w"'])["']?[^\W\d]\w*["']?\s*:\s*\[\s*""" + _FOUR_NUMBERS + r"\s*\]"
)
_BARE_BOX_RE = re.compile(
    r"\[\s*" + _FOUR_NUMBERS + r"\s*\]|\(\s*" + _FOUR_NUMBERS + r"\s*\)"
)
_LABEL_RE = re.compile(r"""["']?label["']?\s*:\s*"((?:[^"\\]|\\.)*)\"""")
_SCORE_RE = re.compile(
    r"""["']?(?:score|confidence)["']?\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)"""
)
_FENCE_RE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


def _json_candidates(answer: str) -> Iterator[str]:
    """Texts that may hold the JSON answer: fenced blocks, the whole answer, its bracketed span."""
    yield from (match.group(1) for match in _FENCE_RE.finditer(answer))
    yield answer
    for opening, closing in ("[]", "{}"):
        first, last = answer.find(opening), answer.rfind(closing)
        if 0 <= first < last:
            yield answer[first:last + 1]


def load_json(answer: str) -> object | None:
    """The first candidate that decodes as JSON, else None (never raises)."""
    for candidate in _json_candidates(answer):
        try:
            return json.loads(candidate)
        except (ValueError, RecursionError):
            continue
    return None


def _walk_dicts(tree: object, holds: Callable[[dict], bool]) -> list[dict]:
    """Every dict of a decoded JSON tree for which ``holds(dict)``, in document order.

    The children of a dict that holds are not searched.
    """
    found: list[dict] = []
    stack: list[object] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if holds(node):
                found.append(node)
            else:
                stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


def dicts_with(tree: object, keys: tuple[str, ...]) -> list[dict]:
    """Every dict in a decoded JSON tree that has one of ``keys``, in document order."""
    return _walk_dicts(tree, lambda node: any(key in node for key in keys))


def is_number(value: object) -> bool:
    """A JSON number (bools are not numbers here)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def as_float(value: object) -> float:
    """A JSON number as float; ints too large for a float become inf instead of raising."""
    try:
        return float(value)  # type: ignore[arg-type]
    except OverflowError:
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]


def label_text(value: object) -> str:
    """A JSON label as text (non-strings in JSON notation; "" for none or unprintable)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except (ValueError, RecursionError):
        return ""


def unescape(raw: str) -> str:
    """A label read by regex, with its JSON escapes decoded when they are valid."""
    try:
        return json.loads(f'"{raw}"')
    except ValueError:
        return raw


def is_normalized(values: tuple[float, ...] | list[float]) -> bool:
    """True when every value lies in [0, 1]: a 0-1 answer, not resized-image pixels."""
    return bool(values) and all(0.0 <= value <= 1.0 for value in values)


def make_box(corners: tuple[float, ...], label: str = "", score: float = math.nan) -> ModelBox:
    """A ModelBox from four corner values, flagged ``normalized`` when they all lie in [0, 1]."""
    x1, y1, x2, y2 = corners
    return ModelBox(x1, y1, x2, y2, label, score, normalized=is_normalized(corners))


def _four_numbers(value: object) -> bool:
    return isinstance(value, list) and len(value) == 4 and all(map(is_number, value))


def _box_key(entry: dict) -> object | None:
    """The key of a dict's box: the first of ``BOX_KEYS`` holding four numbers, else any key."""
    for key in BOX_KEYS:
        if _four_numbers(entry.get(key)):
            return key
    return next((key for key, value in entry.items() if _four_numbers(value)), None)


def _score(entry: dict) -> float:
    for key in ("score", "confidence"):
        value = entry.get(key)
        if is_number(value):
            return as_float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    return math.nan


def _json_boxes(tree: object) -> list[ModelBox]:
    """Boxes from dicts with a key whose value is a list of exactly four numbers."""
    boxes = []
    for entry in _walk_dicts(tree, lambda node: _box_key(node) is not None):
        corners = tuple(map(as_float, entry[_box_key(entry)]))
        boxes.append(make_box(corners, label_text(entry.get("label")), _score(entry)))
    return boxes


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


def _floats(texts: tuple[str | None, ...]) -> tuple[float, ...] | None:
    """The matched numbers as floats (None groups skipped), or None when float() refuses one."""
    try:
        return tuple(float(text) for text in texts if text is not None)
    except ValueError:  # \d also matches digits float() may not know
        return None


def _regex_boxes(answer: str) -> list[ModelBox]:
    """Boxes from near-JSON text, each with the label/score found in its own {...} object."""
    boxes = []
    matches = list(_KEYED_BOX_RE.finditer(answer))
    previous_object_end = 0
    for index, match in enumerate(matches):
        next_start = matches[index + 1].start() if index + 1 < len(matches) else len(answer)
        object_end = _object_end(answer, match.end(), next_start)
        context = answer[previous_object_end:match.start()] + answer[match.end():object_end]
        previous_object_end = object_end
        corners = _floats(match.groups())
        if corners is None:
            continue
        label_match = _LABEL_RE.search(context)
        score_match = _SCORE_RE.search(context)
        label = unescape(label_match.group(1)) if label_match else ""
        try:
            score = float(score_match.group(1)) if score_match else math.nan
        except ValueError:
            score = math.nan
        boxes.append(make_box(corners, label, score))
    return boxes


def _bare_box(answer: str) -> list[ModelBox]:
    """The first bare ``[a, b, c, d]`` or ``(a, b, c, d)`` of the answer, as the official scorer."""
    for match in _BARE_BOX_RE.finditer(answer):
        corners = _floats(match.groups())
        if corners is not None:
            return [make_box(corners)]
    return []


def find_boxes(answer: str, tree: object) -> list[ModelBox]:
    """Every box candidate of an answer (``tree`` is its decoded JSON), valid or not.

    Keyed boxes from the JSON tree, else keyed boxes from near-JSON text, else the first bare
    four-number list or tuple.
    """
    return _json_boxes(tree) or _regex_boxes(answer) or _bare_box(answer)


def is_valid_box(box: ModelBox) -> bool:
    """Corners top-left then bottom-right and no NaN (inf is kept for the bounds check)."""
    corners = (box.x1, box.y1, box.x2, box.y2)
    return not any(map(math.isnan, corners)) and box.x1 <= box.x2 and box.y1 <= box.y2


def box_centre(box: ModelBox) -> tuple[float, float]:
    """The centre of a box (halved before adding, so huge finite corners do not overflow)."""
    return box.x1 / 2 + box.x2 / 2, box.y1 / 2 + box.y2 / 2
