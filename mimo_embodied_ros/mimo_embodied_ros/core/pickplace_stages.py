"""The pick-and-place stages as a ROS-free state machine (the bridge node only wires it to ROS).

    parse -> perceive_pick -> perceive_place -> grasp -> workspace -> execute -> done

Each state is one method that returns the next state, or raises `StageFailure(stage, reason)`.
Whatever touches the outside world is a port (`PickPlacePorts`): asking the model, the depth
window of the frame the model saw, publishing the target, running the arm. A cancel request is
checked between states; nothing moves before the `execute` state, and that state is reached
only after the grasp and every stage pose passed the workspace checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from mimo_embodied_ros.core.depth import depth_to_points
from mimo_embodied_ros.core.grasp import Grasp, GraspSettings, compute_grasp
from mimo_embodied_ros.core.pickplace import (
    MotionSettings,
    PickPlacePoses,
    WorkspaceLimits,
    check_workspace,
    plan_pick_place,
    split_pick_place_instruction,
    transform_points,
)
from mimo_embodied_ros.core.types import CameraIntrinsics

UP = (0.0, 0.0, 1.0)  # the base frame's z axis points up (REP 103)
STATES = ("parse", "perceive_pick", "perceive_place", "grasp", "workspace", "execute", "done")


class StageFailure(Exception):
    """A stage that cannot go on: the failed stage and a readable reason."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


@dataclass
class PickPlaceRequest:
    """A goal as plain data; explicit points are (xyz, frame id) in any frame the ports know."""

    instruction: str = ""
    object_description: str = ""
    place_description: str = ""
    use_points: bool = False
    pick_point: tuple[np.ndarray, str] | None = None
    place_point: tuple[np.ndarray, str] | None = None


@dataclass
class PerceivedPoint:
    """A point the model gave (or an explicit one): pixel, camera-frame position, image stamp,
    the frames kept for it (`frames`, opaque to this module; the ports read depth from it) and
    the camera pose in the base frame at that stamp (translation, quaternion xyzw; from TF for a
    wrist camera, so each point carries its own)."""

    u: float
    v: float
    camera_xyz: np.ndarray
    stamp_s: float
    frames: Any = None
    camera_pose: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class PlannedTarget:
    """Everything computed before motion (base frame), published for an operator to check."""

    poses: PickPlacePoses
    grasp: Grasp
    pick_base: np.ndarray
    place_base: np.ndarray
    object_text: str
    place_text: str
    stamp_s: float


@dataclass
class PickPlaceOutcome:
    success: bool
    message: str
    failed_stage: str = ""
    executed: bool = False  # True only when an arm was commanded
    canceled: bool = False
    target: PlannedTarget | None = None
    states: list[str] = field(default_factory=list)  # the states visited, in order


class PickPlacePorts(Protocol):
    """The outside world of the state machine (the bridge node implements it with ROS)."""

    def feedback(self, stage: str, message: str, progress: float) -> None: ...

    def cancel_requested(self) -> bool: ...

    def perceive(self, description: str, stage: str, role: str) -> PerceivedPoint: ...

    def explicit_point(self, xyz: np.ndarray, frame_id: str, stage: str) -> PerceivedPoint: ...

    def to_base(self, point: PerceivedPoint) -> np.ndarray: ...  # base frame, at its stamp

    def local_cloud(self, point: PerceivedPoint) -> np.ndarray: ...  # base frame, (N, 3)

    def publish(self, target: PlannedTarget) -> None: ...

    def execute(self, target: PlannedTarget, on_stage: Callable[[str, str, float], None],
                should_cancel: Callable[[], bool]) -> Any: ...  # executors.ExecutionResult

    def release(self, point: PerceivedPoint) -> None: ...  # the point's frames are not needed


@dataclass
class _Context:
    request: PickPlaceRequest
    object_text: str = ""
    place_text: str = ""
    pick: PerceivedPoint | None = None
    place: PerceivedPoint | None = None
    target: PlannedTarget | None = None
    execution: Any = None


class PickPlaceStages:
    """Runs one goal through STATES with the given ports and settings."""

    def __init__(self, ports: PickPlacePorts, grasp: GraspSettings, motion: MotionSettings,
                 limits: WorkspaceLimits) -> None:
        self.ports = ports
        self.grasp_settings = grasp
        self.motion_settings = motion
        self.limits = limits

    def run(self, request: PickPlaceRequest) -> PickPlaceOutcome:
        ctx = _Context(request)
        states: list[str] = []
        state = "parse"
        try:
            while state != "done":
                states.append(state)
                state = getattr(self, f"_{state}")(ctx)
                if state != "done" and state != "execute" and self.ports.cancel_requested():
                    raise StageFailure(states[-1], "canceled before any motion")
            states.append("done")
            return self._finish(ctx, states)
        except StageFailure as failure:
            canceled = self.ports.cancel_requested()
            return PickPlaceOutcome(False, f"{failure.stage}: {failure.message}",
                                    failed_stage="cancelled" if canceled else failure.stage,
                                    canceled=canceled, target=ctx.target, states=states)
        finally:
            for point in (ctx.pick, ctx.place):
                if point is not None:
                    self.ports.release(point)

    # States ------------------------------------------------------------------------------------

    def _parse(self, ctx: _Context) -> str:
        self.ports.feedback("parsing", "reading the goal", 0.0)
        ctx.object_text, ctx.place_text = descriptions(ctx.request)
        return "perceive_pick"

    def _perceive_pick(self, ctx: _Context) -> str:
        r = ctx.request
        self.ports.feedback("perceiving", f"asking for '{ctx.object_text or 'the points'}'", 0.05)
        if r.use_points:
            ctx.pick = self._explicit(r.pick_point, "perceive_pick")
        else:
            ctx.pick = self.ports.perceive(ctx.object_text, "perceive_pick", "object")
        return "perceive_place"

    def _perceive_place(self, ctx: _Context) -> str:
        r = ctx.request
        if r.use_points:
            ctx.place = self._explicit(r.place_point, "perceive_place")
        else:
            ctx.place = self.ports.perceive(ctx.place_text, "perceive_place", "place")
        self.ports.release(ctx.place)  # only its position is used
        return "grasp"

    def _grasp(self, ctx: _Context) -> str:
        self.ports.feedback("planning", "computing the grasp and the stage poses", 0.15)
        assert ctx.pick is not None and ctx.place is not None
        pick_base = self.ports.to_base(ctx.pick)
        place_base = self.ports.to_base(ctx.place)
        cloud = self.ports.local_cloud(ctx.pick)
        result = compute_grasp(cloud, pick_base, self.grasp_settings, UP)
        if not result.ok:
            raise StageFailure("grasp", f"no grasp at the pick point ({result.status}, "
                               f"{cloud.shape[0]} cloud points)")
        poses = plan_pick_place(result.grasp, place_base, self.motion_settings, UP)
        ctx.target = PlannedTarget(poses, result.grasp, pick_base, place_base, ctx.object_text,
                                   ctx.place_text, ctx.pick.stamp_s)
        self.ports.publish(ctx.target)  # also when refused next: the operator sees why
        return "workspace"

    def _workspace(self, ctx: _Context) -> str:
        assert ctx.target is not None
        refusal = check_workspace(ctx.target.poses, self.limits)
        if refusal is not None:
            raise StageFailure("workspace", f"target refused before any motion: {refusal}")
        return "execute"

    def _execute(self, ctx: _Context) -> str:
        assert ctx.target is not None
        for point in (ctx.pick, ctx.place):  # the depth is used: free the frames before motion
            if point is not None:
                self.ports.release(point)

        def on_stage(stage: str, message: str, fraction: float) -> None:
            self.ports.feedback(stage, message, 0.2 + 0.8 * fraction)

        ctx.execution = self.ports.execute(ctx.target, on_stage, self.ports.cancel_requested)
        return "done"

    def _explicit(self, point: tuple[np.ndarray, str] | None, stage: str) -> PerceivedPoint:
        if point is None:
            raise StageFailure(stage, "use_points is set but the point is missing")
        xyz, frame_id = point
        xyz = np.asarray(xyz, dtype=float)
        if not np.all(np.isfinite(xyz)):
            raise StageFailure(stage, "the explicit point is not finite")
        return self.ports.explicit_point(xyz, frame_id, stage)

    @staticmethod
    def _finish(ctx: _Context, states: list[str]) -> PickPlaceOutcome:
        e = ctx.execution
        failed = "" if e.success else (e.failed_stage or "execute")
        if e.canceled:
            failed = "cancelled"
        return PickPlaceOutcome(bool(e.success), e.message, failed_stage=failed,
                                executed=bool(getattr(e, "executed", True)),
                                canceled=bool(e.canceled), target=ctx.target, states=states)


def descriptions(request: PickPlaceRequest) -> tuple[str, str]:
    """(object, place) descriptions of a goal; StageFailure("parse") when it names neither."""
    object_text = request.object_description.strip()
    place_text = request.place_description.strip()
    if request.use_points or (object_text and place_text):
        return object_text, place_text
    if request.instruction.strip():
        split = split_pick_place_instruction(request.instruction)
        if split is None:
            raise StageFailure("parse", f"cannot tell the object and the place in "
                               f"'{request.instruction}'; give object_description and "
                               "place_description")
        return split
    raise StageFailure("parse", "the goal has no instruction, no object_description and "
                       "place_description, and use_points is false")


def local_cloud(depth_m: np.ndarray, intrinsics: CameraIntrinsics, point: PerceivedPoint,
                radius_m: float, stride: int, translation: np.ndarray,
                rotation_xyzw: np.ndarray) -> np.ndarray:
    """Base-frame points of the depth pixels within `radius_m` around the point's pixel.

    `intrinsics` are the colour image's (the pixel's frame); the depth image may be smaller or
    larger, and the intrinsics are scaled to it."""
    height, width = depth_m.shape
    k_depth = intrinsics.scaled_to(width, height)
    u = point.u * width / intrinsics.width
    v = point.v * height / intrinsics.height
    half_px = radius_m * k_depth.fx / max(float(point.camera_xyz[2]), 1e-3)
    roi = (u - half_px, v - half_px, u + half_px, v + half_px)
    camera_points = depth_to_points(depth_m, k_depth, roi, stride=stride)
    return transform_points(camera_points, translation, rotation_xyzw)
