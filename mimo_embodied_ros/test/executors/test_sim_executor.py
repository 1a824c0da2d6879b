"""SimExecutor against a real MoveArm action server over DDS (the simulator's interface)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import rclpy
from arm_server import LinearArmServer
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from mimo_embodied_ros.core.pickplace import PickPlacePoses, Pose
from mimo_embodied_ros.executors.base import STAGES, ExecutionPlan
from mimo_embodied_ros.executors.sim_executor import SimExecutor, SimExecutorSettings

DOWN = np.array([1.0, 0.0, 0.0, 0.0])  # TCP z pointing down


def plan(height: float = 0.05) -> ExecutionPlan:
    def pose(x: float, y: float, z: float) -> Pose:
        return Pose(np.array([x, y, z]), DOWN.copy())

    poses = PickPlacePoses(
        pre_grasp=pose(0.5, 0.0, height + 0.1), grasp=pose(0.5, 0.0, height),
        lift=pose(0.5, 0.0, height + 0.15), pre_place=pose(0.4, 0.2, height + 0.12),
        place=pose(0.4, 0.2, height), retreat=pose(0.4, 0.2, height + 0.1),
        open_width=0.06, object_width=0.04,
    )
    return ExecutionPlan(poses=poses, frame_id="panda_link0")


class Harness:
    def __init__(self, context: Context) -> None:
        self.arm = LinearArmServer(context, action_name="/test_arm/move_arm", speed_m_s=2.0)
        self.node = Node("test_sim_executor", context=context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def sim(self, **settings) -> SimExecutor:
        return SimExecutor(self.node, SimExecutorSettings(action_name="/test_arm/move_arm",
                                                          **settings))

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=2.0)
        self.node.destroy_node()
        self.arm.close()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "62")))
    h = Harness(context)
    yield h
    h.close()
    context.try_shutdown()


@pytest.fixture(autouse=True)
def reset_arm(harness: Harness) -> None:
    harness.arm.goals.clear()
    harness.arm.speed_m_s = 2.0
    harness.arm.object_width = 0.04


def test_runs_every_stage_in_order_with_feedback(harness: Harness) -> None:
    calls: list[tuple[str, float]] = []
    result = harness.sim().execute(plan(), lambda s, m, p: calls.append((s, p)), lambda: False)
    assert result.success, result.message
    assert result.executed and result.stages_done == list(STAGES)
    assert [s for s, _ in calls] == [*STAGES, "done"]
    assert [p for _, p in calls] == sorted(p for _, p in calls) and calls[-1][1] == 1.0
    goals = harness.arm.goals
    assert len(goals) == len(STAGES)
    assert goals[0].move_pose and not goals[0].cartesian and not goals[0].move_gripper
    assert goals[1].move_gripper and abs(goals[1].gripper_width - 0.06) < 1e-9
    assert goals[2].cartesian and abs(goals[2].target.pose.position.z - 0.05) < 1e-9
    assert goals[2].target.header.frame_id == "panda_link0"
    assert goals[3].move_gripper and goals[3].gripper_width == 0.0
    np.testing.assert_allclose(harness.arm.position, [0.4, 0.2, 0.15], atol=1e-6)


def test_missed_grasp_fails_at_close_gripper(harness: Harness) -> None:
    harness.arm.object_width = 0.0  # the fingers close fully: nothing between them
    result = harness.sim().execute(plan(), lambda *a: None, lambda: False)
    assert not result.success and result.failed_stage == "close_gripper"
    assert "without holding" in result.message
    assert len(harness.arm.goals) == 4  # nothing after the failed close


def test_cancel_stops_the_arm_mid_motion(harness: Harness) -> None:
    harness.arm.speed_m_s = 0.02
    result = harness.sim().execute(plan(), lambda *a: None, harness.arm.moving.is_set)
    assert not result.success and result.canceled
    assert result.failed_stage == "pre_grasp" and "stopped" in result.message
    assert harness.arm.canceled_goals >= 1 and len(harness.arm.goals) == 1
    assert np.linalg.norm(harness.arm.position - [0.5, 0.0, 0.15]) > 0.05


def test_stage_timeout_cancels_the_motion(harness: Harness) -> None:
    harness.arm.speed_m_s = 0.02
    result = harness.sim(stage_timeout_s=0.3).execute(plan(), lambda *a: None, lambda: False)
    assert not result.success and not result.canceled
    assert result.failed_stage == "pre_grasp" and "timed out" in result.message
    assert not harness.arm.moving.is_set()


def test_missing_server_is_reported(harness: Harness) -> None:
    executor = SimExecutor(harness.node, SimExecutorSettings(action_name="/nobody/move_arm",
                                                             server_timeout_s=0.5))
    result = executor.execute(plan(), lambda *a: None, lambda: False)
    assert not result.success and "/nobody/move_arm" in result.message
    assert result.failed_stage == STAGES[0]


def test_stalled_gripper_on_the_object_is_a_grasp(harness: Harness) -> None:
    """The arm reports the close as GripperActionController does on an object: ABORTED with
    stalled=true at the object's width. The executor reads that as a grasp and goes on."""
    result = harness.sim().execute(plan(), lambda *a: None, lambda: False)
    assert result.success, result.message
    close = harness.arm.goals[3]
    assert close.move_gripper and close.gripper_width == 0.0  # close until contact
    assert "close_gripper" in result.stages_done and len(harness.arm.goals) == 9
