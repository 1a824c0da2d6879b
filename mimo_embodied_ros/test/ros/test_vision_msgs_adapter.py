"""What the vision_msgs adapter puts into Detection2D / Detection3D, as plain data."""

from __future__ import annotations

import numpy as np

from mimo_embodied_ros.core.boxes3d import Box3D
from mimo_embodied_ros.core.types import ModelBox, ModelPoint
from mimo_embodied_ros.perception import ObjectResult, PointResult, QueryResult
from mimo_embodied_ros.ros.vision_msgs_adapter import detections_2d, detections_3d


def test_boxes_become_2d_and_3d_detections():
    box3d = Box3D(center=np.array([0.1, 0.2, 1.0]), rotation=np.eye(3),
                  size=np.array([0.1, 0.05, 0.2]), method="depth_support_plane", num_points=50)
    result = QueryResult(success=True, message="", instruction="the mug", objects=[
        ObjectResult(ModelBox(1, 2, 3, 4, "mug", 0.7), (10.0, 20.0, 50.0, 80.0), True, box3d),
        ObjectResult(ModelBox(1, 2, 3, 4, "", float("nan")), (0.0, 0.0, 5.0, 5.0), True, None),
        ObjectResult(ModelBox(1, 2, 3, 4, "far"), (900.0, 0.0, 950.0, 5.0), False, None),
    ])
    flat = detections_2d(result)
    assert [d.id for d in flat] == ["0", "1"]  # the box outside the image is left out
    assert flat[0].center == (30.0, 50.0) and flat[0].size == (40.0, 60.0)
    assert flat[0].class_id == "mug" and flat[0].score == 0.7
    assert flat[0].position == (0.1, 0.2, 1.0)
    assert flat[1].class_id == "the mug" and flat[1].score == 1.0  # no label, no score
    solid = detections_3d(result)
    assert len(solid) == 1 and solid[0].size == (0.1, 0.05, 0.2)
    assert solid[0].orientation_xyzw == (0.0, 0.0, 0.0, 1.0)


def test_points_are_zero_size_2d_detections():
    result = QueryResult(success=True, message="", instruction="handle", points=[
        PointResult(ModelPoint(5, 6, "handle"), 12.5, 30.0, True, np.array([0.0, 0.1, 0.9])),
        PointResult(ModelPoint(5, 6, ""), 40.0, 30.0, True, None),
    ])
    flat = detections_2d(result)
    assert [(d.center, d.size) for d in flat] == [((12.5, 30.0), (0.0, 0.0)),
                                                   ((40.0, 30.0), (0.0, 0.0))]
    assert flat[0].position == (0.0, 0.1, 0.9) and flat[1].position is None
    assert detections_3d(result) == []
