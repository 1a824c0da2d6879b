"""The NavA3 stages without ROS: a plain-geometry Io (a 6 x 4 m flat, a bed, a base that reaches
every goal, a model that answers from the geometry) drives the state machine."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core import navmap
from mimo_embodied_ros.core.nava3_stages import (
    GOAL_REGION,
    GOAL_TARGET,
    STAGE_DONE,
    CameraPoint,
    NavA3,
    NavA3Config,
    NavA3Run,
    PointAnswer,
    RegionAnswer,
    RegionPoint,
    StageFailure,
)
from mimo_embodied_ros.core.navmap import GridSpec
from mimo_embodied_ros.core.pose_buffer import Pose2D, PoseLookupError

SPEC = GridSpec(0.1, 60, 40)
BED = (5.0, 3.2)
CONFIG = NavA3Config(scan_step_rad=math.pi / 2, scan_max_steps=4, settle_s=0.0)
HALF_FOV = math.radians(45.0)


def flat() -> np.ndarray:
    grid = np.zeros((40, 60), dtype=np.int8)
    grid[0, :] = grid[-1, :] = grid[:, 0] = grid[:, -1] = 100
    grid[:, 30] = 100
    grid[15:25, 30] = 0
    grid[29:35, 47:53] = 100
    return grid


class GeometryIo:
    def __init__(self, target_xy=BED, region_xy=(4.5, 2.0), pose_history: bool = True):
        self.grid = flat()
        self.robot = Pose2D(1.0, 1.0, 0.0)
        self.target_xy, self.region_xy, self.pose_history = target_xy, region_xy, pose_history
        self.log: list[tuple] = []

    def map(self):
        return self.grid, SPEC

    def pose(self):
        return self.robot

    def pose_at(self, stamp_s):
        if not self.pose_history:
            raise PoseLookupError("history spans nothing")
        return self.robot

    def ask_region(self, instruction, image):
        u, v = navmap.world_to_map_pixel(SPEC, *self.region_xy, CONFIG.pixels_per_cell)
        inside = 0 <= u < image.shape[1] and 0 <= v < image.shape[0]
        point = RegionPoint(u if inside else math.nan, v if inside else math.nan, u, v, inside,
                            "bedroom")
        return RegionAnswer([point], "", "To sleep, the bedroom.", "bed")

    def _bearing(self):
        tx, ty = self.target_xy
        return navmap.wrap_angle(math.atan2(ty - self.robot.y, tx - self.robot.x)
                                 - self.robot.yaw)

    def ask_choice(self, question):
        self.log.append(("choice", self.robot.yaw))
        return "yes" if self.target_xy and abs(self._bearing()) < HALF_FOV else "no"

    def ask_point(self, target):
        self.log.append(("point", self._bearing()))
        tx, ty = self.target_xy
        c, s = math.cos(self.robot.yaw), math.sin(self.robot.yaw)
        dx, dy = tx - self.robot.x, ty - self.robot.y
        in_base = np.array([c * dx + s * dy, -s * dx + c * dy, 0.5])
        camera = Rotation.from_quat(CONFIG.camera_rotation_xyzw).inv().apply(
            in_base - np.array(CONFIG.camera_translation))
        return PointAnswer(1.0, [CameraPoint(tuple(camera), True, True, "ok")], True, "ok")

    def drive(self, stage, x, y, yaw, timeout_s):
        self.log.append(("drive", stage, x, y, yaw))
        self.robot = Pose2D(x, y, yaw)

    def turn_to(self, stage, yaw):
        self.log.append(("turn", yaw))
        self.robot = Pose2D(self.robot.x, self.robot.y, yaw)

    def settle(self, seconds):
        pass

    def feedback(self, stage, message):
        self.log.append(("feedback", stage))

    def goal_chosen(self, kind, goal, point, run):
        self.log.append(("goal", kind))


def test_stages_run_in_order_to_a_goal_facing_the_target():
    io = GeometryIo()
    run = NavA3(CONFIG, io).run(NavA3Run("I want to sleep"))
    assert run.stage == STAGE_DONE and (run.region, run.target) == ("bedroom", "bed")
    assert run.target_point[:2] == pytest.approx(BED, abs=1e-6)
    stages = [e[1] for e in io.log if e[0] == "feedback"]
    assert stages[0] == "map_reasoning" and stages[-1] == "scanning"
    assert [e[1] for e in io.log if e[0] == "goal"] == [GOAL_REGION, GOAL_TARGET]
    assert [e[1] for e in io.log if e[0] == "drive"] == ["driving_to_region", "approaching"]
    bearing = math.atan2(BED[1] - io.robot.y, BED[0] - io.robot.x)
    assert abs(navmap.wrap_angle(bearing - io.robot.yaw)) < 1e-6
    assert math.dist((io.robot.x, io.robot.y), BED) == pytest.approx(0.6, abs=0.35)


def test_scan_turns_are_headings_from_the_scan_start():
    io = GeometryIo(target_xy=None)
    with pytest.raises(StageFailure, match="never seen") as failure:
        NavA3(CONFIG, io).run(NavA3Run("I want to sleep"))
    assert failure.value.stage == "scanning"
    start = next(e[4] for e in io.log if e[0] == "drive")
    turns = [e[1] for e in io.log if e[0] == "turn"]
    assert turns == pytest.approx([navmap.wrap_angle(start + k * math.pi / 2) for k in (1, 2, 3)])


def test_off_centre_target_is_faced_and_pointed_at_again():
    io = GeometryIo()
    NavA3(CONFIG, io).run(NavA3Run("I want to sleep"))
    bearings = [e[1] for e in io.log if e[0] == "point"]
    assert len(bearings) == 2 and abs(bearings[0]) > CONFIG.recentre_min_rad
    assert abs(bearings[1]) < 1e-6


def test_region_off_map_and_missing_pose_history_fail_with_their_stage():
    with pytest.raises(StageFailure, match="off the map") as failure:
        NavA3(CONFIG, GeometryIo(region_xy=(-5.0, 2.0))).run(NavA3Run("I want to sleep"))
    assert failure.value.stage == "map_reasoning"
    with pytest.raises(StageFailure, match="no robot pose at the image stamp") as failure:
        NavA3(CONFIG, GeometryIo(pose_history=False)).run(NavA3Run("I want to sleep"))
    assert failure.value.stage == "scanning"
    with pytest.raises(StageFailure, match="empty"):
        NavA3(CONFIG, GeometryIo()).run(NavA3Run("  "))


def test_target_uses_the_camera_pose_of_the_answer_over_the_static_extrinsic():
    """A point answer with the camera pose TF gave at its stamp (a camera on a mast, pan
    joint): that pose, not the config's extrinsic, places the point in the map."""
    io = GeometryIo()
    io.robot = Pose2D(1.0, 1.0, 0.0)
    panned = Rotation.from_euler("z", 90, degrees=True) * Rotation.from_quat(
        CONFIG.camera_rotation_xyzw)  # the camera looks along base +y
    translation = (0.1, 0.0, 1.2)
    camera = panned.inv().apply(np.array([0.0, 2.0, 0.5]) - np.array(translation))
    answer = PointAnswer(1.0, [CameraPoint(tuple(camera), True, True, "ok")], True, "ok",
                         (translation, tuple(panned.as_quat())))
    target, status = NavA3(CONFIG, io).target_in_map(answer)
    assert status == "ok" and target == pytest.approx((1.0, 3.0, 0.5), abs=1e-9)
    static, _ = NavA3(CONFIG, io).target_in_map(PointAnswer(1.0, answer.points, True, "ok"))
    assert static[:2] != pytest.approx((1.0, 3.0), abs=0.1)  # the extrinsic would misplace it
