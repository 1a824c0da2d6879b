"""Top-down map images from occupancy grids, map pixel <-> world conversions, and goal geometry.

The navigator shows the model a picture of ``nav_msgs/OccupancyGrid`` and reads back a pixel, so
the picture's layout is a contract: one grid cell is ``scale`` x ``scale`` pixels, and the image is
flipped vertically so that the map's +y axis points up (as RViz shows it and as people draw floor
plans). The grid's origin yaw is honoured in both directions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

FREE = 0
UNKNOWN = -1
OCCUPIED_THRESHOLD = 65  # nav2 map_server's default occupied_thresh (0.65) in percent

FREE_RGB = (255, 255, 255)
OCCUPIED_RGB = (0, 0, 0)
UNKNOWN_RGB = (160, 160, 160)


@dataclass(frozen=True)
class GridSpec:
    """Geometry of an occupancy grid (nav_msgs/MapMetaData): cells of ``resolution`` metres."""

    resolution: float
    width: int
    height: int
    origin_x: float = 0.0
    origin_y: float = 0.0
    origin_yaw: float = 0.0

    def __post_init__(self) -> None:
        if not (self.resolution > 0.0 and math.isfinite(self.resolution)):
            raise ValueError(f"resolution must be a positive number, got {self.resolution}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"grid must have cells, got {self.width}x{self.height}")


def _to_grid_frame(spec: GridSpec, x: float, y: float) -> tuple[float, float]:
    """World (map frame) metres -> metres along the grid's axes from its origin corner."""
    dx, dy = x - spec.origin_x, y - spec.origin_y
    c, s = math.cos(spec.origin_yaw), math.sin(spec.origin_yaw)
    return c * dx + s * dy, -s * dx + c * dy


def _from_grid_frame(spec: GridSpec, gx: float, gy: float) -> tuple[float, float]:
    c, s = math.cos(spec.origin_yaw), math.sin(spec.origin_yaw)
    return spec.origin_x + c * gx - s * gy, spec.origin_y + s * gx + c * gy


def world_to_cell(spec: GridSpec, x: float, y: float) -> tuple[int, int]:
    """The (col, row) of the cell holding a world point; may lie outside the grid."""
    gx, gy = _to_grid_frame(spec, x, y)
    return math.floor(gx / spec.resolution), math.floor(gy / spec.resolution)


def cell_to_world(spec: GridSpec, col: int, row: int) -> tuple[float, float]:
    """World coordinates of a cell's centre."""
    return _from_grid_frame(spec, (col + 0.5) * spec.resolution, (row + 0.5) * spec.resolution)


def in_grid(spec: GridSpec, col: int, row: int) -> bool:
    """Whether a cell index lies inside the grid."""
    return 0 <= col < spec.width and 0 <= row < spec.height


def world_to_map_pixel(spec: GridSpec, x: float, y: float, scale: int = 1) -> tuple[float, float]:
    """Continuous pixel (u, v) of a world point in the image of :func:`render_map_image`."""
    gx, gy = _to_grid_frame(spec, x, y)
    return gx / spec.resolution * scale, (spec.height - gy / spec.resolution) * scale


def map_pixel_to_world(spec: GridSpec, u: float, v: float, scale: int = 1) -> tuple[float, float]:
    """World point at a continuous pixel (u, v) of the map image (inverse of the above)."""
    gx = u / scale * spec.resolution
    gy = (spec.height - v / scale) * spec.resolution
    return _from_grid_frame(spec, gx, gy)


def grid_from_message_data(data: np.ndarray | list[int], spec: GridSpec) -> np.ndarray:
    """OccupancyGrid.data (row-major from the origin corner) as an int8 (height, width) array."""
    cells = np.asarray(data, dtype=np.int8)
    if cells.size != spec.width * spec.height:
        raise ValueError(
            f"grid data holds {cells.size} cells, expected {spec.width}x{spec.height}"
        )
    return cells.reshape(spec.height, spec.width)


def render_map_image(grid: np.ndarray, scale: int = 1) -> np.ndarray:
    """RGB image of a grid: free white, occupied black, unknown grey, +y up, ``scale`` px/cell."""
    if grid.ndim != 2:
        raise ValueError(f"grid must be 2-D, got shape {grid.shape}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    image = np.empty(grid.shape + (3,), dtype=np.uint8)
    image[:] = FREE_RGB
    image[grid < 0] = UNKNOWN_RGB
    image[grid >= OCCUPIED_THRESHOLD] = OCCUPIED_RGB
    image = np.flipud(image)
    if scale > 1:
        image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
    return np.ascontiguousarray(image)


# Goal geometry ---------------------------------------------------------------------------------
# A goal is only useful if the robot's footprint (a disc of ``robot_radius``) fits there and the
# robot can drive there. Unknown cells count as blocked unless the caller says otherwise, and the
# area outside the grid is blocked: a planner knows nothing of it.

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class SnapResult:
    """Where a requested point ended up: ``ok`` and a pose, or ``ok`` false and why.

    status: "ok" (the point itself fits the robot), "snapped" (moved to the nearest cell that
    does), "outside_map", "no_free_cell_within_max_snap", "unreachable",
    "no_free_cell_near_target".
    """

    ok: bool
    x: float
    y: float
    status: str
    moved_m: float = 0.0
    yaw: float = float("nan")


def blocked_mask(grid: np.ndarray, unknown_is_free: bool = False) -> np.ndarray:
    """Cells a robot may not overlap: occupied ones, and unknown ones unless declared free."""
    blocked = grid >= OCCUPIED_THRESHOLD
    if not unknown_is_free:
        blocked |= grid < 0
    return blocked


def clearance_m(grid: np.ndarray, spec: GridSpec, unknown_is_free: bool = False) -> np.ndarray:
    """Per cell, the distance (m) from its centre to the nearest blocked cell's edge or map edge."""
    blocked = np.pad(blocked_mask(grid, unknown_is_free), 1, constant_values=True)
    centre_to_centre = ndimage.distance_transform_edt(~blocked)[1:-1, 1:-1]
    return np.maximum(centre_to_centre - 0.5, 0.0) * spec.resolution


def free_space_mask(
    grid: np.ndarray, spec: GridSpec, robot_radius: float, unknown_is_free: bool = False
) -> np.ndarray:
    """Cells where the robot's centre may stand: its disc touches no blocked cell."""
    if robot_radius < 0.0:
        raise ValueError(f"robot_radius must be >= 0, got {robot_radius}")
    return clearance_m(grid, spec, unknown_is_free) >= robot_radius


def snap_to_free(
    grid: np.ndarray,
    spec: GridSpec,
    x: float,
    y: float,
    robot_radius: float,
    max_snap_m: float,
    unknown_is_free: bool = False,
    free_mask: np.ndarray | None = None,
) -> SnapResult:
    """The point itself if the robot fits there, else the nearest cell centre where it fits.

    Fails (never clamps) when the point is outside the grid or no fitting cell lies within
    ``max_snap_m``; a point in an obstacle, an unknown cell or a corridor narrower than the robot
    moves to the nearest place the robot fits.
    """
    col, row = world_to_cell(spec, x, y)
    if not in_grid(spec, col, row):
        return SnapResult(False, x, y, "outside_map")
    mask = free_space_mask(grid, spec, robot_radius, unknown_is_free) if free_mask is None \
        else free_mask
    if mask[row, col]:
        return SnapResult(True, x, y, "ok")
    if not mask.any():
        return SnapResult(False, x, y, "no_free_cell_within_max_snap")
    _, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
    free_col, free_row = int(cols[row, col]), int(rows[row, col])
    fx, fy = cell_to_world(spec, free_col, free_row)
    moved = math.hypot(fx - x, fy - y)
    if moved > max_snap_m:
        return SnapResult(False, x, y, "no_free_cell_within_max_snap", moved)
    return SnapResult(True, fx, fy, "snapped", moved)


def _nearest_free_cell(
    mask: np.ndarray, spec: GridSpec, x: float, y: float, max_m: float
) -> tuple[int, int] | None:
    col, row = world_to_cell(spec, x, y)
    if not in_grid(spec, col, row) or not mask.any():
        return None
    if mask[row, col]:
        return col, row
    distance, (rows, cols) = ndimage.distance_transform_edt(~mask, return_indices=True)
    if distance[row, col] * spec.resolution > max_m:
        return None
    return int(cols[row, col]), int(rows[row, col])


def reachable(
    grid: np.ndarray,
    spec: GridSpec,
    start_xy: tuple[float, float],
    goal_xy: tuple[float, float],
    robot_radius: float,
    unknown_is_free: bool = False,
    free_mask: np.ndarray | None = None,
) -> bool:
    """Whether one connected region of robot-fitting cells holds both points.

    A start pose touching an obstacle (the footprint is inflated on a discrete grid) is first
    moved to the nearest fitting cell within one robot radius plus one cell.
    """
    mask = free_space_mask(grid, spec, robot_radius, unknown_is_free) if free_mask is None \
        else free_mask
    goal = _nearest_free_cell(mask, spec, *goal_xy, 0.0)
    if goal is None:
        return False
    return bool(reachable_mask(mask, spec, start_xy, robot_radius)[goal[1], goal[0]])


def reachable_mask(
    free_mask: np.ndarray, spec: GridSpec, start_xy: tuple[float, float], robot_radius: float
) -> np.ndarray:
    """The fitting cells connected to the robot (empty if the robot stands nowhere near one)."""
    start = _nearest_free_cell(free_mask, spec, *start_xy, robot_radius + spec.resolution)
    if start is None:
        return np.zeros_like(free_mask)
    labels, _ = ndimage.label(free_mask, structure=EIGHT_CONNECTED)
    return labels == labels[start[1], start[0]]


def standoff_goal(
    grid: np.ndarray,
    spec: GridSpec,
    robot_xy: tuple[float, float],
    target_xy: tuple[float, float],
    standoff_m: float,
    robot_radius: float,
    max_snap_m: float = 0.3,
    unknown_is_free: bool = False,
) -> SnapResult:
    """A pose ``standoff_m`` from the target, facing it, where the robot fits and can drive to.

    The point on the target's robot-facing side is kept if the robot fits there and can reach
    it. Otherwise the goal is the reachable fitting cell between ``standoff_m - one cell`` and
    ``standoff_m + max_snap_m`` from the target whose bearing (seen from the target) is closest
    to the robot's, so a blocked side gives way to the nearest open one. The yaw faces the target.
    """
    if standoff_m <= 0.0:
        raise ValueError(f"standoff_m must be > 0, got {standoff_m}")
    mask = free_space_mask(grid, spec, robot_radius, unknown_is_free)
    connected = reachable_mask(mask, spec, robot_xy, robot_radius)
    tx, ty = target_xy
    direct = math.atan2(robot_xy[1] - ty, robot_xy[0] - tx)
    x, y = tx + standoff_m * math.cos(direct), ty + standoff_m * math.sin(direct)
    col, row = world_to_cell(spec, x, y)
    if in_grid(spec, col, row) and connected[row, col]:
        return SnapResult(True, x, y, "ok", 0.0, math.atan2(ty - y, tx - x))
    rows, cols = np.indices(mask.shape)
    gx = (cols + 0.5) * spec.resolution
    gy = (rows + 0.5) * spec.resolution
    c, s = math.cos(spec.origin_yaw), math.sin(spec.origin_yaw)
    wx, wy = spec.origin_x + c * gx - s * gy, spec.origin_y + s * gx + c * gy
    distance = np.hypot(wx - tx, wy - ty)
    ring = (distance >= standoff_m - spec.resolution) & (distance <= standoff_m + max_snap_m)
    candidates = ring & connected
    if not candidates.any():
        status = "unreachable" if (ring & mask).any() else "no_free_cell_near_target"
        return SnapResult(False, tx, ty, status)
    deviation = np.abs((np.arctan2(wy - ty, wx - tx) - direct + np.pi) % (2 * np.pi) - np.pi)
    cost = deviation + np.abs(distance - standoff_m) / standoff_m
    best = np.unravel_index(np.argmin(np.where(candidates, cost, np.inf)), cost.shape)
    bx, by = float(wx[best]), float(wy[best])
    return SnapResult(True, bx, by, "snapped", math.hypot(bx - x, by - y),
                      math.atan2(ty - by, tx - bx))


# Angles ----------------------------------------------------------------------------------------


def wrap_angle(angle: float) -> float:
    """An angle in [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``yaw`` about +z (geometry_msgs/Quaternion order)."""
    x, y, z, w = Rotation.from_euler("z", yaw).as_quat()
    return float(x), float(y), float(z), float(w)


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    """Heading about +z of an (x, y, z, w) quaternion (roll and pitch ignored)."""
    if x == y == z == w == 0.0:
        raise ValueError("zero quaternion has no heading")
    return float(Rotation.from_quat([x, y, z, w]).as_euler("ZYX")[0])


# Named regions drawn on the map image ----------------------------------------------------------


@dataclass(frozen=True)
class NamedRegion:
    """An axis-aligned rectangle of the map frame with a name (e.g. a room)."""

    name: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float


def parse_region(text: str) -> NamedRegion:
    """"bedroom: x_min, y_min, x_max, y_max" (map metres) -> NamedRegion; ValueError if bad."""
    name, sep, numbers = text.partition(":")
    try:
        values = [float(v) for v in numbers.split(",")]
    except ValueError:
        values = []
    if not sep or not name.strip() or len(values) != 4 or not all(map(math.isfinite, values)):
        raise ValueError(f"region '{text}' is not 'name: x_min, y_min, x_max, y_max'")
    x0, y0, x1, y1 = values
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region '{text}' has max <= min")
    return NamedRegion(name.strip(), x0, y0, x1, y1)


def parse_regions(text: str) -> list[NamedRegion]:
    """Regions separated by ";" (see :func:`parse_region`); an empty text gives none."""
    return [parse_region(part) for part in text.split(";") if part.strip()]


def draw_regions(
    image: np.ndarray,
    spec: GridSpec,
    regions: Sequence[NamedRegion],
    scale: int = 1,
    colour: tuple[int, int, int] = (30, 90, 200),
) -> np.ndarray:
    """A copy of a map image with each region's outline and name drawn (rotated grids too)."""
    out = image.copy()
    for region in regions:
        corners = [(region.x_min, region.y_min), (region.x_max, region.y_min),
                   (region.x_max, region.y_max), (region.x_min, region.y_max)]
        pixels = np.array([world_to_map_pixel(spec, x, y, scale) for x, y in corners])
        cv2.polylines(out, [np.round(pixels).astype(np.int32)], True, colour, 1, cv2.LINE_AA)
        u, v = pixels.min(axis=0)
        font_scale = max(0.3, 0.25 * scale)
        cv2.putText(out, region.name, (int(u) + 2, int(v) + int(12 * font_scale / 0.4)),
                    cv2.FONT_HERSHEY_SIMPLEX, font_scale, colour, 1, cv2.LINE_AA)
    return out
