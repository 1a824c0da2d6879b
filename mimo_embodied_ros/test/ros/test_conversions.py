"""QueryResult -> mimo_embodied_msgs / MarkerArray / debug image, on real generated messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from scipy.spatial.transform import Rotation
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from mimo_embodied_msgs.srv import Instruct
from mimo_embodied_ros.backends.base import ModelReply
from mimo_embodied_ros.core.boxes3d import METHOD_SUPPORT_PLANE, Box3D
from mimo_embodied_ros.core.depth import DepthSample
from mimo_embodied_ros.core.prompts import Task
from mimo_embodied_ros.core.types import ModelBox, ModelPoint, ParsedAnswer
from mimo_embodied_ros.perception import ObjectResult, PointResult, QueryResult
from mimo_embodied_ros.ros.conversions import (
    affordances_msg,
    annotated_rgb,
    fill_instruct_response,
    markers_msg,
    objects_msg,
    pose_msg,
    ros_text,
    timings_msg,
)

RAW = "<think>The mug\x00 handle is on the right.</think>[[320, 240], [900, 10]]"
YAW = Rotation.from_euler("xyz", [0.3, -0.2, 0.7]).as_matrix()


def source_header() -> Header:
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 1700000000, 250_000_000
    return header


def point_result() -> QueryResult:
    """Two points: one lifted to 3D, one outside the image the model saw."""
    lifted = PointResult(
        model=ModelPoint(320.0, 240.0, "handle"), u=318.0, v=242.5, in_image=True,
        position=np.array([0.01, -0.02, 0.85]), depth=DepthSample(0.85, 0.002, 49, "ok"),
    )
    outside = PointResult(
        model=ModelPoint(900.0, 10.0, "handle"), u=math.nan, v=math.nan, in_image=False,
        status="the model pointed at (900, 10), outside the 644x476 image it saw",
    )
    return QueryResult(
        success=True, message="1 of 2 point(s) located in 3D", instruction="point at the handle",
        task=Task.POINT,
        parsed=ParsedAnswer(status="ok", answer="[[320, 240], [900, 10]]",
                            reasoning="The mug\x00 handle is on the right.",
                            points=[lifted.model, outside.model]),
        reply=ModelReply(text=RAW, model_id="XiaomiMiMo/MiMo-Embodied-7B", model_ms=812.0,
                         prompt_tokens=420, image_sizes=None),
        points=[lifted, outside],
        timings_ms={"preprocess_ms": 3.0, "model_ms": 812.0, "postprocess_ms": 1.5,
                    "total_ms": 816.5},
    )


def object_result() -> QueryResult:
    box = Box3D(center=np.array([0.05, 0.1, 0.9]), rotation=YAW, size=np.array([0.1, 0.2, 0.3]),
                method=METHOD_SUPPORT_PLANE, num_points=812)
    found = ObjectResult(model=ModelBox(10, 20, 110, 220, "mug", 0.75),
                         box_px=(12.0, 22.0, 118.0, 226.0), in_image=True, box3d=box)
    flat = ObjectResult(model=ModelBox(5, 5, 9, 9, "coaster"), box_px=(5.0, 5.0, 9.0, 9.0),
                        in_image=True, status="too_few_points")
    off = ObjectResult(model=ModelBox(0, 0, math.inf, 9, "far"),
                       box_px=(0.0, 0.0, math.inf, 9.0), in_image=False,
                       status="the box lies outside the image the model saw")
    return QueryResult(
        success=True, message="1 of 3 object(s) located in 3D", instruction="find the mug",
        task=Task.DETECT, parsed=ParsedAnswer(status="ok", answer="[...]"),
        reply=ModelReply(text="<think>.</think>[...]", model_id="m", model_ms=1.0,
                         prompt_tokens=None, image_sizes=None),
        objects=[found, flat, off],
    )


def test_affordances_copy_the_source_header():
    msg = affordances_msg(point_result(), source_header(), "scripted")
    assert msg.header.frame_id == "camera_color_optical_frame"
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1700000000, 250_000_000)
    assert msg.backend == "scripted" and msg.model_id == "XiaomiMiMo/MiMo-Embodied-7B"
    assert msg.instruction == "point at the handle"


def test_affordance_points_valid_and_invalid():
    lifted, outside = affordances_msg(point_result(), source_header(), "scripted").points
    assert lifted.depth_valid and lifted.in_image and lifted.status == "ok"
    assert (lifted.position.x, lifted.position.y, lifted.position.z) == (0.01, -0.02, 0.85)
    assert (lifted.u, lifted.v, lifted.u_model, lifted.v_model) == (318.0, 242.5, 320.0, 240.0)
    assert lifted.depth_spread == pytest.approx(0.002)
    # Invalid 3D is NaN, never 0 (a zero point is a valid position at the camera centre).
    assert not outside.depth_valid and not outside.in_image
    assert all(math.isnan(c) for c in (outside.position.x, outside.position.y,
                                       outside.position.z, outside.depth_spread,
                                       outside.u, outside.v))
    assert (outside.u_model, outside.v_model) == (900.0, 10.0)
    assert "outside the 644x476 image" in outside.status


def test_text_fields_survive_serialization_without_nul():
    msg = affordances_msg(point_result(), source_header(), "scripted")
    back = deserialize_message(serialize_message(msg), type(msg))
    assert back.raw_text == RAW.replace("\x00", "\ufffd")
    assert back.raw_text.endswith("[[320, 240], [900, 10]]")  # not cut at the NUL
    assert back.reasoning == "The mug\ufffd handle is on the right."
    assert back.answer == "[[320, 240], [900, 10]]"


def test_ros_text():
    assert ros_text("a\x00b\x00") == "a\ufffdb\ufffd"
    assert ros_text("plain text, ünïcode") == "plain text, ünïcode"


def test_labels_are_nul_safe():
    result = point_result()
    result.points[0].model = ModelPoint(320.0, 240.0, "mug\x00 handle")
    msg = affordances_msg(result, source_header(), "scripted")
    back = deserialize_message(serialize_message(msg), type(msg))
    assert back.points[0].label == "mug\ufffd handle"


def test_timings():
    msg = timings_msg(point_result())
    assert (msg.preprocess_ms, msg.model_ms, msg.postprocess_ms, msg.total_ms) == (
        3.0, 812.0, 1.5, 816.5)
    empty = timings_msg(QueryResult(success=False, message="x", instruction="y"))
    assert all(math.isnan(v) for v in (empty.preprocess_ms, empty.model_ms, empty.total_ms))


def test_pose_quaternion_from_rotation():
    pose = pose_msg(np.array([1.0, 2.0, 3.0]), YAW)
    q = pose.orientation
    assert math.isclose(q.x**2 + q.y**2 + q.z**2 + q.w**2, 1.0, rel_tol=1e-9)
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), YAW,
                               atol=1e-9)
    assert (pose.position.x, pose.position.y, pose.position.z) == (1.0, 2.0, 3.0)
    identity = pose_msg(np.zeros(3), np.eye(3)).orientation
    assert (identity.x, identity.y, identity.z, abs(identity.w)) == (0.0, 0.0, 0.0, 1.0)
    quarter = pose_msg(np.zeros(3), Rotation.from_euler("z", 90, degrees=True).as_matrix())
    assert quarter.orientation.z == pytest.approx(math.sqrt(0.5) * np.sign(quarter.orientation.w))


def test_objects_valid_and_invalid():
    msg = objects_msg(object_result(), source_header(), "openai")
    assert msg.header.stamp.sec == 1700000000 and msg.backend == "openai"
    found, flat, off = msg.objects
    assert found.valid and found.label == "mug" and found.score == pytest.approx(0.75)
    assert list(found.box_2d) == [12.0, 22.0, 118.0, 226.0]
    assert (found.size.x, found.size.y, found.size.z) == (0.1, 0.2, 0.3)
    assert found.center.position.z == 0.9 and found.method == METHOD_SUPPORT_PLANE
    assert found.num_points == 812
    q = found.center.orientation
    np.testing.assert_allclose(Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix(), YAW,
                               atol=1e-9)
    assert not flat.valid and flat.status == "too_few_points" and flat.method == ""
    assert math.isnan(flat.score)  # the model gave no score
    assert not off.valid and math.isnan(off.box_2d[2]) and off.box_2d[3] == 9.0


def test_markers_start_with_deleteall_and_skip_invalid():
    header = source_header()
    markers = markers_msg(point_result(), header, lifetime_s=1.5).markers
    assert markers[0].action == Marker.DELETEALL and markers[0].header.stamp.sec == 1700000000
    spheres = [m for m in markers if m.type == Marker.SPHERE]
    labels = [m for m in markers if m.type == Marker.TEXT_VIEW_FACING]
    assert len(spheres) == 1 and len(labels) == 1 and len(markers) == 3  # the invalid one: none
    sphere = spheres[0]
    assert (sphere.pose.position.x, sphere.pose.position.z) == (0.01, 0.85)
    assert sphere.header.frame_id == "camera_color_optical_frame"
    assert (sphere.lifetime.sec, sphere.lifetime.nanosec) == (1, 500_000_000)
    assert labels[0].text == "handle"

    boxes = markers_msg(object_result(), header).markers
    cubes = [m for m in boxes if m.type == Marker.CUBE]
    assert boxes[0].action == Marker.DELETEALL and len(cubes) == 1
    assert (cubes[0].scale.x, cubes[0].scale.y, cubes[0].scale.z) == (0.1, 0.2, 0.3)
    assert len({(m.ns, m.id) for m in boxes[1:]}) == len(boxes) - 1  # no marker overwrites another


def test_markers_of_a_failed_query_only_clear():
    failed = QueryResult(success=False, message="no frame", instruction="x")
    markers = markers_msg(failed, source_header()).markers
    assert [m.action for m in markers] == [Marker.DELETEALL]


def test_instruct_response_of_points():
    response = fill_instruct_response(Instruct.Response(), point_result(), source_header(), "s")
    assert response.success and response.task == "point" and response.parse_status == "ok"
    assert response.message == "1 of 2 point(s) located in 3D"
    assert len(response.affordances.points) == 2 and response.objects.objects == []
    assert response.affordances.header.stamp.nanosec == 250_000_000
    assert "\x00" not in response.raw_text and "\x00" not in response.reasoning
    assert response.answer == "[[320, 240], [900, 10]]"


def test_instruct_response_of_choice_and_plan():
    choice = QueryResult(success=True, message="answer: B", instruction="q", task=Task.CHOICE,
                         parsed=ParsedAnswer(status="ok", answer="so \\boxed{B}", choice="B"))
    response = fill_instruct_response(Instruct.Response(), choice, Header(), "s")
    assert response.answer == "B" and response.task == "choice" and response.raw_text == ""
    plan = QueryResult(success=True, message="answered", instruction="q", task=Task.PLAN,
                       parsed=ParsedAnswer(status="ok", answer="1. grab\x00 it\n2. lift",
                                           plan_steps=["grab\x00 it", "lift"]))
    response = fill_instruct_response(Instruct.Response(), plan, Header(), "s")
    assert list(response.plan_steps) == ["grab\ufffd it", "lift"]


def test_instruct_response_of_an_early_failure():
    failed = QueryResult(success=False, message="unknown task 'fly'", instruction="q")
    response = fill_instruct_response(Instruct.Response(), failed, Header(), "s")
    assert not response.success and response.task == "" and response.parse_status == ""
    assert response.message == "unknown task 'fly'"
    assert response.affordances.points == [] and response.answer == ""


def test_annotated_image_draws_on_a_copy():
    rgb = np.zeros((480, 640, 3), np.uint8)
    drawn = annotated_rgb(rgb, point_result())
    assert drawn.shape == rgb.shape and drawn.dtype == np.uint8
    assert not rgb.any()  # the source frame is untouched
    assert drawn[238:248, 314:324].any()  # something is drawn at the lifted point
