"""Stage lists and the future wait used by every executor."""

from __future__ import annotations

import threading

import numpy as np
from rclpy.task import Future

from mimo_embodied_ros.core.moveit_request import stage_requests
from mimo_embodied_ros.core.pickplace import PickPlacePoses, Pose
from mimo_embodied_ros.executors.base import STAGES, stage_commands, wait_for_future


def poses() -> PickPlacePoses:
    def pose(z: float) -> Pose:
        return Pose(np.array([0.5, 0.0, z]), np.array([1.0, 0.0, 0.0, 0.0]))

    return PickPlacePoses(pose(0.2), pose(0.1), pose(0.3), pose(0.25), pose(0.12), pose(0.22),
                          open_width=0.06, object_width=0.04)


def test_stage_commands_follow_the_moveit_stage_order() -> None:
    commands = stage_commands(poses())
    assert tuple(c.name for c in commands) == STAGES
    assert [name for name, _ in stage_requests(poses(), "panda_link0")] == list(STAGES)
    by_name = {c.name: c for c in commands}
    assert by_name["grasp"].cartesian and not by_name["pre_grasp"].cartesian
    assert by_name["close_gripper"].pose is None and by_name["close_gripper"].gripper_width == 0.0
    assert commands[1].gripper_width == 0.06 and commands[7].gripper_width == 0.06
    assert by_name["place"].pose.position[2] == 0.12


def test_wait_for_future_done_timeout_and_cancel() -> None:
    future = Future()
    assert wait_for_future(future, 0.05) == "timeout"
    assert wait_for_future(future, 5.0, lambda: True) == "cancel"
    threading.Timer(0.05, lambda: future.set_result(1)).start()
    assert wait_for_future(future, 5.0) == "done"
