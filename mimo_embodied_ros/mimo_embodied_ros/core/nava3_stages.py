"""The NavA3 stages as a ROS-free state machine: map region -> drive -> scan -> approach.

The model looks at a top-down picture of the map and points at the region to go to (and names
what to look for there); the base drives there; it turns in place in steps, asking whether the
target is in view and, once it is, where; the point (lifted with depth by the perception node) is
placed in the map frame with the robot pose of the image's stamp; the last goal stands off from
the target, faces it, and lies in free space the robot can reach.

Everything that touches the robot or the model goes through a :class:`NavA3Io` (the navigator
node implements it over ROS; the tests implement it with plain geometry). A failure raises
:class:`StageFailure` with the stage it happened in; an Io may raise :class:`StageCancelled`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from mimo_embodied_ros.core import navmap
from mimo_embodied_ros.core.navmap import GridSpec, NamedRegion
from mimo_embodied_ros.core.pose_buffer import Pose2D, PoseLookupError, camera_point_to_map
from mimo_embodied_ros.core.prompts import visibility_question

STAGE_MAP = "map_reasoning"
STAGE_DRIVE = "driving_to_region"
STAGE_SCAN = "scanning"
STAGE_APPROACH = "approaching"
STAGE_DONE = "done"
GOAL_REGION = "map_region"  # NavigationGoal.stage values (ros/navigation_markers.py)
GOAL_TARGET = "egocentric_target"

SNAP_REASONS = {
    "outside_map": "lies outside the map",
    "no_free_cell_within_max_snap": "has no cell the robot fits in nearby",
    "unreachable": "cannot be reached from the robot's position",
    "no_free_cell_near_target": "has no spot around it where the robot fits",
}


class StageFailure(Exception):
    """A navigation ended early; carries the stage it failed in."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


class StageCancelled(Exception):
    """The caller asked to stop (raised by an Io while it waits)."""


@dataclass(frozen=True)
class RegionPoint:
    """The model's point on the map image: source pixels (NaN when outside), model pixels."""

    u: float
    v: float
    u_model: float
    v_model: float
    in_image: bool
    label: str


@dataclass(frozen=True)
class RegionAnswer:
    points: list[RegionPoint]
    answer: str
    reasoning: str
    target: str  # the target named in the answer ("" if none)
    parse_status: str = ""
    message: str = ""


@dataclass(frozen=True)
class CameraPoint:
    """A point the perception node lifted: camera optical frame position (m) and its flags."""

    position: tuple[float, float, float]
    in_image: bool
    depth_valid: bool
    status: str


@dataclass(frozen=True)
class PointAnswer:
    stamp_s: float  # the stamp of the image the model saw
    points: list[CameraPoint]
    success: bool
    message: str
    # The camera pose in the base frame at that stamp ((x, y, z), (x, y, z, w)); None: the
    # config's static extrinsic.
    camera_pose: tuple[tuple[float, ...], tuple[float, ...]] | None = None


@dataclass(frozen=True)
class NavA3Config:
    pixels_per_cell: int = 2
    regions: tuple[NamedRegion, ...] = ()
    unknown_is_free: bool = False
    robot_radius: float = 0.25
    standoff_m: float = 0.6
    snap_max_distance_m: float = 1.0
    standoff_max_m: float = 0.6
    scan_step_rad: float = math.radians(45.0)
    scan_max_steps: int = 8
    settle_s: float = 0.5
    max_target_range_m: float = 8.0
    recentre_min_rad: float = math.radians(20.0)
    region_timeout_s: float = 120.0
    approach_timeout_s: float = 60.0
    camera_translation: tuple[float, float, float] = (0.2, 0.0, 1.0)
    camera_rotation_xyzw: tuple[float, float, float, float] = (-0.5, 0.5, -0.5, 0.5)


class NavA3Io(Protocol):
    """What the stages need from the robot and the model."""

    def map(self) -> tuple[np.ndarray, GridSpec] | None: ...
    def pose(self) -> Pose2D | None: ...
    def pose_at(self, stamp_s: float) -> Pose2D: ...  # PoseLookupError if not covered
    def ask_region(self, instruction: str, image: np.ndarray) -> RegionAnswer: ...
    def ask_choice(self, question: str) -> str: ...
    def ask_point(self, target: str) -> PointAnswer: ...
    def drive(self, stage: str, x: float, y: float, yaw: float, timeout_s: float) -> None: ...
    def turn_to(self, stage: str, yaw: float) -> None: ...
    def settle(self, seconds: float) -> None: ...
    def feedback(self, stage: str, message: str) -> None: ...
    def goal_chosen(self, kind: str, goal: Pose2D, point: tuple[float, float, float],
                    run: NavA3Run) -> None: ...


@dataclass
class NavA3Run:
    """State of one navigation: what the stages found so far (also reported on failure)."""

    instruction: str
    stage: str = STAGE_MAP
    region: str = ""
    target: str = ""
    reasoning: str = ""
    region_goal: Pose2D | None = None
    target_point: tuple[float, float, float] | None = None
    goal: Pose2D | None = None  # the last goal sent to the base
    views: int = 0
    problems: list[str] = field(default_factory=list)


class NavA3:
    """Runs the stages in order; :meth:`run` returns the finished run or raises StageFailure."""

    def __init__(self, config: NavA3Config, io: NavA3Io) -> None:
        self.config = config
        self.io = io

    def run(self, run: NavA3Run) -> NavA3Run:
        steps = {STAGE_MAP: self._map_stage, STAGE_DRIVE: self._drive_stage,
                 STAGE_SCAN: self._scan_stage, STAGE_APPROACH: self._approach_stage}
        if not run.instruction.strip():
            raise StageFailure(STAGE_MAP, "instruction is empty")
        while run.stage != STAGE_DONE:
            run.stage = steps[run.stage](run)
        return run

    # Helpers ------------------------------------------------------------------------------------

    def _require_map(self, stage: str) -> tuple[np.ndarray, GridSpec]:
        current = self.io.map()
        if current is None:
            raise StageFailure(stage, "no map received")
        return current

    def _require_pose(self, stage: str) -> Pose2D:
        pose = self.io.pose()
        if pose is None:
            raise StageFailure(stage, "no robot pose received")
        return pose

    # Stage 1: region on the map -----------------------------------------------------------------

    def _map_stage(self, run: NavA3Run) -> str:
        c = self.config
        self.io.feedback(STAGE_MAP, "asking the model which region to go to")
        grid, spec = self._require_map(STAGE_MAP)
        robot = self._require_pose(STAGE_MAP)
        image = navmap.render_map_image(grid, c.pixels_per_cell)
        if c.regions:
            image = navmap.draw_regions(image, spec, list(c.regions), c.pixels_per_cell)
        answer = self.io.ask_region(run.instruction, image)
        run.reasoning = answer.reasoning
        if not answer.points:
            raise StageFailure(STAGE_MAP, f"the model gave no point on the map "
                                          f"({answer.parse_status}): {answer.message}")
        point = answer.points[0]
        if not point.in_image or not (math.isfinite(point.u) and math.isfinite(point.v)):
            raise StageFailure(
                STAGE_MAP, f"region point off the map: the model pointed at "
                           f"({point.u_model:.0f}, {point.v_model:.0f}), outside the "
                           f"{image.shape[1]}x{image.shape[0]} map image it saw resized")
        run.region = point.label.strip()
        run.target = answer.target or run.region
        if not run.target:
            raise StageFailure(STAGE_MAP, "the model named no region and no target")
        x, y = navmap.map_pixel_to_world(spec, point.u, point.v, c.pixels_per_cell)
        snapped = navmap.snap_to_free(grid, spec, x, y, c.robot_radius, c.snap_max_distance_m,
                                      c.unknown_is_free)
        if not snapped.ok:
            reason = SNAP_REASONS.get(snapped.status, snapped.status)
            raise StageFailure(STAGE_MAP, f"region point off the map or blocked: ({x:.2f}, "
                                          f"{y:.2f}) m {reason} ({snapped.status})")
        if not navmap.reachable(grid, spec, (robot.x, robot.y), (snapped.x, snapped.y),
                                c.robot_radius, c.unknown_is_free):
            raise StageFailure(
                STAGE_DRIVE, f"goal unreachable: region goal ({snapped.x:.2f}, {snapped.y:.2f}) "
                             f"is not connected to the robot at ({robot.x:.2f}, {robot.y:.2f}) "
                             f"through free space")
        yaw = math.atan2(snapped.y - robot.y, snapped.x - robot.x)
        run.region_goal = Pose2D(snapped.x, snapped.y, yaw)
        self.io.goal_chosen(GOAL_REGION, run.region_goal, (x, y, 0.0), run)
        return STAGE_DRIVE

    # Stage 2: drive to the region ---------------------------------------------------------------

    def _drive_stage(self, run: NavA3Run) -> str:
        goal = run.region_goal
        assert goal is not None
        run.goal = goal
        self.io.drive(STAGE_DRIVE, goal.x, goal.y, goal.yaw, self.config.region_timeout_s)
        return STAGE_SCAN

    # Stage 3: scan for the target ---------------------------------------------------------------

    def _scan_stage(self, run: NavA3Run) -> str:
        c = self.config
        start_yaw = self._require_pose(STAGE_SCAN).yaw
        for step in range(c.scan_max_steps):
            if step > 0:
                # Headings from the scan's start, so a base that stops anywhere inside its
                # goal tolerance does not shrink the sweep step by step.
                self.io.turn_to(STAGE_SCAN, navmap.wrap_angle(start_yaw + step * c.scan_step_rad))
            # A still base gives a sharp image (and lets a simulator's oracle catch up).
            self.io.settle(c.settle_s)
            run.views = step + 1
            self.io.feedback(STAGE_SCAN, f"view {step + 1}/{c.scan_max_steps}: looking for the "
                                         f"{run.target}")
            if self.io.ask_choice(visibility_question(run.target)).strip().lower().startswith(
                    "yes"):
                target, problem = self.target_in_map(self.io.ask_point(run.target))
                if target is not None:
                    run.target_point = self._recentre(run, target)
                    return STAGE_APPROACH
                run.problems.append(problem)
        turned = math.degrees(c.scan_step_rad) * (c.scan_max_steps - 1)
        if run.problems:
            raise StageFailure(
                STAGE_SCAN, f"the {run.target} was seen in {len(run.problems)} of "
                            f"{c.scan_max_steps} views but never located in 3D: "
                            f"{run.problems[-1]}")
        raise StageFailure(
            STAGE_SCAN, f"target never seen: no {run.target} in {c.scan_max_steps} views "
                        f"({turned:.0f} deg turned in place in the {run.region or 'region'})")

    def _recentre(self, run: NavA3Run, target: tuple[float, float, float]) -> (
            tuple[float, float, float]):
        """Face a target first seen off to one side and point at it again.

        An object entering the view is cut by the frame, so the first point lies on whatever
        part shows; seen head-on, the point moves to the object's middle and its depth is read
        away from the image border. If the second look fails, the first point stands."""
        robot = self._require_pose(STAGE_SCAN)
        bearing = math.atan2(target[1] - robot.y, target[0] - robot.x)
        if abs(navmap.wrap_angle(bearing - robot.yaw)) <= self.config.recentre_min_rad:
            return target
        self.io.turn_to(STAGE_SCAN, bearing)
        self.io.settle(self.config.settle_s)
        self.io.feedback(STAGE_SCAN, f"facing the {run.target} to point at it again")
        again, problem = self.target_in_map(self.io.ask_point(run.target))
        if again is None:
            run.problems.append(f"lost after turning to face it ({problem}); kept the first point")
            return target
        return again

    def target_in_map(self, answer: PointAnswer) -> tuple[tuple[float, float, float] | None,
                                                           str]:
        """The target point in the map frame (median of the depth-valid points), or why not."""
        c = self.config
        if not answer.success and not answer.points:
            return None, f"pointing failed: {answer.message}"
        try:
            pose = self.io.pose_at(answer.stamp_s)
        except PoseLookupError as error:
            return None, f"no robot pose at the image stamp: {error}"
        statuses, located = [], []
        translation, rotation = answer.camera_pose or (c.camera_translation,
                                                       c.camera_rotation_xyzw)
        for p in answer.points:
            position = np.asarray(p.position, dtype=float)
            if not p.in_image:
                statuses.append("outside the image")
            elif not p.depth_valid or not np.all(np.isfinite(position)):
                statuses.append(f"depth invalid ({p.status})")
            elif np.linalg.norm(position) > c.max_target_range_m:
                statuses.append(f"{np.linalg.norm(position):.1f} m away "
                                f"(max {c.max_target_range_m} m)")
            else:
                located.append(camera_point_to_map(position, pose, translation, rotation))
        if not located:
            detail = ", ".join(statuses) or "the model gave no point"
            return None, f"depth invalid at the target: {detail}"
        median = np.median(np.array(located), axis=0)
        return (float(median[0]), float(median[1]), float(median[2])), "ok"

    # Stage 4: approach --------------------------------------------------------------------------

    def _approach_stage(self, run: NavA3Run) -> str:
        c = self.config
        assert run.target_point is not None
        grid, spec = self._require_map(STAGE_APPROACH)
        robot = self._require_pose(STAGE_APPROACH)
        tx, ty, _ = run.target_point
        goal = navmap.standoff_goal(grid, spec, (robot.x, robot.y), (tx, ty), c.standoff_m,
                                    c.robot_radius, c.standoff_max_m, c.unknown_is_free)
        if not goal.ok:
            reason = SNAP_REASONS.get(goal.status, goal.status)
            raise StageFailure(STAGE_APPROACH, f"goal unreachable: the {run.target} at "
                                               f"({tx:.2f}, {ty:.2f}) {reason} ({goal.status})")
        run.goal = Pose2D(goal.x, goal.y, goal.yaw)
        self.io.goal_chosen(GOAL_TARGET, run.goal, run.target_point, run)
        self.io.drive(STAGE_APPROACH, goal.x, goal.y, goal.yaw, c.approach_timeout_s)
        return STAGE_DONE
