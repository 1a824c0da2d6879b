"""A headless MuJoCo apartment with a differential-drive RGB-D robot, for the navigation loop.

About 10 m x 8 m, four rooms joined by 1 m door openings (map frame = world frame, metres)::

    y=8 +-------------------------+-------------------------------+
        | bedroom: bed, wardrobe  D study: desk, bookshelf, plant |
        |      (0..5, 4.5..8)     |      (5..10, 4.5..8)          |
  y=4.5 +-------D-----------------+-------------D-----------------+
        | living room: sofa, TV,  D kitchen: fridge, counter,     |
        | coffee table (0..6, 0..4.5)         dining table (6..10)|
    y=0 +---------------------------------------------------------+
        x=0                                                    x=10

The base is a kinematic unicycle (velocity and acceleration limits) carried by a mocap body, so
nothing is simulated that the navigation stack does not need: its footprint (a disk) is checked
against the exact obstacle footprints every step and a motion into an obstacle is refused and
counted. ``set_goal`` is the Nav2 stand-in: Dijkstra on the occupancy grid (lethal cells within
the inflation radius, a cost ramp beyond it that keeps paths off walls), a pure-pursuit follower,
then an in-place turn to the goal yaw.

The camera conventions are those of ``tabletop.py`` (optical frame x right, y down, z forward,
z-depth in metres, NaN where nothing is hit). Oracle answers follow ../../shared spec: region
answers on the navigator's map image, pointing and visibility answers for the current view.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.navmap import GridSpec, world_to_map_pixel
from mimo_embodied_ros.core.prompts import visibility_question
from mimo_embodied_ros.core.types import CameraIntrinsics, ImageSize
from mimo_embodied_sim.answers import pointing_answer, to_resized_pixel
from mimo_embodied_sim.tabletop import OffscreenRenderer, mujoco

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


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class ApartmentWorld:
    """The apartment, its robot, a Nav2-like goal follower and ground truth for scoring.

    Thread-safe: one lock around state and rendering (a ROS timer advances and renders while a
    test reads truth).
    """

    GOAL_XY_TOLERANCE = 0.08
    GOAL_YAW_TOLERANCE = math.radians(3.0)
    LOOKAHEAD_M = 0.35
    ROTATE_IN_PLACE_RAD = math.radians(40.0)
    MAX_SUBSTEP_S = 0.02
    STUCK_AFTER_S = 5.0  # no 5 cm / 0.1 rad of motion for this long: the goal fails "stuck"
    SUCCESS_DISTANCE_M = 1.0
    SUCCESS_ANGLE_RAD = math.radians(30.0)

    def __init__(
        self,
        seed: int = 0,
        width: int = 640,
        height: int = 480,
        fovy_deg: float = 58.0,
        camera_height_m: float = 1.05,
        camera_pitch_deg: float = 20.0,
        robot_radius_m: float = 0.2,
        inflation_margin_m: float = 0.05,
        max_linear_speed: float = 0.5,
        max_angular_speed: float = 1.2,
        max_linear_accel: float = 1.0,
        max_angular_accel: float = 3.0,
        cmd_vel_timeout_s: float = 0.5,
        min_visible_pixels: int = 200,
        max_visible_range_m: float = 6.0,
        instructions: list[InstructionEntry] | None = None,
    ) -> None:
        if not (320 <= width <= 1280 and 240 <= height <= 960):
            raise ValueError(f"camera size {width}x{height} is outside 320x240 .. 1280x960")
        self.width, self.height = width, height
        self.robot_radius = robot_radius_m
        self.inflation_radius = robot_radius_m + inflation_margin_m
        self.max_linear_speed, self.max_angular_speed = max_linear_speed, max_angular_speed
        self.max_linear_accel, self.max_angular_accel = max_linear_accel, max_angular_accel
        self.cmd_vel_timeout_s = cmd_vel_timeout_s
        self.min_visible_pixels, self.max_visible_range_m = min_visible_pixels, max_visible_range_m
        self.rooms = {room.name: room for room in ROOMS}
        self._instructions = list(instructions) if instructions is not None \
            else load_instruction_table()
        self._furniture = {item.name: item for item in FURNITURE}
        for entry in self._instructions:
            if entry.room not in self.rooms or entry.target not in self._furniture:
                raise ValueError(f"instruction '{entry.instruction}' names an unknown room "
                                 f"'{entry.room}' or target '{entry.target}'")
        self._obstacles = wall_parts() + [p for item in FURNITURE for p in item.parts]
        self._box_lo = np.array([p.center[:2] for p in self._obstacles if p.kind == "box"]) - \
            np.array([p.size[:2] for p in self._obstacles if p.kind == "box"])
        self._box_hi = 2 * np.array([p.center[:2] for p in self._obstacles if p.kind == "box"]) \
            - self._box_lo
        self._disks = np.array([[*p.center[:2], p.size[0]] for p in self._obstacles
                                if p.kind != "box"]).reshape(-1, 3)

        # Camera on the base: optical z forward and pitched down, x to the right.
        pitch = math.radians(camera_pitch_deg)
        self._camera_translation = np.array([0.1, 0.0, camera_height_m])
        z_axis = np.array([math.cos(pitch), 0.0, -math.sin(pitch)])
        x_axis = np.array([0.0, -1.0, 0.0])
        y_axis = np.cross(z_axis, x_axis)
        self._camera_rotation = np.column_stack([x_axis, y_axis, z_axis])
        self.mjcf = build_mjcf(width, height, fovy_deg, self._camera_translation,
                               np.concatenate([x_axis, -y_axis]), robot_radius_m)
        self.model = mujoco.MjModel.from_xml_string(self.mjcf)
        self.data = mujoco.MjData(self.model)
        self._camera_id = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, "camera")
        self._target_names = [item.name for item in FURNITURE if item.target]
        self._object_of_geom = np.zeros(self.model.ngeom + 1, dtype=np.int32)
        for object_id, name in enumerate(self._target_names, start=1):
            for index in range(len(self._furniture[name].parts)):
                geom = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_GEOM,
                                         f"{name.replace(' ', '_')}/{index}")
                self._object_of_geom[geom] = object_id

        self._lock = threading.RLock()
        self._grid, self._spec = self._rasterise()
        self._build_planner()
        self._renderer = OffscreenRenderer(self.model, width, height)
        self._cache: dict[str, tuple] = {}
        self.reset(seed)

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._renderer.close()

    def __enter__(self) -> ApartmentWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def reset(self, seed: int) -> None:
        """New episode: its instruction is table[seed % n]; the base starts at a seeded random
        free pose (clearance >= inflation radius + 0.15 m) outside the target's room."""
        rng = np.random.default_rng(seed)
        with self._lock:
            self.seed = seed
            self._episode = self._instructions[seed % len(self._instructions)]
            target_room = self.rooms[self._furniture[self._episode.target].room]
            rows, cols = np.nonzero(self._clearance >= self.inflation_radius + 0.15)
            order = rng.permutation(rows.size)
            for index in order:
                x, y = self.cell_center(int(cols[index]), int(rows[index]))
                if not target_room.contains(x, y) and self.room_at(x, y) is not None:
                    break
            self._x, self._y = x, y
            self._yaw = float(rng.uniform(-math.pi, math.pi))
            self._v = self._w = 0.0
            self.time = getattr(self, "time", 0.0)  # sim time never runs backwards (/clock)
            self.collisions = 0
            self._blocked = False
            self._mode = "idle"
            self._cmd = (0.0, 0.0)
            self._cmd_time = -math.inf
            self._goal: tuple[float, float, float] | None = None
            self._path = np.empty((0, 2))
            self._path_index = 0
            self._status, self._status_reason = "idle", ""
            self._progress_time, self._progress_pose = 0.0, (self._x, self._y, self._yaw)
            self._version = getattr(self, "_version", 0) + 1
            self._apply_pose()

    # -- layout and truth ---------------------------------------------------------------------

    def target_names(self) -> list[str]:
        return list(self._target_names)

    def instruction_table(self) -> list[InstructionEntry]:
        return list(self._instructions)

    def episode(self) -> InstructionEntry:
        """The instruction of the current episode (chosen by reset's seed)."""
        return self._episode

    def room_at(self, x: float, y: float) -> str | None:
        for room in ROOMS:
            if room.contains(x, y):
                return room.name
        return None

    def object_truth(self, name: str) -> ObjectTruth:
        try:
            item = self._furniture[name]
        except KeyError:
            raise KeyError(f"no object '{name}' (targets: {', '.join(self._target_names)})") \
                from None
        lows, highs = zip(*(part.bounds() for part in item.parts), strict=True)
        low, high = np.min(lows, axis=0), np.max(highs, axis=0)
        object_id = self._target_names.index(name) + 1 if item.target else 0
        return ObjectTruth(name, item.room, object_id, (low + high) / 2, low[:2], high[:2],
                           float(high[2]), item.parts)

    def clearance(self, x: float, y: float) -> float:
        """Distance from a floor point to the nearest obstacle footprint (exact geometry)."""
        point = np.array([x, y])
        box = np.maximum(np.maximum(self._box_lo - point, point - self._box_hi), 0.0)
        distance = float(np.min(np.hypot(box[:, 0], box[:, 1])))
        if len(self._disks):
            disk = np.hypot(*(self._disks[:, :2] - point).T) - self._disks[:, 2]
            distance = min(distance, float(np.min(np.maximum(disk, 0.0))))
        return distance

    def evaluate(self, target_name: str) -> tuple[bool, dict]:
        """The issue's success rule: the base centre within 1.0 m of the object's footprint (its
        nearest surface), facing it within 30 deg (the heading is at most 30 deg from a direction
        that meets the footprint), and no collision in the episode so far."""
        truth = self.object_truth(target_name)
        x, y, yaw = self.pose()
        distance = truth.distance(x, y)
        heading_error = truth.heading_error(x, y, yaw)
        centre = truth.center[:2]
        details = {
            "target": target_name, "distance_m": distance,
            "heading_error_deg": math.degrees(heading_error),
            "center_angle_deg": math.degrees(
                abs(_wrap(math.atan2(centre[1] - y, centre[0] - x) - yaw))),
            "collisions": self.collisions, "pose": (x, y, yaw),
            "room": self.room_at(x, y),
        }
        success = (distance <= self.SUCCESS_DISTANCE_M and heading_error <= self.SUCCESS_ANGLE_RAD
                   and self.collisions == 0)
        return success, details

    # -- occupancy grid and planner -----------------------------------------------------------

    def grid(self) -> tuple[np.ndarray, GridSpec]:
        """(H, W) int8 occupancy (row 0 at the origin corner, OccupancyGrid order: 0 free, 100
        occupied, -1 unknown outside the walls) and its GridSpec."""
        return self._grid.copy(), self._spec

    def cell_center(self, col: int, row: int) -> tuple[float, float]:
        return (self._spec.origin_x + (col + 0.5) * RESOLUTION,
                self._spec.origin_y + (row + 0.5) * RESOLUTION)

    def _cell_of(self, x: float, y: float) -> tuple[int, int]:
        return (math.floor((x - self._spec.origin_x) / RESOLUTION),
                math.floor((y - self._spec.origin_y) / RESOLUTION))

    def _rasterise(self) -> tuple[np.ndarray, GridSpec]:
        """Cells any obstacle footprint overlaps are occupied; free inside the walls, unknown
        outside."""
        width = round((APARTMENT_SIZE[0] + 2 * GRID_MARGIN) / RESOLUTION)
        height = round((APARTMENT_SIZE[1] + 2 * GRID_MARGIN) / RESOLUTION)
        spec = GridSpec(RESOLUTION, width, height, -GRID_MARGIN, -GRID_MARGIN, 0.0)
        x0 = spec.origin_x + np.arange(width) * RESOLUTION  # cell lower edges
        y0 = spec.origin_y + np.arange(height) * RESOLUTION
        inside_x = (x0 + RESOLUTION / 2 > 0) & (x0 + RESOLUTION / 2 < APARTMENT_SIZE[0])
        inside_y = (y0 + RESOLUTION / 2 > 0) & (y0 + RESOLUTION / 2 < APARTMENT_SIZE[1])
        grid = np.where(inside_y[:, None] & inside_x[None, :], FREE, UNKNOWN).astype(np.int8)
        eps = 1e-6
        cx, cy = np.meshgrid(x0 + RESOLUTION / 2, y0 + RESOLUTION / 2)
        for part in self._obstacles:
            if part.kind == "box":
                lo = np.array(part.center[:2]) - part.size[:2]
                hi = np.array(part.center[:2]) + part.size[:2]
                cols = (x0 + RESOLUTION > lo[0] + eps) & (x0 < hi[0] - eps)
                rows = (y0 + RESOLUTION > lo[1] + eps) & (y0 < hi[1] - eps)
                grid[np.ix_(rows, cols)] = OCCUPIED
            else:
                # Distance from the disk centre to each cell square.
                dx = np.maximum(np.abs(cx - part.center[0]) - RESOLUTION / 2, 0.0)
                dy = np.maximum(np.abs(cy - part.center[1]) - RESOLUTION / 2, 0.0)
                grid[np.hypot(dx, dy) < part.size[0] - eps] = OCCUPIED
        return grid, spec

    def _build_planner(self) -> None:
        """Dijkstra graph over non-lethal cells, 8-connected, with a cost that grows near
        obstacles (like Nav2's inflation layer) so paths keep to the middle of doors."""
        blocked = self._grid != FREE
        self._clearance = ndimage.distance_transform_edt(~blocked) * RESOLUTION
        self._lethal = self._clearance < self.inflation_radius
        ramp = 0.4
        cost = 1.0 + 8.0 * np.clip((self.inflation_radius + ramp - self._clearance) / ramp, 0, 1)
        height, width = self._grid.shape
        index = np.arange(height * width).reshape(height, width)
        rows, cols, weights = [], [], []
        for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
            r0, r1 = slice(0, height - dr), slice(dr, height)
            c0, c1 = (slice(0, width - dc), slice(dc, width)) if dc >= 0 else \
                (slice(-dc, width), slice(0, width + dc))
            a, b = index[r0, c0], index[r1, c1]
            ok = ~self._lethal[r0, c0] & ~self._lethal[r1, c1]
            step = math.hypot(dr, dc) * RESOLUTION
            w = step * (cost[r0, c0] + cost[r1, c1]) / 2
            rows.append(a[ok])
            cols.append(b[ok])
            weights.append(w[ok])
        graph = coo_matrix((np.concatenate(weights), (np.concatenate(rows),
                                                      np.concatenate(cols))),
                           shape=(height * width,) * 2).tocsr()
        self._graph = graph

    def plan(self, start: tuple[float, float], goal: tuple[float, float]) -> np.ndarray | None:
        """(N, 2) world path from start to goal on the inflated grid, or None if unreachable
        (goal outside the grid, in lethal space or not connected). A start inside the
        inflation radius (after a manual drive) leaves via the nearest non-lethal cell."""
        height, width = self._grid.shape
        goal_col, goal_row = self._cell_of(*goal)
        if not (0 <= goal_col < width and 0 <= goal_row < height) or \
                self._lethal[goal_row, goal_col]:
            return None
        col, row = self._cell_of(*start)
        col, row = min(max(col, 0), width - 1), min(max(row, 0), height - 1)
        prefix = []
        if self._lethal[row, col]:
            _, (rows, cols) = ndimage.distance_transform_edt(self._lethal, return_indices=True)
            row, col = int(rows[row, col]), int(cols[row, col])
            prefix = [self.cell_center(col, row)]
        source = row * width + col
        target = goal_row * width + goal_col
        _, predecessors = dijkstra(self._graph, directed=False, indices=source,
                                   return_predecessors=True)
        if source != target and predecessors[target] < 0:
            return None
        cells = [target]
        while cells[-1] != source:
            cells.append(int(predecessors[cells[-1]]))
        cells.reverse()
        points = [self.cell_center(c % width, c // width) for c in cells]
        path = np.array([start, *prefix, *points[1:-1], goal], dtype=float)
        return path

    # -- commands -----------------------------------------------------------------------------

    def set_goal(self, x: float, y: float, yaw: float) -> bool:
        """Plan to (x, y) and drive there, then turn to `yaw`. False (status failed,
        'unreachable') when no path exists."""
        with self._lock:
            path = self.plan((self._x, self._y), (x, y))
            self._goal = (x, y, yaw)
            self._cmd = (0.0, 0.0)
            if path is None:
                self._mode, self._path = "idle", np.empty((0, 2))
                self._status, self._status_reason = "failed", "unreachable"
                return False
            self._mode, self._path, self._path_index = "goal", path, 0
            self._status, self._status_reason = "active", ""
            self._progress_time, self._progress_pose = self.time, (self._x, self._y, self._yaw)
            return True

    def cancel_goal(self) -> None:
        with self._lock:
            if self._status == "active":
                self._status, self._status_reason = "canceled", ""
            self._mode = "idle" if self._mode == "goal" else self._mode

    def set_velocity(self, v: float, w: float) -> None:
        """Direct velocity command (like /cmd_vel): cancels any goal; held for
        cmd_vel_timeout_s of sim time, then the base stops."""
        with self._lock:
            self.cancel_goal()
            self._mode = "velocity"
            self._cmd = (float(np.clip(v, -self.max_linear_speed, self.max_linear_speed)),
                         float(np.clip(w, -self.max_angular_speed, self.max_angular_speed)))
            self._cmd_time = self.time

    def goal_status(self) -> tuple[str, str]:
        """(status, reason): idle, active, succeeded, failed (reason), canceled."""
        return self._status, self._status_reason

    def path(self) -> np.ndarray:
        """The current goal's planned path, (N, 2) world points."""
        return self._path.copy()

    def pose(self) -> tuple[float, float, float]:
        """(x, y, yaw) of base_link in the map frame."""
        return self._x, self._y, self._yaw

    def velocity(self) -> tuple[float, float]:
        """(v, w) of the base: forward m/s and yaw rate rad/s."""
        return self._v, self._w

    def is_moving(self) -> bool:
        return abs(self._v) > 1e-4 or abs(self._w) > 1e-4

    # -- simulation ---------------------------------------------------------------------------

    def advance(self, dt: float) -> float:
        """Integrate the base for dt sim seconds (substeps <= 20 ms); returns the sim time."""
        with self._lock:
            remaining = dt
            while remaining > 1e-9:
                step = min(self.MAX_SUBSTEP_S, remaining)
                self._substep(step)
                remaining -= step
            self._apply_pose()
            return self.time

    def _substep(self, dt: float) -> None:
        if self._mode == "goal":
            v_des, w_des = self._follow()
        elif self._mode == "velocity" and self.time - self._cmd_time <= self.cmd_vel_timeout_s:
            v_des, w_des = self._cmd
        else:
            v_des, w_des = 0.0, 0.0
        self._v += float(np.clip(v_des - self._v, -self.max_linear_accel * dt,
                                 self.max_linear_accel * dt))
        self._w += float(np.clip(w_des - self._w, -self.max_angular_accel * dt,
                                 self.max_angular_accel * dt))
        yaw_mid = self._yaw + self._w * dt / 2
        x = self._x + self._v * dt * math.cos(yaw_mid)
        y = self._y + self._v * dt * math.sin(yaw_mid)
        self._yaw = _wrap(self._yaw + self._w * dt)
        moved = abs(self._v) > 1e-9
        if moved and self.clearance(x, y) < self.robot_radius and \
                self.clearance(x, y) < self.clearance(self._x, self._y):
            if not self._blocked:
                self.collisions += 1
            self._blocked = True
            self._v = 0.0
        elif moved:
            self._x, self._y = x, y
            self._blocked = False
        self.time += dt

    def _follow(self) -> tuple[float, float]:
        """Pure pursuit along the path, then an in-place turn to the goal yaw."""
        goal_x, goal_y, goal_yaw = self._goal
        distance = math.hypot(goal_x - self._x, goal_y - self._y)
        anchor_x, anchor_y, anchor_yaw = self._progress_pose
        if math.hypot(self._x - anchor_x, self._y - anchor_y) > 0.05 or \
                abs(_wrap(self._yaw - anchor_yaw)) > 0.1:
            self._progress_pose, self._progress_time = (self._x, self._y, self._yaw), self.time
        elif self.time - self._progress_time > self.STUCK_AFTER_S:
            self._mode, self._status, self._status_reason = "idle", "failed", "stuck"
            return 0.0, 0.0
        if distance <= self.GOAL_XY_TOLERANCE or (self._path_index >= len(self._path) - 1
                                                  and distance < 2 * self.GOAL_XY_TOLERANCE):
            self._path_index = len(self._path) - 1
            error = _wrap(goal_yaw - self._yaw)
            if abs(error) <= self.GOAL_YAW_TOLERANCE and abs(self._w) < 0.05:
                self._mode, self._status = "idle", "succeeded"
                return 0.0, 0.0
            return 0.0, self._turn_rate(error)
        # Advance along the path to the nearest point ahead, then look ahead.
        position = np.array([self._x, self._y])
        window = self._path[self._path_index: self._path_index + 40]
        self._path_index += int(np.argmin(np.hypot(*(window - position).T)))
        lookahead = self._path[-1]
        for point in self._path[self._path_index:]:
            if math.hypot(*(point - position)) >= self.LOOKAHEAD_M:
                lookahead = point
                break
        dx, dy = lookahead[0] - self._x, lookahead[1] - self._y
        alpha = _wrap(math.atan2(dy, dx) - self._yaw)
        if abs(alpha) > self.ROTATE_IN_PLACE_RAD:
            return 0.0, self._turn_rate(alpha)
        reach = max(math.hypot(dx, dy), 1e-3)
        curvature = 2.0 * math.sin(alpha) / reach
        v = min(self.max_linear_speed, math.sqrt(2 * self.max_linear_accel * 0.5 * distance))
        if abs(v * curvature) > self.max_angular_speed:
            v = self.max_angular_speed / abs(curvature)
        return v, v * curvature

    def _turn_rate(self, error: float) -> float:
        """Fastest yaw rate that still stops at the target angle under the accel limit."""
        magnitude = min(self.max_angular_speed, 3.0 * abs(error),
                        0.9 * math.sqrt(2 * self.max_angular_accel * abs(error)))
        return math.copysign(max(magnitude, 0.05), error)

    def _apply_pose(self) -> None:
        self.data.mocap_pos[0] = (self._x, self._y, 0.0)
        self.data.mocap_quat[0] = (math.cos(self._yaw / 2), 0.0, 0.0, math.sin(self._yaw / 2))
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_camlight(self.model, self.data)
        self._version = getattr(self, "_version", 0) + 1

    def teleport(self, x: float, y: float, yaw: float) -> None:
        """Put the base somewhere (tests, evaluation set-ups); stops it and cancels any goal."""
        with self._lock:
            self.cancel_goal()
            self._mode, self._v, self._w = "idle", 0.0, 0.0
            self._x, self._y, self._yaw = float(x), float(y), _wrap(float(yaw))
            self._apply_pose()

    # -- camera -------------------------------------------------------------------------------

    def camera_to_base(self) -> tuple[np.ndarray, np.ndarray]:
        """(translation (3,), quaternion x, y, z, w) of camera_color_optical_frame in
        base_link (x forward, z up, origin on the floor at the base centre)."""
        return (self._camera_translation.copy(),
                Rotation.from_matrix(self._camera_rotation).as_quat())

    def camera_pose_world(self) -> tuple[np.ndarray, np.ndarray]:
        """(position, rotation) of the optical frame in the map; columns = optical x, y, z."""
        with self._lock:
            position = self.data.cam_xpos[self._camera_id].copy()
            axes = self.data.cam_xmat[self._camera_id].reshape(3, 3)
            return position, axes @ np.diag([1.0, -1.0, -1.0])

    def intrinsics(self) -> CameraIntrinsics:
        fy = (self.height / 2.0) / math.tan(math.radians(self.model.cam_fovy[self._camera_id]) / 2)
        return CameraIntrinsics(fx=fy, fy=fy, cx=(self.width - 1) / 2.0,
                                cy=(self.height - 1) / 2.0, width=self.width, height=self.height)

    def _cached(self, key: str, render):
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or cached[0] != self._version:
                cached = (self._version, render())
                self._cache[key] = cached
            return cached[1]

    def render_rgbd(self) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H, W, 3) uint8 RGB and z-depth (H, W) float32 metres (NaN = no hit)."""
        with self._lock:
            rgb = self._cached("colour", lambda: self._renderer.colour(self.data))
            depth, _ = self._cached("geometry", lambda: self._renderer.geometry(self.data))
            return rgb.copy(), depth.copy()

    def render_segmentation(self) -> np.ndarray:
        """(H, W) int32 target ids (ObjectTruth.object_id), 0 for everything else."""
        with self._lock:
            _, geoms = self._cached("geometry", lambda: self._renderer.geometry(self.data))
            return self._object_of_geom[np.where(geoms >= 0, geoms, self.model.ngeom)].copy()

    def visible_targets(self) -> dict[str, np.ndarray]:
        """name -> (H, W) bool mask of its pixels with depth within range, for every target
        with at least min_visible_pixels such pixels."""
        with self._lock:
            _, depth = self.render_rgbd()
            segmentation = self.render_segmentation()
        in_range = np.isfinite(depth) & (depth <= self.max_visible_range_m)
        visible = {}
        for object_id, name in enumerate(self._target_names, start=1):
            mask = (segmentation == object_id) & in_range
            if int(mask.sum()) >= self.min_visible_pixels:
                visible[name] = mask
        return visible

    @staticmethod
    def interior_pixel(mask: np.ndarray) -> tuple[int, int]:
        """(u, v) of the mask pixel farthest from its border (distance-transform maximum).

        The image edge counts as border: an object cut by the frame is pointed at in the middle
        of its visible part, as a model would, not at the edge pixel nearest its hidden centre."""
        padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, 0)
        distance = cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1]
        row, col = np.unravel_index(int(np.argmax(distance)), distance.shape)
        return int(col), int(row)

    # -- oracle answers -----------------------------------------------------------------------

    def region_answer(self, entry: InstructionEntry, map_resized: ImageSize,
                      map_pixels_per_cell: int, noise_px: float = 0.0, seed: int = 0) -> str:
        """'<think>reasoning</think>[{"points": [[x, y]], "label": room, "target": object}]' on
        the navigator's map image (render_map_image at map_pixels_per_cell, then smart-resize)."""
        room = self.rooms[entry.room]
        u, v = world_to_map_pixel(self._spec, *room.center, map_pixels_per_cell)
        if noise_px > 0.0:
            u, v = np.array([u, v]) + np.random.default_rng(seed).normal(0.0, noise_px, 2)
        source = ImageSize(self._spec.width * map_pixels_per_cell,
                           self._spec.height * map_pixels_per_cell)
        x, y = to_resized_pixel(u, v, source, map_resized)
        body = json.dumps([{"points": [[x, y]], "label": entry.room, "target": entry.target}],
                          ensure_ascii=False)
        return f"<think>\n{entry.reasoning}\n</think>\n{body}"

    def oracle_answers(self, camera_resized: ImageSize, map_resized: ImageSize,
                       map_pixels_per_cell: int, noise_px: float = 0.0,
                       seed: int = 0) -> dict[str, str]:
        """Every answer the navigation stack may ask about the current state, keyed by the exact
        instruction: region answers for the instruction table; for each target NAME, NAME and
        'the NAME' (pointing at an interior mask pixel with valid depth, or [] when not visible)
        and visibility_question(NAME) (\\boxed{yes} / \\boxed{no})."""
        answers: dict[str, str] = {}
        for index, entry in enumerate(self._instructions):
            answers[entry.instruction] = self.region_answer(
                entry, map_resized, map_pixels_per_cell, noise_px, seed * 1000 + index)
        visible = self.visible_targets()
        camera_source = ImageSize(self.width, self.height)
        for index, name in enumerate(self._target_names):
            if name in visible:
                pixel = self.interior_pixel(visible[name])
                pointing = pointing_answer(
                    [pixel], camera_source, camera_resized, name, noise_px=noise_px,
                    seed=seed * 1000 + 100 + index,
                    reasoning=f"I can see the {name} in the image; I point at its middle.")
                seen = (f"<think>\nI can see a {name} in this view.\n</think>\n"
                        "\\boxed{yes}")
            else:
                pointing = (f"<think>\nI cannot see a {name} in this view.\n</think>\n[]")
                seen = f"<think>\nThere is no {name} in this view.\n</think>\n\\boxed{{no}}"
            answers[name] = pointing
            answers[f"the {name}"] = pointing
            answers[visibility_question(name)] = seen
        return answers
