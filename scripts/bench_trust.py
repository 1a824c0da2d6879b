"""Figures behind the perception node's robustness (`make bench` runs it after bench.py).

Prints:
  bench cancel_stop_ms median=<ms> max=<ms> runs=<n>   cancel -> generation stopped (tiny model)
  bench hostile_answers per_s=<n> count=<n> internal_errors=<n>   parse+rescale+lift+messages+draw
  bench self_check_ms tiny_model=<ms>                  the configure-time self-check
  bench node_cpu 640x480 30Hz inactive_percent=<p> active_percent=<p>
                                                       CPU of the perception node's process while a
                                                       camera process publishes RGB-D at 30 Hz

The tiny random Qwen2.5-VL is built here (as the tests do) and runs in-process on the CPU through
the same loading code as MiMo-Embodied-7B; it never writes an end token, so every generation is
as long as its budget and a cancel always lands mid-generation.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "63")
REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "mimo_embodied_ros", REPO / "mimo_embodied_ros" / "test"):
    sys.path.insert(0, str(extra))

import numpy as np  # noqa: E402

from mimo_embodied_ros.backends.base import BackendError, ModelRequest  # noqa: E402
from mimo_embodied_ros.perception import Frame, QuerySettings, run_query  # noqa: E402


def cancel_latency(model_dir: Path, runs: int = 5) -> list[float]:
    from mimo_embodied_ros.backends.transformers_backend import TransformersBackend

    backend = TransformersBackend(model_path=model_dir, max_pixels=200704, max_new_tokens=10**5)
    stops = []
    try:
        for run in range(runs):
            request = ModelRequest(images=[np.zeros((56, 84, 3), np.uint8)], task_text="hi",
                                   instruction="hi", max_new_tokens=10**5)
            ended: list[float] = []

            def generate(request: ModelRequest = request, ended: list[float] = ended) -> None:
                with contextlib.suppress(BackendError):  # "cancelled", as intended
                    backend.generate(request)
                ended.append(time.monotonic())

            worker = threading.Thread(target=generate)
            worker.start()
            time.sleep(0.5 + 0.1 * run)
            cancelled = time.monotonic()
            request.cancel.set()
            worker.join()
            stops.append((ended[0] - cancelled) * 1e3)
    finally:
        backend.close()
    return stops


def hostile_throughput(count: int = 2000) -> tuple[float, int]:
    from hostile_answers import hostile_cases
    from std_msgs.msg import Header

    from mimo_embodied_ros.backends.scripted import ScriptedBackend
    from mimo_embodied_ros.core.types import CameraIntrinsics
    from mimo_embodied_ros.ros import conversions

    cases = hostile_cases(count, seed=8)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "answers.json"
        path.write_text(json.dumps({f"case {i}": text for i, (_, text) in enumerate(cases)}))
        backend = ScriptedBackend(path)
        k = CameraIntrinsics(fx=130.0, fy=130.0, cx=79.5, cy=59.5, width=160, height=120)
        frame = Frame(rgb=np.zeros((120, 160, 3), np.uint8),
                      depth_m=np.full((120, 160), 0.9, np.float32), intrinsics=k)
        internal = 0
        started = time.perf_counter()
        for index, (task, _) in enumerate(cases):
            result = run_query(backend, frame, f"case {index}", task, QuerySettings())
            internal += result.error_kind == "internal"
            conversions.affordances_msg(result, Header(), "scripted")
            conversions.objects_msg(result, Header(), "scripted")
            conversions.annotated_rgb(frame.rgb, result, k)
        return count / (time.perf_counter() - started), internal


def self_check_ms(model_dir: Path) -> float:
    from mimo_embodied_ros.backends.transformers_backend import TransformersBackend
    from mimo_embodied_ros.self_check import run_self_check

    backend = TransformersBackend(model_path=model_dir, max_pixels=1003520)
    try:
        started = time.perf_counter()
        report = run_self_check(backend, QuerySettings(), max_new_tokens=32)
        assert report.ok, report.reason
        return (time.perf_counter() - started) * 1e3
    finally:
        backend.close()


def node_cpu(seconds: float = 5.0) -> tuple[float, float]:
    """Percent of one core the perception node's process uses under a 30 Hz 640x480 camera,
    unconfigured (no subscriptions) and then active."""
    import subprocess

    import rclpy
    from rclpy.context import Context

    from mimo_embodied_ros.runner import GraphRunner, load_graph

    entry = next(e for e in load_graph("robot.yaml") if e["name"] == "mimo_embodied")
    camera = subprocess.Popen([sys.executable, str(REPO / "scripts" / "bench.py"), "--publish",
                               "640x480", "--rate", "30"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, text=True, env=os.environ.copy())
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    figures = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            answers = Path(folder) / "a.yaml"
            answers.write_text("'*': '[]'\n")
            for autostart in (False, True):
                runner = GraphRunner([entry], {"mimo_embodied": {
                    "backend": "scripted", "scripted.answers_file": str(answers),
                    "autostart": autostart}}, context)
                try:
                    time.sleep(2.0)  # discovery, first frames
                    cpu, wall = time.process_time(), time.monotonic()
                    time.sleep(seconds)
                    figures.append(100.0 * (time.process_time() - cpu) / (time.monotonic() - wall))
                    received = runner.nodes["mimo_embodied"]._sync.counts["image"]
                    assert (received > 0) == autostart, f"received {received} frames"
                finally:
                    runner.shutdown()
    finally:
        camera.stdin.close()
        camera.wait(timeout=30)
        context.try_shutdown()
    return figures[0], figures[1]


def main() -> None:
    from tiny_qwen import build_tiny_qwen

    with tempfile.TemporaryDirectory() as folder:
        model_dir = build_tiny_qwen(Path(folder))
        stops = cancel_latency(model_dir)
        print(f"bench cancel_stop_ms median={statistics.median(stops):.1f} "
              f"max={max(stops):.1f} runs={len(stops)}", flush=True)
        per_s, internal = hostile_throughput()
        print(f"bench hostile_answers per_s={per_s:.0f} count=2000 internal_errors={internal}",
              flush=True)
        print(f"bench self_check_ms tiny_model={self_check_ms(model_dir):.0f}", flush=True)
    inactive, active = node_cpu()
    print(f"bench node_cpu 640x480 30Hz inactive_percent={inactive:.1f} "
          f"active_percent={active:.1f}", flush=True)


if __name__ == "__main__":
    main()
