"""A small real MoveArm action server for executor and bridge tests (the `sim` executor's
interface): the tool moves in a straight line at a fixed speed, gripper commands take effect at
once, and a cancel request stops the tool where it is. It spins on its own executor thread, so a
long motion never blocks the test's executor."""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import Pose
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node

from mimo_embodied_msgs.action import MoveArm


class LinearArmServer:
    """Serves `action_name` on its own node; records every goal and where the tool stopped."""

    def __init__(
        self, context: Context, action_name: str = "/pickplace_sim/move_arm",
        speed_m_s: float = 1.0, object_width: float = 0.04, tick_s: float = 0.01,
        reject_stage_z_below: float | None = None,
    ) -> None:
        self.node = Node("test_arm_server", context=context)
        self.speed_m_s = speed_m_s
        self.object_width = object_width
        self.tick_s = tick_s
        self.reject_z_below = reject_stage_z_below
        self.position = np.array([0.3, 0.0, 0.5])
        self.orientation = (0.0, 0.0, 0.0, 1.0)
        self.gripper_width = 0.08
        self.goals: list[MoveArm.Goal] = []
        self.canceled_goals = 0
        self.moving = threading.Event()
        self._server = ActionServer(
            self.node, MoveArm, action_name, self._execute,
            goal_callback=lambda goal: GoalResponse.ACCEPT,
            cancel_callback=lambda handle: CancelResponse.ACCEPT,
            callback_group=ReentrantCallbackGroup(),
        )
        self._executor = MultiThreadedExecutor(num_threads=2, context=context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._executor.spin, daemon=True)
        self._thread.start()

    def _pose(self) -> Pose:
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in self.position)
        o = pose.orientation
        o.x, o.y, o.z, o.w = self.orientation
        return pose

    def _execute(self, handle) -> MoveArm.Result:
        goal: MoveArm.Goal = handle.request
        self.goals.append(goal)
        if goal.move_pose:
            p = goal.target.pose.position
            target = np.array([p.x, p.y, p.z])
            if self.reject_z_below is not None and target[2] < self.reject_z_below:
                handle.abort()
                return MoveArm.Result(success=False, message="no IK solution",
                                      final_pose=self._pose())
            self.moving.set()
            try:
                while True:
                    offset = target - self.position
                    distance = float(np.linalg.norm(offset))
                    if handle.is_cancel_requested:
                        self.canceled_goals += 1
                        handle.canceled()
                        return MoveArm.Result(success=False, message="stopped: canceled",
                                              final_pose=self._pose(),
                                              gripper_width=self.gripper_width)
                    if distance < 1e-6:
                        break
                    step = min(distance, self.speed_m_s * self.tick_s)
                    self.position = self.position + offset / distance * step
                    handle.publish_feedback(MoveArm.Feedback(distance_remaining=distance - step))
                    time.sleep(self.tick_s)
            finally:
                self.moving.clear()
            o = goal.target.pose.orientation
            self.orientation = (o.x, o.y, o.z, o.w)
        stalled = False
        if goal.move_gripper:
            # Like GripperActionController with allow_stalling false: fingers closing on the
            # object stop at its width and the goal ends ABORTED with stalled=true.
            self.gripper_width = max(goal.gripper_width, self.object_width)
            stalled = goal.gripper_width < self.object_width
        result = MoveArm.Result(success=not stalled, final_pose=self._pose(),
                                gripper_width=self.gripper_width, position=self.gripper_width,
                                effort=20.0 if stalled else 0.0, stalled=stalled,
                                reached_goal=goal.move_gripper and not stalled,
                                message="stalled" if stalled else "reached")
        if stalled:
            handle.abort()
        else:
            handle.succeed()
        return result

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=2.0)
        self._server.destroy()
        self.node.destroy_node()
