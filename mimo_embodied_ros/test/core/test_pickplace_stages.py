"""The pick-and-place stage machine without ROS: fake ports record what the machine asks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from mimo_embodied_ros.core.grasp import GraspSettings
from mimo_embodied_ros.core.pickplace import MotionSettings, WorkspaceLimits
from mimo_embodied_ros.core.pickplace_stages import (
    PerceivedPoint,
    PickPlaceRequest,
    PickPlaceStages,
    StageFailure,
)

CUBE = np.array([0.5, 0.0, 0.04])  # top centre of a 4 cm cube on the table (base frame)
PLACE = np.array([0.45, 0.25, 0.0])


def cube_cloud() -> np.ndarray:
    """Table points and the cube's top face, 5 mm apart, base frame."""
    xs = np.arange(0.38, 0.62, 0.005)
    grid = np.array([(x, y) for x in xs for y in np.arange(-0.12, 0.12, 0.005)])
    z = np.where(np.all(np.abs(grid - CUBE[:2]) <= 0.02, axis=1), CUBE[2], 0.0)
    return np.column_stack((grid, z))


@dataclass
class Execution:
    success: bool = True
    message: str = "executed"
    failed_stage: str = ""
    canceled: bool = False
    executed: bool = True


@dataclass
class FakePorts:
    """Camera frame = base frame here (to_base is the identity)."""

    answers: dict = field(default_factory=lambda: {"the cube": CUBE, "the plate": PLACE})
    execution: Execution = field(default_factory=Execution)
    cancel_after: str | None = None  # a feedback stage after which a cancel is requested
    log: list = field(default_factory=list)
    released: list = field(default_factory=list)
    canceled: bool = False

    def feedback(self, stage, message, progress):
        self.log.append(("feedback", stage))
        if stage == self.cancel_after:
            self.canceled = True

    def cancel_requested(self):
        return self.canceled

    def perceive(self, description, stage, role):
        self.log.append(("perceive", description))
        if description not in self.answers:
            raise StageFailure(stage, f"{role} '{description}' not found")
        return PerceivedPoint(320, 240, self.answers[description].copy(), 12.5, frames=role)

    def explicit_point(self, xyz, frame_id, stage):
        return PerceivedPoint(0, 0, xyz, 0.0, frames=frame_id)

    def to_base(self, point):
        return np.asarray(point.camera_xyz, dtype=float)

    def local_cloud(self, point):
        self.log.append(("cloud", point.frames, point.stamp_s))
        return cube_cloud()

    def publish(self, target):
        self.log.append(("publish", target.object_text))

    def execute(self, target, on_stage, should_cancel):
        self.log.append(("execute", target.place_text))
        on_stage("done", "ok", 1.0)
        return self.execution

    def release(self, point):
        self.released.append(point.frames)


def machine(ports: FakePorts, max_reach: float = 0.855) -> PickPlaceStages:
    return PickPlaceStages(ports, GraspSettings(), MotionSettings(),
                           WorkspaceLimits(max_reach=max_reach))


def test_states_in_order_and_the_pick_frame_used_for_the_cloud() -> None:
    ports = FakePorts()
    outcome = machine(ports).run(PickPlaceRequest(instruction="put the cube on the plate"))
    assert outcome.success and outcome.executed and outcome.failed_stage == ""
    assert outcome.states == ["parse", "perceive_pick", "perceive_place", "grasp", "workspace",
                              "execute", "done"]
    assert ("cloud", "object", 12.5) in ports.log  # the depth of the frame the model saw
    kinds = [entry[0] for entry in ports.log]
    assert kinds.index("publish") < kinds.index("execute")
    grasp = outcome.target.grasp.position
    assert np.linalg.norm(grasp[:2] - CUBE[:2]) < 0.01 and 0.0 < grasp[2] < 0.04
    assert {"object", "place"} <= set(ports.released)  # every hold is let go


def test_not_found_stops_before_any_motion() -> None:
    ports = FakePorts(answers={"the plate": PLACE})
    outcome = machine(ports).run(PickPlaceRequest(object_description="the cube",
                                                  place_description="the plate"))
    assert not outcome.success and not outcome.executed
    assert outcome.failed_stage == "perceive_pick" and "not found" in outcome.message
    assert not any(entry[0] == "execute" for entry in ports.log)


def test_unparseable_instruction() -> None:
    outcome = machine(FakePorts()).run(PickPlaceRequest(instruction="dance"))
    assert outcome.failed_stage == "parse" and "object_description" in outcome.message


def test_workspace_refusal_publishes_but_does_not_execute() -> None:
    ports = FakePorts()
    outcome = machine(ports, max_reach=0.3).run(PickPlaceRequest(
        instruction="put the cube on the plate"))
    assert outcome.failed_stage == "workspace" and "before any motion" in outcome.message
    assert ("publish", "the cube") in ports.log
    assert not any(entry[0] == "execute" for entry in ports.log)


def test_cancel_between_states() -> None:
    ports = FakePorts(cancel_after="perceiving")
    outcome = machine(ports).run(PickPlaceRequest(instruction="put the cube on the plate"))
    assert outcome.canceled and outcome.failed_stage == "cancelled"
    assert not any(entry[0] == "execute" for entry in ports.log)


@pytest.mark.parametrize("executed", [True, False])
def test_execution_outcome_passes_through(executed: bool) -> None:
    ports = FakePorts(execution=Execution(executed=executed, message="m"))
    outcome = machine(ports).run(PickPlaceRequest(instruction="put the cube on the plate"))
    assert outcome.success and outcome.executed is executed


def test_failed_execution_names_its_stage() -> None:
    ports = FakePorts(execution=Execution(success=False, failed_stage="close_gripper",
                                          message="close_gripper: missed"))
    outcome = machine(ports).run(PickPlaceRequest(instruction="put the cube on the plate"))
    assert not outcome.success and outcome.failed_stage == "close_gripper"


def test_explicit_points_skip_perception() -> None:
    ports = FakePorts(answers={})
    outcome = machine(ports).run(PickPlaceRequest(use_points=True,
                                                  pick_point=(CUBE, "panda_link0"),
                                                  place_point=(PLACE, "panda_link0")))
    assert outcome.success, outcome.message
    assert not any(entry[0] == "perceive" for entry in ports.log)
    bad = machine(FakePorts()).run(PickPlaceRequest(
        use_points=True, pick_point=(np.array([np.nan, 0, 0]), "x"), place_point=(PLACE, "x")))
    assert bad.failed_stage == "perceive_pick" and "not finite" in bad.message
