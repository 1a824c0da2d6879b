"""MoveIt requests of one pick-and-place as plain data (no moveit_msgs / control_msgs here).

The module that imports moveit_msgs and control_msgs turns these into MotionPlanRequest /
GetCartesianPath / GripperCommand goals / AttachedCollisionObject field by field; everything a
request says, and how a gripper's result is read, is decided and tested here.

Grippers as they are (ros2_control GripperActionController, control_msgs/action/GripperCommand):
the goal is (position, max_effort), position in the controller's joint units (the Panda hand's
finger joint: half the opening). Closing on an object stalls short of the commanded position;
with `allow_stalling: false` (the default) the goal then ends ABORTED with `stalled: true`
although the object is held. `gripper_outcome` reads such a result: a close that stalled with
the fingers apart by more than `min_grasp_width` is a grasp. The held object is attached to the
hand (AttachedCollisionObject with the hand's links as touch_links) for the transport, and
detached after the release.
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
    gripper_position_per_width: float = 0.5  # GripperCommand position per metre of opening
    hand_link: str = "panda_hand"  # the link a held object is attached to
    hand_touch_links: tuple[str, ...] = ("panda_hand", "panda_leftfinger", "panda_rightfinger")
    min_grasp_width: float = 0.005  # a close that stalls wider than this holds the object (m)


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
    """A gripper stage: finger joint targets of the hand group (each finger half the opening)
    and the GripperCommand goal (``position``, ``max_effort``) the executor sends."""

    positions: tuple[float, ...]
    group_name: str = "panda_hand"
    joint_names: tuple[str, ...] = ("panda_finger_joint1", "panda_finger_joint2")
    max_effort: float = 70.0
    position: float = 0.0  # control_msgs/GripperCommand position (controller joint units)
    closing: bool = False  # a close onto the object: a stall is then a grasp

    @property
    def width(self) -> float:
        """Opening between the fingers, metres."""
        return float(sum(self.positions))


@dataclass(frozen=True)
class GripperResult:
    """control_msgs/action/GripperCommand's result, plus the goal status as a word
    ("succeeded", "aborted", "canceled", ...); position in the controller's joint units."""

    status: str
    position: float
    effort: float = 0.0
    stalled: bool = False
    reached_goal: bool = False


@dataclass(frozen=True)
class GripperOutcome:
    ok: bool
    holding: bool
    width: float  # metres between the fingers
    message: str


def gripper_outcome(request: GripperRequest, result: GripperResult,
                    settings: MoveItSettings = MoveItSettings()) -> GripperOutcome:  # noqa: B008
    """What a GripperCommand result means for a stage.

    Closing: a stall with the fingers more than ``min_grasp_width`` apart holds the object, even
    when the goal ended ABORTED (``allow_stalling: false``); reaching the commanded width, or a
    stall narrower than that, means nothing is between the fingers (the command is below the
    object's width). Opening: the fingers must reach the commanded width (a stall while opening
    is blocked fingers).
    """
    width = float(result.position) / settings.gripper_position_per_width
    mm = f"{width * 1000:.1f} mm"
    if result.status == "canceled":
        return GripperOutcome(False, False, width, f"gripper canceled at {mm}")
    if request.closing:
        if result.stalled and width > settings.min_grasp_width:
            return GripperOutcome(True, True, width, f"grasped: the fingers stalled at {mm} "
                                  f"on the object (effort {result.effort:.1f} N, goal "
                                  f"{result.status})")
        if result.stalled or result.reached_goal or result.status == "succeeded":
            return GripperOutcome(False, False, width, f"the fingers closed to {mm} without "
                                  "holding the object (grasp missed)")
        return GripperOutcome(False, False, width, f"the gripper failed ({result.status}) "
                              f"at {mm}")
    if result.reached_goal or (result.status == "succeeded" and not result.stalled):
        return GripperOutcome(True, False, width, f"gripper open at {mm}")
    return GripperOutcome(False, False, width, f"the gripper did not open to "
                          f"{request.width * 1000:.1f} mm ({result.status}, stopped at {mm}"
                          + (", stalled" if result.stalled else "") + ")")


@dataclass
class CollisionBox:
    """A box for the planning scene, centred at ``center`` with edge lengths ``size``."""

    object_id: str
    frame_id: str
    center: np.ndarray  # (3,)
    quaternion_xyzw: np.ndarray  # (4,)
    size: np.ndarray  # (3,)
    operation: str = "add"  # "add" or "remove"


@dataclass(frozen=True)
class AttachRequest:
    """moveit_msgs/AttachedCollisionObject as data: attach ``box`` to ``link_name`` (touching
    ``touch_links`` allowed), or detach the object ``object_id`` (operation "remove")."""

    object_id: str
    link_name: str
    touch_links: tuple[str, ...]
    operation: str  # "add" (attach) or "remove" (detach)
    box: CollisionBox | None = None  # the object's box in the base frame, for an attach


def attach_request(box: CollisionBox, settings: MoveItSettings = MoveItSettings()  # noqa: B008
                   ) -> AttachRequest:
    """Attach the grasped object's box to the hand for the transport."""
    return AttachRequest(box.object_id, settings.hand_link, tuple(settings.hand_touch_links),
                         "add", box)


def detach_request(object_id: str, settings: MoveItSettings = MoveItSettings()  # noqa: B008
                   ) -> AttachRequest:
    """Detach the released object from the hand."""
    return AttachRequest(object_id, settings.hand_link, tuple(settings.hand_touch_links),
                         "remove")


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


def gripper_request(width: float, settings: MoveItSettings,
                    closing: bool = False) -> GripperRequest:
    """Hand request for an opening of ``width`` metres (clipped at 0)."""
    width = max(float(width), 0.0)
    return GripperRequest(
        positions=tuple(width / 2 for _ in settings.finger_joints),
        group_name=settings.hand_group,
        joint_names=tuple(settings.finger_joints),
        max_effort=settings.gripper_max_effort,
        position=width * settings.gripper_position_per_width,
        closing=closing,
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
        ("close_gripper", gripper_request(close_width, settings, closing=True)),
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


def scene_updates(
    requests: list[tuple[str, MotionRequest | GripperRequest]], box: CollisionBox | None,
    settings: MoveItSettings = MoveItSettings(),  # noqa: B008
) -> list[AttachRequest | None]:
    """Per stage of ``requests``, the attach/detach to apply once that stage succeeded: the
    object's box is attached to the hand after the close (the grasp) and detached after the
    next open (the release); nothing without a box (no object estimate)."""
    updates: list[AttachRequest | None] = []
    attached = False
    for _stage, request in requests:
        update = None
        if box is not None and isinstance(request, GripperRequest):
            if request.closing:
                update, attached = attach_request(box, settings), True
            elif attached:
                update, attached = detach_request(box.object_id, settings), False
        updates.append(update)
    return updates
