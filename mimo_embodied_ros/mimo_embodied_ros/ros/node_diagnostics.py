"""What the bridge and the navigator report on /diagnostics: the goal in flight and the outcomes.

ros/diagnostics.py builds the message from plain values; this keeps the values both action nodes
share (stage of the goal in flight, last outcome, goals counted by outcome), thread-safe: the
action thread writes, the diagnostics timer reads.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rclpy.node import Node

from mimo_embodied_ros.ros.diagnostics import diagnostics_msg

OUTCOMES = ("succeeded", "failed", "cancelled", "refused")


class GoalTracker:
    """Stage of the goal in flight and a count of finished goals per outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stage = "idle"
        self.goal = ""
        self.last = "none yet"
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self._started = 0.0

    def start(self, goal: str) -> None:
        with self._lock:
            self.stage, self.goal, self._started = "starting", goal, time.monotonic()

    def set_stage(self, stage: str) -> None:
        with self._lock:
            if self.goal:
                self.stage = stage

    def finish(self, outcome: str, message: str) -> None:
        """``outcome`` one of OUTCOMES; ``message`` the result's message."""
        with self._lock:
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            self.last = f"{outcome}: {message}"
            self.stage, self.goal = "idle", ""

    def refused(self, message: str) -> None:
        """A goal refused while another runs: counted, the one in flight stays reported."""
        with self._lock:
            self.counts["refused"] += 1
            self.last = f"refused: {message}"

    def values(self) -> dict[str, str]:
        with self._lock:
            running = f"{time.monotonic() - self._started:.1f}" if self.goal else ""
            return {"stage": self.stage, "goal": self.goal, "goal_running_s": running,
                    "last_outcome": self.last,
                    **{f"goals_{k}": str(v) for k, v in self.counts.items()}}


def publish_diagnostics(node: Node, publisher: Any, name: str, values: dict[str, str],
                        problems: list[str]) -> None:
    """One status: WARN with the problems joined as the message, else OK."""
    message = "; ".join(problems) if problems else "ok"
    publisher.publish(diagnostics_msg(name, values, bool(problems), message,
                                      node.get_clock().now().to_msg()))


def input_age(last_monotonic: float | None, what: str, stale_after_s: float) -> (
        tuple[float | None, list[str]]):
    """Seconds since an input last arrived (None: never) and the problem to report, if any."""
    if last_monotonic is None:
        return None, [f"no {what} received"]
    age = time.monotonic() - last_monotonic
    if age > stale_after_s:
        return age, [f"{what} stale: the newest arrived {age:.1f} s ago"]
    return age, []


def age_text(age: Any) -> str:
    return "" if age is None else f"{age:.2f}"
