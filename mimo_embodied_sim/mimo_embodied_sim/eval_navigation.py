"""Closed-loop navigation evaluation: seeded apartment episodes through the real node graph.

Each episode resets the apartment over its ROS service (a seeded random start outside the target's
room; the instruction is the table entry the seed picks, never naming the target), sends the
episode's instruction to /navigator/navigate_to, waits for the result and for the base to stop,
and scores the final pose with the simulator's ground truth (ApartmentWorld.evaluate: within 1.0 m
of the target's footprint, facing it within 30 deg, no collision). The perception node runs the
scripted backend on the answers file the simulator writes, so parsing, smart-resize rescaling,
depth lifting, pose interpolation, snapping and the base's motion are all real.

With ``model_latency_s`` > 0 the scripted backend answers each query that many seconds late
(perception parameter ``scripted.delay_s``), as a 7B model in thinking mode does on a robot.

    python -m mimo_embodied_sim.eval_navigation --episodes 10 --seed 0 [--model-latency-s 3]
    navigation success: 10/10 [model_latency_s=3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "64")
os.environ.setdefault("MUJOCO_GL", "egl")

import rclpy  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from mimo_embodied_msgs.action import NavigateTo  # noqa: E402
from mimo_embodied_ros.runner import run_graph  # noqa: E402

GRAPH = "sim_apartment.yaml"
REST_TIMEOUT_S = 10.0  # wall seconds to wait for the base to come to rest after the action


@dataclass
class EvalResult:
    """Successes out of episodes, and per episode the instruction, outcome and scoring details."""

    successes: int
    episodes: int
    details: list[dict[str, Any]] = field(default_factory=list)


class _Client:
    """The evaluator's own node: the NavigateTo client and the reset client, spun in a thread."""

    def __init__(self, context: Context) -> None:
        self.node = Node("navigation_eval", context=context)
        self.navigate = ActionClient(self.node, NavigateTo, "/navigator/navigate_to")
        self.reset = self.node.create_client(Trigger, "/apartment_sim/reset")
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        if not self.navigate.wait_for_server(timeout_sec=30.0):
            raise RuntimeError("/navigator/navigate_to never appeared")
        if not self.reset.wait_for_service(timeout_sec=30.0):
            raise RuntimeError("/apartment_sim/reset never appeared")

    def call_reset(self, timeout_s: float = 30.0) -> Trigger.Response:
        future = self.reset.call_async(Trigger.Request())
        _wait(future.done, timeout_s, "the apartment reset")
        return future.result()

    def run(self, instruction: str, timeout_s: float) -> tuple[NavigateTo.Result | None, str]:
        sent = self.navigate.send_goal_async(NavigateTo.Goal(instruction=instruction))
        _wait(sent.done, 30.0, "goal acceptance")
        handle = sent.result()
        if handle is None or not handle.accepted:
            return None, "goal rejected"
        result = handle.get_result_async()
        deadline = time.monotonic() + timeout_s
        while not result.done() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not result.done():
            cancel = handle.cancel_goal_async()
            _wait(lambda: result.done() or cancel.done(), 30.0, "cancellation")
            return None, f"no result within {timeout_s:.0f} s (cancelled)"
        return result.result().result, ""

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)
        self.navigate.destroy()
        self.node.destroy_node()


def _wait(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.02)


def evaluate_navigation(
    episodes: int = 10,
    seed: int = 0,
    noise_px: float = 0.0,
    episode_timeout_s: float | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    log: Any = None,
    model_latency_s: float = 0.0,
) -> EvalResult:
    """Run ``episodes`` seeded episodes (seeds seed .. seed+episodes-1) and score each one.

    ``overrides`` are per-node parameter overrides of the graph (e.g. the sim's
    real_time_factor); ``log`` (a text stream) receives one line per episode;
    ``model_latency_s`` delays every model answer (scripted.delay_s). An episode asks up to about
    20 questions, so its default timeout grows by 20 x the latency.
    """
    if episodes < 1:
        raise ValueError("episodes must be >= 1")
    if model_latency_s < 0.0:
        raise ValueError("model_latency_s must be >= 0")
    if episode_timeout_s is None:
        episode_timeout_s = 240.0 + 20.0 * model_latency_s
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    details: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="nav_eval_") as tmp:
            answers = str(Path(tmp) / "answers.yaml")
            graph_overrides: dict[str, dict[str, Any]] = {
                # The sim starts episode `seed` and adds 1 on every reset.
                "apartment_sim": {"seed": seed, "answers_file": answers,
                                  "answer_noise_px": float(noise_px), "answer_seed": seed},
                "mimo_embodied": {"scripted.answers_file": answers,
                                  "scripted.delay_s": float(model_latency_s)},
            }
            for name, values in (overrides or {}).items():
                graph_overrides.setdefault(name, {}).update(values)
            with run_graph(GRAPH, graph_overrides, context) as runner:
                world = runner.nodes["apartment_sim"].world
                client = _Client(context)
                try:
                    for index in range(episodes):
                        details.append(_episode(client, world, episode_timeout_s, index > 0))
                        if log is not None:
                            print(_describe(details[-1]), file=log, flush=True)
                finally:
                    client.close()
    finally:
        context.try_shutdown()
    successes = sum(1 for d in details if d["success"])
    return EvalResult(successes, episodes, details)


def _episode(client: _Client, world: Any, timeout_s: float, reset: bool) -> dict[str, Any]:
    reset_message = client.call_reset().message if reset else "first episode"
    entry = world.episode()
    started = time.monotonic()
    result, problem = client.run(entry.instruction, timeout_s)
    _wait_for_rest(world)
    success, scored = world.evaluate(entry.target)
    navigated = result is not None and result.success
    return {
        "seed": world.seed, "instruction": entry.instruction, "target": entry.target,
        "success": bool(success and navigated), "scored_success": bool(success),
        "navigator_success": navigated,
        "failed_stage": result.failed_stage if result is not None else "timeout",
        "message": result.message if result is not None else problem,
        "region": result.region if result is not None else "",
        "wall_s": time.monotonic() - started, "reset": reset_message, **scored,
    }


def _wait_for_rest(world: Any) -> None:
    deadline = time.monotonic() + REST_TIMEOUT_S
    while world.is_moving() and time.monotonic() < deadline:
        time.sleep(0.05)


def _describe(d: dict[str, Any]) -> str:
    outcome = "ok  " if d["success"] else "FAIL"
    return (f"{outcome} seed {d['seed']} '{d['instruction']}' -> {d['target']}: "
            f"{d['distance_m']:.2f} m, heading error {d['heading_error_deg']:.0f} deg, "
            f"collisions {d['collisions']}, {d['wall_s']:.0f} s; {d['message']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--noise-px", type=float, default=0.0,
                        help="Gaussian noise of the oracle's points, source pixels")
    parser.add_argument("--model-latency-s", type=float, default=0.0,
                        help="seconds the scripted model takes per answer")
    parser.add_argument("--verbose", action="store_true", help="one line per episode (stderr)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    result = evaluate_navigation(args.episodes, args.seed, args.noise_px,
                                 log=sys.stderr if args.verbose else None,
                                 model_latency_s=args.model_latency_s)
    latency = f" model_latency_s={args.model_latency_s:g}" if args.model_latency_s else ""
    print(f"navigation success: {result.successes}/{result.episodes}{latency}", flush=True)
    print(f"wall time {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
