"""The none executor says it did not move anything."""

from __future__ import annotations

import numpy as np

from mimo_embodied_ros.core.pickplace import PickPlacePoses, Pose
from mimo_embodied_ros.executors.base import ArmExecutor, ExecutionPlan
from mimo_embodied_ros.executors.none_executor import NoneExecutor


def test_reports_success_without_motion() -> None:
    pose = Pose(np.zeros(3), np.array([0.0, 0.0, 0.0, 1.0]))
    poses = PickPlacePoses(pose, pose, pose, pose, pose, pose, open_width=0.05)
    calls = []
    executor = NoneExecutor()
    assert isinstance(executor, ArmExecutor)
    result = executor.execute(ExecutionPlan(poses, "panda_link0"),
                              lambda *a: calls.append(a), lambda: False)
    assert result.success and not result.executed and result.stages_done == []
    assert "not executed" in result.message and "panda_link0" in result.message
    assert calls and calls[-1][0] == "done"
