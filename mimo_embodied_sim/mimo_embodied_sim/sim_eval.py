"""Closed-loop evaluations in simulation, one line per setting (`make sim-eval`).

    pickplace success: <K>/<N> noise_px=<P>    (MuJoCo Panda, scripted model, seeded episodes)
    pickplace success: <K>/<N> noise_px=0 model_latency_s=<L>   (timed like a robot: the model
                                                answers after L s, camera 30 Hz in real time)
    navigation success: <K>/<N>                 (apartment, diff-drive base, seeded episodes)
    navigation success: <K>/<N> model_latency_s=<L>

Each evaluation runs the real node graph (simulator node, perception node with the scripted
backend answering from ground truth, manipulation bridge or navigator) over DDS on loopback.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "64")

from mimo_embodied_sim.eval_navigation import evaluate_navigation  # noqa: E402
from mimo_embodied_sim.eval_pickplace import (  # noqa: E402
    evaluate_pickplace,
    evaluate_robot_timing,
    result_line,
)

PICKPLACE_NOISE_PX = (0.0, 5.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per setting")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--only", choices=("pickplace", "navigation"), default=None)
    parser.add_argument("--model-latency-s", type=float, default=3.0,
                        help="scripted model latency of the robot-timed settings, seconds")
    args = parser.parse_args(argv)
    latency = float(args.model_latency_s)
    if args.only in (None, "pickplace"):
        for noise_px in PICKPLACE_NOISE_PX:
            result = evaluate_pickplace(episodes=args.episodes, noise_px=noise_px, seed=args.seed)
            print(result_line(result, noise_px), flush=True)
        result = evaluate_robot_timing(episodes=args.episodes, noise_px=0.0, seed=args.seed,
                                       model_latency_s=latency)
        print(result_line(result, 0.0, latency), flush=True)
    if args.only in (None, "navigation"):
        result = evaluate_navigation(episodes=args.episodes, seed=args.seed)
        print(f"navigation success: {result.successes}/{result.episodes}", flush=True)
        result = evaluate_navigation(episodes=args.episodes, seed=args.seed,
                                     model_latency_s=latency)
        print(f"navigation success: {result.successes}/{result.episodes} "
              f"model_latency_s={latency:g}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
