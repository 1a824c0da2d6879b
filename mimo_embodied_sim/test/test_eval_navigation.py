"""Issue 4's and issue 9's closed-loop bars, lean for the test suite (`make sim-eval` runs the full
10 episodes of each setting and must show >= 9/10):

- 5 seeded apartment episodes (5 different instructions) with an instant model: >= 4/5;
- 2 episodes with the scripted model answering 3 s late (a 7B thinking on a robot): >= 1/2, and
  each success scored as tightly as the instant ones.

The real graph runs (apartment sim with its Nav2 stand-in, perception node with the scripted
backend reading the simulator's oracle answers, navigator) over DDS on loopback; the base drives
and turns in real time, so this takes about 5 minutes on 2 CPU cores (hence its own timeouts).
"""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.closed_loop

os.environ.setdefault("ROS_DOMAIN_ID", "66")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never leave this machine

from mimo_embodied_sim.eval_navigation import evaluate_navigation  # noqa: E402


def _summary(result) -> str:
    return "\n".join(
        f"{d['instruction']} -> {d['target']}: success={d['success']} "
        f"{d['distance_m']:.2f} m {d['heading_error_deg']:.0f} deg: {d['message']}"
        for d in result.details)


def _check_successes(result) -> None:
    for d in result.details:
        assert d["target"] not in d["instruction"].lower()  # reasoned out, never named
        if d["success"]:
            assert d["distance_m"] <= 1.0 and d["heading_error_deg"] <= 30.0
            assert d["collisions"] == 0 and d["room"] is not None


@pytest.mark.timeout(900)
def test_navigation_success_over_seeded_episodes():
    result = evaluate_navigation(episodes=5, seed=0)
    assert result.episodes == len(result.details) == 5
    assert len({d["instruction"] for d in result.details}) >= 4
    _check_successes(result)
    assert result.successes >= 4, _summary(result)


@pytest.mark.timeout(900)
def test_navigation_with_a_model_answering_after_three_seconds():
    result = evaluate_navigation(episodes=2, seed=5, model_latency_s=3.0)
    assert result.episodes == len(result.details) == 2
    _check_successes(result)
    assert result.successes >= 1, _summary(result)
