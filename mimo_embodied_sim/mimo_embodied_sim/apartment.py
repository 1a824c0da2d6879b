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

Split by job: apartment_scene.py (layout, instruction table, MJCF), apartment_base.py (grid,
planner, the Nav2 stand-in's goal follower and kinematics), apartment_truth.py (success rule,
visibility, oracle answers); this module assembles them into ApartmentWorld (state, camera).

The camera conventions are those of ``tabletop.py`` (optical frame x right, y down, z forward,
z-depth in metres, NaN where nothing is hit). Oracle answers follow ../../shared spec: region
answers on the navigator's map image, pointing and visibility answers for the current view.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.types import CameraIntrinsics
from mimo_embodied_sim.apartment_base import ApartmentBase
from mimo_embodied_sim.apartment_scene import (  # noqa: F401  (re-exported)
    APARTMENT_SIZE,
    CONFIG_FILE,
    DOORS,
    FREE,
    FURNITURE,
    GRID_MARGIN,
    NODE_NAME,
    OCCUPIED,
    RESOLUTION,
    ROOMS,
    UNKNOWN,
    WALL_HEIGHT,
    WALL_THICKNESS,
    Furniture,
    InstructionEntry,
    ObjectTruth,
    Part,
    Room,
    _wrap,
    build_mjcf,
    load_instruction_table,
    parse_instruction_table,
    wall_parts,
)
from mimo_embodied_sim.apartment_truth import ApartmentTruth
from mimo_embodied_sim.tabletop import OffscreenRenderer, mujoco


class ApartmentWorld(ApartmentBase, ApartmentTruth):
    """The apartment, its robot, a Nav2-like goal follower and ground truth for scoring.

    Thread-safe: one lock around state and rendering (a ROS timer advances and renders while a
    test reads truth).
    """

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
        goal_xy_tolerance_m: float = ApartmentBase.GOAL_XY_TOLERANCE,
        goal_yaw_tolerance_rad: float = ApartmentBase.GOAL_YAW_TOLERANCE,
    ) -> None:
        if not (320 <= width <= 1280 and 240 <= height <= 960):
            raise ValueError(f"camera size {width}x{height} is outside 320x240 .. 1280x960")
        self.width, self.height = width, height
        self.robot_radius = robot_radius_m
        self.inflation_radius = robot_radius_m + inflation_margin_m
        self.max_linear_speed, self.max_angular_speed = max_linear_speed, max_angular_speed
        self.max_linear_accel, self.max_angular_accel = max_linear_accel, max_angular_accel
        self.cmd_vel_timeout_s = cmd_vel_timeout_s
        self.goal_xy_tolerance = goal_xy_tolerance_m
        self.goal_yaw_tolerance = goal_yaw_tolerance_rad
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

