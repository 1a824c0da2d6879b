"""Goal geometry on occupancy grids: snapping, reachability, standoff goals, map pixel round trips.

Grids are drawn here with numpy: 0.1 m cells, walls of 100, unknown -1, so each case is a picture a
reader can check by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mimo_embodied_ros.core.navmap import (
    GridSpec,
    cell_to_world,
    clearance_m,
    draw_regions,
    free_space_mask,
    map_pixel_to_world,
    parse_region,
    quaternion_to_yaw,
    reachable,
    render_map_image,
    snap_to_free,
    standoff_goal,
    world_to_cell,
    world_to_map_pixel,
    wrap_angle,
    yaw_to_quaternion,
)

RES = 0.1
ROBOT_RADIUS = 0.2


def room(width: int = 40, height: int = 30) -> tuple[np.ndarray, GridSpec]:
    """A walled 4 x 3 m room (walls one cell thick on the border), origin at (-1, -1)."""
    grid = np.zeros((height, width), dtype=np.int8)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = 100
    return grid, GridSpec(RES, width, height, origin_x=-1.0, origin_y=-1.0)


def fits(grid: np.ndarray, spec: GridSpec, x: float, y: float) -> bool:
    col, row = world_to_cell(spec, x, y)
    return bool(free_space_mask(grid, spec, ROBOT_RADIUS)[row, col])


def test_free_space_keeps_the_robot_disc_off_walls():
    grid, spec = room()
    clearance = clearance_m(grid, spec)
    # A cell next to the wall has half a cell of clearance; the room centre has the most.
    assert clearance[1, 10] == pytest.approx(0.5 * RES)
    assert clearance[15, 20] == clearance.max()
    mask = free_space_mask(grid, spec, ROBOT_RADIUS)
    assert not mask[1:3, :].any() and mask[3, 5:35].all()
    assert not free_space_mask(grid, spec, 10.0).any()
    with pytest.raises(ValueError):
        free_space_mask(grid, spec, -0.1)


def test_point_already_free_is_kept_as_is():
    grid, spec = room()
    result = snap_to_free(grid, spec, 1.03, 0.47, ROBOT_RADIUS, max_snap_m=0.5)
    assert result.ok and result.status == "ok"
    assert (result.x, result.y, result.moved_m) == (1.03, 0.47, 0.0)


def test_point_inside_an_obstacle_snaps_to_nearest_fitting_cell():
    grid, spec = room()
    grid[10:20, 15:25] = 100  # a 1 x 1 m table spanning x 0.5..1.5, y 0..1
    result = snap_to_free(grid, spec, 0.6, 0.5, ROBOT_RADIUS, max_snap_m=1.0)
    assert result.ok and result.status == "snapped"
    assert fits(grid, spec, result.x, result.y)
    # The nearest side of the table is its left edge (x = 0.5): the robot stands just left of it.
    assert result.x < 0.5 - ROBOT_RADIUS + 1e-9 and abs(result.y - 0.5) < 0.1 + 1e-9
    assert result.moved_m == pytest.approx(math.hypot(result.x - 0.6, result.y - 0.5))
    # Too small a snap radius fails clearly instead of returning the blocked point.
    small = snap_to_free(grid, spec, 1.0, 0.5, ROBOT_RADIUS, max_snap_m=0.3)
    assert not small.ok and small.status == "no_free_cell_within_max_snap"


def test_point_outside_the_map_fails():
    grid, spec = room()
    for x, y in [(-1.01, 0.0), (3.0, 0.0), (0.0, 2.0), (100.0, -100.0)]:
        result = snap_to_free(grid, spec, x, y, ROBOT_RADIUS, max_snap_m=5.0)
        assert not result.ok and result.status == "outside_map", (x, y)


def test_point_in_unknown_cell_snaps_unless_unknown_is_free():
    grid, spec = room()
    grid[5:25, 25:39] = -1  # the right part of the room is unexplored
    x, y = cell_to_world(spec, 30, 15)
    result = snap_to_free(grid, spec, x, y, ROBOT_RADIUS, max_snap_m=1.0)
    assert result.ok and result.status == "snapped"
    col, _ = world_to_cell(spec, result.x, result.y)
    assert col < 25 - 2  # left of the unknown block, a robot radius away from it
    optimistic = snap_to_free(grid, spec, x, y, ROBOT_RADIUS, 1.0, unknown_is_free=True)
    assert optimistic.ok and optimistic.status == "ok"


def test_point_in_corridor_narrower_than_robot_snaps_out_of_it_or_fails():
    # Two rooms joined by a 0.3 m corridor; the robot (0.4 m wide) cannot stand in it.
    grid = np.full((30, 60), 100, dtype=np.int8)
    grid[5:25, 2:20] = 0
    grid[5:25, 40:58] = 0
    grid[14:17, 20:40] = 0
    spec = GridSpec(RES, 60, 30)
    x, y = cell_to_world(spec, 30, 15)
    assert grid[15, 30] == 0 and not fits(grid, spec, x, y)
    result = snap_to_free(grid, spec, x, y, ROBOT_RADIUS, max_snap_m=2.0)
    assert result.ok and fits(grid, spec, result.x, result.y)
    col, _ = world_to_cell(spec, result.x, result.y)
    assert col < 20 or col >= 40  # in one of the rooms, not in the corridor
    failed = snap_to_free(grid, spec, x, y, ROBOT_RADIUS, max_snap_m=0.5)
    assert not failed.ok and failed.status == "no_free_cell_within_max_snap"
    # And the rooms are not connected for this robot, though they are for a thin one.
    left, right = cell_to_world(spec, 10, 15), cell_to_world(spec, 50, 15)
    assert not reachable(grid, spec, left, right, ROBOT_RADIUS)
    assert reachable(grid, spec, left, right, 0.1)


def test_map_without_any_fitting_cell_fails():
    grid = np.full((10, 10), 100, dtype=np.int8)
    spec = GridSpec(RES, 10, 10)
    result = snap_to_free(grid, spec, 0.5, 0.5, ROBOT_RADIUS, max_snap_m=10.0)
    assert not result.ok and result.status == "no_free_cell_within_max_snap"


def test_reachability_follows_walls_and_doors():
    grid, spec = room()
    grid[:, 20] = 100  # a wall splits the room at x = 1.0
    left, right = (0.0, 0.5), (2.0, 0.5)
    assert not reachable(grid, spec, left, right, ROBOT_RADIUS)
    grid[12:18, 20] = 0  # a 0.6 m door
    assert reachable(grid, spec, left, right, ROBOT_RADIUS)
    assert not reachable(grid, spec, left, (50.0, 0.0), ROBOT_RADIUS)  # off the map
    # A start pose grazing a wall (discretisation) is still accepted.
    assert reachable(grid, spec, (-0.85, 0.5), right, ROBOT_RADIUS)


def test_standoff_goal_faces_target_from_the_robot_side():
    grid, spec = room()
    target, robot = (1.5, 0.5), (0.0, 0.5)
    result = standoff_goal(grid, spec, robot, target, 0.7, ROBOT_RADIUS)
    assert result.ok and result.status == "ok"
    assert (result.x, result.y) == pytest.approx((0.8, 0.5))
    assert result.yaw == pytest.approx(0.0, abs=1e-9)


def test_standoff_goal_tries_other_bearings_when_direct_side_is_blocked():
    grid, spec = room()
    grid[1:29, 8:12] = 100  # a wall x -0.2..0.2 between the robot and the target...
    grid[1:6, 8:12] = 0  # ... with a gap at the bottom
    grid[10:20, 20:24] = 100  # a cabinet right of the target's robot-facing side
    robot, target = (-0.6, 0.5), (1.8, 1.5)
    direct = standoff_goal(grid, spec, robot, target, 0.7, ROBOT_RADIUS)
    assert direct.ok
    assert fits(grid, spec, direct.x, direct.y)
    assert reachable(grid, spec, robot, (direct.x, direct.y), ROBOT_RADIUS)
    distance = math.hypot(direct.x - target[0], direct.y - target[1])
    assert distance <= 0.7 + 0.3 + 1e-9
    facing = math.atan2(target[1] - direct.y, target[0] - direct.x)
    assert wrap_angle(direct.yaw - facing) == pytest.approx(0.0, abs=1e-9)


def test_standoff_goal_for_a_point_deep_inside_furniture_against_a_wall():
    grid, spec = room()
    grid[1:10, 10:30] = 100  # a 2 m sofa, 0.9 m deep, against the bottom wall (y -1..-0.1)
    robot, target = (0.5, 1.5), (1.0, -0.8)  # the model pointed at the sofa's back
    result = standoff_goal(grid, spec, robot, target, 0.6, ROBOT_RADIUS, max_snap_m=0.3)
    assert not result.ok and result.status == "no_free_cell_near_target"
    # A larger margin finds the spot in front of the sofa, facing it.
    result = standoff_goal(grid, spec, robot, target, 0.6, ROBOT_RADIUS, max_snap_m=0.8)
    assert result.ok and result.status == "snapped" and fits(grid, spec, result.x, result.y)
    assert result.y > -0.1 + ROBOT_RADIUS - 1e-9  # in front of the sofa, on the robot's side
    assert math.hypot(result.x - target[0], result.y - target[1]) <= 0.6 + 0.8 + 1e-9
    facing = math.atan2(target[1] - result.y, target[0] - result.x)
    assert result.yaw == pytest.approx(facing) and result.yaw < -math.pi / 4


def test_standoff_goal_fails_when_target_is_enclosed():
    grid, spec = room()
    grid[:, 20] = 100
    robot, target = (0.0, 0.5), (2.0, 0.5)  # behind a wall without a door
    result = standoff_goal(grid, spec, robot, target, 0.7, ROBOT_RADIUS)
    assert not result.ok and result.status == "unreachable"
    with pytest.raises(ValueError):
        standoff_goal(grid, spec, robot, target, 0.0, ROBOT_RADIUS)


@pytest.mark.parametrize("origin_yaw", [0.0, 0.3, -2.0])
@pytest.mark.parametrize("scale", [1, 2, 3])
def test_map_pixel_round_trip_honours_origin_yaw(origin_yaw: float, scale: int):
    spec = GridSpec(0.05, 80, 60, origin_x=1.5, origin_y=-2.0, origin_yaw=origin_yaw)
    rng = np.random.default_rng(1)
    for u, v in rng.uniform([0, 0], [80 * scale, 60 * scale], size=(20, 2)):
        x, y = map_pixel_to_world(spec, u, v, scale)
        assert world_to_map_pixel(spec, x, y, scale) == pytest.approx((u, v), abs=1e-9)
    # The pixel of a cell's centre shows that cell in the rendered image.
    grid = np.zeros((60, 80), dtype=np.int8)
    grid[17, 23] = 100
    image = render_map_image(grid, scale)
    u, v = world_to_map_pixel(spec, *cell_to_world(spec, 23, 17), scale)
    assert tuple(image[int(v), int(u)]) == (0, 0, 0)
    assert image.sum() == 255 * 3 * (80 * 60 - 1) * scale * scale


def test_yaw_quaternion_helpers_round_trip():
    for yaw in np.linspace(-3.1, 3.1, 13):
        q = yaw_to_quaternion(float(yaw))
        assert q[0] == q[1] == 0.0 and quaternion_to_yaw(*q) == pytest.approx(yaw)
    assert wrap_angle(3 * math.pi) == pytest.approx(-math.pi)
    with pytest.raises(ValueError):
        quaternion_to_yaw(0.0, 0.0, 0.0, 0.0)


def test_regions_parse_and_draw_on_the_map_image():
    region = parse_region(" bedroom : 0.0, 0.0, 1.0, 0.5")
    assert (region.name, region.x_max, region.y_max) == ("bedroom", 1.0, 0.5)
    for bad in ["bedroom 0,0,1,1", "bedroom: 0,0,1", ": 0,0,1,1", "x: 1,1,0,0", "x: a,b,c,d"]:
        with pytest.raises(ValueError):
            parse_region(bad)
    grid, spec = room()
    image = render_map_image(grid, 2)
    drawn = draw_regions(image, spec, [region], scale=2, colour=(255, 0, 0))
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)
    u, v = world_to_map_pixel(spec, 1.0, 0.25, 2)  # on the region's right edge
    assert drawn[int(round(v)), int(round(u)) - 1: int(round(u)) + 2, 0].max() > 200
    assert np.array_equal(image, render_map_image(grid, 2))  # the input is left untouched
