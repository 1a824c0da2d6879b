"""Scene building of the pick-and-place world: constants, items, the MJCF and its compilation.

The Panda is the MJCF shipped in the gymnasium-robotics wheel (meshes included by path, nothing is
copied); everything else is generated as MJCF text in code. Conventions: pickplace.py.
"""
from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimo_embodied_sim.sim_common import fmt
from mimo_embodied_sim.tabletop import mujoco

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
            f'      <geom name="{_body_name(item.name)}/{part}" type="{kind}" size="{fmt(size)}" '
            f'pos="{fmt(pos)}" euler="0 0 {yaw_part:.6g}" rgba="{fmt(item.rgba)}" '
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
      <geom name="table/top" type="box" size="{fmt(_TABLE_HALF)}" material="wood"
            friction="0.8 0.005 0.0001"/>
{legs}
    </body>
    <camera name="camera" pos="{fmt(_CAMERA_POSITION)}" xyaxes="{fmt(cam_x)} {fmt(cam_y)}"
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
