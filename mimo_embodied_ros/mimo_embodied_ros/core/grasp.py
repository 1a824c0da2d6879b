"""Parallel-gripper grasps from a depth point cloud around one pointed pixel.

The model gives one point on the object (model-io.md); the depth around it tells what that
object is. The support surface (the highest dense horizontal layer below the pick point) gives
"up" and the object's bottom; the points standing out of it and connected to the pick point are
the object; their footprint (cv2.minAreaRect) gives the yaw and the width the fingers must span
(they close across the footprint's short side). Where the model pointed at a side face (its
normal far from "up"), the hand approaches along the inward surface normal instead.

Frames: every input and output is in the arm's base frame, whose "up" is ``up`` (gravity is
``-up``). A grasp is the tool centre point (TCP) between the fingertips; its +z axis is the
approach direction (down for a top-down grasp) and +y the finger closing axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import open3d as o3d
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

APPROACH_TOP_DOWN = "top_down"
APPROACH_SURFACE_NORMAL = "surface_normal"

STATUS_OK = "ok"
STATUS_INVALID_PICK_POINT = "invalid_pick_point"
STATUS_TOO_FEW_POINTS = "too_few_points"
STATUS_NO_SUPPORT = "no_support_surface"
STATUS_NO_OBJECT = "no_object_above_support"
STATUS_PICK_OFF_OBJECT = "pick_point_off_object"
STATUS_TOO_FEW_OBJECT_POINTS = "too_few_object_points"
STATUS_TOO_WIDE = "object_too_wide"
STATUS_TOO_NARROW = "object_too_narrow"


@dataclass(frozen=True)
class GraspSettings:
    """Gripper geometry and perception tolerances; defaults suit a Franka Panda hand (metres)."""

    max_open_width: float = 0.08  # fingers fully open
    finger_clearance: float = 0.015  # opening beyond the object width (both sides together)
    min_object_width: float = 0.005  # narrower than this is no graspable object, but noise
    finger_depth: float = 0.02  # TCP below the touched surface (capped by half the object)
    top_down_max_tilt_deg: float = 35.0  # surface normals within this of "up" -> top-down
    neighbourhood_radius: float = 0.06  # horizontal radius around the pick point that is used
    min_points: int = 30  # fewer points than this (cloud, support, object) -> refuse
    support_distance: float = 0.006  # support plane inlier distance
    width_margin: float = 0.005  # refuse objects wider than max_open_width - width_margin
    support_margin: float = 0.003  # lowest TCP height above the support
    normal_radius: float = 0.015  # points within this of the pick point give its normal
    horizontal_max_tilt_deg: float = 20.0  # local normals within this of "up" are horizontal
    grasp_end_margin: float = 0.02  # TCP stays this far inside the ends of the long side
    max_points: int = 20000  # denser neighbourhoods are voxel-downsampled to about this
    seed: int = 0  # RANSAC seed, for reproducible grasps


@dataclass
class ObjectEstimate:
    """The grasped object as a gravity-aligned box in the base frame.

    ``size`` is (length along the footprint's long side = the box's x axis, width along its short
    side = y, height along ``up`` = z); ``yaw`` is the angle of the box's x axis about the base
    frame's +z, wrapped to (-pi/2, pi/2]. ``top_z`` and ``support_z`` are heights along ``up``
    (base z for the default up): the object's top and the surface it stands on. Only the part of
    the object within the neighbourhood radius of the pick point is seen.
    """

    center: np.ndarray  # (3,)
    size: np.ndarray  # (3,)
    yaw: float
    top_z: float
    support_z: float
    num_points: int


@dataclass
class Grasp:
    """A TCP pose in the base frame, +z = approach, +y = closing axis (see module docstring)."""

    position: np.ndarray  # (3,)
    quaternion_xyzw: np.ndarray  # (4,)
    approach: str  # APPROACH_TOP_DOWN or APPROACH_SURFACE_NORMAL
    open_width: float  # gripper opening before closing, metres
    object_width: float  # object extent along the closing axis, metres
    object: ObjectEstimate | None = None

    def rotation_matrix(self) -> np.ndarray:
        """TCP axes as columns (x, y, z) in the base frame."""
        return Rotation.from_quat(self.quaternion_xyzw).as_matrix()

    @property
    def approach_direction(self) -> np.ndarray:
        """Unit vector the hand moves along to reach the grasp (TCP +z)."""
        return self.rotation_matrix()[:, 2]


@dataclass
class GraspResult:
    """A grasp, or None with the reason in ``status`` ("ok" on success)."""

    grasp: Grasp | None
    status: str

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK


@dataclass
class _Support:
    point: np.ndarray  # a point on the support plane
    normal: np.ndarray  # unit, on the side of "up"
    noise: float  # robust standard deviation of the inliers' distances

    def heights(self, points: np.ndarray) -> np.ndarray:
        return (points - self.point) @ self.normal


def compute_grasp(
    points_base: np.ndarray,
    pick_point: np.ndarray,
    settings: GraspSettings = GraspSettings(),  # noqa: B008 - frozen, shared safely
    up: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> GraspResult:
    """Grasp for the object at ``pick_point`` from the cloud around it. Never raises.

    ``points_base`` (N, 3) may hold NaN/inf rows (depth holes); they are dropped. Statuses other
    than "ok": "invalid_pick_point", "too_few_points", "no_support_surface" (nothing horizontal
    below the pick point), "no_object_above_support" (the pick point is on the support itself),
    "pick_point_off_object", "too_few_object_points", "object_too_wide", "object_too_narrow".
    """
    up_vector = np.asarray(up, dtype=np.float64).reshape(3)
    up_vector = up_vector / np.linalg.norm(up_vector)
    pick = np.asarray(pick_point, dtype=np.float64).reshape(3)
    if not np.all(np.isfinite(pick)):
        return GraspResult(None, STATUS_INVALID_PICK_POINT)
    valid = np.asarray(points_base, dtype=np.float64).reshape(-1, 3)
    valid = valid[np.all(np.isfinite(valid), axis=1)]
    offsets = valid - pick
    horizontal = offsets - np.outer(offsets @ up_vector, up_vector)
    horizontal_distance = np.linalg.norm(horizontal, axis=1)
    # An object wider than the neighbourhood hides its support: look once more, twice as wide,
    # so that it is reported as too wide rather than as no object.
    for radius in (settings.neighbourhood_radius, 2 * settings.neighbourhood_radius):
        points = valid[horizontal_distance <= radius]
        if points.shape[0] < max(settings.min_points, 4):
            return GraspResult(None, STATUS_TOO_FEW_POINTS)
        points = _thin(points, radius, settings.max_points)
        spacing, is_horizontal = _surface_analysis(points, up_vector, settings)
        support_or_status = _find_support(points, is_horizontal, pick, up_vector, settings)
        if not isinstance(support_or_status, str):
            break
    if isinstance(support_or_status, str):
        return GraspResult(None, support_or_status)
    support = support_or_status

    heights = support.heights(points)
    threshold = max(settings.support_distance / 2, 3 * support.noise)
    if support.heights(pick[None])[0] <= threshold:
        return GraspResult(None, STATUS_NO_OBJECT)
    above = points[heights > threshold]
    if above.shape[0] < settings.min_points:
        return GraspResult(None, STATUS_TOO_FEW_OBJECT_POINTS)
    eps = max(3 * spacing, 0.005)
    object_points = _cluster_at(above, pick, eps)
    if object_points is None:
        return GraspResult(None, STATUS_PICK_OFF_OBJECT)
    if object_points.shape[0] < settings.min_points:
        return GraspResult(None, STATUS_TOO_FEW_OBJECT_POINTS)

    estimate, long_axis, long_range = _footprint(object_points, support)
    pick_normal = _outward_normal(object_points, pick, support.normal, settings.normal_radius)
    tilt = math.degrees(math.acos(min(1.0, abs(float(pick_normal @ support.normal)))))
    pick_height = float(support.heights(pick[None])[0])
    object_height = estimate.top_z - estimate.support_z
    at_top = pick_height >= object_height - settings.support_distance
    if tilt <= settings.top_down_max_tilt_deg or at_top:
        return _top_down(pick, estimate, support, long_axis, long_range, up_vector, settings)
    return _side(pick, pick_normal, object_points, estimate, support, up_vector, settings)


def _thin(points: np.ndarray, radius: float, max_points: int) -> np.ndarray:
    """Voxel-downsampled points when there are more than ``max_points`` (dense cameras)."""
    if points.shape[0] <= max_points:
        return points
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    voxel = radius * math.sqrt(2 * math.pi / max_points)  # a disc and some walls
    return np.asarray(cloud.voxel_down_sample(voxel).points)


def _surface_analysis(
    points: np.ndarray, up: np.ndarray, settings: GraspSettings
) -> tuple[float, np.ndarray]:
    """Median point spacing, and which points lie on horizontal surfaces (local normals)."""
    spacing = float(np.median(cKDTree(points).query(points, k=2)[0][:, 1]))
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.estimate_normals(
        o3d.geometry.KDTreeSearchParamHybrid(radius=max(4 * spacing, 0.008), max_nn=30)
    )
    normals = np.asarray(cloud.normals)
    min_cos = math.cos(math.radians(settings.horizontal_max_tilt_deg))
    return spacing, np.abs(normals @ up) >= min_cos


def _find_support(
    points: np.ndarray,
    is_horizontal: np.ndarray,
    pick: np.ndarray,
    up: np.ndarray,
    settings: GraspSettings,
) -> _Support | str:
    """Highest dense horizontal layer below the pick point, refined by a RANSAC plane."""
    heights = points @ up
    pick_height = float(pick @ up)
    # A support lies clearly below the pick point: beyond the noise of the surface it is on.
    level = is_horizontal & (np.abs(heights - pick_height) < settings.support_distance)
    level_noise = 0.0
    if np.count_nonzero(level) >= settings.min_points:
        level_heights = heights[level]
        level_noise = 1.4826 * float(np.median(np.abs(level_heights - np.median(level_heights))))
    min_height = max(settings.support_distance / 2, 3 * level_noise)
    candidates = heights[is_horizontal & (heights < pick_height - min_height)]
    if candidates.size < settings.min_points:
        if np.count_nonzero(level) >= settings.min_points:
            return STATUS_NO_OBJECT
        return STATUS_NO_SUPPORT
    bin_width = settings.support_distance / 3
    edges = np.arange(candidates.min(), candidates.max() + 2 * bin_width, bin_width)
    counts, edges = np.histogram(candidates, edges)
    window = np.convolve(counts, np.ones(3), mode="same")
    dense = np.flatnonzero(window >= settings.min_points)
    if dense.size == 0:
        return STATUS_NO_SUPPORT
    run_end = int(dense[-1])
    run_start = run_end
    while run_start - 1 >= 0 and window[run_start - 1] >= settings.min_points:
        run_start -= 1
    peak = run_start + int(np.argmax(window[run_start : run_end + 1]))
    level_height = (edges[peak] + edges[peak + 1]) / 2
    near_band = candidates[np.abs(candidates - level_height) < settings.support_distance / 2]
    level_height = float(np.median(near_band))

    band = points[np.abs(heights - level_height) < settings.support_distance]
    normal = up
    if band.shape[0] >= 3:
        o3d.utility.random.seed(settings.seed)
        band_cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(band))
        model, _ = band_cloud.segment_plane(
            distance_threshold=settings.support_distance / 2, ransac_n=3, num_iterations=200
        )
        fitted = np.asarray(model[:3], dtype=np.float64)
        fitted /= np.linalg.norm(fitted)
        if fitted @ up < 0:
            fitted = -fitted
        if fitted @ up >= math.cos(math.radians(settings.horizontal_max_tilt_deg)):
            normal = fitted
    centroid = np.median(band, axis=0)
    residuals = (band - centroid) @ normal
    inliers = np.abs(residuals) < settings.support_distance / 2
    noise = 1.4826 * float(np.median(np.abs(residuals[inliers] - np.median(residuals[inliers]))))
    point = centroid + float(np.median(residuals[inliers])) * normal
    return _Support(point=point, normal=normal, noise=noise)


def _cluster_at(points: np.ndarray, pick: np.ndarray, eps: float) -> np.ndarray | None:
    """Points of the DBSCAN cluster the pick point touches, or None if it touches none."""
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    labels = np.asarray(cloud.cluster_dbscan(eps=eps, min_points=4))
    distances, indices = cKDTree(points).query(pick, k=min(10, points.shape[0]))
    nearby_labels = labels[np.atleast_1d(indices)[np.atleast_1d(distances) <= 2 * eps]]
    nearby_labels = nearby_labels[nearby_labels >= 0]
    if nearby_labels.size == 0:
        return None
    return points[labels == np.bincount(nearby_labels).argmax()]


def _plane_basis(normal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two in-plane axes; the first is base +x projected on the plane where possible."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(normal[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    axis_a = helper - (helper @ normal) * normal
    axis_a /= np.linalg.norm(axis_a)
    return axis_a, np.cross(normal, axis_a)


def _footprint(
    object_points: np.ndarray, support: _Support
) -> tuple[ObjectEstimate, np.ndarray, tuple[float, float]]:
    """Object box from the minimum-area rectangle of its points projected on the support.

    Returns the estimate, the long axis (a 3D unit vector in the support plane) and the
    long side's extent (low, high) measured from the box centre along the long axis.
    """
    axis_a, axis_b = _plane_basis(support.normal)
    in_plane = (object_points - support.point) @ np.column_stack((axis_a, axis_b))
    origin_2d = in_plane.mean(axis=0)
    # minAreaRect in millimetres around the centroid keeps float32 precise.
    _, (side_1, side_2), angle_deg = cv2.minAreaRect(
        ((in_plane - origin_2d) * 1000.0).astype(np.float32)
    )
    angle = math.radians(angle_deg) + (0.0 if side_1 >= side_2 else math.pi / 2)
    long_2d = np.array([math.cos(angle), math.sin(angle)])
    short_2d = np.array([-long_2d[1], long_2d[0]])
    trim = 1.0  # percent; noise-proof extents
    along_long = (in_plane - origin_2d) @ long_2d
    along_short = (in_plane - origin_2d) @ short_2d
    low_l, high_l = np.percentile(along_long, [trim, 100 - trim])
    low_s, high_s = np.percentile(along_short, [trim, 100 - trim])
    middle_2d = origin_2d + (low_l + high_l) / 2 * long_2d + (low_s + high_s) / 2 * short_2d

    heights = support.heights(object_points)
    band_floor = np.percentile(heights, 90) - 2.5 * max(support.noise, 0.001)
    height = float(np.median(heights[heights >= band_floor]))
    long_axis = long_2d[0] * axis_a + long_2d[1] * axis_b
    bottom_center = support.point + middle_2d[0] * axis_a + middle_2d[1] * axis_b
    center = bottom_center + height / 2 * support.normal
    yaw = math.atan2(long_axis[1], long_axis[0])
    if yaw <= -math.pi / 2:
        yaw += math.pi
    elif yaw > math.pi / 2:
        yaw -= math.pi
    up_height = float(support.point @ support.normal)
    estimate = ObjectEstimate(
        center=center,
        size=np.array([high_l - low_l, high_s - low_s, height]),
        yaw=yaw,
        top_z=up_height + height,
        support_z=up_height,
        num_points=int(object_points.shape[0]),
    )
    half_long = (high_l - low_l) / 2
    return estimate, long_axis, (-half_long, half_long)


def _outward_normal(
    object_points: np.ndarray, pick: np.ndarray, up: np.ndarray, radius: float
) -> np.ndarray:
    """Surface normal at the pick point (PCA of nearby object points), pointing out of it."""
    nearby = object_points[np.linalg.norm(object_points - pick, axis=1) <= radius]
    if nearby.shape[0] < 5:
        nearby = object_points[np.argsort(np.linalg.norm(object_points - pick, axis=1))[:10]]
    centred = nearby - nearby.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    inward = object_points.mean(axis=0) - pick
    outward_hint = -inward if np.linalg.norm(inward) > 1e-6 else up
    if normal @ outward_hint < 0:
        normal = -normal
    return normal / np.linalg.norm(normal)


def _width_status(object_width: float, settings: GraspSettings) -> str:
    if object_width > settings.max_open_width - settings.width_margin:
        return STATUS_TOO_WIDE
    if object_width < settings.min_object_width:
        return STATUS_TOO_NARROW
    return STATUS_OK


def _quaternion(x_axis: np.ndarray, y_axis: np.ndarray, z_axis: np.ndarray) -> np.ndarray:
    return Rotation.from_matrix(np.column_stack((x_axis, y_axis, z_axis))).as_quat()


def _top_down(
    pick: np.ndarray,
    estimate: ObjectEstimate,
    support: _Support,
    long_axis: np.ndarray,
    long_range: tuple[float, float],
    gravity_up: np.ndarray,
    settings: GraspSettings,
) -> GraspResult:
    """Grasp straight down (along gravity), closing across the footprint's short side."""
    object_width = float(estimate.size[1])
    status = _width_status(object_width, settings)
    if status != STATUS_OK:
        return GraspResult(None, status)
    up = support.normal
    height = estimate.top_z - estimate.support_z
    pick_height = float(support.heights(pick[None])[0])
    tcp_height = max(
        pick_height - min(settings.finger_depth, height / 2), settings.support_margin
    )
    # Along the long side keep where the model pointed (inside the ends); across it, centre.
    bottom_center = estimate.center - height / 2 * up
    along = float((pick - bottom_center) @ long_axis)
    low, high = long_range
    end_margin = min(settings.grasp_end_margin, (high - low) / 2)
    along = float(np.clip(along, low + end_margin, high - end_margin))
    position = bottom_center + along * long_axis + tcp_height * up

    z_axis = -gravity_up
    y_axis = np.cross(gravity_up, long_axis)
    y_axis /= np.linalg.norm(y_axis)
    x_axis = np.cross(y_axis, z_axis)
    # Of the two symmetric hand yaws, take the one whose x axis points away from the base.
    radial = position - (position @ gravity_up) * gravity_up
    reference = radial if np.linalg.norm(radial) > 1e-6 else np.array([1.0, 0.0, 0.0])
    if x_axis @ reference < 0:
        x_axis, y_axis = -x_axis, -y_axis
    grasp = Grasp(
        position=position,
        quaternion_xyzw=_quaternion(x_axis, y_axis, z_axis),
        approach=APPROACH_TOP_DOWN,
        open_width=min(object_width + settings.finger_clearance, settings.max_open_width),
        object_width=object_width,
        object=estimate,
    )
    return GraspResult(grasp, STATUS_OK)


def _side(
    pick: np.ndarray,
    outward_normal: np.ndarray,
    object_points: np.ndarray,
    estimate: ObjectEstimate,
    support: _Support,
    gravity_up: np.ndarray,
    settings: GraspSettings,
) -> GraspResult:
    """Grasp approaching along the inward surface normal, closing horizontally across it."""
    up = support.normal
    z_axis = -outward_normal
    y_axis = np.cross(gravity_up, z_axis)
    y_axis /= np.linalg.norm(y_axis)
    x_axis = np.cross(y_axis, z_axis)
    if x_axis @ gravity_up < 0:  # keep the hand's x axis upward of the two symmetric choices
        x_axis, y_axis = -x_axis, -y_axis
    # Width: the object's extent across the fingers, over a finger-high slice around the pick.
    slice_mask = np.abs((object_points - pick) @ x_axis) <= max(settings.finger_depth, 0.01)
    slice_points = object_points[slice_mask]
    if slice_points.shape[0] < 10:
        slice_points = object_points
    across = (slice_points - pick) @ y_axis
    low_y, high_y = np.percentile(across, [1.0, 99.0])
    object_width = float(high_y - low_y)
    status = _width_status(object_width, settings)
    if status != STATUS_OK:
        return GraspResult(None, status)
    depth = float(np.ptp((object_points - pick) @ z_axis))
    position = pick + min(settings.finger_depth, depth / 2) * z_axis
    position = position + (low_y + high_y) / 2 * y_axis  # centred between the fingers
    lowest = support.heights(position[None])[0]
    if lowest < settings.support_margin:
        position = position + (settings.support_margin - lowest) * up
    grasp = Grasp(
        position=position,
        quaternion_xyzw=_quaternion(x_axis, y_axis, z_axis),
        approach=APPROACH_SURFACE_NORMAL,
        open_width=min(object_width + settings.finger_clearance, settings.max_open_width),
        object_width=object_width,
        object=estimate,
    )
    return GraspResult(grasp, STATUS_OK)
