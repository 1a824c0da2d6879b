"""Prompt builders for MiMo-Embodied-7B (wording from model-io.md, which must stay verbatim).

A third party who only reworded the pointing prompt lost 21 points on RoboAfford-Eval, so the
official sentences below (the pointing prompt, MiMo-VL's grounding prompt, the \\boxed{} request)
are copied character for character; only the user's description is inserted. Everything here is
pure Python: the backends turn the messages into model input.
"""

from __future__ import annotations

import re
import unicodedata
from enum import Enum
from typing import NamedTuple

SYSTEM_PROMPT = "You are a helpful assistant."
NO_THINK_SUFFIX = " /no_think"
CHOICE_SUFFIX = "\nPut your final answer in \\boxed{}."

_POINTING_TEMPLATE = (
    'Based on the description: "{ref}", locate points matching the description. '
    'Output a JSON in the format [{{"points": [...], "label": "{{the_whole_description}}"}}, ...].'
)
# MiMo-VL's own grounding (box) prompt, verbatim; the trailing space is part of it.
_DETECTION_TEMPLATE = (
    'Based on the description: "{ref}", locate all regions matching the description. '
    'Output a JSON in the format '
    '[{{"bbox_2d": [...], "label": "{{the_whole_description}}"}}, ...]. '
)
_REGION_TEMPLATE = (
    'This is a top-down map of the environment (free space white, obstacles black, unknown grey). '
    'Instruction: "{ref}". Which region should the robot go to, and which object should it look '
    'for there? Output a JSON in the format '
    '[{{"points": [[x, y]], "label": "<region name>", "target": "<object to look for>"}}].'
)
_VISIBILITY_TEMPLATE = "Is there a {target} in the image?"
_PLAN_QUESTION = "What is the immediate next step?"
_PLAN_FORMAT = "Answer with the next step(s) as a short numbered list."


class Task(str, Enum):  # noqa: UP042 - StrEnum needs Python 3.11; Humble ships 3.10
    """What the user wants from one query; decides the prompt and the parser."""

    POINT = "point"
    DETECT = "detect"
    CHOICE = "choice"
    PLAN = "plan"
    ANSWER = "answer"
    REGION = "region"


def _clean(text: str) -> str:
    """The user's words with surrounding whitespace removed; empty text is a caller error."""
    cleaned = text.strip()
    if not cleaned:
        raise ValueError("instruction is empty")
    return cleaned


def _quoted_reference(description: str) -> str:
    """The description as it may sit inside the prompt's double quotes (which it must not end)."""
    return _clean(description).replace('"', "'")


def pointing_prompt(description: str) -> str:
    """The official pointing / affordance / referring prompt of every pointing benchmark."""
    return _POINTING_TEMPLATE.format(ref=_quoted_reference(description))


def detection_prompt(description: str) -> str:
    """MiMo-VL's official grounding (2D box) prompt, verbatim, trailing space included.

    The family's own wording (model-io.md), not a project prompt: the answer is JSON
    ``[{"bbox_2d": [x1, y1, x2, y2], "label": ...}]``, corners top-left then bottom-right, in
    pixels of the resized image.
    """
    return _DETECTION_TEMPLATE.format(ref=_quoted_reference(description))


def choice_prompt(question: str) -> str:
    """The official multiple-choice / yes-no format: the question, then the \\boxed{} request."""
    cleaned = _clean(question)
    if cleaned.endswith(CHOICE_SUFFIX.strip()):
        return cleaned
    return cleaned + CHOICE_SUFFIX


def plan_prompt(instruction: str) -> str:
    """A free-text planning request (RoboVQA style) that keeps the user's words.

    A question ("what should I do now?") is sent as it is; a goal ("put the apple in the bowl")
    gets the RoboVQA next-step question. Both ask for a numbered list so steps can be split.
    """
    cleaned = _clean(instruction)
    if cleaned.endswith("?"):
        return f"{cleaned}\n{_PLAN_FORMAT}"
    return f"Task: {cleaned}\n{_PLAN_QUESTION} {_PLAN_FORMAT}"


def region_prompt(instruction: str) -> str:
    """NavA3-style global stage: a point on a top-down map image, the region's name and the target.

    The release ships no navigation prompt; the paper's demo reasons from a high-level instruction
    ("I want to sleep") to a region and a point on the map, then to the object to find there. This
    project prompt keeps the pointing prompt's JSON style and adds the region and target fields.
    """
    return _REGION_TEMPLATE.format(ref=_quoted_reference(instruction))


def visibility_question(target: str) -> str:
    """The yes/no question the navigator asks at each scan step (answered with \\boxed{yes/no})."""
    return _VISIBILITY_TEMPLATE.format(target=_clean(target))


def answer_prompt(question: str) -> str:
    """Free-form visual question answering: the user's question, unchanged."""
    return _clean(question)


_BUILDERS = {
    Task.POINT: pointing_prompt,
    Task.DETECT: detection_prompt,
    Task.CHOICE: choice_prompt,
    Task.PLAN: plan_prompt,
    Task.ANSWER: answer_prompt,
    Task.REGION: region_prompt,
}


def build_task_text(task: Task | str, instruction: str, think: bool) -> str:
    """The user-turn text for a task; ``think=False`` appends the official `` /no_think``.

    ``task`` must be a concrete task (resolve "auto" with :func:`choose_task` first, so the caller
    also knows which parser to use). Raises ValueError on an unknown task or empty instruction.
    """
    text = _BUILDERS[Task(task)](instruction)
    return text if think else text + NO_THINK_SUFFIX


def build_messages(task_text: str, num_images: int) -> list[dict]:
    """Chat messages in the HF / OpenAI content-list style: all images first, the text last.

    Images are ``{"type": "image"}`` placeholders; each backend puts in its own image payload.
    """
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    user_content: list[dict] = [{"type": "image"} for _ in range(num_images)]
    user_content.append({"type": "text", "text": task_text})
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": user_content},
    ]


# "auto" routing: the first rule whose pattern occurs at least ``min_matches`` times
# (case-insensitive) wins; no rule matching means POINT. The order settles overlaps, e.g.
# "draw a bounding box around the mug you would pick" is DETECT, "is there a box?" is CHOICE,
# "put the apple in the box" and "where is the box?" are POINT. Finding or locating an object
# is pointing: the official pointing prompt is what the model was evaluated on for that; boxes
# are only for requests that ask for them.
class RoutingRule(NamedTuple):
    """One row of the "auto" routing table."""

    task: Task
    why: str
    pattern: re.Pattern[str]
    min_matches: int = 1


def _rule(task: Task, why: str, pattern: str, min_matches: int = 1) -> RoutingRule:
    return RoutingRule(task, why, re.compile(pattern, re.IGNORECASE | re.MULTILINE), min_matches)


ROUTING_RULES: tuple[RoutingRule, ...] = (
    _rule(Task.CHOICE, "two or more option lines such as '(A) ...' or 'B. ...'",
          r"^[ \t]*(?:\([ \t]*[A-H][ \t]*\)|[A-H][.)])[ \t]*\S", min_matches=2),
    _rule(Task.DETECT, "asks for boxes or detection explicitly ('bounding box', 'bbox', "
          "'3D box', 'box around', 'draw a box', 'detect'): MiMo-VL's grounding prompt",
          r"\b(?:bounding\s+box(?:es)?|bbox(?:es)?|detect\w*|box(?:es)?\s+around|"
          r"[23]d\s+box(?:es)?|draw\s+(?:a\s+|the\s+)?box(?:es)?)\b"),
    _rule(Task.CHOICE, "ends with a yes/no question ('is there ...?', 'can you see ...?')",
          r"(?:\A|[.!?\n]\s*)(?:is\s+there|are\s+there|is\s+it|is\s+the|are\s+the|does|"
          r"do\s+you\s+see|can\s+you\s+see|could\s+you\s+see)\b[^.!?\n]*\?\s*\Z"),
    _rule(Task.PLAN, "asks for a plan or the next step",
          r"\b(?:next\s+steps?|plan(?:s|ning)?|how\s+(?:do|should|can)\s+i|steps?\s+to)\b"),
    _rule(Task.POINT, "pointing, grasping or placing words: the official pointing prompt",
          r"\b(?:point\w*|grasp\w*|pick\w*|place\w*|put|where\s+can|handles?|affordances?)\b"),
    _rule(Task.POINT, "asks where an object is or to find / locate it (no box asked for): "
          "the official pointing prompt",
          r"\b(?:where(?:\s+(?:is|are)|'s)|find\w*|locat\w*)\b"),
)


def choose_task(instruction: str) -> Task:
    """Pick a task for "auto" mode by the ordered keyword rules in ``ROUTING_RULES``."""
    text = instruction.strip()
    for rule in ROUTING_RULES:
        if len(rule.pattern.findall(text)) >= rule.min_matches:
            return rule.task
    return Task.POINT


def check_instruction(text: object, max_chars: int) -> str | None:
    """None when the instruction can be sent to the model, else a reason a person can read.

    Rejects text that is not a string, empty, longer than ``max_chars``, or holds U+FFFD (what
    undecodable bytes become), lone surrogates, or control characters other than newline and tab.
    """
    if not isinstance(text, str):
        return f"instruction must be text, got {type(text).__name__}"
    if not text.strip():
        return "instruction is empty"
    if len(text) > max_chars:
        return f"instruction is {len(text)} characters long; the limit is {max_chars}"
    for index, char in enumerate(text):
        code = ord(char)
        if char == "\ufffd":
            return f"instruction holds U+FFFD at character {index} (bytes that were not UTF-8)"
        if 0xD800 <= code <= 0xDFFF:
            return f"instruction holds a lone surrogate U+{code:04X} at character {index}"
        if char not in "\n\t" and unicodedata.category(char) == "Cc":
            return f"instruction holds control character U+{code:04X} at character {index}"
    return None
