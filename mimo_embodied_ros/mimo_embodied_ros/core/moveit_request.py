"""MoveIt requests of one pick-and-place as plain data (no moveit_msgs here).

The module that imports moveit_msgs turns these into MotionPlanRequest / GetCartesianPath /
gripper goals field by field; everything a request says is decided and tested here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mimo_embodied_ros.core.grasp import ObjectEstimate
from mimo_embodied_ros.core.pickplace import PickPlacePoses, Pose, yaw_quaternion

_Vector3 = tuple[float, float, float]


@dataclass(frozen=True)
class MoveItSettings:
    """Names and limits of a MoveIt setup; defaults match the Panda's MoveIt config."""

    arm_group: str = "panda_arm"
    hand_group: str = "panda_hand"
    tcp_link: str = "panda_hand_tcp"
    finger_joints: tuple[str, str] = ("panda_finger_joint1", "panda_finger_joint2")
    planner_id: str = ""  # empty: the pipeline's default planner
    max_velocity_scaling: float = 0.2
    max_acceleration_scaling: float = 0.2
    position_tolerance: float = 0.005  # metres
    orientation_tolerance: float = 0.05  # radians, about each axis
    allowed_planning_time: float = 5.0  # seconds
    num_planning_attempts: int = 5
    workspace_min_corner: _Vector3 = (-1.0, -1.0, -0.5)
    workspace_max_corner: _Vector3 = (1.0, 1.0, 1.5)
    grasp_squeeze: float = 0.01  # close to this much below the object width, for a firm grip
    gripper_max_effort: float = 70.0  # newtons (the Panda hand's continuous force)


@dataclass
class PoseGoal:
    """``link_name`` at the pose in ``frame_id``, within the tolerances."""

    frame_id: str
    link_name: str
    position: np.ndarray  # (3,)
    quaternion_xyzw: np.ndarray  # (4,)
    position_tolerance: float = 0.005
    orientation_tolerance: float = 0.05


@dataclass
class MotionRequest:
    """One arm motion: free-space planning, or a straight TCP line when ``cartesian``."""

    pose_goal: PoseGoal
    cartesian: bool
    group_name: str = "panda_arm"
    planner_id: str = ""
    allowed_planning_time: float = 5.0
    num_planning_attempts: int = 5
    max_velocity_scaling: float = 0.2
    max_acceleration_scaling: float = 0.2
    workspace_min_corner: _Vector3 = (-1.0, -1.0, -0.5)
    workspace_max_corner: _Vector3 = (1.0, 1.0, 1.5)


@dataclass
class GripperRequest:
    """Finger joint targets of the hand group; each finger moves half the opening width."""

    positions: tuple[float, ...]
    group_name: str = "panda_hand"
    joint_names: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")
    max_effort: float = 70.0

    @property
    def width(self) -> float:
        """Opening between the fingers, metres."""
        return float(sum(self.positions))


@dataclass
class CollisionBox:
    """A box for the planning scene, centred at ``center`` with edge lengths ``size``."""

    object_id: str
    frame_id: str
    center: np.ndarray  # (3,)
    quaternion_xyzw: np.ndarray  # (4,)
    size: np.ndarray  # (3,)
    operation: str = "add"  # "add" or "remove"


# Stages whose motion is a straight TCP line (approach, lift, place, retreat).
CARTESIAN_STAGES = frozenset({"grasp", "lift", "place", "retreat"})


def motion_request(
    stage: str, pose: Pose, frame_id: str, settings: MoveItSettings
) -> MotionRequest:
    """The arm request of one stage."""
    return MotionRequest(
        pose_goal=PoseGoal(
            frame_id=frame_id,
            link_name=settings.tcp_link,
            position=np.asarray(pose.position, dtype=np.float64).copy(),
            quaternion_xyzw=np.asarray(pose.quaternion_xyzw, dtype=np.float64).copy(),
            position_tolerance=settings.position_tolerance,
            orientation_tolerance=settings.orientation_tolerance,
        ),
        cartesian=stage in CARTESIAN_STAGES,
        group_name=settings.arm_group,
        planner_id=settings.planner_id,
        allowed_planning_time=settings.allowed_planning_time,
        num_planning_attempts=settings.num_planning_attempts,
        max_velocity_scaling=settings.max_velocity_scaling,
        max_acceleration_scaling=settings.max_acceleration_scaling,
        workspace_min_corner=settings.workspace_min_corner,
        workspace_max_corner=settings.workspace_max_corner,
    )


def gripper_request(width: float, settings: MoveItSettings) -> GripperRequest:
    """Hand request for an opening of ``width`` metres (clipped at 0)."""
    half = max(float(width), 0.0) / 2
    return GripperRequest(
        positions=tuple(half for _ in settings.finger_joints),
        group_name=settings.hand_group,
        joint_names=tuple(settings.finger_joints),
        max_effort=settings.gripper_max_effort,
    )


def stage_requests(
    poses: PickPlacePoses, frame_id: str, settings: MoveItSettings = MoveItSettings()  # noqa: B008
) -> list[tuple[str, MotionRequest | GripperRequest]]:
    """(stage name, request) in execution order.

    The gripper opens at the pre-grasp pose (after the free-space move, before the straight
    approach), closes to ``grasp_squeeze`` below the object width (fully when it is unknown),
    and opens again at the place pose before the retreat.
    """
    close_width = max(poses.object_width - settings.grasp_squeeze, 0.0)
    return [
        ("pre_grasp", motion_request("pre_grasp", poses.pre_grasp, frame_id, settings)),
        ("open_gripper", gripper_request(poses.open_width, settings)),
        ("grasp", motion_request("grasp", poses.grasp, frame_id, settings)),
        ("close_gripper", gripper_request(close_width, settings)),
        ("lift", motion_request("lift", poses.lift, frame_id, settings)),
        ("pre_place", motion_request("pre_place", poses.pre_place, frame_id, settings)),
        ("place", motion_request("place", poses.place, frame_id, settings)),
        ("open_gripper", gripper_request(poses.open_width, settings)),
        ("retreat", motion_request("retreat", poses.retreat, frame_id, settings)),
    ]


def collision_box_for(
    obj: ObjectEstimate, frame_id: str, object_id: str, operation: str = "add"
) -> CollisionBox:
    """The object's gravity-aligned box for the planning scene."""
    return CollisionBox(
        object_id=object_id,
        frame_id=frame_id,
        center=np.asarray(obj.center, dtype=np.float64).copy(),
        quaternion_xyzw=yaw_quaternion(obj.yaw),
        size=np.asarray(obj.size, dtype=np.float64).copy(),
        operation=operation,
    )
