"""3D boxes from synthetic depth images ray-cast here: a table, boxes and a cylinder on it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import pytest

from mimo_embodied_ros.core.boxes3d import (
    METHOD_ORIENTED_BOX,
    METHOD_SUPPORT_PLANE,
    box_from_depth,
)
from mimo_embodied_ros.core.depth import depth_to_metres, project
from mimo_embodied_ros.core.types import CameraIntrinsics

K = CameraIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=640, height=480)
UP_WORLD = np.array([0.0, 0.0, 1.0])


@dataclass
class Cuboid:
    """A box resting on the table (world z = 0), yawed about world z."""

    x: float
    y: float
    size: tuple[float, float, float]
    yaw_deg: float = 0.0

    def hit(self, origin: np.ndarray, rays: np.ndarray) -> np.ndarray:
        """Ray parameter of the first hit per ray (inf where missed), by the slab method."""
        yaw = math.radians(self.yaw_deg)
        to_local = np.array([[math.cos(yaw), math.sin(yaw), 0], [-math.sin(yaw), math.cos(yaw), 0],
                             [0, 0, 1]])
        local_origin = to_local @ (origin - np.array([self.x, self.y, 0.0]))
        local_rays = rays @ to_local.T
        half = np.array(self.size) / 2
        low = np.array([-half[0], -half[1], 0.0])
        high = np.array([half[0], half[1], self.size[2]])
        with np.errstate(divide="ignore", invalid="ignore"):
            t1 = (low - local_origin) / local_rays
            t2 = (high - local_origin) / local_rays
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
        return np.where((t_far >= t_near) & (t_near > 0), t_near, np.inf)

    def center(self) -> np.ndarray:
        return np.array([self.x, self.y, self.size[2] / 2])

    def footprint(self) -> tuple[float, float]:
        return self.size[0], self.size[1]

    def height(self) -> float:
        return self.size[2]


@dataclass
class Cylinder:
    """An upright cylinder resting on the table."""

    x: float
    y: float
    radius: float
    tall: float

    def hit(self, origin: np.ndarray, rays: np.ndarray) -> np.ndarray:
        ox, oy = origin[0] - self.x, origin[1] - self.y
        dx, dy, dz = rays[:, 0], rays[:, 1], rays[:, 2]
        a = dx * dx + dy * dy
        b = 2 * (ox * dx + oy * dy)
        c = ox * ox + oy * oy - self.radius**2
        disc = b * b - 4 * a * c
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(disc)) / (2 * a)
            z_side = origin[2] + t_side * dz
            side = np.where((disc >= 0) & (t_side > 0) & (z_side >= 0) & (z_side <= self.tall),
                            t_side, np.inf)
            t_top = (self.tall - origin[2]) / dz
        top_x, top_y = ox + t_top * dx, oy + t_top * dy
        top = np.where((t_top > 0) & (top_x**2 + top_y**2 <= self.radius**2), t_top, np.inf)
        return np.minimum(side, top)

    def center(self) -> np.ndarray:
        return np.array([self.x, self.y, self.tall / 2])

    def footprint(self) -> tuple[float, float]:
        return 2 * self.radius, 2 * self.radius

    def height(self) -> float:
        return self.tall


@dataclass
class Camera:
    """Camera looking at a table point from ``distance``, pitched down, optical-frame axes."""

    position: np.ndarray
    camera_to_world: np.ndarray  # columns: optical x (right), y (down), z (forward) in world

    @classmethod
    def looking_at(cls, target, distance=0.7, pitch_deg=50.0, yaw_deg=0.0) -> Camera:
        pitch, yaw = math.radians(pitch_deg), math.radians(yaw_deg)
        forward = np.array([math.cos(pitch) * math.sin(yaw), math.cos(pitch) * math.cos(yaw),
                            -math.sin(pitch)])
        right = np.cross(forward, UP_WORLD)
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        position = np.asarray(target, dtype=float) - distance * forward
        return cls(position, np.column_stack((right, down, forward)))

    def to_camera(self, world_point: np.ndarray) -> np.ndarray:
        return self.camera_to_world.T @ (world_point - self.position)


def render(camera: Camera, objects: list, table: bool = True):
    """Depth (float32 metres, NaN = no return) and object index per pixel (-1 table/none)."""
    cols, rows = np.meshgrid(np.arange(K.width), np.arange(K.height))
    optical = np.stack(((cols - K.cx) / K.fx, (rows - K.cy) / K.fy, np.ones(cols.shape)), axis=-1)
    rays = optical.reshape(-1, 3) @ camera.camera_to_world.T  # unit optical z: t is the depth
    hits = [obj.hit(camera.position, rays) for obj in objects]
    if table:
        with np.errstate(divide="ignore"):
            t_table = np.where(rays[:, 2] < 0, -camera.position[2] / rays[:, 2], np.inf)
        hits.append(t_table)
    stacked = np.vstack(hits) if hits else np.full((1, rays.shape[0]), np.inf)
    nearest = np.argmin(stacked, axis=0)
    depth = stacked[nearest, np.arange(rays.shape[0])]
    index = np.where(nearest < len(objects), nearest, -1)
    index[~np.isfinite(depth)] = -1
    depth = np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)
    return depth.reshape(K.height, K.width), index.reshape(K.height, K.width)


def degrade(depth: np.ndarray, noise_m: float, hole_fraction: float, seed: int = 0):
    """Gaussian depth noise and random holes (NaN), as a real sensor gives."""
    rng = np.random.default_rng(seed)
    noisy = depth + rng.normal(0.0, noise_m, depth.shape).astype(np.float32)
    noisy[rng.random(depth.shape) < hole_fraction] = np.nan
    return noisy


def box_around(index: np.ndarray, which: int, pad: int = 10):
    rows, cols = np.nonzero(index == which)
    return (cols.min() - pad, rows.min() - pad, cols.max() + 1 + pad, rows.max() + 1 + pad)


def check_box(result, obj, camera: Camera, size_tolerance=0.2, center_tolerance=0.02):
    assert result.status == "ok", result.status
    box = result.box
    assert box.method == METHOD_SUPPORT_PLANE
    center_error = np.linalg.norm(box.center - camera.to_camera(obj.center()))
    assert center_error <= center_tolerance, center_error
    up_camera = camera.camera_to_world.T @ UP_WORLD
    assert np.degrees(np.arccos(np.clip(box.rotation[:, 2] @ up_camera, -1, 1))) < 5
    assert np.allclose(box.rotation.T @ box.rotation, np.eye(3), atol=1e-9)
    assert np.linalg.det(box.rotation) == pytest.approx(1.0)
    assert box.size[2] == pytest.approx(obj.height(), rel=size_tolerance)
    footprint = np.sort(box.size[:2])
    np.testing.assert_allclose(footprint, np.sort(obj.footprint()), rtol=size_tolerance)
    return box


OBJECTS = {
    "cube_5cm": Cuboid(0.0, 0.0, (0.05, 0.05, 0.05), yaw_deg=0.0),
    "yawed_box_4x8x3": Cuboid(0.02, -0.01, (0.04, 0.08, 0.03), yaw_deg=30.0),
    "cylinder_6x10": Cylinder(-0.01, 0.02, 0.03, 0.10),
}


@pytest.mark.parametrize("name", sorted(OBJECTS))
@pytest.mark.parametrize("pitch_deg", [45.0, 60.0])
def test_clean_depth(name, pitch_deg):
    obj = OBJECTS[name]
    camera = Camera.looking_at((0, 0, 0), pitch_deg=pitch_deg, yaw_deg=15.0)
    depth, index = render(camera, [obj])
    check_box(box_from_depth(depth, K, box_around(index, 0)), obj, camera)


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_holes_and_noise(name):
    obj = OBJECTS[name]
    camera = Camera.looking_at((0, 0, 0), pitch_deg=50.0, yaw_deg=-20.0)
    depth, index = render(camera, [obj])
    noisy = degrade(depth, noise_m=0.005, hole_fraction=0.10, seed=4)
    check_box(box_from_depth(noisy, K, box_around(index, 0)), obj, camera)


def test_yaw_of_the_long_side_is_recovered():
    obj = OBJECTS["yawed_box_4x8x3"]
    camera = Camera.looking_at((0, 0, 0), pitch_deg=55.0)
    depth, index = render(camera, [obj])
    box = check_box(box_from_depth(degrade(depth, 0.002, 0.05), K, box_around(index, 0)), obj,
                    camera)
    long_axis = box.rotation[:, int(np.argmax(box.size[:2]))]
    yaw = math.radians(obj.yaw_deg)
    true_long_axis = camera.camera_to_world.T @ np.array([-math.sin(yaw), math.cos(yaw), 0.0])
    assert abs(long_axis @ true_long_axis) > math.cos(math.radians(8))


def test_thin_flat_object():
    book = Cuboid(0.0, 0.01, (0.08, 0.05, 0.01), yaw_deg=10.0)
    camera = Camera.looking_at((0, 0, 0), pitch_deg=55.0)
    depth, index = render(camera, [book])
    result = box_from_depth(degrade(depth, 0.002, 0.10), K, box_around(index, 0))
    check_box(result, book, camera, size_tolerance=0.2, center_tolerance=0.01)


def test_one_sided_view_of_a_tall_box_near_the_image_border():
    # Seen head-on from a shallow-ish angle: only the front face and the top are visible,
    # and the object sits near the right border of the image.
    tall_box = Cuboid(0.0, 0.0, (0.05, 0.04, 0.09))
    camera = Camera.looking_at((-0.3, 0.0, 0.0), pitch_deg=45.0)
    depth, index = render(camera, [tall_box])
    x1, y1, x2, y2 = box_around(index, 0)
    assert x2 > 560  # the enlarged ROI is cut by the border
    check_box(box_from_depth(degrade(depth, 0.003, 0.05), K, (x1, y1, x2, y2)), tall_box, camera)


def test_neighbour_inside_the_2d_box_is_not_merged():
    cube = OBJECTS["cube_5cm"]
    neighbour = Cuboid(0.06, 0.0, (0.04, 0.04, 0.04))  # 1.5 cm to the right of the cube
    camera = Camera.looking_at((0, 0, 0), pitch_deg=50.0)
    depth, index = render(camera, [cube, neighbour])
    x1, y1, x2, y2 = box_around(index, 0, pad=20)
    assert np.count_nonzero(index[y1:y2, x1:x2] == 1) > 50  # part of the neighbour is inside
    check_box(box_from_depth(depth, K, (x1, y1, x2, y2)), cube, camera)


def test_millimetre_depth_gives_the_same_box():
    obj = OBJECTS["cylinder_6x10"]
    camera = Camera.looking_at((0, 0, 0), pitch_deg=50.0)
    depth, index = render(camera, [obj])
    millimetres = np.nan_to_num(np.round(depth * 1000.0), nan=0.0).astype(np.uint16)
    check_box(box_from_depth(depth_to_metres(millimetres, "16UC1"), K, box_around(index, 0)),
              obj, camera)


def test_results_are_repeatable():
    """Seeded, but open3d's RANSAC runs its iterations on several threads, so repeated fits agree
    to well under a millimetre rather than bit for bit."""
    obj = OBJECTS["yawed_box_4x8x3"]
    camera = Camera.looking_at((0, 0, 0), pitch_deg=50.0)
    depth, index = render(camera, [obj])
    noisy = degrade(depth, 0.005, 0.1)
    first = box_from_depth(noisy, K, box_around(index, 0)).box
    second = box_from_depth(noisy, K, box_around(index, 0)).box
    np.testing.assert_allclose(first.center, second.center, atol=5e-4)
    np.testing.assert_allclose(first.size, second.size, atol=5e-4)


def test_corners_project_around_the_object():
    obj = OBJECTS["cube_5cm"]
    camera = Camera.looking_at((0, 0, 0), pitch_deg=50.0)
    depth, index = render(camera, [obj])
    x1, y1, x2, y2 = box_around(index, 0, pad=0)
    box = box_from_depth(depth, K, box_around(index, 0)).box
    pixels = project(box.corners(), K)
    assert pixels[:, 0].min() == pytest.approx(x1, abs=4)
    assert pixels[:, 0].max() == pytest.approx(x2, abs=4)
    assert pixels[:, 1].min() == pytest.approx(y1, abs=4)
    assert pixels[:, 1].max() == pytest.approx(y2, abs=4)


def test_without_a_support_plane_the_foreground_gets_an_oriented_box():
    # An object held in the air in front of nothing the sensor can measure.
    cube = Cuboid(0.0, 0.0, (0.06, 0.06, 0.06))
    camera = Camera.looking_at((0, 0, 0), pitch_deg=50.0)
    depth, index = render(camera, [cube], table=False)
    result = box_from_depth(degrade(depth, 0.002, 0.05), K, box_around(index, 0))
    assert result.status == "ok" and result.box.method == METHOD_ORIENTED_BOX
    assert np.linalg.norm(result.box.center - camera.to_camera(cube.center())) < 0.03
    assert np.all(result.box.size < 0.06 * math.sqrt(3) * 1.1)
    assert np.max(result.box.size) > 0.05


def test_flat_patch_of_table_is_not_an_object():
    camera = Camera.looking_at((0, 0, 0), pitch_deg=50.0)
    depth, _ = render(camera, [])
    assert box_from_depth(depth, K, (300, 220, 340, 260)).status == "too_few_points"


@pytest.mark.parametrize(
    "box_px,status",
    [
        ((700, 10, 760, 50), "box_outside_image"),
        ((-80, -50, -1, -1), "box_outside_image"),
        ((50, 50, 40, 60), "invalid_box"),
        ((math.nan, 50, 60, 60), "invalid_box"),
        ((100, 100, 103, 103), "too_few_points"),
    ],
)
def test_failures_are_statuses(box_px, status):
    camera = Camera.looking_at((0, 0, 0), pitch_deg=50.0)
    depth, _ = render(camera, [OBJECTS["cube_5cm"]])
    assert box_from_depth(depth, K, box_px).status == status


def test_no_valid_depth_and_intrinsics_mismatch():
    holes = np.full((480, 640), np.nan, dtype=np.float32)
    assert box_from_depth(holes, K, (100, 100, 200, 200)).status == "no_valid_depth"
    result = box_from_depth(holes[:240], K, (100, 100, 200, 200))
    assert result.status == "intrinsics_mismatch" and result.box is None


def test_runtime_at_vga():
    obj = OBJECTS["yawed_box_4x8x3"]
    camera = Camera.looking_at((0, 0, 0), distance=0.45, pitch_deg=50.0)
    depth, index = render(camera, [obj])
    noisy = degrade(depth, 0.005, 0.1)
    box_px = box_around(index, 0, pad=20)
    box_from_depth(noisy, K, box_px)
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        result = box_from_depth(noisy, K, box_px)
        timings.append(time.perf_counter() - start)
    assert result.ok
    # Target ~50 ms on a 2-core CI machine; the bound leaves room for a loaded machine.
    assert float(np.median(timings)) < 0.15, timings


def test_without_open3d_a_box_is_a_status_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hosts without open3d (a bare GPU machine running gpu_bench) still import the query path."""
    from mimo_embodied_ros.core import boxes3d

    monkeypatch.setattr(boxes3d, "o3d", None)
    K = CameraIntrinsics(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    depth = np.full((480, 640), 1.0, np.float32)
    result = box_from_depth(depth, K, (300, 220, 340, 260))
    assert result.status == "missing_dependency" and result.box is None
