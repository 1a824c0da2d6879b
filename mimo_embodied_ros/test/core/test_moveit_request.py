"""MoveIt requests of a pick-and-place, as plain data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.grasp import APPROACH_TOP_DOWN, Grasp, ObjectEstimate
from mimo_embodied_ros.core.moveit_request import (
    GripperRequest,
    MotionRequest,
    MoveItSettings,
    collision_box_for,
    stage_requests,
)
from mimo_embodied_ros.core.pickplace import plan_pick_place

EXPECTED_ORDER = [
    "pre_grasp",
    "open_gripper",
    "grasp",
    "close_gripper",
    "lift",
    "pre_place",
    "place",
    "open_gripper",
    "retreat",
]


def _object() -> ObjectEstimate:
    return ObjectEstimate(
        center=np.array([0.5, 0.1, 0.025]),
        size=np.array([0.07, 0.04, 0.05]),
        yaw=math.radians(30.0),
        top_z=0.05,
        support_z=0.0,
        num_points=400,
    )


def _poses():
    grasp = Grasp(
        position=np.array([0.5, 0.1, 0.03]),
        quaternion_xyzw=Rotation.from_euler("ZX", [30.0, 180.0], degrees=True).as_quat(),
        approach=APPROACH_TOP_DOWN,
        open_width=0.055,
        object_width=0.04,
        object=_object(),
    )
    return plan_pick_place(grasp, np.array([0.35, -0.25, 0.0]))


def test_stage_order_and_kinds() -> None:
    requests = stage_requests(_poses(), "panda_link0", MoveItSettings())
    assert [name for name, _ in requests] == EXPECTED_ORDER
    kinds = {name: type(request) for name, request in requests}
    assert kinds["open_gripper"] is GripperRequest
    assert kinds["close_gripper"] is GripperRequest
    for name in ("pre_grasp", "grasp", "lift", "pre_place", "place", "retreat"):
        assert kinds[name] is MotionRequest
    cartesian = {name: r.cartesian for name, r in requests if isinstance(r, MotionRequest)}
    assert cartesian == {
        "pre_grasp": False,
        "grasp": True,
        "lift": True,
        "pre_place": False,
        "place": True,
        "retreat": True,
    }


def test_motion_requests_carry_frame_link_pose_and_settings() -> None:
    poses = _poses()
    settings = MoveItSettings(
        tcp_link="tool0",
        arm_group="manipulator",
        planner_id="RRTConnectkConfigDefault",
        position_tolerance=0.002,
        orientation_tolerance=0.02,
        max_velocity_scaling=0.5,
        allowed_planning_time=2.0,
        num_planning_attempts=3,
    )
    requests = dict(
        (name, request)
        for name, request in stage_requests(poses, "base_link", settings)
        if isinstance(request, MotionRequest)
    )
    expected_poses = dict(poses.named())
    for name, request in requests.items():
        goal = request.pose_goal
        assert goal.frame_id == "base_link"
        assert goal.link_name == "tool0"
        np.testing.assert_allclose(goal.position, expected_poses[name].position)
        np.testing.assert_allclose(goal.quaternion_xyzw, expected_poses[name].quaternion_xyzw)
        assert goal.position_tolerance == 0.002
        assert goal.orientation_tolerance == 0.02
        assert request.group_name == "manipulator"
        assert request.planner_id == "RRTConnectkConfigDefault"
        assert request.max_velocity_scaling == 0.5
        assert request.max_acceleration_scaling == 0.2
        assert request.allowed_planning_time == 2.0
        assert request.num_planning_attempts == 3
        assert request.workspace_min_corner == settings.workspace_min_corner
    # The goal is a copy: editing it leaves the planned poses alone.
    requests["grasp"].pose_goal.position[2] = 9.0
    assert poses.grasp.position[2] == pytest.approx(0.03)


def test_default_settings_match_the_panda() -> None:
    settings = MoveItSettings()
    requests = stage_requests(_poses(), "panda_link0")
    grasp_request = dict(requests)["grasp"]
    assert grasp_request.group_name == "panda_arm"
    assert grasp_request.pose_goal.link_name == "panda_hand_tcp"
    assert grasp_request.pose_goal.position_tolerance == 0.005
    assert grasp_request.pose_goal.orientation_tolerance == 0.05
    assert grasp_request.allowed_planning_time == 5.0
    assert grasp_request.num_planning_attempts == 5
    assert settings.finger_joints == ("panda_finger_joint1", "panda_finger_joint2")


def test_gripper_widths() -> None:
    poses = _poses()
    requests = stage_requests(poses, "panda_link0", MoveItSettings(grasp_squeeze=0.01))
    grippers = [(name, r) for name, r in requests if isinstance(r, GripperRequest)]
    assert [name for name, _ in grippers] == ["open_gripper", "close_gripper", "open_gripper"]
    open_first, close, open_again = (r for _, r in grippers)
    for request in (open_first, open_again):
        assert request.positions == pytest.approx((0.0275, 0.0275))  # each finger half of 0.055
        assert request.width == pytest.approx(0.055)
    assert close.positions == pytest.approx((0.015, 0.015))  # (0.04 - 0.01) / 2
    for request in (open_first, close):
        assert request.group_name == "panda_hand"
        assert request.joint_names == ("panda_finger_joint1", "panda_finger_joint2")
        assert request.max_effort == 70.0


def test_unknown_object_width_closes_fully() -> None:
    poses = _poses()
    poses.object_width = 0.0
    close = dict(stage_requests(poses, "panda_link0"))["close_gripper"]
    assert close.positions == (0.0, 0.0)


def test_collision_box_for_object() -> None:
    obj = _object()
    box = collision_box_for(obj, "panda_link0", "target")
    assert box.object_id == "target"
    assert box.frame_id == "panda_link0"
    assert box.operation == "add"
    np.testing.assert_allclose(box.center, obj.center)
    np.testing.assert_allclose(box.size, obj.size)
    box_x = Rotation.from_quat(box.quaternion_xyzw).apply([1.0, 0.0, 0.0])
    np.testing.assert_allclose(box_x, [math.cos(obj.yaw), math.sin(obj.yaw), 0.0], atol=1e-12)
    assert collision_box_for(obj, "panda_link0", "target", "remove").operation == "remove"


def test_stalled_gripper_on_an_object_is_a_successful_grasp_and_the_object_is_attached() -> None:
    """GripperActionController with allow_stalling false: closing on the 4 cm object stops at
    4 cm and ends ABORTED with stalled=true. That is a grasp; the object's box is then attached
    to the hand with the finger links as touch_links, and detached after the release."""
    from mimo_embodied_ros.core.moveit_request import (
        GripperResult,
        gripper_outcome,
        scene_updates,
    )

    settings = MoveItSettings()
    requests = stage_requests(_poses(), "panda_link0", settings)
    close = dict(requests)["close_gripper"]
    assert close.closing and close.position == pytest.approx(0.015)  # GripperCommand position
    assert close.max_effort == 70.0
    held = gripper_outcome(close, GripperResult("aborted", position=0.02, effort=68.0,
                                                stalled=True, reached_goal=False), settings)
    assert held.ok and held.holding and held.width == pytest.approx(0.04)
    missed = gripper_outcome(close, GripperResult("succeeded", position=0.015,
                                                  reached_goal=True), settings)
    assert not missed.ok and "grasp missed" in missed.message
    jammed_shut = gripper_outcome(close, GripperResult("aborted", position=0.001, stalled=True),
                                  settings)
    assert not jammed_shut.ok  # stalled, but nothing between the fingers
    opened = dict(requests)["open_gripper"]
    assert gripper_outcome(opened, GripperResult("succeeded", 0.0275, reached_goal=True)).ok
    assert not gripper_outcome(opened, GripperResult("aborted", 0.01, stalled=True)).ok

    box = collision_box_for(_object(), "panda_link0", "pick_target")
    updates = scene_updates(requests, box, settings)
    names = [name for name, _ in requests]
    attach = updates[names.index("close_gripper")]
    assert attach is not None and attach.operation == "add" and attach.box is box
    assert attach.link_name == "panda_hand"
    assert set(attach.touch_links) == {"panda_hand", "panda_leftfinger", "panda_rightfinger"}
    release = len(names) - 1 - names[::-1].index("open_gripper")
    detach = updates[release]
    assert detach is not None and detach.operation == "remove"
    assert detach.object_id == "pick_target"
    assert [u for i, u in enumerate(updates) if i not in (names.index("close_gripper"),
                                                          release)] == [None] * 7
    assert scene_updates(requests, None, settings) == [None] * 9
