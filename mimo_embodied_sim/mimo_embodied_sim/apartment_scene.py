"""The apartment's scene: layout (rooms, walls with doors, furniture), the instruction table and
the MJCF text. Map frame = world frame, metres; see apartment.py for the plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

FREE, OCCUPIED, UNKNOWN = 0, 100, -1
RESOLUTION = 0.05
"""Occupancy grid cell size, metres."""
APARTMENT_SIZE = (10.0, 8.0)
"""Extent of the apartment (outer wall centre lines), metres along x and y."""
GRID_MARGIN = 0.5
"""Unknown border around the apartment in the grid, metres."""
WALL_THICKNESS = 0.1
WALL_HEIGHT = 2.4
CONFIG_FILE = "apartment.yaml"
NODE_NAME = "apartment_sim"

# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Room:
    """An axis-aligned room between wall centre lines; `center` is where region answers point."""

    name: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    floor_rgba: tuple[float, float, float, float]

    @property
    def center(self) -> tuple[float, float]:
        return (self.x_min + self.x_max) / 2, (self.y_min + self.y_max) / 2

    def contains(self, x: float, y: float) -> bool:
        return self.x_min <= x <= self.x_max and self.y_min <= y <= self.y_max


@dataclass(frozen=True)
class Part:
    """One primitive in world coordinates. box: half sizes (hx, hy, hz); cylinder: (r, hz);
    sphere: (r,). Boxes are axis-aligned, so footprints are exact rectangles and disks."""

    kind: str
    center: tuple[float, float, float]
    size: tuple[float, ...]
    rgba: tuple[float, float, float, float]

    def footprint_distance(self, points: np.ndarray) -> np.ndarray:
        """Distance in the floor plane from (N, 2) points to this part's footprint (0 inside)."""
        delta = np.abs(np.asarray(points, dtype=float).reshape(-1, 2) - self.center[:2])
        if self.kind == "box":
            outside = np.maximum(delta - np.array(self.size[:2]), 0.0)
            return np.hypot(outside[:, 0], outside[:, 1])
        return np.maximum(np.hypot(delta[:, 0], delta[:, 1]) - self.size[0], 0.0)

    def heading_error(self, x: float, y: float, yaw: float) -> float:
        """Angle (rad) from the heading at floor point (x, y) to the nearest direction that meets
        this footprint; 0 when the heading ray meets it (or the point is inside it)."""
        if self.footprint_distance(np.array([x, y]))[0] == 0.0:
            return 0.0
        cx, cy = self.center[:2]
        if self.kind == "box":
            # A convex polygon seen from outside: its directions span its corners' bearings.
            hx, hy = self.size[:2]
            corners = np.array([[cx - hx, cy - hy], [cx + hx, cy - hy],
                                [cx + hx, cy + hy], [cx - hx, cy + hy]])
            offsets = _wrap(np.arctan2(corners[:, 1] - y, corners[:, 0] - x) - yaw)
            if offsets.max() - offsets.min() < np.pi and offsets.min() <= 0.0 <= offsets.max():
                return 0.0
            return float(np.abs(offsets).min())
        # A disk: the bearing to its centre, widened by the tangents' half-angle.
        half_width = math.asin(min(self.size[0] / math.hypot(cx - x, cy - y), 1.0))
        return max(abs(_wrap(math.atan2(cy - y, cx - x) - yaw)) - half_width, 0.0)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min xyz, max xyz) of the part."""
        centre = np.array(self.center)
        if self.kind == "box":
            half = np.array(self.size)
        elif self.kind == "cylinder":
            half = np.array([self.size[0], self.size[0], self.size[1]])
        else:
            half = np.full(3, self.size[0])
        return centre - half, centre + half


@dataclass(frozen=True)
class Furniture:
    name: str
    room: str
    parts: tuple[Part, ...]
    target: bool


@dataclass(frozen=True)
class ObjectTruth:
    """Ground truth of one object in the map frame: its footprint is the union of the parts'
    (rectangles / disks); `footprint_min` / `footprint_max` bound it."""

    name: str
    room: str
    object_id: int  # value in render_segmentation()
    center: np.ndarray  # (3,) centre of the bounding box
    footprint_min: np.ndarray  # (2,)
    footprint_max: np.ndarray  # (2,)
    height: float
    parts: tuple[Part, ...]

    def distance(self, x: float, y: float) -> float:
        """Floor-plane distance from a point to the footprint (the object's nearest surface)."""
        point = np.array([[x, y]])
        return float(min(part.footprint_distance(point)[0] for part in self.parts))

    def heading_error(self, x: float, y: float, yaw: float) -> float:
        """How far (rad) a base at (x, y) must turn before it looks at the object: 0 when the
        heading ray meets the footprint, else the angle to the nearest direction that does."""
        return min(part.heading_error(x, y, yaw) for part in self.parts)


@dataclass(frozen=True)
class InstructionEntry:
    """An instruction that never names its target, the room to go to, the object to look for
    there, and the reasoning the oracle writes in <think>."""

    instruction: str
    room: str
    target: str
    reasoning: str


ROOMS: tuple[Room, ...] = (
    Room("living room", 0.0, 0.0, 6.0, 4.5, (0.82, 0.74, 0.60, 1.0)),
    Room("kitchen", 6.0, 0.0, 10.0, 4.5, (0.72, 0.80, 0.84, 1.0)),
    Room("bedroom", 0.0, 4.5, 5.0, 8.0, (0.62, 0.56, 0.76, 1.0)),
    Room("study", 5.0, 4.5, 10.0, 8.0, (0.52, 0.38, 0.26, 1.0)),
)

# Interior walls as (axis, fixed coordinate, start, end, doors [(from, to), ...]).
_INTERIOR_WALLS = (
    ("h", 4.5, 0.0, 10.0, ((3.9, 4.9), (7.4, 8.4))),  # living|bedroom, kitchen|study
    ("v", 6.0, 0.0, 4.5, ((1.6, 2.6),)),  # living|kitchen
    ("v", 5.0, 4.5, 8.0, ((5.6, 6.6),)),  # bedroom|study
)
DOORS: tuple[tuple[float, float], ...] = ((4.4, 4.5), (7.9, 4.5), (6.0, 2.1), (5.0, 6.1))
"""Centres of the door openings (1.0 m wide), map frame."""

_WOOD = (0.55, 0.36, 0.2, 1.0)
_DARK_WOOD = (0.32, 0.2, 0.12, 1.0)
_BLACK = (0.05, 0.05, 0.07, 1.0)

FURNITURE: tuple[Furniture, ...] = (
    Furniture("sofa", "living room", (
        Part("box", (2.5, 0.55, 0.22), (1.1, 0.45, 0.22), (0.75, 0.18, 0.15, 1.0)),
        Part("box", (2.5, 0.18, 0.45), (1.1, 0.12, 0.45), (0.68, 0.15, 0.12, 1.0)),
        Part("box", (1.32, 0.55, 0.32), (0.1, 0.45, 0.32), (0.68, 0.15, 0.12, 1.0)),
        Part("box", (3.68, 0.55, 0.32), (0.1, 0.45, 0.32), (0.68, 0.15, 0.12, 1.0)),
    ), True),
    Furniture("television", "living room", (
        Part("box", (2.5, 4.2, 0.25), (0.7, 0.2, 0.25), _DARK_WOOD),
        Part("box", (2.5, 4.25, 0.92), (0.6, 0.03, 0.36), _BLACK),
    ), True),
    Furniture("coffee table", "living room", (
        Part("box", (2.5, 1.6, 0.2), (0.45, 0.25, 0.2), (0.55, 0.6, 0.62, 1.0)),
    ), False),
    Furniture("fridge", "kitchen", (
        Part("box", (9.55, 0.45, 0.9), (0.4, 0.35, 0.9), (0.93, 0.94, 0.96, 1.0)),
        Part("box", (9.13, 0.62, 1.05), (0.02, 0.03, 0.3), (0.3, 0.3, 0.32, 1.0)),
    ), True),
    Furniture("counter", "kitchen", (
        Part("box", (9.65, 2.2, 0.45), (0.3, 1.2, 0.45), (0.25, 0.45, 0.35, 1.0)),
    ), False),
    Furniture("dining table", "kitchen", (
        Part("box", (6.9, 3.2, 0.375), (0.4, 0.35, 0.375), (0.85, 0.7, 0.45, 1.0)),
    ), False),
    Furniture("bed", "bedroom", (
        Part("box", (1.3, 6.9, 0.15), (0.8, 0.95, 0.15), _WOOD),
        Part("box", (1.3, 6.9, 0.42), (0.78, 0.95, 0.12), (0.2, 0.35, 0.75, 1.0)),
        Part("box", (1.3, 7.65, 0.6), (0.6, 0.15, 0.06), (0.96, 0.96, 0.96, 1.0)),
        Part("box", (1.3, 7.9, 0.55), (0.8, 0.05, 0.55), _DARK_WOOD),
    ), True),
    Furniture("wardrobe", "bedroom", (
        Part("box", (4.5, 7.6, 1.0), (0.45, 0.3, 1.0), _DARK_WOOD),
    ), False),
    Furniture("desk", "study", (
        Part("box", (9.2, 7.45, 0.375), (0.7, 0.4, 0.375), (0.8, 0.62, 0.4, 1.0)),
        Part("box", (9.2, 7.7, 0.95), (0.25, 0.03, 0.18), _BLACK),
    ), True),
    Furniture("bookshelf", "study", (
        Part("box", (6.5, 7.75, 0.9), (0.6, 0.18, 0.9), (0.4, 0.25, 0.35, 1.0)),
    ), False),
    Furniture("plant", "study", (
        Part("cylinder", (9.5, 5.0, 0.2), (0.2, 0.2), (0.72, 0.35, 0.2, 1.0)),
        Part("sphere", (9.5, 5.0, 0.75), (0.35,), (0.15, 0.55, 0.2, 1.0)),
    ), True),
)


def wall_parts() -> list[Part]:
    """Boxes of the outer walls and of the interior walls with their door openings."""
    width, height = APARTMENT_SIZE
    t, h = WALL_THICKNESS / 2, WALL_HEIGHT / 2
    colour = (0.93, 0.9, 0.84, 1.0)
    segments = [("h", 0.0, -t, width + t, ()), ("h", height, -t, width + t, ()),
                ("v", 0.0, -t, height + t, ()), ("v", width, -t, height + t, ())]
    segments += list(_INTERIOR_WALLS)
    parts = []
    for axis, fixed, start, end, doors in segments:
        edges = [start] + [v for door in doors for v in door] + [end]
        for a, b in zip(edges[::2], edges[1::2], strict=True):
            mid, half = (a + b) / 2, (b - a) / 2
            if axis == "h":
                parts.append(Part("box", (mid, fixed, h), (half, t, h), colour))
            else:
                parts.append(Part("box", (fixed, mid, h), (t, half, h), colour))
    return parts


def load_instruction_table(config_file: Path | None = None) -> list[InstructionEntry]:
    """The instruction table of config/apartment.yaml (parameter `instructions`: strings
    'instruction | room | target | reasoning')."""
    path = config_file or _config_path()
    document = yaml.safe_load(Path(path).read_text()) or {}
    lines = document[NODE_NAME]["ros__parameters"]["instructions"]
    return parse_instruction_table(lines)


def parse_instruction_table(lines: list[str]) -> list[InstructionEntry]:
    entries = []
    for line in lines:
        fields = [f.strip() for f in str(line).split("|")]
        if len(fields) != 4 or not all(fields):
            raise ValueError(f"instruction entry '{line}' is not 'instruction | room | target | "
                             "reasoning'")
        entries.append(InstructionEntry(*fields))
    return entries


def _config_path() -> Path:
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("mimo_embodied_sim")) / "config" / CONFIG_FILE
        if installed.is_file():
            return installed
    except (ImportError, LookupError, ValueError, OSError):
        pass
    return Path(__file__).resolve().parents[1] / "config" / CONFIG_FILE


# ---------------------------------------------------------------------------------------------
# MJCF
# ---------------------------------------------------------------------------------------------


def _fmt(values: tuple[float, ...] | np.ndarray) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _geom(name: str, part: Part) -> str:
    return (f'    <geom name="{name}" type="{part.kind}" pos="{_fmt(part.center)}" '
            f'size="{_fmt(part.size)}" rgba="{_fmt(part.rgba)}"/>')


def build_mjcf(width: int, height: int, fovy_deg: float, camera_position: np.ndarray,
               camera_xyaxes: np.ndarray, robot_radius: float) -> str:
    """The apartment's MJCF text; the robot is a mocap body carrying the camera."""
    geoms = []
    for index, part in enumerate(wall_parts()):
        geoms.append(_geom(f"wall/{index}", part))
    for room in ROOMS:
        floor = Part("box", ((room.x_min + room.x_max) / 2, (room.y_min + room.y_max) / 2, 0.0005),
                     ((room.x_max - room.x_min) / 2, (room.y_max - room.y_min) / 2, 0.0005),
                     room.floor_rgba)
        geoms.append(_geom(f"floor/{room.name.replace(' ', '_')}", floor))
    for item in FURNITURE:
        for index, part in enumerate(item.parts):
            geoms.append(_geom(f"{item.name.replace(' ', '_')}/{index}", part))
    mast_height = camera_position[2] - 0.3
    return f"""<mujoco model="mimo_apartment">
  <compiler angle="radian"/>
  <option timestep="0.02"/>
  <statistic extent="1" center="5 4 1"/>
  <visual>
    <global offwidth="{width}" offheight="{height}"/>
    <quality shadowsize="0"/>
    <map znear="0.05" zfar="30"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.35 0.35 0.35" specular="0 0 0"/>
  </visual>
  <default><geom contype="0" conaffinity="0"/></default>
  <worldbody>
    <light name="sun" pos="5 4 6" dir="0 0 -1" diffuse="0.45 0.45 0.45" castshadow="false"/>
    <geom name="ground" type="plane" size="30 30 0.1" rgba="0.4 0.42 0.4 1"/>
{chr(10).join(geoms)}
    <body name="base" mocap="true" pos="1 1 0">
      <geom name="base/body" type="cylinder" size="{robot_radius:.6g} 0.12" pos="0 0 0.14"
            rgba="0.2 0.2 0.22 1"/>
      <geom name="base/mast" type="box" size="0.03 0.03 {mast_height / 2:.6g}"
            pos="-0.02 0 {0.26 + mast_height / 2:.6g}" rgba="0.6 0.6 0.62 1"/>
      <camera name="camera" pos="{_fmt(camera_position)}" xyaxes="{_fmt(camera_xyaxes)}"
              fovy="{fovy_deg:.6g}"/>
    </body>
  </worldbody>
</mujoco>
"""



def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi
