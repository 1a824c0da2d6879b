"""Arm and gripper control of the pick-and-place world (a mixin of PickPlaceWorld).

Joint-space position control with the MJCF's actuators. A motion is planned when it starts
(damped-least-squares IK on MuJoCo's site Jacobian, straight Cartesian line or joint
interpolation, quintic timing at a bounded TCP speed) and then followed in slices by ``advance``.
The gripper behaves like ros2_control's GripperActionController: a command that the fingers
reach succeeds; fingers that stop short of it (on an object or not) end the motion stalled.
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from scipy.spatial.transform import Rotation, Slerp

from mimo_embodied_sim.pickplace_kinematics import (
    Kinematics,
    MotionStatus,
    _ArmPlan,
    _Phase,
    _quintic,
    quat_xyzw_to_matrix,
)
from mimo_embodied_sim.pickplace_scene import (
    CONTROL_PERIOD_S,
    GRIPPER_MAX_WIDTH_M,
    JOINT_SPEED_RAD_S,
    TCP_ANGULAR_SPEED_RAD_S,
    TCP_SPEED_M_S,
)


class ArmControl(Kinematics):
    """Motions and robot state; PickPlaceWorld supplies the model and data."""

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
