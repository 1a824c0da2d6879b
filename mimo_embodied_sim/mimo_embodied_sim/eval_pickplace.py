"""Closed-loop pick-and-place evaluation: the real node graph on seeded simulated episodes.

    python -m mimo_embodied_sim.eval_pickplace --episodes 10 --noise-px 0 5
    python -m mimo_embodied_sim.eval_pickplace --episodes 10 --noise-px 0 --model-latency-s 3

Runs config/sim_pickplace.yaml in one process (MuJoCo Panda sim, perception node with the
scripted backend answering from ground truth, manipulation bridge with the `sim` executor) and,
per episode, sends the episode's instruction ("put the red cube in the tray") to
/manipulation_bridge/pick_place over DDS. Success is the simulator's ground truth after the arm is
done: the object rests inside the receptacle. Prints one line per setting:
`pickplace success: <K>/<N> noise_px=<P>`, and with a model latency (the scripted model answers
after `model_latency_s` seconds, as a 7B in thinking mode does) the camera runs at 30 Hz of
simulated time in real time, as on a robot:
`pickplace success: <K>/<N> noise_px=<P> model_latency_s=<L>`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "64")

import rclpy  # noqa: E402 - after the DDS environment is set
from rclpy.action import ActionClient  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from mimo_embodied_msgs.action import PickPlace  # noqa: E402
from mimo_embodied_ros.ros.sync import stamp_seconds  # noqa: E402
from mimo_embodied_ros.runner import run_graph  # noqa: E402
from mimo_embodied_sim.answers import write_answers_file  # noqa: E402

GRAPH = "sim_pickplace.yaml"
ROBOT_TIMING = {"real_time_factor": 1.0, "camera_rate_hz": 30.0}  # with a model latency
EPISODE_TIMEOUT_S = 180.0  # wall seconds for one pick-and-place on a loaded 2-core machine
SETTLE_SIM_S = 0.5  # simulated seconds the scene gets to come to rest before success is judged


@dataclass
class EvalResult:
    successes: int
    episodes: int
    details: list[dict[str, Any]] = field(default_factory=list)


def _spin_until(executor: SingleThreadedExecutor, condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
    return bool(condition())


class _Episodes:
    """The running graph plus a client node: resets episodes and sends PickPlace goals."""

    def __init__(self, runner: Any, context: Context) -> None:
        self.sim = runner.nodes["pickplace_sim"]
        self.perception = runner.nodes["mimo_embodied"]
        self.node = Node("pickplace_eval", context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.action = ActionClient(self.node, PickPlace, "/manipulation_bridge/pick_place")
        self.reset_client = self.node.create_client(Trigger, "/pickplace_sim/reset")

    def close(self) -> None:
        self.executor.shutdown()
        self.action.destroy()
        self.node.destroy_node()

    def answers_written(self) -> int:
        return self.sim.answers_written

    def wait_ready(self, written_before: int) -> None:
        """Until the sim has written the answers of the current scene (a write after
        `written_before` with none pending, read under the sim's lock so that a write in progress
        does not count) and the perception node holds a frame taken after that write: the
        answers and the image then show the same settled scene."""
        written_at: list[float] = []

        def ready() -> bool:
            if not written_at:
                settled_at = self.sim.answers_settled_at(written_before)
                if settled_at is None:
                    return False
                written_at.append(settled_at)
            latest = self.perception._sync.latest()
            return latest is not None and stamp_seconds(latest.image.header.stamp) >= written_at[0]

        if not _spin_until(self.executor, ready, 60.0):
            raise RuntimeError("the simulator never settled and published a new frame")

    def reset(self) -> None:
        if not self.reset_client.wait_for_service(timeout_sec=20.0):
            raise RuntimeError("/pickplace_sim/reset never appeared")
        future = self.reset_client.call_async(Trigger.Request())
        if not _spin_until(self.executor, future.done, 30.0) or not future.result().success:
            raise RuntimeError(f"reset failed: {future.result() if future.done() else 'timeout'}")

    def pick_place(self, instruction: str) -> PickPlace.Result:
        if not self.action.wait_for_server(timeout_sec=20.0):
            raise RuntimeError("/manipulation_bridge/pick_place never appeared")
        goal_future = self.action.send_goal_async(PickPlace.Goal(instruction=instruction))
        if not _spin_until(self.executor, goal_future.done, 20.0):
            raise RuntimeError("the bridge never answered the goal request")
        handle = goal_future.result()
        if not handle.accepted:
            return PickPlace.Result(success=False, failed_stage="rejected",
                                    message="goal rejected")
        result_future = handle.get_result_async()
        if not _spin_until(self.executor, result_future.done, EPISODE_TIMEOUT_S):
            handle.cancel_goal_async()
            _spin_until(self.executor, result_future.done, 10.0)
            return PickPlace.Result(success=False, failed_stage="timeout",
                                    message=f"no result within {EPISODE_TIMEOUT_S:g} s")
        return result_future.result().result

    def settle(self) -> None:
        start = self.sim.sim_time_s
        _spin_until(self.executor, lambda: self.sim.sim_time_s - start >= SETTLE_SIM_S, 20.0)


def evaluate_pickplace(
    episodes: int = 10,
    noise_px: float = 0.0,
    seed: int = 0,
    real_time_factor: float = 8.0,
    camera_rate_hz: float = 2.0,
    context: Context | None = None,
    log: Any = None,
    model_latency_s: float = 0.0,
) -> EvalResult:
    """Run `episodes` seeded episodes (seeds seed .. seed + episodes - 1) with the oracle's
    pointing noise `noise_px` (source pixels); success = the simulator's ground truth.

    The simulator runs `real_time_factor` times faster than the wall clock, and renders the
    camera at `camera_rate_hz` of simulated time: the bridge needs one frame per episode, and
    rendering while the arm moves is most of the CPU time otherwise. `model_latency_s` > 0 makes
    the scripted model answer after that many seconds (cancellable, like a real generation);
    pass ROBOT_TIMING's rate and factor with it to time like a robot (`evaluate_robot_timing`).
    """
    own_context = context is None
    if own_context:
        context = Context()
        rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    result = EvalResult(successes=0, episodes=episodes)
    try:
        with tempfile.TemporaryDirectory(prefix="pickplace_eval_") as folder:
            answers = str(Path(folder) / "answers.yaml")
            # The scripted backend needs the file at start-up; the sim rewrites it once settled.
            write_answers_file(answers, {"*": "<think>\nNot ready.\n</think>\n[]"})
            overrides = {
                "pickplace_sim": {"answers_file": answers, "answer_noise_px": float(noise_px),
                                  "episode_seed": seed, "answer_seed": seed,
                                  "real_time_factor": float(real_time_factor),
                                  "camera_rate_hz": float(camera_rate_hz)},
                "mimo_embodied": {"scripted.answers_file": answers,
                                  "scripted.delay_s": float(model_latency_s),
                                  "debug_image.max_rate_hz": 0.0},
            }
            with run_graph(GRAPH, overrides, context) as runner:
                loop = _Episodes(runner, context)
                try:
                    for index in range(episodes):
                        started = time.monotonic()
                        written_before = loop.answers_written() if index else 0
                        if index > 0:
                            loop.reset()
                        loop.wait_ready(written_before)
                        world = loop.sim.world
                        instruction = world.task_instruction()
                        outcome = loop.pick_place(instruction)
                        loop.settle()
                        success, why = loop.sim.world.success()
                        pick = outcome.target.pick_point
                        detail = {
                            "seed": world.seed, "instruction": instruction,
                            "success": bool(success), "ground_truth": why,
                            "bridge_success": bool(outcome.success),
                            "failed_stage": outcome.failed_stage, "message": outcome.message,
                            "pick_point": [round(pick.x, 3), round(pick.y, 3), round(pick.z, 3)],
                            "wall_s": round(time.monotonic() - started, 2),
                        }
                        result.details.append(detail)
                        result.successes += int(success)
                        if log is not None:
                            log(detail)
                finally:
                    loop.close()
    finally:
        if own_context:
            context.try_shutdown()
    return result


def evaluate_robot_timing(episodes: int = 10, noise_px: float = 0.0, seed: int = 0,
                          model_latency_s: float = 3.0, log: Any = None) -> EvalResult:
    """The evaluation timed like a robot: the model answers after `model_latency_s`, the camera
    sends 30 frames per second of simulated time, and the simulation runs in real time."""
    return evaluate_pickplace(episodes, noise_px, seed, log=log, model_latency_s=model_latency_s,
                              **ROBOT_TIMING)


def result_line(result: EvalResult, noise_px: float, model_latency_s: float = 0.0) -> str:
    line = f"pickplace success: {result.successes}/{result.episodes} noise_px={noise_px:g}"
    return line + (f" model_latency_s={model_latency_s:g}" if model_latency_s > 0 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise-px", type=float, nargs="+", default=[0.0, 5.0])
    parser.add_argument("--model-latency-s", type=float, default=0.0,
                        help="scripted model latency, seconds; > 0 also runs the camera at 30 Hz "
                             "in real time")
    parser.add_argument("--verbose", action="store_true", help="print each episode")
    args = parser.parse_args(argv)
    log = print if args.verbose else None
    for noise_px in args.noise_px:
        if args.model_latency_s > 0:
            result = evaluate_robot_timing(args.episodes, noise_px, args.seed,
                                           args.model_latency_s, log=log)
        else:
            result = evaluate_pickplace(args.episodes, noise_px, args.seed, log=log)
        print(result_line(result, noise_px, args.model_latency_s), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
