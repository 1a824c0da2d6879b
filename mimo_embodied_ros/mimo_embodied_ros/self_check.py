"""A self-check of the model at configure, ROS-free: one short query on a synthetic image.

It shows, before the first real query, what an operator otherwise finds out from wrong points:
that the model answers at all, which image size it used (and, behind a server, that the server
did not shrink the image again), that the text is not garbage (float16 weights write only '!'),
and how thinking tags come back.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from mimo_embodied_ros.backends.base import VisionLanguageBackend
from mimo_embodied_ros.perception import Frame, QuerySettings, run_query

INSTRUCTION = "the red circle"
DEFAULT_SIZE = (1280, 720)  # width, height: a common camera frame
GARBAGE_MIN_CHARS = 8
GARBAGE_SHARE = 0.6  # one character making up this share of the text is garbage ('!!!!!!!!')


@dataclass
class SelfCheckReport:
    """Outcome of the self-check; ``findings`` are shown in the configure log and diagnostics."""

    ok: bool
    reason: str = ""
    findings: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        verdict = "passed" if self.ok else f"FAILED: {self.reason}"
        return f"self-check {verdict} ({'; '.join(f'{k}: {v}' for k, v in self.findings.items())})"


def synthetic_frame(width: int, height: int) -> tuple[Frame, tuple[int, int]]:
    """A grey RGB frame with one red disk; returns the frame and the disk's centre (u, v)."""
    rgb = np.full((height, width, 3), 128, dtype=np.uint8)
    centre = (int(width * 0.65), int(height * 0.4))
    cv2.circle(rgb, centre, max(height // 12, 4), (220, 20, 20), -1)
    return Frame(rgb=rgb), centre


def looks_like_garbage(text: str) -> bool:
    """True when one character makes up most of a non-trivial text (e.g. '!!!!!!!!!!')."""
    visible = [char for char in text if not char.isspace()]
    if len(visible) < GARBAGE_MIN_CHARS:
        return False
    _, count = Counter(visible).most_common(1)[0]
    return count / len(visible) >= GARBAGE_SHARE


def run_self_check(
    backend: VisionLanguageBackend,
    settings: QuerySettings,
    max_new_tokens: int,
    size: tuple[int, int] = DEFAULT_SIZE,
) -> SelfCheckReport:
    """Point at a red disk in no-think mode with a small budget and report what came back."""
    frame, (u, v) = synthetic_frame(*size)
    check_settings = replace(settings, think=False, max_new_tokens=max_new_tokens,
                             require_depth=False, on_no_think_end="fail")
    result = run_query(backend, frame, INSTRUCTION, "point", check_settings)
    findings = {"model": backend.model_id}
    if result.reply is None:
        return SelfCheckReport(False, f"the model did not answer: {result.message}", findings)
    reply = result.reply
    findings["answered_ms"] = f"{reply.model_ms:.0f}"
    findings["image"] = (f"{size[0]}x{size[1]} sent as {result.resized.width}x"
                         f"{result.resized.height}" if result.resized else "unknown")
    findings["image_check"] = reply.image_check or "none"
    text = reply.text
    if not text.strip():
        return SelfCheckReport(False, "the model returned empty text", findings)
    if looks_like_garbage(text):
        return SelfCheckReport(
            False, f"the model's text looks like garbage ({text[:24]!r}...): float16 weights "
            "do this; load the model in bfloat16", findings)
    findings["think_tags"] = _think_tags(text)
    hits = [p for p in result.points if p.in_image and abs(p.u - u) < size[1] / 10
            and abs(p.v - v) < size[1] / 10]
    findings["points_at_target"] = "yes" if hits else f"no ({result.parsed.status})" \
        if result.parsed else "no"
    return SelfCheckReport(True, "", findings)


def _think_tags(text: str) -> str:
    """How the reply handled thinking in no-think mode."""
    if "</think>" in text:
        return "</think> present (reasoning is split off before parsing)"
    if "<think>" in text:
        return "<think> without </think> even in no-think mode"
    return "none in no-think mode (as expected)"
