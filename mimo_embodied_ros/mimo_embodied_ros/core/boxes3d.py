"""Camera-frame 3D boxes of objects from a 2D box and a depth image.

The model gives only 2D boxes (model-io.md). A 2D box holds the object and the surface around
it, and the camera sees one side of the object, so the box is built from what is certain: the
supporting plane (fitted on a ring around the box, where the support dominates) gives "up" and
the bottom; the points standing out of it give the footprint and the height. Without a support
plane the nearest depth cluster's oriented box is used and labelled as such.

open3d and cv2 are optional imports, so the query path (perception.py) imports on a machine
with only numpy and PIL (scripts/gpu_bench.py on a bare GPU host); there box fitting answers the
status "missing_dependency".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

try:
    import cv2
    import open3d as o3d
except ImportError:  # a host without them can still run point queries
    cv2 = o3d = None

from mimo_embodied_ros.core.depth import depth_to_points
from mimo_embodied_ros.core.types import CameraIntrinsics

METHOD_SUPPORT_PLANE = "depth_support_plane"
METHOD_ORIENTED_BOX = "depth_oriented_box"


@dataclass
class Box3D:
    """A box in the camera optical frame: local axes are the columns of ``rotation``.

    For METHOD_SUPPORT_PLANE boxes the third axis is "up" (the support plane's normal, toward
    the camera's side) and size[2] the height; the first two span the footprint.
    """

    center: np.ndarray  # (3,) metres
    rotation: np.ndarray  # (3, 3) box axes in camera coordinates, right-handed
    size: np.ndarray  # (3,) full edge lengths along the box axes, metres
    method: str  # METHOD_SUPPORT_PLANE or METHOD_ORIENTED_BOX
    num_points: int  # depth points the box was built from

    def corners(self) -> np.ndarray:
        """The 8 corners (8, 3) in the camera frame, for markers and projections."""
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return self.center + (signs * (self.size / 2.0)) @ self.rotation.T


@dataclass
class BoxResult:
    """A box, or None with the reason in ``status`` ("ok" on success)."""

    box: Box3D | None
    status: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class _Plane:
    normal: np.ndarray  # unit, pointing to the camera's side
    offset: float  # normal . p + offset = signed distance, positive on the camera's side
    noise: float  # robust standard deviation of the inliers' distances, metres


def box_from_depth(
    depth_m: np.ndarray,
    K_depth: CameraIntrinsics,
    box_px: tuple[float, float, float, float],
    *,
    min_points: int = 30,
    roi_scale: float = 1.8,
    max_roi_points: int = 5000,
    plane_distance: float = 0.01,
    min_height: float = 0.004,
    max_height: float = 0.5,
    trim_percent: float = 2.0,
    seed: int = 0,
) -> BoxResult:
    """3D box of the object inside ``box_px`` (x1, y1, x2, y2 in depth pixels). Never raises.

    Support-plane method: RANSAC plane on the points of a ``roi_scale`` times larger region
    outside the box; object = box points more than max(min_height, 3 noise sigmas) and less than
    max_height above it, largest DBSCAN cluster; up = plane normal; footprint = orientation from
    cv2.minAreaRect, extents from the ``trim_percent`` / 100 - ``trim_percent`` percentiles
    (noise-proof); the box reaches down to the plane. Returns a status instead of raising:
    "missing_dependency" (open3d / cv2 not installed), "intrinsics_mismatch", "invalid_box",
    "box_outside_image", "no_valid_depth", "too_few_points" or "degenerate_points".
    """
    if o3d is None or cv2 is None:
        return BoxResult(None, "missing_dependency")
    height_px, width_px = depth_m.shape[:2]
    if (K_depth.width, K_depth.height) != (width_px, height_px):
        return BoxResult(None, "intrinsics_mismatch")
    x1, y1, x2, y2 = (float(c) for c in box_px)
    if not all(math.isfinite(c) for c in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        return BoxResult(None, "invalid_box")
    if x2 <= 0 or y2 <= 0 or x1 >= width_px or y1 >= height_px:
        return BoxResult(None, "box_outside_image")

    mid_x, mid_y = (x1 + x2) / 2, (y1 + y2) / 2
    half_w, half_h = roi_scale * (x2 - x1) / 2, roi_scale * (y2 - y1) / 2
    roi = (mid_x - half_w, mid_y - half_h, mid_x + half_w, mid_y + half_h)
    roi_area = min(4 * half_w * half_h, width_px * height_px)
    stride = max(1, math.ceil(math.sqrt(roi_area / max_roi_points)))
    points, pixels = depth_to_points(depth_m, K_depth, roi, stride=stride, return_pixels=True)
    in_box = (
        (pixels[:, 0] >= math.floor(x1)) & (pixels[:, 0] < math.ceil(x2))
        & (pixels[:, 1] >= math.floor(y1)) & (pixels[:, 1] < math.ceil(y2))
    )
    box_points = points[in_box]
    if box_points.shape[0] == 0:
        return BoxResult(None, "no_valid_depth")
    if box_points.shape[0] < min_points:
        return BoxResult(None, "too_few_points")

    # One spacing between neighbouring sampled pixels at the object's depth sets DBSCAN's scale.
    spacing = stride * float(np.median(box_points[:, 2])) / K_depth.fx
    cluster_eps = max(0.01, 4 * spacing)

    o3d.utility.random.seed(seed)
    ring_points = points[~in_box]
    plane = _fit_support_plane(ring_points, plane_distance, min_points)
    if plane is not None:
        heights = box_points @ plane.normal + plane.offset
        threshold = max(min_height, 3 * plane.noise)
        standing = (heights > threshold) & (heights < max_height)
        if np.count_nonzero(standing) >= min_points:
            return _box_on_plane(
                box_points[standing], plane, min_points, cluster_eps, trim_percent
            )
        if np.count_nonzero(heights >= max_height) < min_points:
            return BoxResult(None, "too_few_points")  # nothing stands out of the support
    return _oriented_box_of_foreground(box_points, min_points, cluster_eps)


def _fit_support_plane(points: np.ndarray, distance: float, min_points: int) -> _Plane | None:
    """Dominant plane of the points (RANSAC, then least squares on its inliers), or None."""
    if points.shape[0] < max(min_points, 3):
        return None
    step = max(1, points.shape[0] // 5000)  # RANSAC needs no more points than that
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[::step]))
    model, sample_inliers = cloud.segment_plane(
        distance_threshold=distance, ransac_n=3, num_iterations=200
    )
    if len(sample_inliers) < 0.3 * np.asarray(cloud.points).shape[0]:
        return None
    normal = np.asarray(model[:3], dtype=np.float64)
    offset = float(model[3]) / np.linalg.norm(normal)
    normal = normal / np.linalg.norm(normal)
    inliers = points[np.abs(points @ normal + offset) < distance]
    if inliers.shape[0] < min_points:
        return None
    centroid = inliers.mean(axis=0)
    normal = np.linalg.svd(inliers - centroid, full_matrices=False)[2][2]
    offset = -float(normal @ centroid)
    if offset < 0:  # the camera (origin) must be on the positive side
        normal, offset = -normal, -offset
    residuals = inliers @ normal + offset
    noise = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    return _Plane(normal=normal, offset=offset, noise=noise)


def _largest_cluster(points: np.ndarray, eps: float, min_points: int) -> np.ndarray:
    """Points of the largest DBSCAN cluster (drops stray pixels and neighbouring objects)."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    labels = np.asarray(cloud.cluster_dbscan(eps=eps, min_points=min(min_points, 8)))
    if labels.size == 0 or labels.max() < 0:
        return points[:0]
    largest = np.bincount(labels[labels >= 0]).argmax()
    return points[labels == largest]


def _box_on_plane(
    points: np.ndarray, plane: _Plane, min_points: int, eps: float, trim_percent: float
) -> BoxResult:
    """Gravity-aligned box of object points standing on the plane."""
    points = _largest_cluster(points, eps, min_points)
    if points.shape[0] < min_points:
        return BoxResult(None, "too_few_points")
    up = plane.normal
    # Any in-plane basis; the footprint rectangle fixes the final axes.
    helper = np.array([1.0, 0.0, 0.0]) if abs(up[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    axis_a = np.cross(up, helper)
    axis_a /= np.linalg.norm(axis_a)
    axis_b = np.cross(up, axis_a)
    centroid = points.mean(axis=0)
    origin = centroid - (centroid @ up + plane.offset) * up  # centroid dropped onto the plane
    in_plane = (points - origin) @ np.column_stack((axis_a, axis_b))
    # minAreaRect in millimetres around the origin keeps float32 precise.
    (_, _), (_, _), angle_deg = cv2.minAreaRect((in_plane * 1000.0).astype(np.float32))
    angle = math.radians(angle_deg)
    direction_1 = np.array([math.cos(angle), math.sin(angle)])
    direction_2 = np.array([-math.sin(angle), math.cos(angle)])
    along_1 = in_plane @ direction_1
    along_2 = in_plane @ direction_2
    low_1, high_1 = np.percentile(along_1, [trim_percent, 100 - trim_percent])
    low_2, high_2 = np.percentile(along_2, [trim_percent, 100 - trim_percent])

    heights = points @ up + plane.offset
    # The top is the median of the highest band, not the maximum, so noise does not inflate it.
    band_floor = np.percentile(heights, 90) - 2.5 * max(plane.noise, 0.001)
    top = float(np.median(heights[heights >= band_floor]))

    box_axis_1 = direction_1[0] * axis_a + direction_1[1] * axis_b
    box_axis_2 = np.cross(up, box_axis_1)
    middle_1, middle_2 = (low_1 + high_1) / 2, (low_2 + high_2) / 2
    center = origin + middle_1 * box_axis_1 + middle_2 * box_axis_2 + (top / 2) * up
    box = Box3D(
        center=center,
        rotation=np.column_stack((box_axis_1, box_axis_2, up)),
        size=np.array([high_1 - low_1, high_2 - low_2, top]),
        method=METHOD_SUPPORT_PLANE,
        num_points=int(points.shape[0]),
    )
    return BoxResult(box, "ok")


def _oriented_box_of_foreground(points: np.ndarray, min_points: int, eps: float) -> BoxResult:
    """Oriented box of the nearest substantial depth layer in the 2D box (no support plane)."""
    order = np.argsort(points[:, 2])
    depths = points[order, 2]
    gap = max(0.03, 0.05 * float(np.median(depths)))
    layers = np.split(order, np.flatnonzero(np.diff(depths) > gap) + 1)
    substantial = [layer for layer in layers if layer.size >= max(min_points, 0.1 * len(order))]
    if not substantial:
        return BoxResult(None, "too_few_points")
    foreground = _largest_cluster(points[substantial[0]], eps, min_points)
    if foreground.shape[0] < max(min_points, 4):
        return BoxResult(None, "too_few_points")
    try:
        obb = o3d.geometry.OrientedBoundingBox.create_from_points(
            o3d.utility.Vector3dVector(foreground), robust=True
        )
    except RuntimeError:
        return BoxResult(None, "degenerate_points")
    rotation = np.array(obb.R, dtype=np.float64)
    if np.linalg.det(rotation) < 0:
        rotation[:, 2] = -rotation[:, 2]
    box = Box3D(
        center=np.array(obb.center, dtype=np.float64),
        rotation=rotation,
        size=np.array(obb.extent, dtype=np.float64),
        method=METHOD_ORIENTED_BOX,
        num_points=int(foreground.shape[0]),
    )
    return BoxResult(box, "ok")
