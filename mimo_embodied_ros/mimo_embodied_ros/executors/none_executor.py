"""The `none` executor: targets are published for an operator to check in RViz; nothing moves."""

from __future__ import annotations

from mimo_embodied_ros.executors.base import (
    CancelCheck,
    ExecutionPlan,
    ExecutionResult,
    StageCallback,
)


class NoneExecutor:
    """Reports success without motion, and says so: the result has executed=False."""

    kind = "none"

    def execute(
        self, plan: ExecutionPlan, on_stage: StageCallback, should_cancel: CancelCheck
    ) -> ExecutionResult:
        message = (
            f"targets published in '{plan.frame_id}'; not executed (executor 'none': "
            "set the parameter executor to 'moveit' or 'sim' to move the arm)"
        )
        on_stage("done", message, 1.0)
        return ExecutionResult(success=True, message=message, executed=False)

    def close(self) -> None:
        pass
