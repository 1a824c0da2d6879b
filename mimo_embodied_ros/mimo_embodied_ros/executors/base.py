"""One interface for whatever moves the arm: MoveIt 2, the simulator's arm, or nothing.

The bridge node computes every pose in core/ and hands an executor an `ExecutionPlan`; the
executor runs it stage by stage, reports each stage through a callback, polls `should_cancel`
while a motion runs (so a cancelled PickPlace goal stops the arm mid-motion) and returns an
`ExecutionResult` that names the failed stage and why. Executors never raise for a refused or
failed motion; they raise `ExecutorConfigurationError` only when they cannot be set up at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from mimo_embodied_ros.core.grasp import ObjectEstimate
from mimo_embodied_ros.core.pickplace import PickPlacePoses, Pose

# Order in which a pick-and-place visits its stages (PickPlace.action feedback names); the same
# order as core.moveit_request.stage_requests, so every executor reports the same stages.
STAGES = (
    "pre_grasp", "open_gripper", "grasp", "close_gripper", "lift", "pre_place", "place",
    "open_gripper", "retreat",
)


class ExecutorConfigurationError(RuntimeError):
    """An executor cannot be created (missing package, bad settings); the message says why."""


@dataclass(frozen=True)
class ExecutionPlan:
    """What an executor needs: the gripper poses (base frame), that frame, and the object."""

    poses: PickPlacePoses  # open_width is the opening for the approach and the release
    frame_id: str
    obj: ObjectEstimate | None = None  # for the planning scene; None when there is no estimate
    object_id: str = "pick_target"


@dataclass
class ExecutionResult:
    """Outcome of a plan: success, the stage that failed and why, and whether the arm moved."""

    success: bool
    message: str
    failed_stage: str = ""
    canceled: bool = False
    executed: bool = True  # False when nothing was sent to an arm (the `none` executor)
    stages_done: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StageCommand:
    """One stage as an arm sees it: a TCP pose to reach and/or a gripper width to command."""

    name: str
    pose: Pose | None  # None = gripper only
    cartesian: bool = False  # straight-line tool motion (approach, lift, descent, retreat)
    gripper_width: float | None = None  # None = leave as is; 0 = close until contact


def stage_commands(poses: PickPlacePoses) -> list[StageCommand]:
    """The stages of a pick-and-place in STAGES order; the gripper opens at the pre-grasp pose
    and closes until contact (width 0), which is how the simulated hand reports `holding`."""
    return [
        StageCommand("pre_grasp", poses.pre_grasp),
        StageCommand("open_gripper", None, gripper_width=poses.open_width),
        StageCommand("grasp", poses.grasp, cartesian=True),
        StageCommand("close_gripper", None, gripper_width=0.0),
        StageCommand("lift", poses.lift, cartesian=True),
        StageCommand("pre_place", poses.pre_place),
        StageCommand("place", poses.place, cartesian=True),
        StageCommand("open_gripper", None, gripper_width=poses.open_width),
        StageCommand("retreat", poses.retreat, cartesian=True),
    ]


StageCallback = Callable[[str, str, float], None]
"""on_stage(stage, message, progress 0..1), called when a stage starts and when all are done."""

CancelCheck = Callable[[], bool]


@runtime_checkable
class ArmExecutor(Protocol):
    """Runs an ExecutionPlan; `kind` is the parameter value that selects it."""

    kind: str

    def execute(
        self, plan: ExecutionPlan, on_stage: StageCallback, should_cancel: CancelCheck
    ) -> ExecutionResult: ...

    def close(self) -> None: ...


def wait_for_future(
    future: Any, timeout_s: float, should_cancel: CancelCheck | None = None, poll_s: float = 0.01
) -> str:
    """Wait for an rclpy future from a worker thread: "done", "timeout" or "cancel".

    Polling (rather than a done callback) works whichever executor thread completes the future,
    and lets a cancel request interrupt the wait at once.
    """
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if should_cancel is not None and should_cancel():
            return "cancel"
        if time.monotonic() >= deadline:
            return "timeout"
        time.sleep(poll_s)
    return "done"
