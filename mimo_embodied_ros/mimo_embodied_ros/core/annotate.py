"""Draw what the model returned on the source image, for operators (debug image, demo PNGs)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

POINT_COLOUR = (255, 0, 255)  # RGB magenta: visible on tables, floors and most objects
INVALID_COLOUR = (255, 160, 0)  # orange: a point or box without valid depth
BOX_COLOUR = (0, 255, 0)
CUBOID_COLOUR = (0, 200, 255)  # the 3D box, projected back into the image
# Edges of a cuboid whose corner i has signs (bit 2, bit 1, bit 0) = (x, y, z), as Box3D.corners.
CUBOID_EDGES = [(i, j) for i in range(8) for j in range(i + 1, 8) if (i ^ j) in (1, 2, 4)]


def annotate(
    rgb: np.ndarray,
    points: Iterable[tuple[float, float, bool, str]] = (),
    boxes: Iterable[tuple[Sequence[float], bool, str]] = (),
    caption: str = "",
    cuboids: Iterable[np.ndarray] = (),
) -> np.ndarray:
    """A copy of `rgb` with points (u, v, has_3d, label), boxes (xyxy, has_3d, label), 3D boxes
    as (8, 2) projected corners in Box3D.corners order, and a caption."""
    image = np.ascontiguousarray(rgb).copy()
    height, width = image.shape[:2]
    scale = max(width / 640.0, 0.5)
    thickness = max(int(round(2 * scale)), 1)
    for u, v, has_3d, label in points:
        if not (np.isfinite(u) and np.isfinite(v)) or not (0 <= u < width and 0 <= v < height):
            continue  # only what lies in the image is drawn (the caption says what went wrong)
        centre = (int(round(u)), int(round(v)))
        colour = POINT_COLOUR if has_3d else INVALID_COLOUR
        cv2.circle(image, centre, int(6 * scale), colour, thickness, cv2.LINE_AA)
        cv2.drawMarker(image, centre, colour, cv2.MARKER_CROSS, int(10 * scale), 1, cv2.LINE_AA)
        _label(image, label, (centre[0] + int(8 * scale), centre[1] - int(8 * scale)), scale)
    for xyxy, has_3d, label in boxes:
        if not all(np.isfinite(c) for c in xyxy):
            continue
        x1, x2 = (_clip(c, width) for c in xyxy[0::2])
        y1, y2 = (_clip(c, height) for c in xyxy[1::2])
        colour = BOX_COLOUR if has_3d else INVALID_COLOUR
        cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness, cv2.LINE_AA)
        _label(image, label, (x1, max(y1 - int(4 * scale), int(12 * scale))), scale)
    for corners in cuboids:
        if not np.all(np.isfinite(corners)):
            continue
        pixels = np.round(np.clip(corners, -2 * max(width, height), 3 * max(width, height)))
        pixels = pixels.astype(int)
        for i, j in CUBOID_EDGES:
            cv2.line(image, tuple(pixels[i]), tuple(pixels[j]), CUBOID_COLOUR, 1, cv2.LINE_AA)
    if caption:
        _label(image, caption[:90], (int(6 * scale), int(20 * scale)), scale)
    return image


def _clip(coordinate: float, size: int) -> int:
    """A pixel coordinate clipped to one pixel beyond the image (cv2 needs int32 values)."""
    return int(round(min(max(coordinate, -1.0), float(size))))


def _label(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    # Hershey fonts draw ASCII only; anything else (lone surrogates included) becomes '?'.
    text = text.encode("ascii", "replace").decode("ascii")[:120]
    if not text:
        return
    font, size = cv2.FONT_HERSHEY_SIMPLEX, 0.45 * scale
    (width, height), baseline = cv2.getTextSize(text, font, size, 1)
    x, y = origin
    cv2.rectangle(image, (x - 2, y - height - 2), (x + width + 2, y + baseline), (0, 0, 0), -1)
    cv2.putText(image, text, origin, font, size, (255, 255, 255), 1, cv2.LINE_AA)
