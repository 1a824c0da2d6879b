"""Plain data types shared by the ROS-free core, the backends and the ROS adapters."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one image resolution (OpenCV / ROS CameraInfo convention)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def scaled_to(self, width: int, height: int) -> CameraIntrinsics:
        """Intrinsics of the same camera at another resolution (e.g. depth smaller than colour)."""
        sx = width / self.width
        sy = height / self.height
        return CameraIntrinsics(
            fx=self.fx * sx,
            fy=self.fy * sy,
            cx=(self.cx + 0.5) * sx - 0.5,
            cy=(self.cy + 0.5) * sy - 0.5,
            width=width,
            height=height,
        )

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class ImageSize:
    """Width and height in pixels."""

    width: int
    height: int


@dataclass(frozen=True)
class ModelPoint:
    """A point as the model wrote it: pixels of the resized image it saw."""

    x: float
    y: float
    label: str = ""


@dataclass(frozen=True)
class ModelBox:
    """A bbox_2d as the model wrote it: x1, y1 (top-left), x2, y2 (bottom-right), resized pixels."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    score: float = float("nan")
    # All four values in [0, 1]: a 0-1 answer the prompt did not ask for. The parser cannot scale
    # it (it does not know the image size); the caller multiplies by the resized width / height.
    normalized: bool = False


# Statuses that count as a readable answer. "box_centres": a pointing reply that held only boxes,
# read as their centres. Not ok, though points are listed: "normalized_points" (all coordinates
# in [0, 1], which the prompt did not ask for; never lift those as pixels).
OK_STATUSES = frozenset({"ok", "box_centres"})


@dataclass
class ParsedAnswer:
    """Everything read from one model reply. Parsers fill it and never raise."""

    status: str  # "ok", "box_centres" or a short reason: "empty", "normalized_points", ...
    answer: str = ""  # text after the last </think> (the whole text in no-think mode)
    reasoning: str = ""  # text inside <think> ... </think>
    points: list[ModelPoint] = field(default_factory=list)
    boxes: list[ModelBox] = field(default_factory=list)
    choice: str | None = None  # content of the last \boxed{...}
    plan_steps: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the status is one of ``OK_STATUSES``."""
        return self.status in OK_STATUSES
