"""QueryResult (perception.py) -> mimo_embodied_msgs, visualization_msgs and the debug image."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point, Pose, Quaternion, Vector3
from scipy.spatial.transform import Rotation
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray

from mimo_embodied_msgs.msg import (
    AffordancePoint,
    Affordances,
    Object3D,
    Objects3D,
    Timings,
)
from mimo_embodied_msgs.srv import Instruct
from mimo_embodied_ros.core.annotate import annotate
from mimo_embodied_ros.core.depth import project
from mimo_embodied_ros.core.text import FLOAT32_MAX, finite_or_nan, safe_text
from mimo_embodied_ros.core.types import CameraIntrinsics
from mimo_embodied_ros.perception import QueryResult

NAN = float("nan")


def timings_msg(result: QueryResult) -> Timings:
    t = result.timings_ms
    return Timings(**{
        name: finite_or_nan(t.get(name, NAN), FLOAT32_MAX)
        for name in ("preprocess_ms", "model_ms", "postprocess_ms", "total_ms")
    })


ros_text = safe_text
"""Every string from a model or a server goes through this before it reaches a message."""


def _f32(value: object) -> float:
    return finite_or_nan(value, FLOAT32_MAX)


def _common_fields(result: QueryResult) -> dict:
    parsed, reply = result.parsed, result.reply
    return {
        "instruction": ros_text(result.instruction),
        "answer": ros_text(parsed.answer) if parsed else "",
        "reasoning": ros_text(parsed.reasoning) if parsed else "",
        "raw_text": ros_text(reply.text) if reply else "",
        "model_id": ros_text(reply.model_id) if reply else "",
        "timings": timings_msg(result),
    }


def affordances_msg(result: QueryResult, header: Header, backend: str) -> Affordances:
    """Affordances with the source image's header; every point is kept, valid or not."""
    points = []
    for p in result.points:
        position = p.position if p.position is not None else (NAN, NAN, NAN)
        points.append(
            AffordancePoint(
                label=ros_text(p.model.label),
                u=finite_or_nan(p.u),
                v=finite_or_nan(p.v),
                u_model=finite_or_nan(p.model.x),
                v_model=finite_or_nan(p.model.y),
                in_image=bool(p.in_image),
                depth_valid=p.position is not None,
                position=Point(x=float(position[0]), y=float(position[1]), z=float(position[2])),
                depth_spread=_f32(p.depth.spread) if p.depth is not None else NAN,
                status=ros_text(p.status),
            )
        )
    return Affordances(header=header, points=points, backend=backend, **_common_fields(result))


def objects_msg(result: QueryResult, header: Header, backend: str) -> Objects3D:
    """Objects3D with the source image's header; objects without a 3D box have valid=false."""
    objects = []
    for o in result.objects:
        msg = Object3D(
            label=ros_text(o.model.label),
            score=_f32(o.model.score),
            box_2d=[finite_or_nan(c) for c in o.box_px],
            valid=o.box3d is not None,
            status=ros_text(o.status),
        )
        if o.box3d is not None:
            msg.center = pose_msg(o.box3d.center, o.box3d.rotation)
            msg.size = Vector3(x=float(o.box3d.size[0]), y=float(o.box3d.size[1]),
                               z=float(o.box3d.size[2]))
            msg.method = ros_text(o.box3d.method)
            msg.num_points = int(o.box3d.num_points)
        objects.append(msg)
    return Objects3D(header=header, objects=objects, backend=backend, **_common_fields(result))


def pose_msg(position: np.ndarray, rotation: np.ndarray) -> Pose:
    x, y, z, w = Rotation.from_matrix(np.asarray(rotation, dtype=float)).as_quat()
    return Pose(
        position=Point(x=float(position[0]), y=float(position[1]), z=float(position[2])),
        orientation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)),
    )


def fill_instruct_response(
    response: Instruct.Response, result: QueryResult, header: Header, backend: str
) -> Instruct.Response:
    response.success = result.success
    response.message = ros_text(result.message)
    response.task = result.task.value if result.task else ""
    response.parse_status = result.parsed.status if result.parsed else ""
    response.retried_no_think = result.retried_no_think
    response.affordances = affordances_msg(result, header, backend)
    response.objects = objects_msg(result, header, backend)
    if result.parsed is not None:
        response.answer = ros_text(result.parsed.choice or result.parsed.answer)
        response.reasoning = ros_text(result.parsed.reasoning)
        response.plan_steps = [ros_text(step) for step in result.parsed.plan_steps]
    response.raw_text = ros_text(result.reply.text) if result.reply else ""
    return response


def markers_msg(result: QueryResult, header: Header, lifetime_s: float = 0.0) -> MarkerArray:
    """Spheres at 3D points, boxes for 3D objects, text labels; a DELETEALL clears old ones."""
    markers = [Marker(header=header, action=Marker.DELETEALL)]
    lifetime = _duration(lifetime_s)
    for i, p in enumerate(result.points):
        if p.position is None:
            continue
        pose = pose_msg(p.position, np.eye(3))
        markers.append(Marker(header=header, ns="points", id=i, type=Marker.SPHERE, pose=pose,
                              scale=Vector3(x=0.02, y=0.02, z=0.02),
                              color=ColorRGBA(r=1.0, g=0.0, b=1.0, a=0.9), lifetime=lifetime))
        markers.append(_text(header, "point_labels", i, p.model.label, pose, lifetime))
    for i, o in enumerate(result.objects):
        if o.box3d is None:
            continue
        pose = pose_msg(o.box3d.center, o.box3d.rotation)
        size = o.box3d.size
        markers.append(Marker(header=header, ns="objects", id=i, type=Marker.CUBE, pose=pose,
                              scale=Vector3(x=float(size[0]), y=float(size[1]), z=float(size[2])),
                              color=ColorRGBA(r=0.0, g=1.0, b=0.0, a=0.35), lifetime=lifetime))
        markers.append(_text(header, "object_labels", i, o.model.label, pose, lifetime))
    return MarkerArray(markers=markers)


def _text(
    header: Header, ns: str, marker_id: int, text: str, pose: Pose, lifetime: Duration
) -> Marker:
    above = Pose(position=Point(x=pose.position.x, y=pose.position.y - 0.05, z=pose.position.z))
    return Marker(header=header, ns=ns, id=marker_id, type=Marker.TEXT_VIEW_FACING, pose=above,
                  scale=Vector3(z=0.03), color=ColorRGBA(r=1.0, g=1.0, b=1.0, a=1.0),
                  text=ros_text(text) or ns, lifetime=lifetime)


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(sec=whole, nanosec=int((seconds - whole) * 1e9))


def annotated_rgb(
    rgb: np.ndarray, result: QueryResult, intrinsics: CameraIntrinsics | None = None
) -> np.ndarray:
    """The debug image: the source frame with the query's points, 2D boxes and (given the
    intrinsics) 3D boxes projected back, so an operator sees whether the 3D estimate fits."""
    caption = ros_text(f"{result.instruction} -> {result.message}")
    cuboids = []
    if intrinsics is not None:
        cuboids = [project(o.box3d.corners(), intrinsics) for o in result.objects if o.box3d]
    return annotate(
        rgb,
        points=[(p.u, p.v, p.position is not None, p.model.label) for p in result.points],
        boxes=[(o.box_px, o.box3d is not None, o.model.label) for o in result.objects],
        caption=caption,
        cuboids=cuboids,
    )
