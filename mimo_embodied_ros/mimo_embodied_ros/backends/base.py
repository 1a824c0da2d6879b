"""The one protocol every model backend implements: images + task text in, raw text out.

Backends never parse answers or rescale coordinates (core/ does); they only run the model the way
the official evaluation did and report what it saw and how long it took.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from mimo_embodied_ros.core.types import ImageSize

ERROR_KINDS = (
    "timeout", "unavailable", "bad_response", "load", "invalid_request", "cancelled", "mismatch",
)
"""Why a backend call failed. "cancelled": the caller's cancel event was set and the generation
stopped; "mismatch": the server processed something other than what the node sent (e.g. it
shrank the image again, so coordinates would be in another frame)."""


@dataclass
class Progress:
    """What a backend reports while it generates (for action feedback)."""

    phase: str  # "sending", "generating", "reading"
    tokens: int = 0  # new tokens generated so far (0 where the backend cannot tell)
    text: str = ""  # the text generated so far, where the backend streams it


@dataclass
class ModelRequest:
    """One query. Images are RGB uint8 HxWx3, already smart-resized by the caller (core.resize)."""

    images: list[np.ndarray]
    task_text: str  # full user text, including an optional " /no_think"
    instruction: str  # the user's original instruction (the scripted backend keys on it)
    max_new_tokens: int = 4096
    # Set by the caller to stop a generation in flight; backends check it while generating and
    # then raise BackendError("cancelled").
    cancel: threading.Event = field(default_factory=threading.Event)
    # Called (from the generating thread) with progress; must be cheap and must not raise.
    on_progress: Callable[[Progress], None] | None = None

    def report(self, progress: Progress) -> None:
        """Pass progress to the caller's callback; a failing callback never stops a generation."""
        if self.on_progress is None:
            return
        with contextlib.suppress(Exception):  # feedback is best effort
            self.on_progress(progress)


@dataclass
class ModelReply:
    """The model's raw text and what is known about how it was produced."""

    text: str
    model_id: str
    model_ms: float
    prompt_tokens: int | None
    image_sizes: list[ImageSize] | None  # the size the model saw, when the backend knows it
    # How the backend knows the model saw the images the node sent: "exact" (it resized them
    # itself or read the processor's grid), "verified" (server usage matched), "unverified"
    # (the server reported no token usage), "" (no images).
    image_check: str = ""
    completion_tokens: int | None = None


class BackendError(Exception):
    """A failure a caller can report to an operator; `kind` says which of ERROR_KINDS it was."""

    def __init__(self, kind: str, message: str) -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown backend error kind {kind!r}; expected one of {ERROR_KINDS}")
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


@runtime_checkable
class VisionLanguageBackend(Protocol):
    """A vision-language model behind one call. generate() raises BackendError only."""

    name: str
    model_id: str

    def generate(self, request: ModelRequest) -> ModelReply: ...

    def close(self) -> None: ...


def validate_request(request: ModelRequest) -> None:
    """Reject requests a model cannot take, with a message that says what is wrong."""
    if not isinstance(request.task_text, str) or not request.task_text.strip():
        raise BackendError("invalid_request", "the task text is empty")
    if request.max_new_tokens < 1:
        raise BackendError(
            "invalid_request", f"max_new_tokens must be >= 1, got {request.max_new_tokens}"
        )
    for index, image in enumerate(request.images):
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise BackendError("invalid_request", f"image {index} is not a uint8 numpy array")
        if image.ndim != 3 or image.shape[2] != 3:
            raise BackendError(
                "invalid_request", f"image {index} has shape {image.shape}; expected HxWx3 RGB"
            )
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise BackendError("invalid_request", f"image {index} is empty ({image.shape})")
