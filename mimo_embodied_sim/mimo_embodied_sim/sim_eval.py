"""Closed-loop evaluations in simulation, one line per setting (`make sim-eval`).

    pickplace success: <K>/<N> noise_px=<P>    (MuJoCo Panda, scripted model, seeded episodes)
    navigation success: <K>/<N>                 (apartment, diff-drive base, seeded episodes)

Each evaluation runs the real node graph (simulator node, perception node with the scripted
backend answering from ground truth, manipulation bridge or navigator) over DDS on loopback.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", "64")

from mimo_embodied_sim.eval_navigation import evaluate_navigation  # noqa: E402
from mimo_embodied_sim.eval_pickplace import evaluate_pickplace  # noqa: E402

PICKPLACE_NOISE_PX = (0.0, 5.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=10, help="episodes per setting")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--only", choices=("pickplace", "navigation"), default=None)
    args = parser.parse_args(argv)
    if args.only in (None, "pickplace"):
        for noise_px in PICKPLACE_NOISE_PX:
            result = evaluate_pickplace(episodes=args.episodes, noise_px=noise_px, seed=args.seed)
            print(f"pickplace success: {result.successes}/{result.episodes} noise_px={noise_px:g}",
                  flush=True)
    if args.only in (None, "navigation"):
        result = evaluate_navigation(episodes=args.episodes, seed=args.seed)
        print(f"navigation success: {result.successes}/{result.episodes}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
