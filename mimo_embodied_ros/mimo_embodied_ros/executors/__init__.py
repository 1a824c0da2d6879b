"""Arm executors behind one interface (base.ArmExecutor), chosen by the bridge's `executor`."""

from mimo_embodied_ros.executors.base import (
    ArmExecutor,
    ExecutionPlan,
    ExecutionResult,
    ExecutorConfigurationError,
)
from mimo_embodied_ros.executors.factory import (
    EXECUTOR_KINDS,
    EXECUTOR_PARAMETERS,
    create_executor,
)

__all__ = [
    "EXECUTOR_KINDS",
    "EXECUTOR_PARAMETERS",
    "ArmExecutor",
    "ExecutionPlan",
    "ExecutionResult",
    "ExecutorConfigurationError",
    "create_executor",
]
