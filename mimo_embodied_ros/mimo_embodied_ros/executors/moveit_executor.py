"""The `moveit` executor: MoveIt 2's MoveGroup action, Cartesian paths and the planning scene.

The only module that imports moveit_msgs (and shape_msgs), and only when this executor is
configured: a machine without MoveIt gets a clear ExecutorConfigurationError instead of an
ImportError at start-up. Every request is decided as plain data in core/moveit_request.py (tested
there); this module only copies those fields into messages and makes the calls:

- the object's box is applied to the planning scene (ApplyPlanningScene service) and published on
  ~/collision_object; it is removed before the straight approach into it ("grasp" stage);
- free-space stages: MoveGroup goal with position + orientation constraints on the TCP link;
- straight stages: GetCartesianPath (compute_cartesian_path), then ExecuteTrajectory;
- gripper stages: control_msgs/action/GripperCommand (position, max_effort) to the hand's
  GripperActionController (`gripper_action`); a close that stalls on the object is a grasp even
  when the goal ends ABORTED (allow_stalling false), read by core.moveit_request.gripper_outcome;
- the grasped object is attached to the hand (AttachedCollisionObject, touch_links) after the
  close, so the transport is planned with it, and detached after the release.
A cancel of the PickPlace goal cancels the MoveGroup / ExecuteTrajectory / gripper goal in flight.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from rclpy.action import ActionClient
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node

from mimo_embodied_ros.core.moveit_request import (
    AttachRequest,
    CollisionBox,
    GripperRequest,
    GripperResult,
    MotionRequest,
    MoveItSettings,
    collision_box_for,
    gripper_outcome,
    scene_updates,
    stage_requests,
)
from mimo_embodied_ros.executors.base import (
    CancelCheck,
    ExecutionPlan,
    ExecutionResult,
    ExecutorConfigurationError,
    StageCallback,
    wait_for_future,
)

SUCCESS = 1  # moveit_msgs/MoveItErrorCodes.SUCCESS


@dataclass(frozen=True)
class MoveItExecutorSettings:
    request: MoveItSettings = field(default_factory=MoveItSettings)
    move_group_action: str = "/move_action"
    execute_trajectory_action: str = "/execute_trajectory"
    cartesian_path_service: str = "/compute_cartesian_path"
    apply_scene_service: str = "/apply_planning_scene"
    gripper_action: str = "/panda_hand_controller/gripper_cmd"
    cartesian_max_step: float = 0.005  # metres between interpolated waypoints
    cartesian_min_fraction: float = 0.95  # refuse a straight path MoveIt can only partly follow
    server_timeout_s: float = 20.0
    stage_timeout_s: float = 60.0
    cancel_timeout_s: float = 5.0


# name -> module of every message type this executor builds.
MESSAGE_TYPES = {
    "Pose": "geometry_msgs.msg",
    "Vector3": "geometry_msgs.msg",
    "MoveGroup": "moveit_msgs.action",
    "ExecuteTrajectory": "moveit_msgs.action",
    "CollisionObject": "moveit_msgs.msg",
    "Constraints": "moveit_msgs.msg",
    "JointConstraint": "moveit_msgs.msg",
    "OrientationConstraint": "moveit_msgs.msg",
    "PlanningScene": "moveit_msgs.msg",
    "PositionConstraint": "moveit_msgs.msg",
    "ApplyPlanningScene": "moveit_msgs.srv",
    "GetCartesianPath": "moveit_msgs.srv",
    "AttachedCollisionObject": "moveit_msgs.msg",
    "SolidPrimitive": "shape_msgs.msg",
    "GripperCommand": "control_msgs.action",
}
# action_msgs/GoalStatus codes -> the words core.moveit_request uses.
STATUS_WORDS = {4: "succeeded", 5: "canceled", 6: "aborted"}


def import_moveit() -> dict[str, Any]:
    """The message types this executor needs, or ExecutorConfigurationError saying what to do."""
    try:
        return {name: getattr(importlib.import_module(module), name)
                for name, module in MESSAGE_TYPES.items()}
    except (ImportError, AttributeError) as error:
        raise ExecutorConfigurationError(
            f"executor 'moveit' needs moveit_msgs, shape_msgs and control_msgs ({error}); install "
            "MoveIt 2 (e.g. apt install ros-$ROS_DISTRO-moveit-msgs ros-$ROS_DISTRO-control-msgs) "
            "or set the parameter executor to 'sim' or 'none'"
        ) from error


class MoveItExecutor:
    """Drives MoveIt 2's move_group; publishes the target's CollisionObject (~/collision_object)."""

    kind = "moveit"
    publishes_collision_object = True

    def __init__(self, node: Node, settings: MoveItExecutorSettings) -> None:
        self.m = import_moveit()
        self._node = node
        self._settings = settings
        group = ReentrantCallbackGroup()
        self._move_group = ActionClient(node, self.m["MoveGroup"], settings.move_group_action,
                                        callback_group=group)
        self._execute = ActionClient(node, self.m["ExecuteTrajectory"],
                                     settings.execute_trajectory_action, callback_group=group)
        self._cartesian = node.create_client(self.m["GetCartesianPath"],
                                             settings.cartesian_path_service, callback_group=group)
        self._apply_scene = node.create_client(self.m["ApplyPlanningScene"],
                                               settings.apply_scene_service, callback_group=group)
        self._gripper = ActionClient(node, self.m["GripperCommand"], settings.gripper_action,
                                     callback_group=group)
        self._collision_pub = node.create_publisher(
            self.m["CollisionObject"], "~/collision_object", 10
        )

    # Messages ----------------------------------------------------------------------------------

    def _pose(self, position, quaternion_xyzw) -> Any:
        pose = self.m["Pose"]()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
        o = pose.orientation
        o.x, o.y, o.z, o.w = (float(v) for v in quaternion_xyzw)
        return pose

    def _vector(self, xyz) -> Any:
        x, y, z = (float(v) for v in xyz)
        return self.m["Vector3"](x=x, y=y, z=z)

    def collision_object(self, box: CollisionBox) -> Any:
        m = self.m
        msg = m["CollisionObject"]()
        msg.header.frame_id = box.frame_id
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.id = box.object_id
        msg.operation = (m["CollisionObject"].ADD if box.operation == "add"
                         else m["CollisionObject"].REMOVE)
        if box.operation == "add":
            primitive = m["SolidPrimitive"](type=m["SolidPrimitive"].BOX,
                                            dimensions=[float(v) for v in box.size])
            msg.pose = self._pose(box.center, box.quaternion_xyzw)
            msg.primitives = [primitive]
            msg.primitive_poses = [self._pose((0, 0, 0), (0, 0, 0, 1))]
        return msg

    def attached_object(self, request: AttachRequest, frame_id: str) -> Any:
        """moveit_msgs/AttachedCollisionObject of an attach (with the box) or a detach."""
        m = self.m
        msg = m["AttachedCollisionObject"](link_name=request.link_name,
                                           touch_links=list(request.touch_links))
        if request.operation == "add" and request.box is not None:
            msg.object = self.collision_object(request.box)
        else:
            msg.object.header.frame_id = frame_id
            msg.object.id = request.object_id
            msg.object.operation = m["CollisionObject"].REMOVE
        return msg

    def gripper_goal(self, request: GripperRequest) -> Any:
        goal = self.m["GripperCommand"].Goal()
        goal.command.position = float(request.position)
        goal.command.max_effort = float(request.max_effort)
        return goal

    def _pose_constraints(self, request: MotionRequest) -> Any:
        m, goal = self.m, request.pose_goal
        position = m["PositionConstraint"]()
        position.header.frame_id = goal.frame_id
        position.link_name = goal.link_name
        sphere = m["SolidPrimitive"](type=m["SolidPrimitive"].SPHERE,
                                     dimensions=[float(goal.position_tolerance)])
        position.constraint_region.primitives = [sphere]
        position.constraint_region.primitive_poses = [self._pose(goal.position, (0, 0, 0, 1))]
        position.weight = 1.0
        orientation = m["OrientationConstraint"]()
        orientation.header.frame_id = goal.frame_id
        orientation.link_name = goal.link_name
        orientation.orientation = self._pose((0, 0, 0), goal.quaternion_xyzw).orientation
        tolerance = float(goal.orientation_tolerance)
        orientation.absolute_x_axis_tolerance = tolerance
        orientation.absolute_y_axis_tolerance = tolerance
        orientation.absolute_z_axis_tolerance = tolerance
        orientation.weight = 1.0
        return m["Constraints"](position_constraints=[position],
                                orientation_constraints=[orientation])

    def _joint_constraints(self, request: GripperRequest) -> Any:
        joints = [
            self.m["JointConstraint"](joint_name=name, position=float(position),
                                      tolerance_above=0.002, tolerance_below=0.002, weight=1.0)
            for name, position in zip(request.joint_names, request.positions, strict=True)
        ]
        return self.m["Constraints"](joint_constraints=joints)

    def move_group_goal(self, request: MotionRequest | GripperRequest, frame_id: str) -> Any:
        goal = self.m["MoveGroup"].Goal()
        plan = goal.request
        plan.group_name = request.group_name
        plan.start_state.is_diff = True
        s = self._settings.request
        if isinstance(request, MotionRequest):
            plan.goal_constraints = [self._pose_constraints(request)]
            plan.planner_id = request.planner_id
            plan.num_planning_attempts = request.num_planning_attempts
            plan.allowed_planning_time = request.allowed_planning_time
            plan.max_velocity_scaling_factor = request.max_velocity_scaling
            plan.max_acceleration_scaling_factor = request.max_acceleration_scaling
            workspace = plan.workspace_parameters
            workspace.header.frame_id = frame_id
            workspace.min_corner = self._vector(request.workspace_min_corner)
            workspace.max_corner = self._vector(request.workspace_max_corner)
        else:
            plan.goal_constraints = [self._joint_constraints(request)]
            plan.planner_id = s.planner_id
            plan.num_planning_attempts = s.num_planning_attempts
            plan.allowed_planning_time = s.allowed_planning_time
            plan.max_velocity_scaling_factor = s.max_velocity_scaling
            plan.max_acceleration_scaling_factor = s.max_acceleration_scaling
        goal.planning_options.plan_only = False
        goal.planning_options.planning_scene_diff.is_diff = True
        goal.planning_options.planning_scene_diff.robot_state.is_diff = True
        return goal

    def cartesian_request(self, request: MotionRequest) -> Any:
        msg = self.m["GetCartesianPath"].Request()
        msg.header.frame_id = request.pose_goal.frame_id
        msg.header.stamp = self._node.get_clock().now().to_msg()
        msg.start_state.is_diff = True
        msg.group_name = request.group_name
        msg.link_name = request.pose_goal.link_name
        msg.waypoints = [self._pose(request.pose_goal.position, request.pose_goal.quaternion_xyzw)]
        msg.max_step = self._settings.cartesian_max_step
        msg.avoid_collisions = True
        return msg

    # Calls -------------------------------------------------------------------------------------

    def _apply(self, box: CollisionBox | None = None, attached: Any = None) -> str | None:
        scene = self.m["PlanningScene"](is_diff=True)
        scene.robot_state.is_diff = True
        if box is not None:
            collision = self.collision_object(box)
            self._collision_pub.publish(collision)
            scene.world.collision_objects = [collision]
        if attached is not None:
            scene.robot_state.attached_collision_objects = [attached]
        if not self._apply_scene.wait_for_service(timeout_sec=self._settings.server_timeout_s):
            return f"planning scene service {self._settings.apply_scene_service} not available"
        future = self._apply_scene.call_async(self.m["ApplyPlanningScene"].Request(scene=scene))
        if wait_for_future(future, self._settings.stage_timeout_s) != "done":
            return "the planning scene update timed out"
        return None if future.result().success else "move_group refused the planning scene update"

    def _run_gripper(self, request: GripperRequest, should_cancel: CancelCheck) -> str | None:
        """Send the GripperCommand goal; None when the stage succeeded (a stall on the object
        included), else why not."""
        s = self._settings
        response = self._run_action(self._gripper, self.gripper_goal(request), should_cancel)
        if isinstance(response, str):
            return response
        r = response.result
        outcome = gripper_outcome(request, GripperResult(
            STATUS_WORDS.get(response.status, f"status {response.status}"), r.position,
            r.effort, r.stalled, r.reached_goal), s.request)
        return None if outcome.ok else outcome.message

    def _run_goal(self, client: ActionClient, goal: Any, should_cancel: CancelCheck) -> str | None:
        response = self._run_action(client, goal, should_cancel)
        if isinstance(response, str):
            return response
        code = response.result.error_code.val
        return None if code == SUCCESS else f"MoveIt error code {code}"

    def _run_action(self, client: ActionClient, goal: Any, should_cancel: CancelCheck) -> Any:
        """The action's response (status + result), or a string saying why there is none."""
        s = self._settings
        if not client.wait_for_server(timeout_sec=s.server_timeout_s):
            return "action server not available"
        goal_future = client.send_goal_async(goal)
        if wait_for_future(goal_future, s.stage_timeout_s) != "done":
            return "no answer to the goal request"
        handle = goal_future.result()
        if handle is None or not handle.accepted:
            return "goal rejected"
        result_future = handle.get_result_async()
        outcome = wait_for_future(result_future, s.stage_timeout_s, should_cancel)
        if outcome != "done":
            wait_for_future(handle.cancel_goal_async(), s.cancel_timeout_s)
            wait_for_future(result_future, s.cancel_timeout_s)
            return "canceled" if outcome == "cancel" else f"timed out after {s.stage_timeout_s} s"
        return result_future.result()

    def _run_cartesian(self, request: MotionRequest, should_cancel: CancelCheck) -> str | None:
        s = self._settings
        if not self._cartesian.wait_for_service(timeout_sec=s.server_timeout_s):
            return f"service {s.cartesian_path_service} not available"
        future = self._cartesian.call_async(self.cartesian_request(request))
        if wait_for_future(future, s.stage_timeout_s, should_cancel) != "done":
            return "canceled" if should_cancel() else "Cartesian planning timed out"
        path = future.result()
        if path.fraction < s.cartesian_min_fraction:
            return (f"only {path.fraction:.0%} of the straight path is feasible "
                    f"(need {s.cartesian_min_fraction:.0%})")
        goal = self.m["ExecuteTrajectory"].Goal(trajectory=path.solution)
        return self._run_goal(self._execute, goal, should_cancel)

    def execute(
        self, plan: ExecutionPlan, on_stage: StageCallback, should_cancel: CancelCheck
    ) -> ExecutionResult:
        requests = stage_requests(plan.poses, plan.frame_id, self._settings.request)
        box = None
        if plan.obj is not None:
            box = collision_box_for(plan.obj, plan.frame_id, plan.object_id)
        updates = scene_updates(requests, box, self._settings.request)
        if plan.obj is not None:
            failure = self._apply(box)
            if failure is not None:
                return ExecutionResult(False, f"planning scene: {failure}",
                                       failed_stage=requests[0][0])
        done: list[str] = []
        for index, (stage, request) in enumerate(requests):
            if should_cancel():
                return ExecutionResult(False, f"canceled before {stage}", failed_stage=stage,
                                       canceled=True, stages_done=done)
            on_stage(stage, f"{stage} ({index + 1}/{len(requests)})", index / len(requests))
            if stage == "grasp" and box is not None:  # the approach enters the box by design
                box = collision_box_for(plan.obj, plan.frame_id, plan.object_id, "remove")
                self._apply(box)
            if isinstance(request, GripperRequest):
                failure = self._run_gripper(request, should_cancel)
            elif request.cartesian:
                failure = self._run_cartesian(request, should_cancel)
            else:
                failure = self._run_goal(self._move_group,
                                         self.move_group_goal(request, plan.frame_id),
                                         should_cancel)
            if failure is not None:
                return ExecutionResult(False, f"{stage}: {failure}", failed_stage=stage,
                                       canceled=failure == "canceled", stages_done=done)
            update = updates[index]
            failure = None if update is None else self._apply(
                attached=self.attached_object(update, plan.frame_id))
            if failure is not None:
                return ExecutionResult(False, f"{stage}: planning scene: {failure}",
                                       failed_stage=stage, stages_done=done)
            done.append(stage)
        message = f"pick-and-place executed by MoveIt ({len(requests)} stages)"
        on_stage("done", message, 1.0)
        return ExecutionResult(True, message, stages_done=done)

    def close(self) -> None:
        self._gripper.destroy()
        self._move_group.destroy()
        self._execute.destroy()
