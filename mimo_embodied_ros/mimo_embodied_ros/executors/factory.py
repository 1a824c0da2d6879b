"""create_executor: the `executor` parameter -> an ArmExecutor, with that kind's settings."""

from __future__ import annotations

from typing import Any

from rclpy.node import Node

from mimo_embodied_ros.executors.base import ArmExecutor, ExecutorConfigurationError

EXECUTOR_KINDS = ("moveit", "sim", "none")

# name -> description of the bridge parameters that configure the executors (the bridge declares
# them; defaults in config/manipulation.yaml). sim.* and moveit.* are that kind's settings.
EXECUTOR_PARAMETERS: dict[str, str] = {
    "sim.action_name": "MoveArm action of the simulator's arm.",
    "sim.server_timeout_s": "Max wait for the MoveArm action server, seconds.",
    "sim.stage_timeout_s": "Max duration of one stage, seconds.",
    "sim.min_grasp_width": "A close that stalls wider than this holds the object, metres.",
    "moveit.arm_group": "MoveIt planning group of the arm.",
    "moveit.hand_group": "MoveIt planning group of the gripper.",
    "moveit.tcp_link": "Link whose pose the targets are (tool centre point).",
    "moveit.finger_joints": "Finger joints of the hand group.",
    "moveit.planner_id": "Planner id; empty = the pipeline's default.",
    "moveit.max_velocity_scaling": "Velocity scaling factor, 0..1.",
    "moveit.max_acceleration_scaling": "Acceleration scaling factor, 0..1.",
    "moveit.allowed_planning_time": "Planning time per stage, seconds.",
    "moveit.move_group_action": "MoveGroup action name.",
    "moveit.execute_trajectory_action": "ExecuteTrajectory action name.",
    "moveit.cartesian_path_service": "GetCartesianPath service name.",
    "moveit.apply_scene_service": "ApplyPlanningScene service name.",
    "moveit.stage_timeout_s": "Max duration of one stage, seconds.",
    "moveit.gripper_action": "GripperCommand action of the hand (GripperActionController).",
    "moveit.gripper_max_effort": "GripperCommand max_effort, newtons.",
    "moveit.gripper_position_per_width": "GripperCommand position per metre of opening "
                                         "(Panda finger joint: 0.5).",
    "moveit.hand_link": "Link the held object is attached to during the transport.",
    "moveit.hand_touch_links": "Links allowed to touch the held object (attached to the TCP).",
    "moveit.min_grasp_width": "A close that stalls wider than this holds the object, metres.",
}


def create_executor(kind: str, node: Node, settings: dict[str, Any]) -> ArmExecutor:
    """The executor `kind` with its settings (flat names of that kind's dataclass).

    Raises ExecutorConfigurationError for an unknown kind, unknown settings, or a kind whose
    packages are missing (moveit without moveit_msgs).
    """
    if kind == "none":
        from mimo_embodied_ros.executors.none_executor import NoneExecutor

        return NoneExecutor()
    if kind == "sim":
        from mimo_embodied_ros.executors.sim_executor import SimExecutor, SimExecutorSettings

        return SimExecutor(node, _settings(SimExecutorSettings, settings, kind))
    if kind == "moveit":
        from mimo_embodied_ros.core.moveit_request import MoveItSettings
        from mimo_embodied_ros.executors.moveit_executor import (
            MoveItExecutor,
            MoveItExecutorSettings,
            import_moveit,
        )

        import_moveit()  # fail before anything else with what to install
        request_names = set(MoveItSettings.__dataclass_fields__)
        request = _settings(MoveItSettings, {k: v for k, v in settings.items()
                                             if k in request_names}, kind)
        rest = {k: v for k, v in settings.items() if k not in request_names}
        return MoveItExecutor(node, _settings(MoveItExecutorSettings,
                                              {**rest, "request": request}, kind))
    raise ExecutorConfigurationError(
        f"unknown executor '{kind}' (use one of: {', '.join(EXECUTOR_KINDS)})"
    )


def _settings(cls: type, values: dict[str, Any], kind: str) -> Any:
    unknown = sorted(set(values) - set(cls.__dataclass_fields__))
    if unknown:
        raise ExecutorConfigurationError(
            f"unknown settings for executor '{kind}': {', '.join(unknown)}"
        )
    # ROS array parameters arrive as lists; the frozen settings hold tuples.
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

