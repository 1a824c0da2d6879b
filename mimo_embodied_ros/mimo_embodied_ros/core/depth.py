"""Depth units, robust depth sampling at a pixel, and pinhole back-projection.

Conventions: depth images are float32 metres with NaN where invalid once through
``depth_to_metres``. Pixel (i, j) covers [i, i+1) x [j, j+1) when a continuous coordinate is
turned into an index (the same range ``resize.model_to_source`` accepts); projection uses the
ROS/OpenCV intrinsics as given. Points are in the camera optical frame (x right, y down,
z forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mimo_embodied_ros.core.types import CameraIntrinsics

MILLIMETRE_ENCODINGS = ("16UC1", "mono16")
METRE_ENCODINGS = ("32FC1",)
SUPPORTED_DEPTH_ENCODINGS = MILLIMETRE_ENCODINGS + METRE_ENCODINGS


def depth_to_metres(depth: np.ndarray, encoding: str) -> np.ndarray:
    """Convert a ROS depth image to float32 metres, NaN where the sensor gave no depth.

    16UC1 / mono16 hold millimetres with 0 for invalid; 32FC1 holds metres with NaN, inf or
    non-positive values for invalid. An (H, W, 1) image is accepted as (H, W).
    """
    if encoding not in SUPPORTED_DEPTH_ENCODINGS:
        raise ValueError(
            f"unsupported depth encoding {encoding!r}; supported: "
            f"{', '.join(SUPPORTED_DEPTH_ENCODINGS)}"
        )
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.ndim != 2:
        raise ValueError(f"a {encoding} depth image must be (H, W), got shape {depth.shape}")
    if encoding in MILLIMETRE_ENCODINGS:
        if depth.dtype != np.uint16:
            raise ValueError(f"a {encoding} depth image must be uint16, got {depth.dtype}")
        metres = depth.astype(np.float32) * np.float32(0.001)
        metres[depth == 0] = np.nan
        return metres
    if depth.dtype != np.float32:
        raise ValueError(f"a {encoding} depth image must be float32, got {depth.dtype}")
    metres = depth.astype(np.float32, copy=True)
    with np.errstate(invalid="ignore"):
        metres[~np.isfinite(metres) | (metres <= 0)] = np.nan
    return metres


@dataclass
class DepthSample:
    """Depth read around one pixel: z in metres (NaN unless status is "ok")."""

    z: float
    spread: float  # median absolute deviation of the samples used, metres
    num_valid: int  # valid pixels in the window (before choosing a cluster)
    status: str  # "ok", "outside_depth_image", "no_valid_depth", "too_few_valid_pixels"

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _split_at_depth_jumps(values: np.ndarray, min_gap: float, relative_gap: float) -> list:
    """Sorted values cut wherever consecutive ones jump by more than the gap (a depth edge)."""
    ordered = np.sort(values)
    gap = max(min_gap, relative_gap * float(np.median(ordered)))
    cuts = np.flatnonzero(np.diff(ordered) > gap) + 1
    return np.split(ordered, cuts)


def sample_depth(
    depth_m: np.ndarray,
    u: float,
    v: float,
    *,
    window: int = 7,
    min_valid_fraction: float = 0.25,
    min_gap: float = 0.02,
    relative_gap: float = 0.02,
) -> DepthSample:
    """Robust depth at depth-image pixel (u, v): the median of valid pixels in a window.

    A window on an object's edge sees two surfaces. Its sorted depths are split where they jump
    by more than max(min_gap, relative_gap * median). Clusters holding at least a fifth of the
    valid pixels count; of those, the one holding the centre pixel's depth is used, else (centre
    invalid or a lone flying pixel) the nearest to the camera. Few stray pixels never win.
    """
    height, width = depth_m.shape[:2]
    if not (math.isfinite(u) and math.isfinite(v) and 0 <= u < width and 0 <= v < height):
        return DepthSample(math.nan, math.nan, 0, "outside_depth_image")
    col, row = int(math.floor(u)), int(math.floor(v))
    half = window // 2
    patch = depth_m[max(row - half, 0): row + half + 1, max(col - half, 0): col + half + 1]
    valid = patch[np.isfinite(patch) & (patch > 0)]
    if valid.size == 0:
        return DepthSample(math.nan, math.nan, 0, "no_valid_depth")
    if valid.size < min_valid_fraction * patch.size:
        return DepthSample(math.nan, math.nan, int(valid.size), "too_few_valid_pixels")

    clusters = _split_at_depth_jumps(valid, min_gap, relative_gap)
    chosen = clusters[0]
    if len(clusters) > 1:
        substantial = [c for c in clusters if c.size >= 0.2 * valid.size]
        centre = float(depth_m[row, col])
        holding_centre = [c for c in substantial if np.any(c == centre)]
        if holding_centre:
            chosen = holding_centre[0]
        elif substantial:
            chosen = substantial[0]  # clusters are sorted by depth: the nearest one
        else:
            chosen = max(clusters, key=len)
    z = float(np.median(chosen))
    spread = float(np.median(np.abs(chosen - z)))
    return DepthSample(z, spread, int(valid.size), "ok")


def back_project(u: float, v: float, z: float, K: CameraIntrinsics) -> np.ndarray:
    """Camera-frame point (3,) seen at pixel (u, v) at depth z."""
    return np.array([(u - K.cx) * z / K.fx, (v - K.cy) * z / K.fy, z], dtype=np.float64)


def project(points: np.ndarray, K: CameraIntrinsics) -> np.ndarray:
    """Pixels (N, 2) of camera-frame points (N, 3); NaN for points not in front of the camera."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    z = points[:, 2]
    pixels = np.full((points.shape[0], 2), np.nan)
    front = z > 0
    pixels[front, 0] = K.fx * points[front, 0] / z[front] + K.cx
    pixels[front, 1] = K.fy * points[front, 1] / z[front] + K.cy
    return pixels


def depth_to_points(
    depth_m: np.ndarray,
    K: CameraIntrinsics,
    roi: tuple[float, float, float, float] | None = None,
    *,
    stride: int = 1,
    return_pixels: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Finite camera-frame points (N, 3) of the depth pixels in roi (x1, y1, x2, y2) or all.

    The roi covers columns floor(x1) .. ceil(x2) - 1 (likewise rows), cut to the image; every
    ``stride``-th pixel in both directions is used. With ``return_pixels`` the integer
    (column, row) of each point comes too, as an (N, 2) array.
    """
    height, width = depth_m.shape[:2]
    if (K.width, K.height) != (width, height):
        raise ValueError(
            f"intrinsics are for {K.width}x{K.height} but the depth image is {width}x{height}"
        )
    x1, y1, x2, y2 = (0, 0, width, height) if roi is None else roi
    col0, row0 = max(int(math.floor(x1)), 0), max(int(math.floor(y1)), 0)
    col1, row1 = min(int(math.ceil(x2)), width), min(int(math.ceil(y2)), height)
    if col1 <= col0 or row1 <= row0:
        empty = np.empty((0, 3))
        return (empty, np.empty((0, 2), dtype=np.int64)) if return_pixels else empty
    cols = np.arange(col0, col1, stride)
    rows = np.arange(row0, row1, stride)
    z = depth_m[row0:row1:stride, col0:col1:stride].astype(np.float64)
    good = np.isfinite(z) & (z > 0)
    row_index, col_index = np.nonzero(good)
    z = z[good]
    x = (cols[col_index] - K.cx) * z / K.fx
    y = (rows[row_index] - K.cy) * z / K.fy
    points = np.column_stack((x, y, z))
    if return_pixels:
        return points, np.column_stack((cols[col_index], rows[row_index]))
    return points


def lift_point(
    u_src: float,
    v_src: float,
    depth_m: np.ndarray,
    K_colour: CameraIntrinsics,
    **sample_kwargs,
) -> tuple[np.ndarray | None, DepthSample]:
    """Camera-frame point at colour pixel (u_src, v_src), or None with the reason in the sample.

    The depth image is assumed registered to the colour image; when its resolution differs the
    pixel is scaled to it (as the model coordinates are). The point is back-projected with the
    colour intrinsics at the colour pixel, so it lands where the model pointed.
    """
    depth_height, depth_width = depth_m.shape[:2]
    u_depth = u_src * depth_width / K_colour.width
    v_depth = v_src * depth_height / K_colour.height
    sample = sample_depth(depth_m, u_depth, v_depth, **sample_kwargs)
    if not sample.ok:
        return None, sample
    return back_project(u_src, v_src, sample.z, K_colour), sample
