"""Detections as standard `vision_msgs` (Detection2DArray / Detection3DArray), import-guarded.

vision_msgs is on every robot but cannot be installed here, so what goes into the messages is
computed as plain data (`detections_2d`, `detections_3d`, tested here) and the message building
below is a thin layer used only where the package imports.

Conventions: a detection's `id` is its index in the query; `class_id` is the label the model gave
(the instruction when it gave none); `score` is the model's score, or 1.0 when it gave none.
A pointing answer's points go out as Detection2D with zero size centred on the point, with the
camera-frame 3D position as the hypothesis pose when depth was valid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.text import finite_or_nan, safe_text
from mimo_embodied_ros.perception import QueryResult


@dataclass(frozen=True)
class Detection2DData:
    id: str
    class_id: str
    score: float
    center: tuple[float, float]  # source pixels
    size: tuple[float, float]  # pixels; (0, 0) for a point
    position: tuple[float, float, float] | None  # camera optical frame, metres


@dataclass(frozen=True)
class Detection3DData:
    id: str
    class_id: str
    score: float
    position: tuple[float, float, float]  # box centre, camera optical frame, metres
    orientation_xyzw: tuple[float, float, float, float]
    size: tuple[float, float, float]


def _score(value: float) -> float:
    score = finite_or_nan(value)
    return 1.0 if math.isnan(score) else score


def detections_2d(result: QueryResult) -> list[Detection2DData]:
    """Boxes (detect) or zero-size points (point) that lie in the image."""
    label = safe_text(result.instruction)
    items = []
    for index, box in enumerate(result.objects):
        if not box.in_image:
            continue
        x1, y1, x2, y2 = box.box_px
        position = tuple(map(float, box.box3d.center)) if box.box3d is not None else None
        items.append(Detection2DData(str(index), safe_text(box.model.label) or label,
                                     _score(box.model.score), ((x1 + x2) / 2, (y1 + y2) / 2),
                                     (x2 - x1, y2 - y1), position))
    for index, point in enumerate(result.points):
        if not point.in_image:
            continue
        position = tuple(map(float, point.position)) if point.position is not None else None
        items.append(Detection2DData(str(index), safe_text(point.model.label) or label, 1.0,
                                     (float(point.u), float(point.v)), (0.0, 0.0), position))
    return items


def detections_3d(result: QueryResult) -> list[Detection3DData]:
    """The 3D boxes of a detection query."""
    label = safe_text(result.instruction)
    items = []
    for index, box in enumerate(result.objects):
        if box.box3d is None:
            continue
        quaternion = Rotation.from_matrix(box.box3d.rotation).as_quat()
        items.append(Detection3DData(str(index), safe_text(box.model.label) or label,
                                     _score(box.model.score),
                                     tuple(map(float, box.box3d.center)),
                                     tuple(map(float, quaternion)),
                                     tuple(map(float, box.box3d.size))))
    return items


def vision_msgs_available() -> bool:
    try:
        import vision_msgs.msg  # noqa: F401
    except ImportError:
        return False
    return True


def detection_2d_array(header: Any, items: list[Detection2DData]) -> Any:  # pragma: no cover
    """vision_msgs/Detection2DArray from plain data (needs vision_msgs)."""
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    detections = []
    for item in items:
        detection = Detection2D(header=header, id=item.id)
        detection.bbox.center.position.x, detection.bbox.center.position.y = item.center
        detection.bbox.size_x, detection.bbox.size_y = item.size
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = item.class_id, item.score
        if item.position is not None:
            point = hypothesis.pose.pose.position
            point.x, point.y, point.z = item.position
        detection.results.append(hypothesis)
        detections.append(detection)
    return Detection2DArray(header=header, detections=detections)


def detection_3d_array(header: Any, items: list[Detection3DData]) -> Any:  # pragma: no cover
    """vision_msgs/Detection3DArray from plain data (needs vision_msgs)."""
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

    detections = []
    for item in items:
        detection = Detection3D(header=header, id=item.id)
        centre = detection.bbox.center
        centre.position.x, centre.position.y, centre.position.z = item.position
        (centre.orientation.x, centre.orientation.y, centre.orientation.z,
         centre.orientation.w) = item.orientation_xyzw
        detection.bbox.size.x, detection.bbox.size.y, detection.bbox.size.z = item.size
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id, hypothesis.hypothesis.score = item.class_id, item.score
        hypothesis.pose.pose = centre
        detection.results.append(hypothesis)
        detections.append(detection)
    return Detection3DArray(header=header, detections=detections)


class VisionPublishers:
    """~/detections_2d and ~/detections_3d (vision_msgs), fed from each query's result."""

    def __init__(self, node: Any) -> None:
        from vision_msgs.msg import Detection2DArray, Detection3DArray

        self._pub_2d = node.create_lifecycle_publisher(Detection2DArray, "~/detections_2d", 10)
        self._pub_3d = node.create_lifecycle_publisher(Detection3DArray, "~/detections_3d", 10)

    def publish(self, result: QueryResult, header: Any) -> None:  # pragma: no cover
        self._pub_2d.publish(detection_2d_array(header, detections_2d(result)))
        if result.objects:
            self._pub_3d.publish(detection_3d_array(header, detections_3d(result)))


def create_vision_publishers(node: Any) -> VisionPublishers | None:
    """The vision_msgs publishers where the package is installed, else None (logged once)."""
    if not vision_msgs_available():
        node.get_logger().info("vision_msgs is not installed: no ~/detections_2d / _3d topics")
        return None
    return VisionPublishers(node)
