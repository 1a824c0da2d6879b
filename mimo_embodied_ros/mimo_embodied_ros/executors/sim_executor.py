"""The `sim` executor: one MoveArm goal per stage to the simulator's arm (mimo_embodied_sim).

MoveArm is the small interface the simulated Panda offers in place of MoveIt's MoveGroup. A cancel
of the PickPlace goal cancels the MoveArm goal in flight, which stops the arm where it is. Its
gripper reports like GripperActionController (position, effort, stalled, reached_goal; ABORTED
on a stall), and this executor reads it exactly as the moveit one reads GripperCommand
(core.moveit_request.gripper_outcome): a close that stalls wider than `min_grasp_width` holds
the object.
"""

from __future__ import annotations

from dataclasses import dataclass

from action_msgs.msg import GoalStatus
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from mimo_embodied_msgs.action import MoveArm
from mimo_embodied_ros.core.moveit_request import (
    GripperRequest,
    GripperResult,
    MoveItSettings,
    gripper_outcome,
)
from mimo_embodied_ros.executors.base import (
    STAGES,
    CancelCheck,
    ExecutionPlan,
    ExecutionResult,
    StageCallback,
    StageCommand,
    stage_commands,
    wait_for_future,
)
from mimo_embodied_ros.ros.manipulation_markers import pose_to_msg


@dataclass(frozen=True)
class SimExecutorSettings:
    action_name: str = "/pickplace_sim/move_arm"
    server_timeout_s: float = 20.0  # first DDS discovery of the action server can take seconds
    stage_timeout_s: float = 30.0  # one stage's motion, from goal sent to result
    cancel_timeout_s: float = 5.0  # how long to wait for the arm to confirm it stopped
    min_grasp_width: float = 0.005  # a close that stalls wider than this holds the object (m)


def move_arm_goal(command: StageCommand, frame_id: str, stamp=None) -> MoveArm.Goal:
    """The MoveArm goal of one stage."""
    goal = MoveArm.Goal()
    if command.pose is not None:
        goal.move_pose = True
        goal.target = PoseStamped()
        goal.target.header.frame_id = frame_id
        if stamp is not None:
            goal.target.header.stamp = stamp
        goal.target.pose = pose_to_msg(command.pose)
        goal.cartesian = command.cartesian
    if command.gripper_width is not None:
        goal.move_gripper = True
        goal.gripper_width = float(command.gripper_width)
    return goal


class SimExecutor:
    """Sends each stage as a MoveArm goal and waits for it; cancel stops the arm mid-motion."""

    kind = "sim"

    def __init__(self, node: Node, settings: SimExecutorSettings) -> None:
        self._node = node
        self._settings = settings
        # Its own reentrant group: results arrive while the bridge's action callback waits.
        self._client = ActionClient(
            node, MoveArm, settings.action_name, callback_group=ReentrantCallbackGroup()
        )

    def execute(
        self, plan: ExecutionPlan, on_stage: StageCallback, should_cancel: CancelCheck
    ) -> ExecutionResult:
        s = self._settings
        done: list[str] = []
        if not self._client.wait_for_server(timeout_sec=s.server_timeout_s):
            return ExecutionResult(
                False, f"arm action server {s.action_name} not available after "
                f"{s.server_timeout_s:g} s", failed_stage=STAGES[0], stages_done=done,
            )
        commands = stage_commands(plan.poses)
        for index, command in enumerate(commands):
            if should_cancel():
                return ExecutionResult(False, f"canceled before {command.name}",
                                       failed_stage=command.name, canceled=True, stages_done=done)
            on_stage(command.name, f"{command.name} ({index + 1}/{len(commands)})",
                     index / len(commands))
            failure = self._run_stage(command, plan.frame_id, should_cancel, done)
            if failure is not None:
                return failure
            done.append(command.name)
        message = f"pick-and-place executed on {s.action_name} ({len(commands)} stages)"
        on_stage("done", message, 1.0)
        return ExecutionResult(True, message, stages_done=done)

    def _run_stage(
        self, command: StageCommand, frame_id: str, should_cancel: CancelCheck, done: list[str]
    ) -> ExecutionResult | None:
        s = self._settings

        def failed(message: str, canceled: bool = False) -> ExecutionResult:
            return ExecutionResult(False, f"{command.name}: {message}", failed_stage=command.name,
                                   canceled=canceled, stages_done=list(done))

        stamp = self._node.get_clock().now().to_msg()
        goal_future = self._client.send_goal_async(move_arm_goal(command, frame_id, stamp))
        if wait_for_future(goal_future, s.stage_timeout_s) != "done":
            return failed("the arm did not answer the goal request")
        handle = goal_future.result()
        if handle is None or not handle.accepted:
            return failed("the arm rejected the goal")
        result_future = handle.get_result_async()
        outcome = wait_for_future(result_future, s.stage_timeout_s, should_cancel)
        if outcome != "done":
            cancel_future = handle.cancel_goal_async()
            wait_for_future(cancel_future, s.cancel_timeout_s)
            stopped = wait_for_future(result_future, s.cancel_timeout_s) == "done"
            state = "the arm stopped" if stopped else "the arm did not confirm it stopped"
            if outcome == "cancel":
                return failed(f"canceled mid-motion; {state}", canceled=True)
            return failed(f"timed out after {s.stage_timeout_s:g} s; {state}")
        response = result_future.result()
        result: MoveArm.Result = response.result
        if response.status == GoalStatus.STATUS_CANCELED:
            return failed("the arm reports the motion canceled", canceled=should_cancel())
        if command.pose is None and command.gripper_width is not None:
            request = GripperRequest(positions=(command.gripper_width,),
                                     closing=command.name == "close_gripper",
                                     position=command.gripper_width)
            words = {GoalStatus.STATUS_SUCCEEDED: "succeeded", GoalStatus.STATUS_ABORTED: "aborted"}
            outcome = gripper_outcome(request, GripperResult(
                words.get(response.status, f"status {response.status}"), result.position,
                result.effort, result.stalled, result.reached_goal),
                MoveItSettings(gripper_position_per_width=1.0, min_grasp_width=s.min_grasp_width))
            return None if outcome.ok else failed(outcome.message)
        if response.status != GoalStatus.STATUS_SUCCEEDED or not result.success:
            return failed(f"the arm failed: {result.message or 'no reason given'}")
        return None

    def close(self) -> None:
        self._client.destroy()
