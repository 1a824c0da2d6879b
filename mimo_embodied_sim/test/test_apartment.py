"""The apartment world: grid, planner, success rule, camera geometry and oracle answers."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest

from mimo_embodied_ros.core.navmap import map_pixel_to_world, world_to_cell
from mimo_embodied_ros.core.prompts import visibility_question
from mimo_embodied_ros.core.resize import smart_resize
from mimo_embodied_ros.core.types import ImageSize
from mimo_embodied_sim.apartment import (
    DOORS,
    OCCUPIED,
    UNKNOWN,
    ApartmentWorld,
    load_instruction_table,
)

MAX_PIXELS = 1003520  # perception.yaml model.max_pixels
MAP_SCALE = 2


@pytest.fixture(scope="module")
def world():
    with ApartmentWorld(seed=0, width=320, height=240) as apartment:
        yield apartment


def drive(world: ApartmentWorld, limit_s: float = 90.0) -> None:
    deadline = world.time + limit_s
    while world.goal_status()[0] == "active" and world.time < deadline:
        world.advance(0.1)


def cell_value(world: ApartmentWorld, x: float, y: float) -> int:
    grid, spec = world.grid()
    col, row = world_to_cell(spec, x, y)
    return int(grid[row, col])


def test_grid_has_walls_doors_objects_and_unknown_outside(world):
    grid, spec = world.grid()
    assert grid.dtype == np.int8 and grid.shape == (spec.height, spec.width)
    assert spec.resolution == pytest.approx(0.05)
    assert set(np.unique(grid)) <= {0, 100, -1}
    assert cell_value(world, 2.0, 4.5) == OCCUPIED  # interior wall
    assert cell_value(world, 0.0, 3.0) == OCCUPIED  # outer wall
    for x, y in DOORS:
        assert cell_value(world, x, y) == 0, f"door at ({x}, {y}) is not free"
    for name in world.target_names():
        centre = world.object_truth(name).center
        assert cell_value(world, centre[0], centre[1]) == OCCUPIED, name
    assert cell_value(world, -0.3, -0.3) == UNKNOWN
    assert cell_value(world, 5.0, 2.0) == 0  # living room floor
    # Row 0 is the origin (low y) corner: the sofa (y < 1) is near the bottom rows.
    col, row = world_to_cell(spec, 2.5, 0.5)
    assert row < spec.height // 4 and grid[row, col] == OCCUPIED


def test_instruction_table_never_names_target_and_covers_targets(world):
    table = world.instruction_table()
    assert table == load_instruction_table()
    assert len(table) >= 4
    for entry in table:
        assert entry.target.lower() not in entry.instruction.lower()
        assert entry.room in world.rooms and entry.target in world.target_names()
    assert {"bed", "fridge", "sofa", "plant"} <= {entry.target for entry in table}


@pytest.mark.parametrize("seed", [0, 1, 2, 5])
def test_planner_drives_to_another_room_without_collision(world, seed):
    world.reset(seed)
    start_room = world.room_at(*world.pose()[:2])
    target = world.object_truth(world.episode().target)
    assert start_room != target.room  # the episode makes the robot drive
    goal_room = world.rooms[target.room]
    goal = goal_room.center
    assert world.set_goal(goal[0], goal[1], 0.5)
    drive(world)
    x, y, yaw = world.pose()
    assert world.goal_status() == ("succeeded", "")
    # Nav2's goal checker: position AND heading within tolerance (0.25 m, 0.25 rad defaults).
    assert math.hypot(x - goal[0], y - goal[1]) <= world.goal_xy_tolerance + 0.02
    assert abs(math.remainder(yaw - 0.5, math.tau)) <= world.goal_yaw_tolerance + 0.02
    assert world.collisions == 0
    path = world.path()
    assert len(path) > 2
    assert min(world.clearance(px, py) for px, py in path) > world.robot_radius


def test_goal_checker_needs_heading_too(world):
    """A goal at the base's own position with another heading is a turn in place: it is not
    done until the heading is within tolerance, and the position stays put."""
    world.reset(1)
    x0, y0, yaw0 = world.pose()
    target = math.remainder(yaw0 + math.radians(90), math.tau)
    assert world.set_goal(x0, y0, target)
    world.advance(0.1)
    assert world.goal_status()[0] == "active"  # in position, but not facing the goal heading
    drive(world, 10.0)
    x, y, yaw = world.pose()
    assert world.goal_status() == ("succeeded", "")
    assert abs(math.remainder(yaw - target, math.tau)) <= world.goal_yaw_tolerance + 0.02
    assert math.hypot(x - x0, y - y0) < 0.05


def test_cmd_vel_does_not_drop_the_goal(world):
    """As on a Nav2 robot, a foreign /cmd_vel fights the controller but the goal stays active
    and is reached once the other publisher stops."""
    world.reset(2)
    goal = world.rooms[world.object_truth(world.episode().target).room].center
    assert world.set_goal(goal[0], goal[1], 0.0)
    for _ in range(10):  # someone drives the base in circles for a second
        world.set_velocity(0.0, 1.0)
        world.advance(0.1)
        assert world.goal_status()[0] == "active"
    drive(world)
    assert world.goal_status() == ("succeeded", "")
    assert math.hypot(world.pose()[0] - goal[0], world.pose()[1] - goal[1]) <= 0.27


def test_unreachable_goals_fail(world):
    world.reset(0)
    for goal in ((2.0, 4.5), (4.5, 7.6), (-0.3, 2.0)):  # in a wall, in the wardrobe, outside
        assert not world.set_goal(*goal, 0.0)
        assert world.goal_status() == ("failed", "unreachable")
        before = world.pose()
        world.advance(1.0)
        assert world.pose() == before


def test_driving_into_a_wall_is_stopped_and_counted(world):
    world.teleport(3.0, 2.25, math.pi / 2)  # living room, facing the TV wall to the north
    for _ in range(100):
        world.set_velocity(0.5, 0.0)
        world.advance(0.1)
    x, y, _ = world.pose()
    assert world.collisions == 1
    assert world.clearance(x, y) >= world.robot_radius - 1e-9
    assert not world.evaluate("television")[0]  # collided: never a success
    world.set_velocity(0.0, 1.0)  # rotating in place is always allowed
    world.advance(0.5)
    assert world.pose()[2] != pytest.approx(math.pi / 2)


def test_evaluate_standoff_facing_bed(world):
    world.reset(0)
    bed = world.object_truth("bed")
    x, y = bed.footprint_max[0] + 0.6, bed.center[1]  # 0.6 m east of its side
    world.teleport(x, y, math.pi)
    success, details = world.evaluate("bed")
    assert success, details
    assert details["distance_m"] == pytest.approx(0.6)
    assert details["heading_error_deg"] == 0.0  # the heading ray meets the bed
    world.teleport(x, y, 0.0)  # facing away
    assert not world.evaluate("bed")[0]
    # Past the bed's far corner the error is the angle beyond it: 20 deg passes, 40 deg fails.
    corner = math.atan2(bed.footprint_max[1] - y, bed.footprint_max[0] - x)
    world.teleport(x, y, corner - math.radians(20))
    success, details = world.evaluate("bed")
    assert success and details["heading_error_deg"] == pytest.approx(20.0, abs=0.5)
    world.teleport(x, y, corner - math.radians(40))
    success, details = world.evaluate("bed")
    assert not success and details["heading_error_deg"] == pytest.approx(40.0, abs=0.5)
    world.teleport(bed.footprint_max[0] + 1.3, y, math.pi)  # too far
    success, details = world.evaluate("bed")
    assert not success and details["distance_m"] == pytest.approx(1.3)


def test_heading_error_of_a_round_object_counts_its_tangents(world):
    plant = world.object_truth("plant")  # a pot and a round crown
    crown = max(part.size[0] for part in plant.parts)  # the widest disk, 0.35 m
    x, y = plant.center[0] - 1.0, plant.center[1]  # 1 m west: tangents asin(crown) off east
    tangent = math.asin(crown)
    errors = [plant.heading_error(x, y, yaw)
              for yaw in (0.0, tangent - 0.01, tangent + math.radians(20), -tangent - 0.3)]
    assert errors[:2] == [0.0, 0.0]
    assert errors[2] == pytest.approx(math.radians(20), abs=1e-9)
    assert errors[3] == pytest.approx(0.3, abs=1e-9)


def _parse_points(answer: str) -> list[tuple[int, int]]:
    body = answer.split("</think>")[-1]
    return [(int(a), int(b)) for a, b in re.findall(r"\[\s*(-?\d+),\s*(-?\d+)\s*\]", body)]


def test_region_answers_point_into_the_right_room(world):
    _, spec = world.grid()
    map_source = ImageSize(spec.width * MAP_SCALE, spec.height * MAP_SCALE)
    map_resized = smart_resize(map_source.height, map_source.width, max_pixels=MAX_PIXELS)
    camera_resized = smart_resize(world.height, world.width, max_pixels=MAX_PIXELS)
    answers = world.oracle_answers(camera_resized, map_resized, MAP_SCALE)
    for entry in world.instruction_table():
        answer = answers[entry.instruction]
        assert answer.startswith("<think>") and entry.reasoning in answer
        payload = json.loads(answer.split("</think>")[-1])
        assert payload[0]["label"] == entry.room and payload[0]["target"] == entry.target
        (x, y), = _parse_points(answer)
        u = x * map_source.width / map_resized.width
        v = y * map_source.height / map_resized.height
        wx, wy = map_pixel_to_world(spec, u, v, MAP_SCALE)
        assert world.room_at(wx, wy) == entry.room
        assert cell_value(world, wx, wy) == 0
        assert math.dist((wx, wy), world.rooms[entry.room].center) < 0.1


def test_visible_target_pointing_and_visibility_answers(world):
    world.reset(0)
    bed = world.object_truth("bed")
    world.teleport(bed.footprint_max[0] + 1.5, bed.center[1] - 0.3, math.pi)
    resized = smart_resize(world.height, world.width, max_pixels=MAX_PIXELS)
    answers = world.oracle_answers(resized, ImageSize(448, 364), MAP_SCALE)
    assert answers[visibility_question("bed")].endswith("\\boxed{yes}")
    assert answers["bed"] == answers["the bed"]
    (x, y), = _parse_points(answers["bed"])
    u = round(x * world.width / resized.width)
    v = round(y * world.height / resized.height)
    segmentation = world.render_segmentation()
    _, depth = world.render_rgbd()
    assert segmentation[v, u] == bed.object_id
    assert np.isfinite(depth[v, u])
    # The fridge is in another room: not visible, empty pointing answer.
    assert answers[visibility_question("fridge")].endswith("\\boxed{no}")
    assert answers["fridge"].split("</think>")[-1].strip() == "[]"


def test_interior_pixel_of_an_object_cut_by_the_frame_lies_inside_its_visible_part():
    mask = np.zeros((240, 320), dtype=bool)
    mask[100:140, :60] = True  # runs off the left edge: 60 px visible, 40 px tall
    u, v = ApartmentWorld.interior_pixel(mask)
    # Any point on the ridge 20 px from the top, bottom and frame edge; never the edge column.
    assert 19 <= u <= 41 and v == pytest.approx(120, abs=2)


def test_camera_to_base_matches_rendering(world):
    """Back-project a rendered pixel with intrinsics and camera_to_base + the base pose: it must
    land on the surface the truth says is there (the floor and the bed's top)."""
    world.reset(0)
    bed = world.object_truth("bed")
    world.teleport(bed.footprint_max[0] + 1.2, bed.center[1], math.pi)
    translation, quaternion = world.camera_to_base()
    from scipy.spatial.transform import Rotation

    camera_rotation = Rotation.from_quat(quaternion).as_matrix()
    x, y, yaw = world.pose()
    base_rotation = Rotation.from_euler("z", yaw).as_matrix()
    k = world.intrinsics()
    _, depth = world.render_rgbd()
    segmentation = world.render_segmentation()
    u, v = world.interior_pixel(segmentation == bed.object_id)
    z = float(depth[v, u])
    camera_point = np.array([(u - k.cx) * z / k.fx, (v - k.cy) * z / k.fy, z])
    world_point = base_rotation @ (camera_rotation @ camera_point + translation) + [x, y, 0.0]
    assert bed.distance(world_point[0], world_point[1]) < 0.02
    assert 0.2 < world_point[2] <= bed.height + 0.02
    # The bottom-centre pixel sees the floor (z = 0) ahead of the robot.
    u, v = k.width // 2, k.height - 1
    z = float(depth[v, u])
    floor = base_rotation @ (camera_rotation @ np.array([0.0, (v - k.cy) * z / k.fy, z])
                             + translation) + [x, y, 0.0]
    assert floor[2] == pytest.approx(0.0, abs=0.01)
    position, rotation = world.camera_pose_world()
    assert np.allclose(position, base_rotation @ translation + [x, y, 0.0], atol=1e-6)
    assert np.allclose(rotation, base_rotation @ camera_rotation, atol=1e-6)
