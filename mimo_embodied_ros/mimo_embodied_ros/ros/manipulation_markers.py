"""Pick-and-place targets as ROS messages: core poses <-> geometry_msgs, PickPlaceTarget, RViz.

Markers show each gripper pose as a set of axes (x red, y green = closing axis, z blue = approach)
plus an arrow along the approach, the pick and place points as spheres, and the object's box.
"""

from __future__ import annotations

import math

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from scipy.spatial.transform import Rotation
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from mimo_embodied_msgs.msg import PickPlaceTarget
from mimo_embodied_ros.core import pickplace
from mimo_embodied_ros.core.grasp import Grasp, ObjectEstimate
from mimo_embodied_ros.core.pickplace_stages import PickPlaceRequest, PlannedTarget

NAMESPACE = "pick_place"
STAGE_POSES = ("pre_grasp", "grasp", "lift", "pre_place", "place", "retreat")
AXIS_COLOURS = ((1.0, 0.1, 0.1), (0.1, 0.9, 0.1), (0.2, 0.4, 1.0))


def point_msg(xyz: np.ndarray) -> Point:
    x, y, z = (float(v) for v in np.asarray(xyz, dtype=float).reshape(3))
    return Point(x=x, y=y, z=z)


def point_from_msg(msg: Point) -> np.ndarray:
    return np.array([msg.x, msg.y, msg.z], dtype=np.float64)


def pose_to_msg(pose: pickplace.Pose) -> Pose:
    x, y, z, w = (float(v) for v in np.asarray(pose.quaternion_xyzw, dtype=float).reshape(4))
    return Pose(position=point_msg(pose.position), orientation=Quaternion(x=x, y=y, z=z, w=w))


def pose_from_msg(msg: Pose) -> pickplace.Pose:
    o = msg.orientation
    return pickplace.Pose(
        position=point_from_msg(msg.position), quaternion_xyzw=np.array([o.x, o.y, o.z, o.w])
    )


def object_box_pose(obj: ObjectEstimate) -> Pose:
    """Centre pose of the gravity-aligned object box (yaw about base +z)."""
    half = obj.yaw / 2
    return Pose(position=point_msg(obj.center),
                orientation=Quaternion(x=0.0, y=0.0, z=math.sin(half), w=math.cos(half)))


def target_msg(
    header: Header,
    poses: pickplace.PickPlacePoses,
    grasp: Grasp,
    pick_point: np.ndarray,
    place_point: np.ndarray,
    object_description: str = "",
    place_description: str = "",
) -> PickPlaceTarget:
    """PickPlaceTarget in header.frame_id (the arm's base frame), stamped like the source image."""
    msg = PickPlaceTarget(
        header=header,
        object_description=object_description,
        place_description=place_description,
        pick_point=point_msg(pick_point),
        place_point=point_msg(place_point),
        approach=grasp.approach,
        gripper_open_width=float(poses.open_width),
        object_width=float(poses.object_width),
    )
    for name, pose in poses.named():
        setattr(msg, name, pose_to_msg(pose))  # the same names as PickPlaceTarget's fields
    if grasp.object is not None:
        msg.object_box_valid = True
        msg.object_center = object_box_pose(grasp.object)
        sx, sy, sz = (float(v) for v in grasp.object.size)
        msg.object_size = Vector3(x=sx, y=sy, z=sz)
    return msg


def _colour(rgb: tuple[float, float, float], alpha: float = 1.0) -> ColorRGBA:
    return ColorRGBA(r=rgb[0], g=rgb[1], b=rgb[2], a=alpha)


def object_box_marker(target: PickPlaceTarget, marker_id: int = 0,
                      lifetime_s: float = 0.0) -> Marker:
    """The object estimate as a translucent cube (what goes into the planning scene)."""
    marker = Marker(header=target.header, ns=f"{NAMESPACE}/object", id=marker_id,
                    type=Marker.CUBE, action=Marker.ADD)
    marker.pose = target.object_center
    marker.scale = target.object_size
    marker.color = _colour((0.9, 0.6, 0.1), 0.5)
    marker.lifetime = _duration(lifetime_s)
    return marker


def _duration(seconds: float) -> Duration:
    return Duration(sec=int(seconds), nanosec=int((seconds % 1.0) * 1e9))


def markers_msg(target: PickPlaceTarget, lifetime_s: float = 0.0,
                axis_length: float = 0.06) -> MarkerArray:
    """Axes + approach arrow per stage pose, pick/place spheres, the object box; DELETEALL first
    so markers of an earlier target never linger."""
    markers = [Marker(header=target.header, action=Marker.DELETEALL)]
    lifetime = _duration(lifetime_s)
    next_id = 0

    def add(marker: Marker) -> None:
        nonlocal next_id
        marker.header = target.header
        marker.id = next_id
        marker.action = Marker.ADD
        marker.lifetime = lifetime
        next_id += 1
        markers.append(marker)

    for name in STAGE_POSES:
        pose: Pose = getattr(target, name)
        origin = point_from_msg(pose.position)
        o = pose.orientation
        axes = Rotation.from_quat([o.x, o.y, o.z, o.w]).as_matrix()
        for column, rgb in enumerate(AXIS_COLOURS):
            axis = Marker(ns=f"{NAMESPACE}/axes/{name}", type=Marker.ARROW)
            axis.points = [point_msg(origin), point_msg(origin + axis_length * axes[:, column])]
            axis.scale = Vector3(x=0.005, y=0.01, z=0.0)
            axis.color = _colour(rgb)
            add(axis)
        approach = Marker(ns=f"{NAMESPACE}/approach", type=Marker.ARROW)
        approach.points = [point_msg(origin - 2 * axis_length * axes[:, 2]), point_msg(origin)]
        approach.scale = Vector3(x=0.008, y=0.016, z=0.02)
        approach.color = _colour((1.0, 1.0, 0.2), 0.8)
        add(approach)
        label = Marker(ns=f"{NAMESPACE}/labels", type=Marker.TEXT_VIEW_FACING, text=name)
        label.pose.position = point_msg(origin + np.array([0.0, 0.0, 0.03]))
        label.pose.orientation.w = 1.0
        label.scale.z = 0.02
        label.color = _colour((1.0, 1.0, 1.0))
        add(label)
    for name, rgb in (("pick_point", (0.1, 0.9, 0.9)), ("place_point", (0.9, 0.1, 0.9))):
        sphere = Marker(ns=f"{NAMESPACE}/points", type=Marker.SPHERE, text=name)
        sphere.pose.position = getattr(target, name)
        sphere.pose.orientation.w = 1.0
        sphere.scale = Vector3(x=0.02, y=0.02, z=0.02)
        sphere.color = _colour(rgb)
        add(sphere)
    if target.object_box_valid:
        add(object_box_marker(target))
    return MarkerArray(markers=markers)


def planned_target_msg(target: PlannedTarget, base_frame: str) -> PickPlaceTarget:
    """The stage machine's target as a PickPlaceTarget in the base frame, stamped like the image
    the model saw."""
    nanoseconds = int(round(target.stamp_s * 1e9))
    stamp = Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)
    return target_msg(Header(frame_id=base_frame, stamp=stamp), target.poses, target.grasp,
                      target.pick_base, target.place_base, target.object_text, target.place_text)


def pick_place_request(goal) -> PickPlaceRequest:
    """A mimo_embodied_msgs/action/PickPlace goal as the stage machine's plain request."""

    def point(stamped) -> tuple[np.ndarray, str]:
        p = stamped.point
        return np.array([p.x, p.y, p.z], dtype=float), stamped.header.frame_id

    return PickPlaceRequest(goal.instruction, goal.object_description, goal.place_description,
                            goal.use_points, point(goal.pick_point), point(goal.place_point))
