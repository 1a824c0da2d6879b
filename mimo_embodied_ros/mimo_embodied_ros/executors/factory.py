"""create_executor: the `executor` parameter -> an ArmExecutor, with that kind's settings."""

from __future__ import annotations

from typing import Any

from rclpy.node import Node

from mimo_embodied_ros.executors.base import ArmExecutor, ExecutorConfigurationError

EXECUTOR_KINDS = ("moveit", "sim", "none")


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

