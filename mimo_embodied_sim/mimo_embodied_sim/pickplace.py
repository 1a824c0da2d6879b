"""A headless MuJoCo pick-and-place world: a Franka Panda, a table, objects, receptacles, a camera.

Split by job: pickplace_scene.py (constants, items, MJCF), pickplace_kinematics.py (FK, IK,
motion types), pickplace_arm.py (arm and gripper control), pickplace_truth.py (scene truth,
camera, rendering, oracle answers); this module composes them into PickPlaceWorld and
re-exports the public names.

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

import threading

import numpy as np

from mimo_embodied_sim.pickplace_arm import ArmControl
from mimo_embodied_sim.pickplace_kinematics import (
    MotionStatus,
    _Phase,
    quat_xyzw_to_matrix,
    top_down_quaternion,
)
from mimo_embodied_sim.pickplace_scene import (
    _ARM_JOINTS,
    _FINGER_JOINTS,
    BASE_FRAME,
    CONTROL_PERIOD_S,
    GRASPABLES,
    GRIPPER_MAX_WIDTH_M,
    RECEPTACLES,
    ROBOT_SEGMENT_ID,
    TABLE_TOP_Z,
    TCP_OFFSET_M,
    TCP_SPEED_M_S,
    _body_name,
    _compile,
    _place_items,
    build_mjcf,
    franka_assets_dir,
)
from mimo_embodied_sim.pickplace_truth import GroundTruth, scripted_pick_and_place
from mimo_embodied_sim.sim_common import MujocoWorld
from mimo_embodied_sim.tabletop import OffscreenRenderer, mujoco

__all__ = [
    "BASE_FRAME", "GRASPABLES", "GRIPPER_MAX_WIDTH_M", "RECEPTACLES", "ROBOT_SEGMENT_ID",
    "TABLE_TOP_Z", "TCP_OFFSET_M", "TCP_SPEED_M_S", "MotionStatus", "PickPlaceWorld",
    "build_mjcf", "franka_assets_dir", "quat_xyzw_to_matrix", "scripted_pick_and_place",
    "top_down_quaternion",
]

# ---------------------------------------------------------------------------------------------
# The world
# ---------------------------------------------------------------------------------------------


class PickPlaceWorld(ArmControl, GroundTruth, MujocoWorld):
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

    def step(self, n: int = 1) -> float:
        """Advance physics by `n` steps, following the current motion if any; returns sim time."""
        # Targets are set once per control period (like a 100 Hz ros2_control loop) and the
        # physics steps in between run in one call: every call into MuJoCo releases the GIL,
        # and getting it back can wait on a busy executor thread (tick_loop.py).
        per_control = max(1, int(round(CONTROL_PERIOD_S / self.timestep)))
        with self._lock:
            remaining = n
            while remaining > 0:
                steps = min(per_control, remaining)
                self._control(steps * self.timestep)
                mujoco.mj_step(self.model, self.data, nstep=steps)
                remaining -= steps
            self._version += 1
            return self.time
