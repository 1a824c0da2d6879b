"""Depth units, robust sampling on edges and holes, projection round trips, resolution mismatch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mimo_embodied_ros.core.depth import (
    back_project,
    depth_to_metres,
    depth_to_points,
    lift_point,
    project,
    sample_depth,
)
from mimo_embodied_ros.core.types import CameraIntrinsics

K_VGA = CameraIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)


def test_16uc1_millimetres_and_32fc1_metres_agree():
    rng = np.random.default_rng(0)
    millimetres = rng.integers(300, 5000, size=(48, 64)).astype(np.uint16)
    millimetres[5, 7] = 0
    from_mm = depth_to_metres(millimetres, "16UC1")
    from_mono16 = depth_to_metres(millimetres, "mono16")
    metres = millimetres.astype(np.float32) / 1000.0
    metres[5, 7] = np.nan
    from_m = depth_to_metres(metres, "32FC1")
    assert from_mm.dtype == np.float32 and from_m.dtype == np.float32
    np.testing.assert_allclose(from_mm, from_m, rtol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(from_mm, from_mono16)
    assert math.isnan(from_mm[5, 7]) and np.isfinite(from_mm).sum() == 48 * 64 - 1


def test_32fc1_invalid_values_become_nan():
    metres = np.array([[1.0, 0.0, -2.0], [np.inf, np.nan, 0.5]], dtype=np.float32)
    out = depth_to_metres(metres, "32FC1")
    assert out[0, 0] == 1.0 and out[1, 2] == 0.5
    assert np.isnan(out[[0, 0, 1, 1], [1, 2, 0, 1]]).all()
    assert not np.isnan(metres[0, 0])  # the input is left alone
    assert depth_to_metres(metres[:, :, None], "32FC1").shape == (2, 3)


def test_depth_encoding_and_dtype_errors():
    with pytest.raises(ValueError, match="unsupported depth encoding.*16UC1.*32FC1"):
        depth_to_metres(np.zeros((4, 4), np.uint16), "rgb8")
    with pytest.raises(ValueError, match="uint16"):
        depth_to_metres(np.zeros((4, 4), np.float32), "16UC1")
    with pytest.raises(ValueError, match="float32"):
        depth_to_metres(np.zeros((4, 4), np.uint16), "32FC1")
    with pytest.raises(ValueError, match="shape"):
        depth_to_metres(np.zeros((4, 4, 3), np.float32), "32FC1")


def test_sample_depth_is_a_robust_median_under_noise_and_holes():
    rng = np.random.default_rng(1)
    depth = (0.8 + rng.normal(0, 0.005, size=(100, 100))).astype(np.float32)
    depth[rng.random(depth.shape) < 0.3] = np.nan
    depth[50, 50] = 3.0  # one flying pixel at the centre does not drive the median
    sample = sample_depth(depth, 50.3, 50.7)
    assert sample.status == "ok"
    assert sample.z == pytest.approx(0.8, abs=0.004)
    assert 0 < sample.spread < 0.01
    assert 20 <= sample.num_valid <= 49


def test_sample_depth_reports_invalid_windows():
    depth = np.full((50, 50), np.nan, dtype=np.float32)
    assert sample_depth(depth, 25, 25).status == "no_valid_depth"
    depth[25, 25] = 1.0
    sparse = sample_depth(depth, 25, 25)
    assert sparse.status == "too_few_valid_pixels" and sparse.num_valid == 1
    assert math.isnan(sparse.z)
    for u, v in [(-0.1, 10), (50, 10), (10, 50.0), (math.nan, 3)]:
        assert sample_depth(depth, u, v).status == "outside_depth_image"


def test_sample_depth_on_an_edge_prefers_the_centre_pixels_surface():
    # Left half: an object at 0.6 m; right half: the table at 0.9 m. The window straddles the edge.
    depth = np.full((60, 60), 0.9, dtype=np.float32)
    depth[:, :30] = 0.6
    on_object = sample_depth(depth, 29.5, 30)  # centre pixel 29 is object, 4 of 7 columns too
    on_table = sample_depth(depth, 30.2, 30)  # centre pixel 30 is table
    assert on_object.z == pytest.approx(0.6) and on_table.z == pytest.approx(0.9)
    assert on_object.spread == 0.0 and on_table.spread == 0.0
    # The plain median of that window would mix surfaces; a 2-column sliver still wins with
    # its centre pixel.
    assert sample_depth(depth, 31.5, 30).z == pytest.approx(0.9)
    sliver = depth.copy()
    sliver[:, :28] = 0.9
    assert sample_depth(sliver, 28.5, 30).z == pytest.approx(0.6)


def test_sample_depth_with_invalid_centre_takes_the_nearest_substantial_cluster():
    depth = np.full((60, 60), 0.9, dtype=np.float32)
    depth[:, :30] = 0.6
    depth[30, 30] = np.nan
    assert sample_depth(depth, 30, 30).z == pytest.approx(0.6)
    # A lone flying pixel nearer than everything is not a cluster worth taking.
    table = np.full((60, 60), 0.9, dtype=np.float32)
    table[30, 30] = np.nan
    table[28, 28] = 0.2
    assert sample_depth(table, 30, 30).z == pytest.approx(0.9)


def test_back_project_and_project_round_trip():
    rng = np.random.default_rng(2)
    pixels = np.column_stack((rng.uniform(0, 640, 100), rng.uniform(0, 480, 100)))
    depths = rng.uniform(0.2, 5.0, 100)
    points = np.array(
        [back_project(u, v, z, K_VGA) for (u, v), z in zip(pixels, depths, strict=True)]
    )
    np.testing.assert_allclose(points[:, 2], depths)
    np.testing.assert_allclose(project(points, K_VGA), pixels, atol=1e-9)
    assert np.allclose(back_project(K_VGA.cx, K_VGA.cy, 2.0, K_VGA), [0, 0, 2.0])
    behind = project(np.array([[0.1, 0.1, -1.0], [0.0, 0.0, 0.0]]), K_VGA)
    assert np.isnan(behind).all()


def test_depth_to_points_matches_back_project_and_skips_invalid():
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.5, 2.0, size=(480, 640)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    points = depth_to_points(depth, K_VGA, roi=(100.5, 50, 120, 60.2))
    rows, cols = np.nonzero(np.isfinite(depth[50:61, 100:120]))
    assert points.shape == (rows.size, 3)
    expected = np.array([back_project(c + 100, r + 50, depth[r + 50, c + 100], K_VGA)
                         for r, c in zip(rows, cols, strict=True)])
    np.testing.assert_allclose(points, expected, rtol=1e-6)
    assert depth_to_points(depth, K_VGA).shape[0] == np.isfinite(depth).sum()
    assert depth_to_points(depth, K_VGA, roi=(700, 0, 800, 10)).shape == (0, 3)
    assert depth_to_points(depth, K_VGA, stride=4).shape[0] == np.isfinite(depth[::4, ::4]).sum()
    with pytest.raises(ValueError, match="intrinsics"):
        depth_to_points(depth[:240], K_VGA)


def test_lift_point_with_smaller_depth_than_colour():
    # 1280x720 colour, registered 640x360 depth of a tilted plane z = 1 + 0.001 * row_in_colour.
    K_colour = CameraIntrinsics(fx=910.0, fy=910.0, cx=639.5, cy=359.5, width=1280, height=720)
    rows = (np.arange(360, dtype=np.float32)[:, None] + 0.5) * 2.0 - 0.5
    depth = np.repeat(1.0 + 0.001 * rows, 640, axis=1).astype(np.float32)
    u, v = 900.0, 500.0
    point, sample = lift_point(u, v, depth, K_colour)
    assert sample.ok and point is not None
    assert sample.z == pytest.approx(1.0 + 0.001 * v, abs=0.002)
    np.testing.assert_allclose(project(point[None], K_colour)[0], [u, v], atol=1e-9)
    # Colour intrinsics scaled to the depth resolution see the same point at the depth pixel.
    K_depth = K_colour.scaled_to(640, 360)
    depth_pixel = project(point[None], K_depth)[0]
    assert depth_pixel == pytest.approx([(u + 0.5) / 2 - 0.5, (v + 0.5) / 2 - 0.5])
    missing, why = lift_point(1280.0, 10.0, depth, K_colour)
    assert missing is None and why.status == "outside_depth_image"
    holes = np.full_like(depth, np.nan)
    missing, why = lift_point(u, v, holes, K_colour)
    assert missing is None and why.status == "no_valid_depth"
