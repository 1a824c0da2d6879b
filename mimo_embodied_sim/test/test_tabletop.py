"""The tabletop's ground truth agrees with what MuJoCo renders, to the pixel and the millimetre."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from scipy import ndimage

from mimo_embodied_sim.tabletop import TABLE_TOP_Z, TabletopScene, noisy_depth

WIDTH, HEIGHT = 640, 480


@pytest.fixture(scope="module")
def scene() -> TabletopScene:
    with TabletopScene(width=WIDTH, height=HEIGHT, seed=3) as tabletop:
        yield tabletop


def _project(scene: TabletopScene, points_camera: np.ndarray) -> np.ndarray:
    k = scene.intrinsics()
    return np.stack([k.fx * points_camera[:, 0] / points_camera[:, 2] + k.cx,
                     k.fy * points_camera[:, 1] / points_camera[:, 2] + k.cy], axis=1)


def _back_project(scene: TabletopScene, depth: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> (
    np.ndarray
):
    k = scene.intrinsics()
    z = depth[rows, cols].astype(np.float64)
    return np.stack([(cols - k.cx) * z / k.fx, (rows - k.cy) * z / k.fy, z], axis=1)


def _box_corners_camera(scene: TabletopScene, name: str) -> np.ndarray:
    truth = scene.object(name)
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    return truth.center_camera + (signs * truth.size / 2) @ truth.rotation.T


def test_images_have_the_requested_size_and_types(scene: TabletopScene) -> None:
    rgb, depth = scene.render_rgbd()
    segmentation = scene.render_segmentation()
    assert rgb.shape == (HEIGHT, WIDTH, 3) and rgb.dtype == np.uint8
    assert depth.shape == (HEIGHT, WIDTH) and depth.dtype == np.float32
    assert segmentation.shape == (HEIGHT, WIDTH)
    assert np.isfinite(depth).all()  # the floor fills everything behind the table
    assert rgb.std() > 20  # a lit scene, not a blank frame


def test_projected_cubes_match_their_rendered_masks_within_one_pixel(
    scene: TabletopScene,
) -> None:
    # A convex box's silhouette is the hull of its projected corners. Where the rendered mask and
    # the hull disagree, the pixel centre must lie on the hull's outline: within 0.25 px (a
    # principal point off by half a pixel fails this).
    for name in ("red cube", "green cube"):
        hull = cv2.convexHull(_project(scene, _box_corners_camera(scene, name)).astype(np.float32))
        x1, y1, x2, y2 = scene.target_box(name)
        mask = scene.mask(name)
        distances = np.array([
            [cv2.pointPolygonTest(hull, (float(col), float(row)), True)
             for col in range(x1 - 3, x2 + 4)]
            for row in range(y1 - 3, y2 + 4)
        ])
        rendered = mask[y1 - 3: y2 + 4, x1 - 3: x2 + 4]
        disagree = rendered != (distances > 0)
        assert np.abs(distances[disagree]).max(initial=0.0) < 0.25, name
        assert disagree.sum() < 0.01 * rendered.sum(), name


def test_object_centres_project_onto_their_own_mask(scene: TabletopScene) -> None:
    segmentation = scene.render_segmentation()
    for truth in scene.objects():
        (u, v), = _project(scene, truth.center_camera[None])
        assert segmentation[int(round(v)), int(round(u))] == truth.object_id, truth.name


def test_depth_is_z_depth_in_metres_on_the_table_plane(scene: TabletopScene) -> None:
    depth = scene.render_depth()
    table = scene.mask("table/top")
    table = ndimage.binary_erosion(table, iterations=2)
    rows, cols = np.nonzero(table)
    # Expected z-depth: intersect each pixel's ray (from the intrinsics) with the known plane.
    position, rotation = scene.camera_pose_world()
    k = scene.intrinsics()
    rays = np.stack([(cols - k.cx) / k.fx, (rows - k.cy) / k.fy, np.ones(cols.size)], axis=1)
    rays_world = rays @ rotation.T
    expected_z = (TABLE_TOP_Z - position[2]) / rays_world[:, 2]
    error = np.abs(depth[rows, cols] - expected_z)
    assert cols.size > 50_000
    # Exact to 0.1 mm: a focal length 0.2 % off or a principal point 0.2 px off fails this.
    assert error.max() < 1e-4, f"table depth off by up to {error.max() * 1000:.2f} mm"
    # Ray length would exceed z-depth by 1/cos(angle off axis): > 5 cm in the image corners.
    ray_length = expected_z * np.linalg.norm(rays, axis=1)
    assert np.abs(depth[rows, cols] - ray_length).max() > 0.05


def test_back_projected_depth_lands_on_the_table_and_inside_the_cubes(
    scene: TabletopScene,
) -> None:
    depth = scene.render_depth()
    table = ndimage.binary_erosion(scene.mask("table/top"), iterations=2)
    rows, cols = np.nonzero(table)
    world = scene.camera_to_world(_back_project(scene, depth, rows, cols))
    assert np.abs(world[:, 2] - TABLE_TOP_Z).max() < 1e-4
    for name in ("red cube", "green cube", "mug"):
        truth = scene.object(name)
        rows, cols = np.nonzero(ndimage.binary_erosion(scene.mask(name), iterations=2))
        local = (_back_project(scene, depth, rows, cols) - truth.center_camera) @ truth.rotation
        outside = np.abs(local) - truth.size / 2
        assert outside.max() < 2e-3, f"{name}: surface point {outside.max() * 1000:.1f} mm out"
        # The visible surface is the box's surface: on a face, not deep inside.
        assert np.median(np.min(np.abs(outside), axis=1)) < 5e-3


def test_targets_are_inside_the_image_and_on_their_object(scene: TabletopScene) -> None:
    segmentation = scene.render_segmentation()
    geoms = scene.render_geom_segmentation()
    names = scene.object_names() + ["mug/handle", "tray/base"]
    for name in names:
        u, v = scene.target_pixel(name)
        assert 0 <= u <= WIDTH - 1 and 0 <= v <= HEIGHT - 1, name
        column, row = int(round(u)), int(round(v))
        assert scene.mask(name)[row, column], name
        object_name = name.split("/")[0]
        assert segmentation[row, column] == scene.object(object_name).object_id
        x1, y1, x2, y2 = scene.target_box(name)
        assert 0 <= x1 <= u <= x2 <= WIDTH - 1 and 0 <= y1 <= v <= y2 <= HEIGHT - 1, name
    handle_row, handle_col = (int(round(c)) for c in scene.target_pixel("mug/handle")[::-1])
    assert geoms[handle_row, handle_col] != geoms[tuple(
        int(round(c)) for c in scene.target_pixel("mug/body")[::-1])]


def test_target_points_are_on_the_object_surface(scene: TabletopScene) -> None:
    for name in ("red cube", "blue cylinder", "mug", "mug/handle", "placemat"):
        truth = scene.object(name.split("/")[0])
        point = scene.target_point_camera(name)
        local = (point - truth.center_camera) @ truth.rotation
        assert np.all(np.abs(local) <= truth.size / 2 + 2e-3), (name, local, truth.size)
    handle = (scene.target_point_camera("mug/handle") - scene.object("mug").center_camera)
    handle_local = handle @ scene.object("mug").rotation
    assert handle_local[0] > 0.03  # the handle sticks out along the mug's +x side


def test_same_seed_same_scene_and_different_seed_different_scene(scene: TabletopScene) -> None:
    with TabletopScene(width=160, height=120, seed=3) as first, \
            TabletopScene(width=160, height=120, seed=3) as second, \
            TabletopScene(width=160, height=120, seed=4) as other:
        np.testing.assert_array_equal(first.render_rgb(), second.render_rgb())
        np.testing.assert_array_equal(first.render_depth(), second.render_depth())
        for a, b, c in zip(first.objects(), second.objects(), other.objects(), strict=True):
            np.testing.assert_array_equal(a.center_camera, b.center_camera)
            assert np.linalg.norm(a.center_camera - c.center_camera) > 1e-4
    # Resolution does not change the scene, only how finely it is sampled.
    for small, large in zip(first.objects(), scene.objects(), strict=True):
        np.testing.assert_allclose(small.center_camera, large.center_camera, atol=1e-9)


def test_objects_rest_on_the_table_and_time_advances() -> None:
    with TabletopScene(width=64, height=48, seed=1) as tabletop:
        before = {truth.name: truth.center_camera for truth in tabletop.objects()}
        assert tabletop.time == 0.0
        steps = 500
        assert tabletop.step(steps) == pytest.approx(steps * tabletop.timestep)
        for truth in tabletop.objects():
            moved = np.linalg.norm(truth.center_camera - before[truth.name])
            assert moved < 2e-3, f"{truth.name} moved {moved * 1000:.1f} mm while settled"
            world_bottom = tabletop.camera_to_world(truth.center_camera)[2] - truth.size[2] / 2
            assert world_bottom == pytest.approx(TABLE_TOP_Z, abs=2e-3), truth.name


def test_move_object_puts_the_mug_on_the_placemat() -> None:
    with TabletopScene(width=320, height=240, seed=0) as tabletop:
        placemat = tabletop.object("placemat")
        target = tabletop.camera_to_world(placemat.center_camera)
        target[2] = TABLE_TOP_Z + 0.002
        tabletop.move_object("mug", target)
        tabletop.step(200)
        mug_world = tabletop.camera_to_world(tabletop.object("mug").center_camera)
        assert np.linalg.norm(mug_world[:2] - target[:2]) < 0.03  # box centre incl. handle
        assert tabletop.mask("mug").sum() > 0
        with pytest.raises(ValueError):
            tabletop.move_object("tray", target)


def test_noisy_depth_has_the_requested_holes_and_noise() -> None:
    depth = np.full((240, 320), 0.8, dtype=np.float32)
    corrupted = noisy_depth(depth, hole_fraction=0.1, noise_std_m=0.004, seed=7)
    holes = np.isnan(corrupted)
    assert holes.mean() == pytest.approx(0.1, abs=0.01)
    assert np.nanstd(corrupted) == pytest.approx(0.004, rel=0.05)
    assert np.nanmean(corrupted) == pytest.approx(0.8, abs=1e-3)
    np.testing.assert_array_equal(corrupted, noisy_depth(depth, 0.1, 0.004, seed=7))
    assert not np.array_equal(np.isnan(noisy_depth(depth, 0.1, 0.004, seed=8)), holes)
    assert np.all(depth == 0.8)  # the input is untouched
    blobs = np.isnan(noisy_depth(depth, hole_fraction=0.2, seed=1, hole_size_px=8))
    assert blobs.mean() == pytest.approx(0.2, abs=0.05)
    assert ndimage.label(blobs)[1] < blobs.sum() / 16  # blobs, not speckle
    with pytest.raises(ValueError):
        noisy_depth(depth, hole_fraction=1.5)


def test_rendering_works_from_another_thread_and_back(scene: TabletopScene) -> None:
    # A ROS executor thread renders while the test thread reads ground truth.
    results: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    def render_in_thread() -> None:
        try:
            scene.step(1)
            results["depth"] = scene.render_depth()
        except BaseException as error:  # re-raised in the main thread
            errors.append(error)

    worker = threading.Thread(target=render_in_thread)
    worker.start()
    worker.join(timeout=30)
    assert not errors, errors
    scene.step(1)
    np.testing.assert_allclose(scene.render_depth(), results["depth"], atol=1e-4)


def test_rgbd_renders_fast_enough_for_a_camera(scene: TabletopScene) -> None:
    frames = 5
    start = time.perf_counter()
    for _ in range(frames):
        scene.step(1)
        scene.render_rgbd()
    fps = frames / (time.perf_counter() - start)
    assert fps > 5.0, f"640x480 RGB-D at {fps:.1f} FPS"
