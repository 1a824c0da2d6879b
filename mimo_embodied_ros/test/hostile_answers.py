"""Hostile model answers for robustness tests: every shape a real model or server may return.

Seeded and deterministic. Each case is (task, answer text); the texts are what a backend would
return, so they go through parsing, rescaling, lifting, message building, drawing and publishing.
"""

from __future__ import annotations

import json
import random

TASKS = ("point", "detect", "choice", "plan", "answer", "region")
NUMBERS = (
    "0",
    "1",
    "0.5",
    "-3",
    "27",
    "640",
    "1e3",
    "3e10",
    "30000000000",
    "1e30",
    "1e308",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "-Infinity",
    "4294967296",
    "1.7976931348623157e308",
    "3.5e38",
    "-0",
    "00012",
    "1.",
    ".5",
    "0x1F",
    "9" * 400,
)
# Escapes as text (a model's JSON), real lone surrogates (what a server's JSON escapes decode
# to), control characters, bidi overrides, and ordinary non-ASCII text.
UNICODE = (
    "\\ud800",
    "\\udfff",
    "\\u0000",
    "\ud800",
    "x\udfff",
    "\u202e",
    "\u0007",
    "\x00",
    "\x1b[31m",
    "\u00e9\u4e2d\u6587",
    "\ufffd",
    "\\u202e",
    "\U0001f600",
    "\r\n",
    "\t",
    "\\",
)
KEYS = ("points", "bbox_2d", "bbox", "box_2d", "box", "label", "target", "score", "x", "")
FRAGMENTS = (
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    ",",
    ":",
    '"',
    "<think>",
    "</think>",
    "\\boxed{",
    "```json\n",
    "```",
    " ",
    "\n",
    "yes",
    "no",
    "1.",
    "- ",
)


def _number(rng: random.Random) -> str:
    return rng.choice(NUMBERS)


def _label(rng: random.Random) -> str:
    return "".join(
        rng.choice(UNICODE + ("cup", "the red cube", " ")) for _ in range(rng.randint(0, 4))
    )


def _json_like(rng: random.Random) -> str:
    """Near-JSON with hostile numbers and labels (raw, so escapes stay escapes)."""
    entries = []
    for _ in range(rng.randint(0, 4)):
        key = rng.choice(KEYS)
        size = rng.choice((2, 2, 4, 4, 1, 3, 5))
        values = ", ".join(_number(rng) for _ in range(size))
        value = (
            f"[{values}]"
            if rng.random() < 0.8
            else f"[[{values}], [{_number(rng)}, {_number(rng)}]]"
        )
        entries.append(f'{{"{key}": {value}, "label": "{_label(rng)}", "score": {_number(rng)}}}')
    return "[" + ", ".join(entries) + "]"


def _fragments(rng: random.Random) -> str:
    return "".join(rng.choice(FRAGMENTS + NUMBERS[:8] + UNICODE) for _ in range(rng.randint(0, 60)))


def _wrap_thinking(rng: random.Random, body: str) -> str:
    style = rng.randrange(6)
    if style == 0:
        return body
    if style == 1:
        return f"<think>{_label(rng)} reasoning</think>{body}"
    if style == 2:
        return f"<think>{body}"  # never closed
    if style == 3:
        return f"</think>{body}</think>"
    if style == 4:
        return f"<think><think>{body}</think>{_fragments(rng)}"
    return f"{_fragments(rng)}</think>\n```json\n{body}\n```"


def hostile_answer(rng: random.Random) -> str:
    """One hostile answer text."""
    kind = rng.randrange(8)
    if kind == 0:
        body = _fragments(rng)
    elif kind == 1:
        body = f"\\boxed{{{_label(rng)}}}" + _fragments(rng)
    elif kind == 2:
        body = "\n".join(f"{i}. {_label(rng)} {_number(rng)}" for i in range(rng.randint(0, 8)))
    elif kind == 3:
        four = ", ".join(_number(rng) for _ in range(4))
        body = f"({_number(rng)}, {_number(rng)}) and [{four}]"
    elif kind == 4:
        body = json.dumps([{"points": [[rng.random(), rng.random()]], "label": _label(rng)}])
    else:
        body = _json_like(rng)
    return _wrap_thinking(rng, body)


def huge_answer(rng: random.Random, size: int = 50_000) -> str:
    """A ~50 kB answer: a long thought, then thousands of points or nested brackets."""
    if rng.random() < 0.5:
        points = ", ".join(
            f"[{rng.randint(-10, 10**6)}, {rng.randint(-10, 10**6)}]" for _ in range(size // 14)
        )
        return f'<think>{"hmm " * 200}</think>[{{"points": [{points}], "label": "x"}}]'[:size]
    return ("[" * (size // 2)) + ("]" * (size // 2))


def hostile_cases(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """``count`` (task, answer) pairs cycling through every task kind; every 200th is ~50 kB."""
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        task = TASKS[index % len(TASKS)]
        text = huge_answer(rng) if index % 200 == 199 else hostile_answer(rng)
        cases.append((task, text))
    return cases
