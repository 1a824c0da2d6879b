"""Pick-and-place planning without ROS: instruction split, stage poses, workspace checks.

All poses are TCP poses in the arm's base frame with the grasp convention of core/grasp.py
(+z = approach, +y = finger closing axis).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.grasp import Grasp

_PUT_VERBS = (
    r"put|place|move|drop|set|lay|stack|bring|transfer|carry|throw|toss|stick|insert|dump|pack"
)
_TAKE_VERBS = r"pick\s+up|pick|grab|take|grasp|lift|get"
# Longest first at each position: "on top of" before "onto" / "on", "into" before "in".
_PLACE_PREPOSITIONS = r"on\s+top\s+of|inside\s+of|into|onto|inside|in\s+to|in|on|to"
_BARE_PREPOSITIONS = r"on\s+top\s+of|inside\s+of|into|onto|inside"
_PRONOUNS = {"it", "them", "this", "that", "these", "those", "something", "anything"}
_POLITE_PREFIX = re.compile(
    r"^(?:(?:please|kindly|robot|hey robot|ok|okay)\s*,?\s+"
    r"|(?:can|could|would|will)\s+you\s+(?:please\s+)?"
    r"|i\s+(?:want|would\s+like|need)\s+you\s+to\s+)+",
    re.IGNORECASE,
)
_POLITE_SUFFIX = re.compile(r"(?:\s*,?\s*please)?\s*[.!?]*\s*$", re.IGNORECASE)

_PUT_PATTERN = re.compile(
    rf"^(?:{_PUT_VERBS})\s+(?P<object>.+?)(?:\s+(?:back|down|away))?"
    rf"\s+(?:{_PLACE_PREPOSITIONS})\s+(?P<place>.+)$",
    re.IGNORECASE,
)
_TAKE_THEN_PUT_PATTERN = re.compile(
    rf"^(?:{_TAKE_VERBS})\s+(?:up\s+)?(?P<object>.+?)(?:\s+up)?\s*,?\s+(?:and\s+then|and|then)"
    rf"\s+(?:{_PUT_VERBS})\s+(?:it|them)(?:\s+(?:back|down|away))?"
    rf"\s+(?:{_PLACE_PREPOSITIONS})\s+(?P<place>.+)$",
    re.IGNORECASE,
)
_BARE_PATTERN = re.compile(
    rf"^(?P<object>.+?)\s+(?:{_BARE_PREPOSITIONS})\s+(?P<place>.+)$", re.IGNORECASE
)


def split_pick_place_instruction(text: str) -> tuple[str, str] | None:
    """(object, place) descriptions of a pick-and-place instruction, or None.

    "put the red cube in the bowl" -> ("the red cube", "the bowl"). Understands "put/place/move
    X in/into/on/onto/on top of/inside/to Y", "pick up X and put it in Y" and a bare "X into Y";
    the first place preposition splits, so "put the cup on the plate in the sink" places on
    "the plate in the sink". None when there is no object or no place, or the object is a bare
    pronoun ("put it in the bowl"), since the caller cannot point at "it".
    """
    instruction = " ".join(text.split())
    instruction = _POLITE_PREFIX.sub("", instruction)
    instruction = _POLITE_SUFFIX.sub("", instruction).strip()
    if not instruction:
        return None
    for pattern in (_TAKE_THEN_PUT_PATTERN, _PUT_PATTERN, _BARE_PATTERN):
        match = pattern.match(instruction)
        if match is None:
            continue
        target = match.group("object").strip(" ,")
        place = match.group("place").strip(" ,")
        if not target or not place or target.lower() in _PRONOUNS:
            return None
        if pattern is _BARE_PATTERN and re.match(rf"^(?:{_TAKE_VERBS})\b", target, re.I):
            return None  # "pick up X into Y" is not an instruction this understands
        return target, place
    return None


@dataclass
class Pose:
    """A TCP pose in the base frame."""

    position: np.ndarray  # (3,)
    quaternion_xyzw: np.ndarray  # (4,)


@dataclass
class PickPlacePoses:
    """Stage poses of one pick-and-place, in execution order, and the gripper widths."""

    pre_grasp: Pose
    grasp: Pose
    lift: Pose
    pre_place: Pose
    place: Pose
    retreat: Pose
    open_width: float  # gripper opening for the approach and the release
    object_width: float = 0.0  # object extent across the fingers (0 = unknown)

    def named(self) -> list[tuple[str, Pose]]:
        """(stage name, pose) in execution order."""
        return [
            ("pre_grasp", self.pre_grasp),
            ("grasp", self.grasp),
            ("lift", self.lift),
            ("pre_place", self.pre_place),
            ("place", self.place),
            ("retreat", self.retreat),
        ]


@dataclass(frozen=True)
class MotionSettings:
    """Distances of the stages around the grasp and the place (metres)."""

    pre_grasp_distance: float = 0.10  # back along the approach from the grasp
    lift_height: float = 0.15  # straight up from the grasp
    place_clearance: float = 0.02  # object bottom above the place point when released
    pre_place_height: float = 0.12  # above the place pose
    retreat_distance: float = 0.10  # straight up from the place pose after release


PlaceSettings = MotionSettings


def plan_pick_place(
    grasp: Grasp,
    place_point: np.ndarray,
    settings: MotionSettings = MotionSettings(),  # noqa: B008 - frozen, shared safely
    up: np.ndarray | tuple[float, float, float] = (0.0, 0.0, 1.0),
) -> PickPlacePoses:
    """Stage poses that carry the grasped object to ``place_point`` (a point on the surface).

    The place pose keeps the grasp's orientation, so the object keeps its yaw and stays upright;
    its TCP is as high above the place point as it was above the object's support, plus
    ``place_clearance`` (with no object estimate the TCP height above the bottom is taken as 0).
    """
    up_vector = np.asarray(up, dtype=np.float64).reshape(3)
    up_vector = up_vector / np.linalg.norm(up_vector)
    position = np.asarray(grasp.position, dtype=np.float64).reshape(3)
    quaternion = np.asarray(grasp.quaternion_xyzw, dtype=np.float64).reshape(4)
    approach = Rotation.from_quat(quaternion).as_matrix()[:, 2]
    tcp_above_bottom = 0.0
    if grasp.object is not None:
        tcp_above_bottom = float(position @ up_vector) - grasp.object.support_z
    place_position = np.asarray(place_point, dtype=np.float64).reshape(3) + (
        tcp_above_bottom + settings.place_clearance
    ) * up_vector

    def pose(at: np.ndarray) -> Pose:
        return Pose(position=np.asarray(at, dtype=np.float64), quaternion_xyzw=quaternion.copy())

    return PickPlacePoses(
        pre_grasp=pose(position - settings.pre_grasp_distance * approach),
        grasp=pose(position),
        lift=pose(position + settings.lift_height * up_vector),
        pre_place=pose(place_position + settings.pre_place_height * up_vector),
        place=pose(place_position),
        retreat=pose(place_position + settings.retreat_distance * up_vector),
        open_width=float(grasp.open_width),
        object_width=float(grasp.object_width),
    )


@dataclass(frozen=True)
class WorkspaceLimits:
    """Where the TCP may go, in the base frame; defaults suit a Panda at a table (metres)."""

    x_min: float = 0.15
    x_max: float = 0.855
    y_min: float = -0.6
    y_max: float = 0.6
    z_min: float = 0.0
    z_max: float = 0.9
    max_reach: float = 0.855  # from the shoulder
    shoulder_height: float = 0.333  # the shoulder joint above the base origin


def check_workspace(poses: PickPlacePoses, limits: WorkspaceLimits) -> str | None:
    """None when every stage pose is inside the limits, else a reason naming the first one."""
    shoulder = np.array([0.0, 0.0, limits.shoulder_height])
    for name, pose in poses.named():
        position = np.asarray(pose.position, dtype=np.float64)
        where = f"{name} pose at ({position[0]:.2f}, {position[1]:.2f}, {position[2]:.2f})"
        if not np.all(np.isfinite(position)):
            return f"{where} is not finite"
        for axis, value in zip("xyz", position, strict=True):
            low = getattr(limits, f"{axis}_min")
            high = getattr(limits, f"{axis}_max")
            if value < low:
                return f"{where} is outside the workspace: {axis} {value:.3f} < {axis}_min {low}"
            if value > high:
                return f"{where} is outside the workspace: {axis} {value:.3f} > {axis}_max {high}"
        reach = float(np.linalg.norm(position - shoulder))
        if reach > limits.max_reach:
            return (
                f"{where} is {reach:.2f} m from the shoulder; max reach {limits.max_reach} m"
            )
    return None


def transform_points(
    points: np.ndarray, translation: np.ndarray, quaternion_xyzw: np.ndarray
) -> np.ndarray:
    """Points (N, 3) or (3,) mapped by the rigid transform (rotation, then translation).

    With the camera's pose in the base frame this maps camera-frame points to the base frame.
    NaN rows stay NaN.
    """
    rotation = Rotation.from_quat(np.asarray(quaternion_xyzw, dtype=np.float64).reshape(4))
    array = np.asarray(points, dtype=np.float64)
    moved = rotation.apply(array.reshape(-1, 3)) + np.asarray(translation, dtype=np.float64)
    return moved.reshape(array.shape)


def yaw_quaternion(yaw: float) -> np.ndarray:
    """Quaternion (x, y, z, w) of a rotation by ``yaw`` radians about +z."""
    return np.array([0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)])


def placeholder_extrinsic(translation, rotation_xyzw) -> str | None:
    """Why a camera extrinsic is not a calibration (unset, malformed or the identity), or None.

    The identity (camera optical frame at the base origin, axes aligned) is the value of an
    extrinsic nobody set; a real camera is never mounted there."""
    t = np.asarray(translation, dtype=float).ravel()
    q = np.asarray(rotation_xyzw, dtype=float).ravel()
    if t.shape != (3,) or q.shape != (4,) or not np.all(np.isfinite(t)) \
            or not np.all(np.isfinite(q)) or np.linalg.norm(q) < 1e-9:
        return "camera_to_base is unset or malformed"
    q = q / np.linalg.norm(q)
    if np.allclose(t, 0.0) and abs(abs(q[3]) - 1.0) < 1e-9:
        return "camera_to_base is the placeholder (identity: the camera at the base origin)"
    return None
