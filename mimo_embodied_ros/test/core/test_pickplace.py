"""Instruction split, stage poses, workspace checks and rigid transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.grasp import (
    APPROACH_SURFACE_NORMAL,
    APPROACH_TOP_DOWN,
    Grasp,
    ObjectEstimate,
)
from mimo_embodied_ros.core.pickplace import (
    MotionSettings,
    PickPlacePoses,
    PlaceSettings,
    Pose,
    WorkspaceLimits,
    check_workspace,
    plan_pick_place,
    split_pick_place_instruction,
    transform_points,
    yaw_quaternion,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("put the red cube in the bowl", ("the red cube", "the bowl")),
        ("Put the red cube in the bowl.", ("the red cube", "the bowl")),
        ("place the apple on the plate", ("the apple", "the plate")),
        ("move the green block into the box", ("the green block", "the box")),
        ("put the mug onto the tray", ("the mug", "the tray")),
        ("place the book on top of the shelf", ("the book", "the shelf")),
        ("drop the tin can inside the bin", ("the tin can", "the bin")),
        ("move the cup to the sink", ("the cup", "the sink")),
        ("put the cup back on the saucer", ("the cup", "the saucer")),
        ("pick up the banana and put it in the basket", ("the banana", "the basket")),
        ("pick the banana up and place it on the plate", ("the banana", "the plate")),
        ("grab the sponge, then drop it into the sink", ("the sponge", "the sink")),
        ("take the pen and then put it in the cup", ("the pen", "the cup")),
        ("the apple into the bowl", ("the apple", "the bowl")),
        ("red cube onto the blue plate", ("red cube", "the blue plate")),
        ("please put the red cube in the bowl, please", ("the red cube", "the bowl")),
        ("Could you please place the lemon in the bowl?", ("the lemon", "the bowl")),
        ("robot, put the   spoon in the  drawer", ("the spoon", "the drawer")),
        ("put the cup on the plate in the sink", ("the cup", "the plate in the sink")),
        ("PUT THE RED CUBE IN THE BOWL", ("THE RED CUBE", "THE BOWL")),
    ],
)
def test_split_pick_place_instruction(text: str, expected: tuple[str, str]) -> None:
    assert split_pick_place_instruction(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "put the red cube",
        "pick up the red cube",
        "put it in the bowl",
        "put in the bowl",
        "what is in the bowl?",
        "go to the kitchen",
        "the red cube",
        "I want to sleep",
        "pick up the cube into the bowl",
        "put the cube in",
    ],
)
def test_split_refuses_what_it_cannot_split(text: str) -> None:
    assert split_pick_place_instruction(text) is None


def _object(support_z: float = 0.0, height: float = 0.05) -> ObjectEstimate:
    return ObjectEstimate(
        center=np.array([0.5, 0.1, support_z + height / 2]),
        size=np.array([0.07, 0.04, height]),
        yaw=0.3,
        top_z=support_z + height,
        support_z=support_z,
        num_points=500,
    )


def _top_down_grasp(yaw: float = 0.3, support_z: float = 0.0) -> Grasp:
    rotation = Rotation.from_euler("z", yaw) * Rotation.from_euler("x", math.pi)
    return Grasp(
        position=np.array([0.5, 0.1, support_z + 0.03]),
        quaternion_xyzw=rotation.as_quat(),
        approach=APPROACH_TOP_DOWN,
        open_width=0.055,
        object_width=0.04,
        object=_object(support_z),
    )


def test_top_down_pick_place_poses() -> None:
    grasp = _top_down_grasp(support_z=0.01)
    place_point = np.array([0.3, -0.3, 0.04])
    settings = MotionSettings()

    poses = plan_pick_place(grasp, place_point, settings)

    np.testing.assert_allclose(poses.grasp.position, grasp.position)
    # Pre-grasp is back along the approach (down), i.e. 10 cm above.
    np.testing.assert_allclose(poses.pre_grasp.position, grasp.position + [0, 0, 0.10], atol=1e-9)
    np.testing.assert_allclose(poses.lift.position, grasp.position + [0, 0, 0.15], atol=1e-9)
    # TCP was 3 cm above the object's bottom; the bottom ends 2 cm above the place point.
    np.testing.assert_allclose(poses.place.position, [0.3, -0.3, 0.04 + 0.03 + 0.02], atol=1e-9)
    np.testing.assert_allclose(
        poses.pre_place.position, poses.place.position + [0, 0, 0.12], atol=1e-9
    )
    np.testing.assert_allclose(
        poses.retreat.position, poses.place.position + [0, 0, 0.10], atol=1e-9
    )
    for _, pose in poses.named():  # every stage keeps the grasp's orientation
        np.testing.assert_allclose(pose.quaternion_xyzw, grasp.quaternion_xyzw)
    assert poses.open_width == 0.055
    assert poses.object_width == 0.04
    assert [name for name, _ in poses.named()] == [
        "pre_grasp", "grasp", "lift", "pre_place", "place", "retreat"
    ]
    assert PlaceSettings is MotionSettings


def test_side_grasp_pre_grasp_backs_off_along_the_approach() -> None:
    approach = np.array([-1.0, 1.0, 0.0]) / math.sqrt(2)  # horizontal, into the object
    y_axis = np.cross([0.0, 0.0, 1.0], approach)
    x_axis = np.cross(y_axis, approach)
    quaternion = Rotation.from_matrix(np.column_stack((x_axis, y_axis, approach))).as_quat()
    grasp = Grasp(
        position=np.array([0.5, 0.0, 0.1]),
        quaternion_xyzw=quaternion,
        approach=APPROACH_SURFACE_NORMAL,
        open_width=0.06,
        object_width=0.045,
        object=_object(height=0.2),
    )
    settings = MotionSettings(pre_grasp_distance=0.08, place_clearance=0.01)

    poses = plan_pick_place(grasp, np.array([0.4, 0.3, 0.0]), settings)

    np.testing.assert_allclose(poses.pre_grasp.position, grasp.position - 0.08 * approach)
    np.testing.assert_allclose(poses.place.position, [0.4, 0.3, 0.1 + 0.01])
    np.testing.assert_allclose(poses.lift.position, [0.5, 0.0, 0.25])


def _poses_at(position: tuple[float, float, float]) -> PickPlacePoses:
    pose = Pose(position=np.array(position, dtype=float), quaternion_xyzw=yaw_quaternion(0.0))
    return PickPlacePoses(pose, pose, pose, pose, pose, pose, open_width=0.05)


def test_check_workspace_accepts_reachable_poses() -> None:
    poses = plan_pick_place(_top_down_grasp(), np.array([0.35, -0.3, 0.0]))
    assert check_workspace(poses, WorkspaceLimits()) is None


def test_check_workspace_names_pose_and_reach() -> None:
    grasp = _top_down_grasp()
    grasp.position = np.array([0.90, 0.10, 0.05])
    limits = WorkspaceLimits(x_max=1.2)
    reason = check_workspace(plan_pick_place(grasp, np.array([0.4, 0.0, 0.0])), limits)
    assert reason is not None
    assert reason.startswith("pre_grasp pose at (0.90, 0.10, 0.15)")
    assert "from the shoulder; max reach 0.855 m" in reason
    distance = float(np.linalg.norm(np.array([0.9, 0.1, 0.15]) - [0, 0, 0.333]))
    assert f"{distance:.2f} m" in reason


@pytest.mark.parametrize(
    ("position", "words"),
    [
        ((0.05, 0.0, 0.2), "x 0.050 < x_min 0.15"),
        ((0.5, 0.7, 0.2), "y 0.700 > y_max 0.6"),
        ((0.5, 0.0, -0.01), "z -0.010 < z_min 0.0"),
        ((0.5, 0.0, 0.95), "z 0.950 > z_max 0.9"),
    ],
)
def test_check_workspace_names_the_box_limit(
    position: tuple[float, float, float], words: str
) -> None:
    reason = check_workspace(_poses_at(position), WorkspaceLimits())
    assert reason is not None and words in reason and reason.startswith("pre_grasp pose")


def test_check_workspace_reports_the_first_bad_stage() -> None:
    poses = plan_pick_place(_top_down_grasp(), np.array([0.4, 0.0, 0.0]))
    poses.place = Pose(np.array([0.4, 0.0, -0.05]), poses.place.quaternion_xyzw)
    reason = check_workspace(poses, WorkspaceLimits())
    assert reason is not None and reason.startswith("place pose at (0.40, 0.00, -0.05)")


def test_transform_points_camera_to_base() -> None:
    # A camera 1 m above the origin looking straight down (optical z = base -z).
    rotation = Rotation.from_euler("x", 180.0, degrees=True)
    translation = np.array([0.5, 0.0, 1.0])
    camera_points = np.array([[0.0, 0.0, 1.0], [0.1, 0.2, 0.8], [np.nan, 0.0, 1.0]])

    base_points = transform_points(camera_points, translation, rotation.as_quat())

    np.testing.assert_allclose(base_points[0], [0.5, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(base_points[1], [0.6, -0.2, 0.2], atol=1e-12)
    assert np.isnan(base_points[2]).any()
    single = transform_points(np.array([0.1, 0.2, 0.8]), translation, rotation.as_quat())
    assert single.shape == (3,)
    np.testing.assert_allclose(single, base_points[1])
    back = transform_points(
        base_points[:2] - translation, np.zeros(3), rotation.inv().as_quat()
    )
    np.testing.assert_allclose(back, camera_points[:2], atol=1e-12)


def test_yaw_quaternion_rotates_about_z() -> None:
    rotated = Rotation.from_quat(yaw_quaternion(math.pi / 2)).apply([1.0, 0.0, 0.0])
    np.testing.assert_allclose(rotated, [0.0, 1.0, 0.0], atol=1e-12)


def test_placeholder_extrinsic_is_the_identity_or_unset() -> None:
    from mimo_embodied_ros.core.pickplace import placeholder_extrinsic

    assert "placeholder" in placeholder_extrinsic([0, 0, 0], [0, 0, 0, 1])
    assert "placeholder" in placeholder_extrinsic([0, 0, 0], [0, 0, 0, -2.0])  # same rotation
    assert "unset" in placeholder_extrinsic([], [0, 0, 0, 1])
    assert "unset" in placeholder_extrinsic([0, 0, 0], [0, 0, 0, 0])
    assert "unset" in placeholder_extrinsic([float("nan"), 0, 0], [0, 0, 0, 1])
    assert placeholder_extrinsic([1.05, 0, 0.72], [0.67, 0.67, -0.23, -0.23]) is None
    assert placeholder_extrinsic([0, 0, 0], [0.7071, -0.7071, 0, 0]) is None  # rotated: set
