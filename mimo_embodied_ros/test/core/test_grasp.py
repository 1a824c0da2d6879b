"""Grasps from synthetic point clouds of boxes on a table, built here with numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.grasp import (
    APPROACH_SURFACE_NORMAL,
    APPROACH_TOP_DOWN,
    GraspSettings,
    compute_grasp,
)

SPACING = 0.003
NOISE = 0.0005


def _grid(extent_u: float, extent_v: float, spacing: float = SPACING) -> np.ndarray:
    """(M, 2) grid covering [-extent_u/2, extent_u/2] x [-extent_v/2, extent_v/2]."""
    u = np.arange(-extent_u / 2, extent_u / 2 + 1e-9, spacing)
    v = np.arange(-extent_v / 2, extent_v / 2 + 1e-9, spacing)
    uu, vv = np.meshgrid(u, v)
    return np.column_stack((uu.ravel(), vv.ravel()))


def box_on_table(
    center_xy: tuple[float, float],
    size: tuple[float, float, float],
    yaw_deg: float,
    camera: tuple[float, float, float] = (0.2, 0.0, 0.9),
    table_half: float = 0.11,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud (N, 3) of a box (length, width, height) standing on the table z = 0, with noise.

    Only the box faces turned to ``camera`` are seen; the table is seen outside the footprint.
    Returns the cloud and the box's 3x3 rotation (columns: long, short, up).
    """
    rng = np.random.default_rng(seed)
    length, width, height = size
    rotation = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    center = np.array([center_xy[0], center_xy[1], 0.0])

    table_uv = _grid(2 * table_half, 2 * table_half)
    table = np.column_stack((table_uv, np.zeros(len(table_uv)))) + center
    local_table = (table - center) @ rotation
    inside = (np.abs(local_table[:, 0]) <= length / 2) & (np.abs(local_table[:, 1]) <= width / 2)
    table = table[~inside]

    faces = []  # (points in the box frame, outward normal in the box frame)
    top = _grid(length, width)
    faces.append((np.column_stack((top, np.full(len(top), height))), np.array([0.0, 0, 1])))
    for sign in (-1.0, 1.0):
        side_x = _grid(width, height)
        end_x = np.full(len(side_x), sign * length / 2)
        faces.append(
            (
                np.column_stack((end_x, side_x[:, 0], side_x[:, 1] + height / 2)),
                np.array([sign, 0.0, 0.0]),
            )
        )
        side_y = _grid(length, height)
        end_y = np.full(len(side_y), sign * width / 2)
        faces.append(
            (
                np.column_stack((side_y[:, 0], end_y, side_y[:, 1] + height / 2)),
                np.array([0.0, sign, 0.0]),
            )
        )
    seen = [table]
    for points_local, normal_local in faces:
        points = points_local @ rotation.T + center
        normal = rotation @ normal_local
        face_center = points.mean(axis=0)
        if normal @ (np.asarray(camera) - face_center) > 0:
            seen.append(points)
    cloud = np.vstack(seen)
    return cloud + rng.normal(0.0, NOISE, cloud.shape), rotation


def _yaw_error_deg(yaw: float, expected_deg: float) -> float:
    """Difference of two box yaws, modulo the box's 180 degree symmetry."""
    difference = (math.degrees(yaw) - expected_deg) % 180.0
    return min(difference, 180.0 - difference)


@pytest.mark.parametrize("yaw_deg", [0.0, 17.0, 45.0, 80.0, 90.0, -30.0, -62.0])
def test_top_down_grasp_of_a_box_recovers_yaw_and_width(yaw_deg: float) -> None:
    size = (0.07, 0.04, 0.05)
    cloud, rotation = box_on_table((0.5, 0.1), size, yaw_deg)
    long_axis, short_axis = rotation[:, 0], rotation[:, 1]
    # Pointed 1 cm along the long side and 0.5 cm across it from the top face's centre.
    pick = np.array([0.5, 0.1, 0.05]) + 0.01 * long_axis + 0.005 * short_axis

    result = compute_grasp(cloud, pick)

    assert result.ok, result.status
    grasp = result.grasp
    assert grasp.approach == APPROACH_TOP_DOWN
    assert _yaw_error_deg(grasp.object.yaw, yaw_deg) <= 5.0
    assert abs(grasp.object_width - 0.04) <= 0.005
    assert abs(grasp.object.size[0] - 0.07) <= 0.008
    assert abs(grasp.object.size[2] - 0.05) <= 0.004
    assert abs(grasp.object.support_z) <= 0.002
    assert abs(grasp.object.top_z - 0.05) <= 0.003
    assert grasp.open_width == pytest.approx(grasp.object_width + 0.015)

    axes = grasp.rotation_matrix()
    np.testing.assert_allclose(axes[:, 2], [0.0, 0.0, -1.0], atol=1e-6)  # approach is down
    assert abs(axes[:, 1] @ long_axis) <= math.sin(math.radians(5.0))  # close across the short side
    assert axes[:, 0] @ np.array([grasp.position[0], grasp.position[1], 0.0]) >= 0.0
    # Centred across the fingers, kept where pointed along the long side, finger_depth down.
    offset = grasp.position - np.array([0.5, 0.1, 0.0])
    assert abs(offset @ short_axis) <= 0.003
    assert abs(offset @ long_axis - 0.01) <= 0.004
    assert grasp.position[2] == pytest.approx(0.05 - 0.02, abs=0.003)
    np.testing.assert_allclose(
        np.linalg.norm(grasp.quaternion_xyzw), 1.0, atol=1e-9
    )


def test_side_face_of_a_tall_object_is_approached_along_the_inward_normal() -> None:
    yaw_deg = 30.0
    size = (0.05, 0.04, 0.20)
    rotation = Rotation.from_euler("z", yaw_deg, degrees=True).as_matrix()
    center = np.array([0.55, -0.05, 0.0])
    face_normal = rotation[:, 0]  # the face at +length/2
    camera = center + 0.6 * face_normal + np.array([0.0, 0.0, 0.3])
    cloud, _ = box_on_table((center[0], center[1]), size, yaw_deg, camera=tuple(camera))
    pick = center + 0.025 * face_normal + np.array([0.0, 0.0, 0.10])

    result = compute_grasp(cloud, pick)

    assert result.ok, result.status
    grasp = result.grasp
    assert grasp.approach == APPROACH_SURFACE_NORMAL
    axes = grasp.rotation_matrix()
    angle = math.degrees(math.acos(np.clip(axes[:, 2] @ -face_normal, -1.0, 1.0)))
    assert angle <= 5.0  # into the object
    assert abs(axes[:, 1][2]) <= 1e-6  # fingers close horizontally
    assert abs(grasp.object_width - 0.04) <= 0.005
    expected = pick - 0.02 * face_normal  # finger_depth into the object
    np.testing.assert_allclose(grasp.position, expected, atol=0.004)


def test_thin_plate_width_is_right_and_tcp_stays_above_the_table() -> None:
    cloud, rotation = box_on_table((0.45, 0.0), (0.09, 0.05, 0.006), 25.0)
    pick = np.array([0.45, 0.0, 0.006])

    result = compute_grasp(cloud, pick)

    assert result.ok, result.status
    grasp = result.grasp
    assert grasp.approach == APPROACH_TOP_DOWN
    assert abs(grasp.object_width - 0.05) <= 0.005
    assert abs(grasp.object.support_z) <= 0.0015
    assert 0.0 < grasp.position[2] <= 0.006  # between the table and the plate's top
    assert abs(grasp.rotation_matrix()[:, 1] @ rotation[:, 0]) <= math.sin(math.radians(5.0))


def test_narrow_bar_longer_than_the_neighbourhood() -> None:
    cloud, rotation = box_on_table((0.5, 0.2), (0.25, 0.02, 0.02), 60.0)
    pick = np.array([0.5, 0.2, 0.02]) + 0.03 * rotation[:, 0]

    result = compute_grasp(cloud, pick)

    assert result.ok, result.status
    grasp = result.grasp
    assert abs(grasp.object_width - 0.02) <= 0.005
    assert _yaw_error_deg(grasp.object.yaw, 60.0) <= 5.0
    assert grasp.position[2] == pytest.approx(0.01, abs=0.003)  # half the height, not 2 cm
    # Grasped where pointed along the bar.
    along = (grasp.position - np.array([0.5, 0.2, 0.0])) @ rotation[:, 0]
    assert along == pytest.approx(0.03, abs=0.005)


@pytest.mark.parametrize(
    ("edge_local", "max_along"),
    [((0.03, 0.0), 0.012), ((0.0, 0.02), 0.004), ((0.03, 0.02), 0.012)],
)
def test_pick_on_an_edge_grasps_the_object_centred(
    edge_local: tuple[float, float], max_along: float
) -> None:
    size = (0.06, 0.04, 0.05)
    cloud, rotation = box_on_table((0.5, 0.0), size, 10.0)
    center = np.array([0.5, 0.0, 0.0])
    pick = center + edge_local[0] * rotation[:, 0] + edge_local[1] * rotation[:, 1]
    pick[2] = 0.05

    result = compute_grasp(cloud, pick)

    assert result.ok, result.status
    grasp = result.grasp
    assert grasp.approach == APPROACH_TOP_DOWN
    offset = grasp.position - center
    assert abs(offset @ rotation[:, 1]) <= 0.003  # centred between the fingers
    assert abs(offset @ rotation[:, 0]) <= max_along  # inside the ends, not at the edge
    assert abs(grasp.object_width - 0.04) <= 0.005


def test_depth_holes_are_dropped() -> None:
    cloud, _ = box_on_table((0.5, 0.0), (0.06, 0.035, 0.04), 40.0, seed=3)
    rng = np.random.default_rng(7)
    holed = cloud.copy()
    holed[rng.random(len(holed)) < 0.4] = np.nan  # 40 % missing
    patch = np.linalg.norm(holed[:, :2] - [0.5 + 0.05, 0.02], axis=1) < 0.02
    holed[patch] = np.inf  # and a whole patch of the table
    pick = np.array([0.5, 0.0, 0.04])

    result = compute_grasp(holed, pick)

    assert result.ok, result.status
    assert abs(result.grasp.object_width - 0.035) <= 0.005
    assert _yaw_error_deg(result.grasp.object.yaw, 40.0) <= 5.0


def test_all_depth_missing_is_too_few_points() -> None:
    cloud, _ = box_on_table((0.5, 0.0), (0.06, 0.035, 0.04), 0.0)
    assert compute_grasp(np.full_like(cloud, np.nan), np.array([0.5, 0.0, 0.04])).status == (
        "too_few_points"
    )
    assert compute_grasp(np.empty((0, 3)), np.array([0.5, 0.0, 0.04])).status == "too_few_points"


@pytest.mark.parametrize("size", [(0.10, 0.10, 0.05), (0.15, 0.09, 0.04)])
def test_object_wider_than_the_gripper_is_refused(size: tuple[float, float, float]) -> None:
    cloud, _ = box_on_table((0.5, 0.0), size, 20.0)
    result = compute_grasp(cloud, np.array([0.5, 0.0, size[2]]))
    assert not result.ok
    assert result.status == "object_too_wide"
    assert result.grasp is None


def test_wider_gripper_settings_accept_the_same_object() -> None:
    cloud, _ = box_on_table((0.5, 0.0), (0.15, 0.09, 0.04), 20.0)
    settings = GraspSettings(max_open_width=0.14, neighbourhood_radius=0.1)
    result = compute_grasp(cloud, np.array([0.5, 0.0, 0.04]), settings)
    assert result.ok, result.status
    assert abs(result.grasp.object_width - 0.09) <= 0.005
    assert result.grasp.open_width == pytest.approx(result.grasp.object_width + 0.015)


@pytest.mark.parametrize("pick_xy", [(0.35, -0.05), (0.5 + 0.055, 0.0)])
def test_pick_on_the_bare_table_reports_no_object(pick_xy: tuple[float, float]) -> None:
    cloud, _ = box_on_table((0.5, 0.0), (0.06, 0.04, 0.05), 0.0, table_half=0.2)
    result = compute_grasp(cloud, np.array([pick_xy[0], pick_xy[1], 0.0]))
    assert result.status == "no_object_above_support"
    assert result.grasp is None


def test_invalid_pick_point_is_reported() -> None:
    cloud, _ = box_on_table((0.5, 0.0), (0.06, 0.04, 0.05), 0.0)
    assert compute_grasp(cloud, np.array([np.nan, 0.0, 0.05])).status == "invalid_pick_point"


def test_grasp_in_a_rotated_base_frame_follows_up() -> None:
    """A base frame whose "up" is not +z (e.g. a wall-mounted arm) gives the same grasp."""
    cloud, _ = box_on_table((0.5, 0.0), (0.07, 0.04, 0.05), 30.0)
    pick = np.array([0.5, 0.0, 0.05])
    tilt = Rotation.from_euler("x", 90.0, degrees=True)
    result = compute_grasp(tilt.apply(cloud), tilt.apply(pick), up=tilt.apply([0.0, 0.0, 1.0]))
    assert result.ok, result.status
    assert abs(result.grasp.object_width - 0.04) <= 0.005
    approach = result.grasp.rotation_matrix()[:, 2]
    np.testing.assert_allclose(approach, tilt.apply([0.0, 0.0, -1.0]), atol=0.02)


def test_object_wider_than_the_neighbourhood_is_refused_as_too_wide() -> None:
    """Its top hides the table within the radius; the wider second look finds the table."""
    cloud, _ = box_on_table((0.5, 0.0), (0.14, 0.14, 0.04), 0.0, table_half=0.2)
    result = compute_grasp(cloud, np.array([0.5, 0.0, 0.04]))
    assert result.status == "object_too_wide"


def test_dense_clouds_are_thinned_to_the_same_grasp() -> None:
    cloud, _ = box_on_table((0.5, 0.0), (0.07, 0.04, 0.05), 35.0)
    pick = np.array([0.5, 0.0, 0.05])
    full = compute_grasp(cloud, pick)
    thinned = compute_grasp(cloud, pick, GraspSettings(max_points=1000))
    assert full.ok and thinned.ok, (full.status, thinned.status)
    assert abs(thinned.grasp.object_width - full.grasp.object_width) <= 0.004
    np.testing.assert_allclose(thinned.grasp.position, full.grasp.position, atol=0.004)
    assert thinned.grasp.object.num_points < full.grasp.object.num_points
