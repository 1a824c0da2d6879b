"""Top-down map images from occupancy grids, and map pixel <-> world conversions.

The navigator shows the model a picture of ``nav_msgs/OccupancyGrid`` and reads back a pixel, so
the picture's layout is a contract: one grid cell is ``scale`` x ``scale`` pixels, and the image is
flipped vertically so that the map's +y axis points up (as RViz shows it and as people draw floor
plans). The grid's origin yaw is honoured in both directions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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
