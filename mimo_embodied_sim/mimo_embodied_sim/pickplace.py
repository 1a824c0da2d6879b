"""A headless MuJoCo pick-and-place world: a Franka Panda, a table, objects, receptacles, a camera.

No ROS here. The Panda is the MJCF shipped in the gymnasium-robotics wheel (meshes included by
path, nothing is copied); everything else is generated as MJCF text in code.

Frames and conventions (shared spec, issue 3):

- The arm base ``panda_link0`` is the world origin (z up, x towards the table's far edge). The
  table top is at z = TABLE_TOP_Z = 0, the surface the Panda stands on.
- The tool centre point (TCP) is a site between the fingertip pads: its +z is the approach
  direction (out of the hand towards the fingertips), +y the finger closing axis.
- The camera is fixed; ``camera_pose_base()`` is its optical frame (x right, y down, z forward).
- Grasping is real contact with friction (no welds): the fingers are position servos with a force
  limit, so a closed gripper squeezes whatever stopped it.

Arm control is joint-space position control with the MJCF's actuators. A motion is planned when it
starts (damped-least-squares IK on MuJoCo's site Jacobian, straight Cartesian line or joint
interpolation, quintic timing at a bounded TCP speed) and then followed in slices by ``advance``
so a caller (the ROS node) can interleave physics, publishing and cancellation.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mimo_embodied_ros.core.types import CameraIntrinsics, ImageSize
from mimo_embodied_sim.answers import pointing_answer
from mimo_embodied_sim.tabletop import OffscreenRenderer, mujoco

TABLE_TOP_Z = 0.0
"""Height of the table top in the base frame (the Panda stands on the table), metres."""

BASE_FRAME = "panda_link0"
ROBOT_SEGMENT_ID = 100
"""Value of the robot's pixels in render_segmentation()."""

TCP_OFFSET_M = 0.24
"""TCP distance from panda link7 along its axis: the middle of the fingertip pads (the pads end
about 2 cm further)."""

TCP_SPEED_M_S = 0.25
TCP_ANGULAR_SPEED_RAD_S = 1.0
JOINT_SPEED_RAD_S = 1.2
GRIPPER_MAX_WIDTH_M = 0.08
CONTROL_PERIOD_S = 0.01

_FINGER_QUAT_WXYZ = (0.92388, 0.0, 0.0, -0.382683)  # finger bodies' yaw in link7 (-45 deg)
_ARM_JOINTS = tuple(f"robot:panda0_joint{i}" for i in range(1, 8))
_FINGER_JOINTS = ("robot:panda0_finger_joint1", "robot:panda0_finger_joint2")
_HOME_TCP_POSITION = (0.28, 0.0, 0.42)
_IK_SEED = (0.0, -0.6, 0.0, -2.2, 0.0, 1.6, 0.0)

_TABLE_CENTER_XY = (0.35, 0.0)
_TABLE_HALF = (0.6, 0.55, 0.02)
_FLOOR_Z = -0.75
_PLACEMENT_X = (0.36, 0.66)
_PLACEMENT_Y = (-0.28, 0.28)
_CAMERA_POSITION = (1.05, 0.0, 0.72)
_CAMERA_TARGET = (0.5, 0.0, 0.0)
_CAMERA_FOVY_DEG = 45.0


def franka_assets_dir() -> Path:
    """franka_assets/ of the installed gymnasium-robotics wheel (found without importing it)."""
    spec = importlib.util.find_spec("gymnasium_robotics")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("gymnasium-robotics is not installed; it ships the Panda MJCF")
    folder = Path(spec.submodule_search_locations[0]) / "envs/assets/kitchen_franka/franka_assets"
    if not (folder / "chain.xml").is_file():
        raise FileNotFoundError(f"no Panda MJCF at {folder}")
    return folder


# ---------------------------------------------------------------------------------------------
# Scene items
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """A graspable object or a receptacle; geoms as (name, type, size, pos, euler) in its frame."""

    name: str
    rgba: tuple[float, float, float, float]
    footprint_radius: float  # for non-overlapping placement
    height: float
    graspable: bool
    geoms: tuple[tuple[str, str, tuple[float, ...], tuple[float, float, float], float], ...]
    inner_half: tuple[float, float] = (0.0, 0.0)  # receptacle: inner floor half sizes (x, y)
    inner_radius: float = 0.0  # receptacle: inner radius of a round one (0 = rectangular)
    floor_top: float = 0.0  # receptacle: height of the inner floor above its origin


def _cube(name: str, rgba: tuple[float, float, float, float], side: float) -> _Item:
    half = side / 2
    return _Item(name, rgba, 0.75 * side, side, True,
                 (("body", "box", (half, half, half), (0.0, 0.0, half), 0.0),))


def _cylinder(name: str, rgba: tuple[float, float, float, float], radius: float,
              height: float) -> _Item:
    return _Item(name, rgba, radius + 0.005, height, True,
                 (("body", "cylinder", (radius, height / 2), (0.0, 0.0, height / 2), 0.0),))


def _bowl(name: str, rgba: tuple[float, float, float, float], inner_radius: float = 0.075,
          wall: float = 0.008, wall_height: float = 0.035, floor: float = 0.006,
          segments: int = 16) -> _Item:
    """A shallow round container: a disc floor and a ring of box staves."""
    geoms = [("floor", "cylinder", (inner_radius + wall, floor / 2), (0.0, 0.0, floor / 2), 0.0)]
    ring_radius = inner_radius + wall / 2
    stave_half_length = ring_radius * math.tan(math.pi / segments) + wall / 2
    for index in range(segments):
        angle = 2 * math.pi * index / segments
        geoms.append((f"wall_{index}", "box", (wall / 2, stave_half_length, wall_height / 2),
                      (ring_radius * math.cos(angle), ring_radius * math.sin(angle),
                       floor + wall_height / 2), angle))
    return _Item(name, rgba, inner_radius + wall + 0.005, floor + wall_height, False,
                 tuple(geoms), inner_half=(inner_radius, inner_radius),
                 inner_radius=inner_radius, floor_top=floor)


def _tray(name: str, rgba: tuple[float, float, float, float], inner_half_x: float = 0.09,
          inner_half_y: float = 0.07, wall: float = 0.008, wall_height: float = 0.03,
          floor: float = 0.006) -> _Item:
    """A rectangular container with low walls."""
    outer_x, outer_y = inner_half_x + wall, inner_half_y + wall
    wall_z = floor + wall_height / 2
    geoms = (
        ("floor", "box", (outer_x, outer_y, floor / 2), (0.0, 0.0, floor / 2), 0.0),
        ("wall_front", "box", (outer_x, wall / 2, wall_height / 2),
         (0.0, -outer_y + wall / 2, wall_z), 0.0),
        ("wall_back", "box", (outer_x, wall / 2, wall_height / 2),
         (0.0, outer_y - wall / 2, wall_z), 0.0),
        ("wall_left", "box", (wall / 2, inner_half_y, wall_height / 2),
         (-outer_x + wall / 2, 0.0, wall_z), 0.0),
        ("wall_right", "box", (wall / 2, inner_half_y, wall_height / 2),
         (outer_x - wall / 2, 0.0, wall_z), 0.0),
    )
    return _Item(name, rgba, math.hypot(outer_x, outer_y) + 0.005, floor + wall_height, False,
                 geoms, inner_half=(inner_half_x, inner_half_y), floor_top=floor)


GRASPABLES: tuple[_Item, ...] = (
    _cube("red cube", (0.85, 0.1, 0.1, 1.0), 0.045),
    _cube("green cube", (0.1, 0.7, 0.15, 1.0), 0.045),
    _cylinder("blue cylinder", (0.1, 0.25, 0.85, 1.0), 0.024, 0.07),
)
RECEPTACLES: tuple[_Item, ...] = (
    _bowl("bowl", (0.82, 0.78, 0.7, 1.0)),
    _tray("tray", (0.45, 0.47, 0.52, 1.0)),
)


def _body_name(item_name: str) -> str:
    return item_name.replace(" ", "_")


def _fmt(values: tuple[float, ...] | np.ndarray) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _place_items(rng: np.random.Generator) -> dict[str, tuple[float, float, float]]:
    """Seeded (x, y, yaw) for every item, footprints apart by >= 4 cm, receptacles first."""
    poses: dict[str, tuple[float, float, float]] = {}
    for item in RECEPTACLES + GRASPABLES:
        for _ in range(2000):
            x = rng.uniform(_PLACEMENT_X[0] + item.footprint_radius * 0.5,
                            _PLACEMENT_X[1] - item.footprint_radius * 0.3)
            y = rng.uniform(_PLACEMENT_Y[0] + item.footprint_radius * 0.5,
                            _PLACEMENT_Y[1] - item.footprint_radius * 0.5)
            clear = all(
                math.hypot(x - px, y - py) >= item.footprint_radius + other.footprint_radius + 0.04
                for other in RECEPTACLES + GRASPABLES if other.name in poses
                for px, py, _ in [poses[other.name]]
            )
            if clear:
                yaw = rng.uniform(-math.pi / 4, math.pi / 4) if item.graspable \
                    else rng.uniform(-math.pi / 2, math.pi / 2)
                poses[item.name] = (x, y, yaw)
                break
        else:
            raise RuntimeError(f"could not place '{item.name}' without overlaps")
    return poses


def _camera_axes() -> tuple[np.ndarray, np.ndarray]:
    """MuJoCo camera x (right) and y (image up) axes looking from the camera at its target."""
    forward = np.subtract(_CAMERA_TARGET, _CAMERA_POSITION)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    return right, np.cross(right, forward)


def build_mjcf(width: int, height: int, poses: dict[str, tuple[float, float, float]]) -> str:
    """The world's MJCF text (the Panda is included from the gymnasium-robotics wheel by path)."""
    assets = franka_assets_dir()
    cam_x, cam_y = _camera_axes()
    bodies = []
    for item in RECEPTACLES + GRASPABLES:
        x, y, yaw = poses[item.name]
        lift = 0.0005 if item.graspable else 0.0
        joint = f'<freejoint name="{_body_name(item.name)}/joint"/>' if item.graspable else ""
        geoms = "\n".join(
            f'      <geom name="{_body_name(item.name)}/{part}" type="{kind}" size="{_fmt(size)}" '
            f'pos="{_fmt(pos)}" euler="0 0 {yaw_part:.6g}" rgba="{_fmt(item.rgba)}" '
            f'class="{"graspable" if item.graspable else "receptacle"}"/>'
            for part, kind, size, pos, yaw_part in item.geoms
        )
        bodies.append(f'    <body name="{_body_name(item.name)}" pos="{x:.6g} {y:.6g} '
                      f'{TABLE_TOP_Z + lift:.6g}" euler="0 0 {yaw:.6g}">\n      {joint}\n'
                      f'{geoms}\n    </body>')
    table_z = TABLE_TOP_Z - _TABLE_HALF[2]
    leg_half = (TABLE_TOP_Z - 2 * _TABLE_HALF[2] - _FLOOR_Z) / 2
    legs = "\n".join(
        f'      <geom name="table/leg_{i}" type="box" size="0.03 0.03 {leg_half:.6g}" '
        f'pos="{sx * (_TABLE_HALF[0] - 0.06):.6g} {sy * (_TABLE_HALF[1] - 0.06):.6g} '
        f'{-_TABLE_HALF[2] - leg_half:.6g}" material="wood"/>'
        for i, (sx, sy) in enumerate(((-1, -1), (1, -1), (-1, 1), (1, 1)))
    )
    return f"""<mujoco model="mimo_pickplace">
  <include file="{assets / 'assets.xml'}"/>
  <compiler angle="radian" meshdir="{assets / 'meshes'}"/>
  <option timestep="0.002" cone="elliptic" impratio="10" integrator="implicitfast"/>
  <statistic extent="1.5" center="0.4 0 0.2"/>
  <visual>
    <global offwidth="{width}" offheight="{height}"/>
    <quality shadowsize="1024"/>
    <map znear="0.03" zfar="10"/>
    <headlight ambient="0.4 0.4 0.4" diffuse="0.4 0.4 0.4" specular="0.05 0.05 0.05"/>
  </visual>
  <default>
    <default class="graspable">
      <geom density="600" friction="1.2 0.01 0.001" condim="4" solref="0.004 1"
            solimp="0.95 0.99 0.001"/>
    </default>
    <default class="receptacle">
      <geom friction="0.8 0.005 0.0001" condim="3"/>
    </default>
  </default>
  <asset>
    <texture name="floor" type="2d" builtin="checker" rgb1="0.34 0.35 0.38"
             rgb2="0.28 0.29 0.32" width="256" height="256"/>
    <material name="floor" texture="floor" texrepeat="8 8" reflectance="0"/>
    <material name="wood" rgba="0.62 0.46 0.3 1" reflectance="0" specular="0.1"/>
  </asset>
  <worldbody>
    <light name="key" pos="0.8 -0.6 2.0" dir="-0.2 0.3 -1" diffuse="0.55 0.55 0.55"
           specular="0.1 0.1 0.1" castshadow="true"/>
    <light name="fill" pos="-0.4 0.6 1.8" dir="0.3 -0.2 -1" diffuse="0.2 0.2 0.2"
           specular="0 0 0" castshadow="false"/>
    <geom name="floor" type="plane" size="0 0 0.05" pos="0 0 {_FLOOR_Z}" material="floor"/>
    <body name="table" pos="{_TABLE_CENTER_XY[0]} {_TABLE_CENTER_XY[1]} {table_z:.6g}">
      <geom name="table/top" type="box" size="{_fmt(_TABLE_HALF)}" material="wood"
            friction="0.8 0.005 0.0001"/>
{legs}
    </body>
    <camera name="camera" pos="{_fmt(_CAMERA_POSITION)}" xyaxes="{_fmt(cam_x)} {_fmt(cam_y)}"
            fovy="{_CAMERA_FOVY_DEG:.6g}"/>
    <include file="{assets / 'chain.xml'}"/>
{chr(10).join(bodies)}
  </worldbody>
  <include file="{assets / 'actuator.xml'}"/>
</mujoco>
"""


def _compile(mjcf: str) -> mujoco.MjModel:
    """Compile with gravity compensation on the arm (as Franka's controller does) and a TCP site."""
    spec = mujoco.MjSpec.from_string(mjcf)
    for body in spec.bodies:
        if body.name.startswith("panda0_"):
            body.gravcomp = 1.0
    spec.body("panda0_link7").add_site(
        name="tcp", pos=[0.0, 0.0, TCP_OFFSET_M], quat=list(_FINGER_QUAT_WXYZ), size=[0.005] * 3,
        rgba=[1.0, 0.2, 0.2, 0.0], group=4)
    return spec.compile()


# ---------------------------------------------------------------------------------------------
# Motions
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotionStatus:
    """Where a motion stands after an advance() slice."""

    done: bool
    success: bool
    message: str
    distance_remaining: float
    stalled: bool = False  # the fingers stopped short of the commanded width (GripperCommand)
    reached_goal: bool = False  # the fingers reached the commanded width


def quat_xyzw_to_matrix(quaternion_xyzw: np.ndarray | tuple[float, ...]) -> np.ndarray:
    return Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=float)).as_matrix()


def top_down_quaternion(yaw_rad: float = 0.0) -> np.ndarray:
    """xyzw of a TCP pointing straight down (+z = -world z), closing axis at `yaw_rad` from -y."""
    return (Rotation.from_euler("z", yaw_rad) * Rotation.from_euler("x", math.pi)).as_quat()


def _quintic(tau: float) -> tuple[float, float]:
    """Minimum-jerk time scaling s(tau) and ds/dtau on [0, 1]."""
    tau = min(max(tau, 0.0), 1.0)
    return (10 * tau**3 - 15 * tau**4 + 6 * tau**5, 30 * tau**2 - 60 * tau**3 + 30 * tau**4)


class _ArmPlan:
    """Joint reference of one arm motion: q(t) and q'(t), then a hold at the goal."""

    def __init__(self, times: np.ndarray, joints: np.ndarray, goal_position: np.ndarray,
                 goal_rotation: np.ndarray) -> None:
        self.times, self.joints = times, joints
        self.velocities = np.gradient(joints, times, axis=0) if len(times) > 1 \
            else np.zeros_like(joints)
        self.duration = float(times[-1])
        self.goal_position, self.goal_rotation = goal_position, goal_rotation

    def reference(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        if t >= self.duration:
            return self.joints[-1], np.zeros(self.joints.shape[1])
        index = int(np.searchsorted(self.times, t, side="right")) - 1
        index = min(max(index, 0), len(self.times) - 2)
        span = self.times[index + 1] - self.times[index]
        weight = (t - self.times[index]) / span
        q = (1 - weight) * self.joints[index] + weight * self.joints[index + 1]
        qd = (1 - weight) * self.velocities[index] + weight * self.velocities[index + 1]
        return q, qd


@dataclass
class _Phase:
    kind: str  # "arm" or "gripper"
    arm_plan: _ArmPlan | None = None
    gripper_width: float = 0.0
    elapsed: float = 0.0
    still_for: float = 0.0


# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------


class PickPlaceWorld:
    """A seeded pick-and-place episode: physics, arm control, RGB-D rendering and ground truth.

    Thread-safe: one re-entrant lock around physics, control and rendering.
    """

    SETTLE_STEPS = 300
    ARM_POSITION_TOLERANCE_M = 0.002
    ARM_ROTATION_TOLERANCE_RAD = 0.02
    ARM_SETTLE_TIMEOUT_S = 1.5
    GRIPPER_TIMEOUT_S = 2.0

    def __init__(self, seed: int = 0, width: int = 640, height: int = 480,
                 shadows: bool = False) -> None:
        """`shadows=False` keeps software rendering fast."""
        if width < 8 or height < 8:
            raise ValueError(f"image size {width}x{height} is too small")
        self.seed, self.width, self.height = seed, width, height
        rng = np.random.default_rng(seed)
        self._poses = _place_items(rng)
        self._task = (str(rng.choice([g.name for g in GRASPABLES])),
                      str(rng.choice([r.name for r in RECEPTACLES])))
        self.mjcf = build_mjcf(width, height, self._poses)
        self.model = _compile(self.mjcf)
        self.data = mujoco.MjData(self.model)
        self._ik_data = mujoco.MjData(self.model)
        if not shadows:
            self.model.light_castshadow[:] = 0
        self._lock = threading.RLock()
        self._version = 0
        self._cache: dict[str, tuple] = {}
        self._index_model()

        self.home_joints = self._solve_home()
        self.data.qpos[self._arm_qpos] = self.home_joints
        self.data.qpos[self._finger_qpos] = GRIPPER_MAX_WIDTH_M / 2
        self.data.ctrl[self._arm_actuators] = self.home_joints
        self.data.ctrl[self._finger_actuators] = GRIPPER_MAX_WIDTH_M / 2
        mujoco.mj_forward(self.model, self.data)
        for _ in range(self.SETTLE_STEPS):
            mujoco.mj_step(self.model, self.data)
        self.data.qvel[:] = 0.0
        self.data.time = 0.0
        mujoco.mj_forward(self.model, self.data)
        self._phases: list[_Phase] = []
        self._gripper_reached = False
        self._last_status = MotionStatus(True, True, "idle", 0.0)
        self._renderer = OffscreenRenderer(self.model, width, height)

    def _index_model(self) -> None:
        m = self.model
        self._arm_joint_ids = [m.joint(name).id for name in _ARM_JOINTS]
        self._finger_joint_ids = [m.joint(name).id for name in _FINGER_JOINTS]
        self._arm_qpos = np.array([m.jnt_qposadr[j] for j in self._arm_joint_ids])
        self._arm_dofs = np.array([m.jnt_dofadr[j] for j in self._arm_joint_ids])
        self._finger_qpos = np.array([m.jnt_qposadr[j] for j in self._finger_joint_ids])
        self._finger_dofs = np.array([m.jnt_dofadr[j] for j in self._finger_joint_ids])
        self._arm_limits = m.jnt_range[self._arm_joint_ids].copy()
        actuated = {int(m.actuator_trnid[a, 0]): a for a in range(m.nu)}
        self._arm_actuators = np.array([actuated[j] for j in self._arm_joint_ids])
        self._finger_actuators = np.array([actuated[j] for j in self._finger_joint_ids])
        self._arm_ctrl_range = m.actuator_ctrlrange[self._arm_actuators].copy()
        # Velocity feed-forward: a position servo against joint damping lags by (b / kp) * q'.
        self._arm_lag = m.dof_damping[self._arm_dofs] / m.actuator_gainprm[self._arm_actuators, 0]
        self._tcp = m.site("tcp").id
        self._camera_id = m.camera("camera").id
        self._items = {item.name: item for item in GRASPABLES + RECEPTACLES}
        self._item_body = {name: m.body(_body_name(name)).id for name in self._items}
        self._segment_of_geom = np.zeros(m.ngeom, dtype=np.int32)
        for segment, name in enumerate(self.object_names() + self.receptacle_names(), start=1):
            self._segment_of_geom[m.geom_bodyid == self._item_body[name]] = segment
        robot_bodies = [b for b in range(m.nbody) if m.body(b).name.startswith("panda0_")]
        self._robot_bodies = set(robot_bodies)
        self._segment_of_geom[np.isin(m.geom_bodyid, robot_bodies)] = ROBOT_SEGMENT_ID
        self._finger_bodies = (m.body("panda0_leftfinger").id, m.body("panda0_rightfinger").id)
        self._floor_geom = {r.name: m.geom(f"{_body_name(r.name)}/floor").id for r in RECEPTACLES}

    # -- lifecycle and physics ----------------------------------------------------------------

    def close(self) -> None:
        """Free the GL context (also done at interpreter exit)."""
        with self._lock:
            self._renderer.close()

    def __enter__(self) -> PickPlaceWorld:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def time(self) -> float:
        """Simulation time in seconds since the episode settled."""
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def step(self, n: int = 1) -> float:
        """Advance physics by `n` steps, following the current motion if any; returns sim time."""
        with self._lock:
            for _ in range(n):
                self._control(self.timestep)
                mujoco.mj_step(self.model, self.data)
            self._version += 1
            return self.time

    # -- kinematics ---------------------------------------------------------------------------

    def _tcp_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        return data.site_xpos[self._tcp].copy(), data.site_xmat[self._tcp].reshape(3, 3).copy()

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), quaternion_xyzw (4,)) of the TCP in the base frame."""
        with self._lock:
            mujoco.mj_kinematics(self.model, self.data)
            position, rotation = self._tcp_pose(self.data)
        return position, Rotation.from_matrix(rotation).as_quat()

    def forward_kinematics(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP (position, rotation matrix) for arm joint positions (7,)."""
        d = self._ik_data
        d.qpos[self._arm_qpos] = joints
        mujoco.mj_kinematics(self.model, d)
        return self._tcp_pose(d)

    def solve_ik(self, position: np.ndarray, rotation: np.ndarray, start: np.ndarray,
                 iterations: int = 200, damping: float = 0.02,
                 tolerance_m: float = 1e-4) -> tuple[np.ndarray, float, float]:
        """Damped least squares on the TCP Jacobian, joint limits enforced, null space pulled
        towards the home posture. Returns (joints, position error m, rotation error rad)."""
        m, d = self.model, self._ik_data
        low = self._arm_limits[:, 0] + 1e-3
        high = self._arm_limits[:, 1] - 1e-3
        q = np.clip(np.asarray(start, dtype=float).copy(), low, high)
        jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        rest = getattr(self, "home_joints", np.asarray(_IK_SEED))
        pos_error = rot_error = math.inf
        for _ in range(iterations):
            d.qpos[self._arm_qpos] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            current, current_rotation = self._tcp_pose(d)
            e_pos = position - current
            e_rot = Rotation.from_matrix(rotation @ current_rotation.T).as_rotvec()
            pos_error, rot_error = float(np.linalg.norm(e_pos)), float(np.linalg.norm(e_rot))
            if pos_error < tolerance_m and rot_error < 10 * tolerance_m:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, self._tcp)
            jac = np.vstack((jacp[:, self._arm_dofs], jacr[:, self._arm_dofs]))
            inverse = jac.T @ np.linalg.inv(jac @ jac.T + damping**2 * np.eye(6))
            dq = inverse @ np.concatenate((e_pos, e_rot))
            dq += (np.eye(7) - inverse @ jac) @ (0.05 * (rest - q))
            norm = np.linalg.norm(dq)
            if norm > 0.3:
                dq *= 0.3 / norm
            q = np.clip(q + dq, low, high)
        return q, pos_error, rot_error

    def _solve_home(self) -> np.ndarray:
        joints, pos_error, _ = self.solve_ik(np.array(_HOME_TCP_POSITION),
                                             quat_xyzw_to_matrix(top_down_quaternion()),
                                             np.array(_IK_SEED), iterations=500)
        if pos_error > 1e-3:
            raise RuntimeError(f"home pose unreachable ({pos_error:.4f} m)")
        return joints

    def _solve_goal(self, position: np.ndarray, rotation: np.ndarray) -> np.ndarray | None:
        """IK from the current joints, then from home and seeded random starts."""
        rng = np.random.default_rng(0)
        current = self.data.qpos[self._arm_qpos].copy()
        starts = [current, self.home_joints]
        starts += [rng.uniform(self._arm_limits[:, 0], self._arm_limits[:, 1]) for _ in range(6)]
        for start in starts:
            joints, pos_error, rot_error = self.solve_ik(position, rotation, start)
            if pos_error < 5e-4 and rot_error < 5e-3:
                return joints
        return None

    # -- motions ------------------------------------------------------------------------------

    def _plan_arm(self, position: np.ndarray, rotation: np.ndarray,
                  cartesian: bool) -> _ArmPlan | str:
        """A joint trajectory to the TCP goal, or a message saying why there is none."""
        q0 = self.data.qpos[self._arm_qpos].copy()
        p0, r0 = self.forward_kinematics(q0)
        distance = float(np.linalg.norm(position - p0))
        angle = float(Rotation.from_matrix(rotation @ r0.T).magnitude())
        if cartesian:
            duration = max(1.875 * distance / TCP_SPEED_M_S,
                           1.875 * angle / TCP_ANGULAR_SPEED_RAD_S, 0.2)
            steps = max(2, int(math.ceil(duration / CONTROL_PERIOD_S)))
            times = np.linspace(0.0, duration, steps + 1)
            slerp = Slerp([0.0, 1.0], Rotation.from_matrix(np.stack((r0, rotation))))
            joints = [q0]
            for t in times[1:]:
                s, _ = _quintic(t / duration)
                q, pos_error, rot_error = self.solve_ik(
                    p0 + s * (position - p0), slerp([s]).as_matrix()[0], joints[-1],
                    iterations=30, tolerance_m=2e-4)
                if pos_error > 2e-3 or rot_error > 0.02:
                    return (f"no IK solution along the straight line ({pos_error * 1000:.1f} mm "
                            f"off at {s:.0%} of the way)")
                if np.max(np.abs(q - joints[-1])) > 0.15:
                    return "the straight line passes too close to a singularity or a joint limit"
                joints.append(q)
            return _ArmPlan(times, np.array(joints), position, rotation)
        goal = self._solve_goal(position, rotation)
        if goal is None:
            return f"no IK solution for the target at {np.round(position, 3).tolist()}"
        samples = np.linspace(0.0, 1.0, 21)
        path = np.array([self.forward_kinematics(q0 + s * (goal - q0))[0] for s in samples])
        length = float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1)))
        duration = max(1.875 * length / TCP_SPEED_M_S, 1.875 * angle / TCP_ANGULAR_SPEED_RAD_S,
                       1.875 * float(np.max(np.abs(goal - q0))) / JOINT_SPEED_RAD_S, 0.2)
        times = np.linspace(0.0, duration, max(2, int(math.ceil(duration / CONTROL_PERIOD_S))))
        joints = np.array([q0 + _quintic(t / duration)[0] * (goal - q0) for t in times])
        return _ArmPlan(times, joints, position, rotation)

    def start_motion(self, position: np.ndarray | None = None,
                     quaternion_xyzw: np.ndarray | None = None, cartesian: bool = False,
                     gripper_width: float | None = None) -> MotionStatus:
        """Plan and start a motion (gripper first, then the arm); replaces any current one.

        Returns a failed, done status at once when the target cannot be reached.
        """
        with self._lock:
            self._phases = []
            phases: list[_Phase] = []
            if gripper_width is not None:
                if not 0.0 <= gripper_width <= GRIPPER_MAX_WIDTH_M + 1e-9:
                    return self._finish(False, f"gripper width {gripper_width:.3f} m is outside "
                                        f"[0, {GRIPPER_MAX_WIDTH_M}]")
                phases.append(_Phase("gripper", gripper_width=float(gripper_width)))
            if position is not None:
                if quaternion_xyzw is None:
                    quaternion_xyzw = self.tcp_pose()[1]
                quaternion = np.asarray(quaternion_xyzw, dtype=float)
                if not np.isfinite(quaternion).all() or np.linalg.norm(quaternion) < 1e-6:
                    return self._finish(False, "target orientation is not a valid quaternion")
                if not np.isfinite(position).all():
                    return self._finish(False, "target position is not finite")
                phases.append(_Phase("arm", arm_plan=None))
                phases[-1].arm_plan = (np.asarray(position, dtype=float),
                                       quat_xyzw_to_matrix(quaternion), bool(cartesian))
            if not phases:
                return self._finish(True, "nothing to do")
            self._phases = phases
            self._gripper_reached = False
            self._last_status = MotionStatus(False, False, "moving", self.distance_remaining())
            self._prepare_phase()
            return self._last_status

    def _prepare_phase(self) -> None:
        """Plan the first phase's arm motion from the joints it starts at."""
        while self._phases and self._phases[0].kind == "arm" \
                and isinstance(self._phases[0].arm_plan, tuple):
            position, rotation, cartesian = self._phases[0].arm_plan
            plan = self._plan_arm(position, rotation, cartesian)
            if isinstance(plan, str):
                self._phases = []
                self._finish(False, plan)
                return
            self._phases[0].arm_plan = plan

    def _finish(self, success: bool, message: str, stalled: bool = False) -> MotionStatus:
        distance = self.distance_remaining()
        self._phases = []
        self._last_status = MotionStatus(True, success, message, distance, stalled=stalled,
                                         reached_goal=self._gripper_reached and not stalled)
        return self._last_status

    @property
    def last_status(self) -> MotionStatus:
        """Status of the current motion, or of the last one once it is done."""
        return self._last_status

    def move_to(self, position: np.ndarray, quaternion_xyzw: np.ndarray,
                cartesian: bool = False) -> Iterator[MotionStatus]:
        """A stepper: each next() advances one control period and yields the status, until done."""
        status = self.start_motion(position, quaternion_xyzw, cartesian)
        if status.done:
            yield status
        while not status.done:
            status = self.advance(CONTROL_PERIOD_S)
            yield status

    def execute(self, position: np.ndarray | None = None,
                quaternion_xyzw: np.ndarray | None = None, cartesian: bool = False,
                gripper_width: float | None = None, timeout_s: float = 30.0) -> MotionStatus:
        """Run one motion to completion (scripts and tests)."""
        status = self.start_motion(position, quaternion_xyzw, cartesian, gripper_width)
        deadline = self.time + timeout_s
        while not status.done and self.time < deadline:
            status = self.advance(0.05)
        return status

    def set_gripper(self, width: float) -> MotionStatus:
        """Start a gripper-only motion (0 = close until contact, then squeeze)."""
        return self.start_motion(gripper_width=width)

    def stop(self) -> MotionStatus:
        """End the current motion; the arm holds the joint positions it has now."""
        with self._lock:
            self.data.ctrl[self._arm_actuators] = np.clip(
                self.data.qpos[self._arm_qpos], self._arm_ctrl_range[:, 0],
                self._arm_ctrl_range[:, 1])
            if self._phases and self._phases[0].kind == "gripper":
                width = self.gripper_width()
                self.data.ctrl[self._finger_actuators] = width / 2
            was_moving = bool(self._phases)
            return self._finish(False, "stopped" if was_moving else "idle")

    @property
    def moving(self) -> bool:
        return bool(self._phases)

    def advance(self, dt: float) -> MotionStatus:
        """Step physics for about `dt` seconds following the current motion; its status."""
        with self._lock:
            self.step(max(1, int(round(dt / self.timestep))))
            if self._phases:
                self._last_status = MotionStatus(False, False, "moving",
                                                 self.distance_remaining())
            return self._last_status

    def _control(self, dt: float) -> None:
        """Set actuator targets for this physics step and move through the motion's phases."""
        if not self._phases:
            return
        phase = self._phases[0]
        phase.elapsed += dt
        if phase.kind == "gripper":
            self.data.ctrl[self._finger_actuators] = phase.gripper_width / 2
            speed = float(np.max(np.abs(self.data.qvel[self._finger_dofs])))
            phase.still_for = phase.still_for + dt if speed < 2e-3 else 0.0
            width = self.gripper_width()
            reached = abs(width - phase.gripper_width) < 1.5e-3
            # Like GripperActionController: the goal succeeds when the fingers reach the command,
            # and ends stalled (not succeeded) when they stop short of it, whatever stopped them
            # (an object between them or not); the controller cannot tell a grasp from a jam.
            stalled = phase.still_for > 0.1 or phase.elapsed > self.GRIPPER_TIMEOUT_S
            if phase.elapsed > 0.1 and reached:
                self._gripper_reached = True
                self._next_phase(f"gripper at {width * 1000:.1f} mm")
            elif phase.elapsed > 0.1 and stalled:
                self._finish(False, f"gripper stalled at {width * 1000:.1f} mm, commanded "
                             f"{phase.gripper_width * 1000:.1f} mm", stalled=True)
            return
        plan = phase.arm_plan
        assert isinstance(plan, _ArmPlan)
        q_ref, qd_ref = plan.reference(phase.elapsed)
        self.data.ctrl[self._arm_actuators] = np.clip(
            q_ref + self._arm_lag * qd_ref, self._arm_ctrl_range[:, 0], self._arm_ctrl_range[:, 1])
        if phase.elapsed < plan.duration:
            return
        position, rotation = self._tcp_pose(self.data)
        pos_error = float(np.linalg.norm(plan.goal_position - position))
        rot_error = float(Rotation.from_matrix(plan.goal_rotation @ rotation.T).magnitude())
        speed = float(np.max(np.abs(self.data.qvel[self._arm_dofs])))
        if pos_error < self.ARM_POSITION_TOLERANCE_M and \
                rot_error < self.ARM_ROTATION_TOLERANCE_RAD and speed < 0.02:
            self._next_phase(f"reached the target ({pos_error * 1000:.1f} mm)")
        elif phase.elapsed > plan.duration + self.ARM_SETTLE_TIMEOUT_S:
            ok = pos_error < 3 * self.ARM_POSITION_TOLERANCE_M and rot_error < 0.05
            message = f"stopped {pos_error * 1000:.1f} mm, {math.degrees(rot_error):.1f} deg " \
                      "from the target" + ("" if ok else " (blocked by contact?)")
            self._next_phase(message) if ok else self._finish(False, message)

    def _next_phase(self, message: str) -> None:
        self._phases.pop(0)
        if not self._phases:
            self._finish(True, message)
            return
        self._prepare_phase()

    def distance_remaining(self) -> float:
        """TCP distance to the current arm goal (0 without one)."""
        for phase in self._phases:
            if phase.kind == "arm":
                goal = phase.arm_plan.goal_position if isinstance(phase.arm_plan, _ArmPlan) \
                    else phase.arm_plan[0]
                return float(np.linalg.norm(goal - self.data.site_xpos[self._tcp]))
        return 0.0

    # -- robot state --------------------------------------------------------------------------

    def joint_names(self) -> list[str]:
        """ROS-style joint names: panda_joint1..7, panda_finger_joint1..2."""
        return [f"panda_joint{i}" for i in range(1, 8)] + \
            ["panda_finger_joint1", "panda_finger_joint2"]

    def joint_positions(self) -> np.ndarray:
        with self._lock:
            return np.concatenate((self.data.qpos[self._arm_qpos],
                                   self.data.qpos[self._finger_qpos]))

    def joint_velocities(self) -> np.ndarray:
        with self._lock:
            return np.concatenate((self.data.qvel[self._arm_dofs],
                                   self.data.qvel[self._finger_dofs]))

    def gripper_width(self) -> float:
        """Distance between the finger pads, metres (sum of the two finger slides)."""
        return float(np.sum(self.data.qpos[self._finger_qpos]))

    def gripper_effort(self) -> float:
        """Force of the finger actuators, newtons (magnitude, both fingers together)."""
        return float(np.sum(np.abs(self.data.actuator_force[self._finger_actuators])))

    def holding_object(self) -> str | None:
        """The graspable object both fingers touch, if any."""
        touched: list[set[str]] = [set(), set()]
        bodies = {self._item_body[n]: n for n in self.object_names()}
        for contact in self.data.contact[: self.data.ncon]:
            b1 = self.model.geom_bodyid[contact.geom1]
            b2 = self.model.geom_bodyid[contact.geom2]
            for finger_index, finger in enumerate(self._finger_bodies):
                if b1 == finger and b2 in bodies:
                    touched[finger_index].add(bodies[b2])
                elif b2 == finger and b1 in bodies:
                    touched[finger_index].add(bodies[b1])
        common = touched[0] & touched[1]
        return sorted(common)[0] if common else None

    @property
    def holding(self) -> bool:
        """True when the fingers stopped on an object (both touch it, gripper not at its target)."""
        with self._lock:
            target = float(np.sum(self.data.ctrl[self._finger_actuators]))
            return self.holding_object() is not None and self.gripper_width() > target + 2e-3

    def go_home(self, timeout_s: float = 10.0) -> MotionStatus:
        return self.execute(self.forward_kinematics(self.home_joints)[0],
                            Rotation.from_matrix(self.forward_kinematics(self.home_joints)[1])
                            .as_quat(), timeout_s=timeout_s)

    # -- scene truth --------------------------------------------------------------------------

    def object_names(self) -> list[str]:
        return [item.name for item in GRASPABLES]

    def receptacle_names(self) -> list[str]:
        return [item.name for item in RECEPTACLES]

    def task(self) -> tuple[str, str]:
        """(object, receptacle) of this episode: move the object into the receptacle."""
        return self._task

    def task_instruction(self) -> str:
        return f"put the {self._task[0]} in the {self._task[1]}"

    def item_size(self, name: str) -> tuple[float, float]:
        """(footprint radius, height) of an object or receptacle, metres."""
        item = self._item(name)
        return item.footprint_radius, item.height

    def receptacle_floor_height(self, name: str) -> float:
        """Height of a receptacle's inner floor above its origin (the table top), metres."""
        return self._item(name).floor_top

    def _item(self, name: str) -> _Item:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"no object or receptacle '{name}' (known: "
                           f"{', '.join(self._items)})") from None

    def object_pose(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(position (3,), quaternion_xyzw (4,)) of an item's origin (its bottom centre)."""
        body = self._item_body[self._item(name).name]
        with self._lock:
            quat_wxyz = self.data.xquat[body]
            return self.data.xpos[body].copy(), np.array([*quat_wxyz[1:], quat_wxyz[0]])

    def object_center(self, name: str) -> np.ndarray:
        """Centre of a graspable object's shape (half its height above its origin)."""
        position, quaternion = self.object_pose(name)
        return position + quat_xyzw_to_matrix(quaternion)[:, 2] * self._item(name).height / 2

    def object_speed(self, name: str) -> float:
        body = self._item_body[self._item(name).name]
        with self._lock:
            velocity = np.zeros(6)
            mujoco.mj_objectVelocity(self.model, self.data, mujoco.mjtObj.mjOBJ_BODY, body,
                                     velocity, 0)
            return float(np.linalg.norm(velocity[3:]))

    def in_receptacle(self, object_name: str, receptacle_name: str) -> tuple[bool, str]:
        """Whether the object rests inside the receptacle: its centre over the inner floor, low
        (bottom near the floor) and still."""
        receptacle = self._item(receptacle_name)
        centre = self.object_center(object_name)
        origin, quaternion = self.object_pose(receptacle_name)
        local = quat_xyzw_to_matrix(quaternion).T @ (centre - origin)
        if receptacle.inner_radius > 0:
            inside = math.hypot(local[0], local[1]) <= receptacle.inner_radius
        else:
            inside = abs(local[0]) <= receptacle.inner_half[0] and \
                abs(local[1]) <= receptacle.inner_half[1]
        obj = self._item(object_name)
        height_above_floor = local[2] - receptacle.floor_top
        low = height_above_floor < obj.height / 2 + 0.015
        speed = self.object_speed(object_name)
        still = speed < 0.02
        where = f"({local[0]:+.3f}, {local[1]:+.3f}, {height_above_floor:+.3f}) m from the " \
                f"{receptacle_name}'s floor centre, speed {speed:.3f} m/s"
        if inside and low and still:
            return True, f"the {object_name} rests in the {receptacle_name}: {where}"
        reason = "not over the inner floor" if not inside else "not down on the floor" \
            if not low else "still moving"
        return False, f"the {object_name} is {reason}: {where}"

    def success(self) -> tuple[bool, str]:
        """The episode's success rule: the task's object rests inside the task's receptacle."""
        return self.in_receptacle(*self._task)

    def move_object(self, name: str, position: np.ndarray, yaw_rad: float = 0.0) -> None:
        """Teleport a graspable object (origin = bottom centre) and stop it (tests, scripts)."""
        if not self._item(name).graspable:
            raise ValueError(f"'{name}' is fixed to the table")
        joint = self.model.joint(f"{_body_name(name)}/joint")
        with self._lock:
            adr, dof = joint.qposadr[0], joint.dofadr[0]
            self.data.qpos[adr: adr + 3] = position
            self.data.qpos[adr + 3: adr + 7] = (math.cos(yaw_rad / 2), 0.0, 0.0,
                                                math.sin(yaw_rad / 2))
            self.data.qvel[dof: dof + 6] = 0.0
            mujoco.mj_forward(self.model, self.data)
            self._version += 1

    # -- camera -------------------------------------------------------------------------------

    def intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics of the rendered images (square pixels, centre at (W-1)/2, (H-1)/2)."""
        fy = (self.height / 2.0) / math.tan(math.radians(self.model.cam_fovy[self._camera_id]) / 2)
        return CameraIntrinsics(fx=fy, fy=fy, cx=(self.width - 1) / 2.0,
                                cy=(self.height - 1) / 2.0, width=self.width, height=self.height)

    def camera_rotation_base(self) -> tuple[np.ndarray, np.ndarray]:
        """(position, 3x3 rotation) of the optical frame; columns = optical x, y, z axes."""
        with self._lock:
            position = self.data.cam_xpos[self._camera_id].copy()
            mujoco_axes = self.data.cam_xmat[self._camera_id].reshape(3, 3)
            return position, mujoco_axes @ np.diag([1.0, -1.0, -1.0])

    def camera_pose_base(self) -> tuple[np.ndarray, np.ndarray]:
        """(translation (3,), quaternion_xyzw (4,)) of the optical frame in panda_link0."""
        position, rotation = self.camera_rotation_base()
        return position, Rotation.from_matrix(rotation).as_quat()

    def project(self, points_base: np.ndarray) -> np.ndarray:
        """(N, 2) or (2,) pixels (u, v) of base-frame points."""
        position, rotation = self.camera_rotation_base()
        camera = (np.asarray(points_base, dtype=float) - position) @ rotation
        k = self.intrinsics()
        return np.stack((k.fx * camera[..., 0] / camera[..., 2] + k.cx,
                         k.fy * camera[..., 1] / camera[..., 2] + k.cy), axis=-1)

    def pixels_to_base(self, u: np.ndarray, v: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """Back-project pixels with z-depth to base-frame points (..., 3)."""
        k = self.intrinsics()
        camera = np.stack(((u - k.cx) * depth / k.fx, (v - k.cy) * depth / k.fy, depth), axis=-1)
        position, rotation = self.camera_rotation_base()
        return camera @ rotation.T + position

    # -- rendering ----------------------------------------------------------------------------

    def _cached(self, key: str, render: object) -> tuple:
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or cached[0] != self._version:
                cached = (self._version, render(self.data))
                self._cache[key] = cached
            return cached[1]

    def render_rgbd(self) -> tuple[np.ndarray, np.ndarray]:
        """Colour (H, W, 3) uint8 RGB and z-depth (H, W) float32 metres (NaN = no hit)."""
        with self._lock:
            rgb = self._cached("colour", self._renderer.colour)
            depth = self._cached("geometry", self._renderer.geometry)[0]
            return rgb.copy(), depth.copy()

    def render_geom_segmentation(self) -> np.ndarray:
        """(H, W) int32 MuJoCo geom ids, -1 where none."""
        return self._cached("geometry", self._renderer.geometry)[1].copy()

    def render_segmentation(self) -> np.ndarray:
        """(H, W) int32: 0 table/floor/nothing, i + 1 for object_names() + receptacle_names()
        item i, ROBOT_SEGMENT_ID for the arm."""
        geoms = self.render_geom_segmentation()
        return np.where(geoms >= 0, self._segment_of_geom[np.maximum(geoms, 0)], 0).astype(
            np.int32)

    def segment_id(self, name: str) -> int:
        return (self.object_names() + self.receptacle_names()).index(self._item(name).name) + 1

    def mask(self, name: str) -> np.ndarray:
        """(H, W) bool visible pixels of an object or receptacle."""
        return self.render_segmentation() == self.segment_id(name)

    def pick_pixel(self, name: str) -> tuple[float, float]:
        """A visible pixel to point at: an object's top face near its centre, a receptacle's
        inner floor centre. Raises ValueError when nothing suitable is visible."""
        item = self._item(name)
        with self._lock:
            if item.graspable:
                candidates = self.mask(name)
                _, depth = self.render_rgbd()
                rows, cols = np.nonzero(candidates)
                if rows.size:
                    heights = self.pixels_to_base(cols.astype(float), rows.astype(float),
                                                  depth[rows, cols])[:, 2]
                    top = heights > float(np.nanmax(heights)) - 0.006
                    face = np.zeros_like(candidates)
                    face[rows[top], cols[top]] = True
                    candidates = face
                goal = self.project(self.object_center(name) +
                                    np.array([0.0, 0.0, item.height / 2]))
            else:
                candidates = self.render_geom_segmentation() == self._floor_geom[name]
                origin, _ = self.object_pose(name)
                goal = self.project(origin + np.array([0.0, 0.0, item.floor_top]))
        interior = cv2.erode(candidates.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        if interior.sum() >= 4:
            candidates = interior
        rows, cols = np.nonzero(candidates)
        if rows.size == 0:
            raise ValueError(f"'{name}' is not visible from the camera")
        nearest = int(np.argmin((cols - goal[0]) ** 2 + (rows - goal[1]) ** 2))
        return float(cols[nearest]), float(rows[nearest])

    def oracle_answers(self, resized_size: ImageSize | tuple[int, int], noise_px: float = 0.0,
                       seed: int = 0) -> dict[str, str]:
        """Scripted-model answers from ground truth: NAME and 'the NAME' -> pointing answer at
        pick_pixel(NAME) in resized-image pixels ('[]' points when not visible)."""
        source = ImageSize(self.width, self.height)
        answers: dict[str, str] = {}
        for index, name in enumerate(self.object_names() + self.receptacle_names()):
            try:
                points = [self.pick_pixel(name)]
                reasoning = f"I can see the {name}; I point at " + (
                    "the middle of its top face." if self._item(name).graspable
                    else "the middle of its inside, where things can be put.")
            except ValueError:
                points, reasoning = [], f"I cannot see a {name} in the image."
            answer = pointing_answer(points, source, resized_size, name, noise_px=noise_px,
                                     seed=seed * 1000 + index, reasoning=reasoning)
            answers[name] = answer
            answers[f"the {name}"] = answer
        return answers


def scripted_pick_and_place(world: PickPlaceWorld, approach_height_m: float = 0.12,
                            clearance_m: float = 0.02) -> tuple[bool, str]:
    """Do the episode's task from ground truth with top-down grasps (a reference for tests and
    timing; the real stack computes the same stages from the camera). Returns success()."""
    object_name, receptacle_name = world.task()
    centre = world.object_center(object_name)
    _, quaternion = world.object_pose(object_name)
    down = top_down_quaternion(float(Rotation.from_quat(quaternion).as_euler("xyz")[2]))
    receptacle_origin, _ = world.object_pose(receptacle_name)
    _, object_height = world.item_size(object_name)
    floor_top = world.receptacle_floor_height(receptacle_name)
    place = receptacle_origin + np.array([0.0, 0.0, floor_top + object_height / 2 + clearance_m])
    above_place = receptacle_origin + np.array([0.0, 0.0, approach_height_m + 0.03])
    stages = (
        ("open", dict(gripper_width=GRIPPER_MAX_WIDTH_M)),
        ("pre-grasp", dict(position=centre + [0.0, 0.0, approach_height_m],
                           quaternion_xyzw=down)),
        ("grasp", dict(position=centre, quaternion_xyzw=down, cartesian=True)),
        ("close", dict(gripper_width=0.0)),
        ("lift", dict(position=centre + [0.0, 0.0, approach_height_m + 0.03],
                      quaternion_xyzw=down, cartesian=True)),
        ("pre-place", dict(position=above_place, quaternion_xyzw=down)),
        ("place", dict(position=place, quaternion_xyzw=down, cartesian=True)),
        ("release", dict(gripper_width=GRIPPER_MAX_WIDTH_M)),
        ("retreat", dict(position=above_place, quaternion_xyzw=down, cartesian=True)),
    )
    for stage, command in stages:
        status = world.execute(**command)
        if stage == "close" and status.stalled:  # fingers stopped short: on the object?
            pass
        elif not status.success:
            return False, f"{stage} failed: {status.message}"
        if stage == "close" and not world.holding:
            return False, "close: the fingers did not stop on the object"
    world.go_home()
    world.step(int(0.5 / world.timestep))
    return world.success()
