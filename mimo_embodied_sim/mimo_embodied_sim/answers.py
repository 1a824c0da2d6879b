"""Scripted MiMo-Embodied answers built from simulator ground truth, in the model's exact format.

The model writes absolute integer pixels of the image it saw after Qwen's smart-resize
(shared/model-io.md), so ground truth in source pixels is mapped with
x = round(u * W_resized / W_source), y = round(v * H_resized / H_source). The JSON is laid out the
way the model writes it (``json.dumps`` defaults: ", " and ": " separators). Noisy answers may
land outside the resized image on purpose: consumers must report such points, not clamp them.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import yaml

from mimo_embodied_ros.core.types import ImageSize

SizeLike = ImageSize | tuple[int, int]
"""An image size, as ImageSize or (width, height)."""

WILDCARD_KEY = "*"
"""Key of the default answer in an answers file (used when no instruction matches)."""


def _as_size(size: SizeLike) -> ImageSize:
    if isinstance(size, ImageSize):
        return size
    width, height = size
    return ImageSize(int(width), int(height))


def to_resized_pixel(
    u: float, v: float, source_size: SizeLike, resized_size: SizeLike
) -> tuple[int, int]:
    """A source-image pixel as the integer pixel the model would write for the resized image."""
    source, resized = _as_size(source_size), _as_size(resized_size)
    return (int(round(u * resized.width / source.width)),
            int(round(v * resized.height / source.height)))


def _think(reasoning: str | None, label: str, think: bool) -> str:
    if not think:
        return ""
    text = reasoning or f"The user asks about {label}. I look for it in the image and locate it."
    return f"<think>\n{text}\n</think>\n"


def _jitter(coordinates: np.ndarray, noise_px: float, seed: int) -> np.ndarray:
    if noise_px <= 0.0:
        return coordinates
    return coordinates + np.random.default_rng(seed).normal(0.0, noise_px, coordinates.shape)


def pointing_answer(
    points_source: Sequence[tuple[float, float]],
    source_size: SizeLike,
    resized_size: SizeLike,
    label: str,
    think: bool = True,
    noise_px: float = 0.0,
    seed: int = 0,
    reasoning: str | None = None,
) -> str:
    """'<think>...</think>[{"points": [[x, y], ...], "label": "..."}]' for source pixels (u, v).

    `noise_px` is the standard deviation of Gaussian noise added in source pixels (seeded).
    """
    coordinates = _jitter(np.asarray(points_source, dtype=float).reshape(-1, 2), noise_px, seed)
    points = [list(to_resized_pixel(u, v, source_size, resized_size)) for u, v in coordinates]
    body = json.dumps([{"points": points, "label": label}], ensure_ascii=False)
    return _think(reasoning, label, think) + body


def box_answer(
    boxes_source: Sequence[tuple[float, float, float, float]],
    source_size: SizeLike,
    resized_size: SizeLike,
    label: str,
    think: bool = True,
    noise_px: float = 0.0,
    seed: int = 0,
    reasoning: str | None = None,
) -> str:
    """'[{"bbox_2d": [x1, y1, x2, y2], "label": "..."}, ...]' for source-pixel boxes, one entry
    per box, corners top-left then bottom-right."""
    corners = _jitter(np.asarray(boxes_source, dtype=float).reshape(-1, 4), noise_px, seed)
    entries = []
    for x1, y1, x2, y2 in corners:
        top_left = to_resized_pixel(x1, y1, source_size, resized_size)
        bottom_right = to_resized_pixel(x2, y2, source_size, resized_size)
        entries.append({"bbox_2d": [*top_left, *bottom_right], "label": label})
    return _think(reasoning, label, think) + json.dumps(entries, ensure_ascii=False)


def write_answers_file(path: str | Path, mapping: Mapping[str, str]) -> Path:
    """Write the scripted backend's answers file: a YAML mapping instruction -> answer text
    (key '*' answers any other instruction). Returns the path written.

    Atomic (a temporary file beside it, then a rename): simulators rewrite the file while the
    perception node reads it, and a reader must never see a half-written file.
    """
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()):
        raise TypeError("answers must map instruction strings to answer strings")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            yaml.safe_dump(dict(mapping), stream, allow_unicode=True, sort_keys=False,
                           width=10_000)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
