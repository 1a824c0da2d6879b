"""Kinematics of the pick-and-place Panda (a mixin of PickPlaceWorld): TCP pose, forward
kinematics, damped-least-squares IK on MuJoCo's site Jacobian; and the motion data types (status,
joint reference with quintic timing, phases)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from mimo_embodied_sim.pickplace_scene import (
    _HOME_TCP_POSITION,
    _IK_SEED,
)
from mimo_embodied_sim.tabletop import mujoco

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



class Kinematics:
    """TCP pose, FK and IK; PickPlaceWorld supplies the model and data."""

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
