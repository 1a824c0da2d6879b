"""What recording costs a query (issue 12: never more than 1 ms at the median).

Prints:
  bench recording submit_ms median=<ms> p99=<ms> max=<ms> queries=<n>   QueryRecorder.submit()
  bench recording query_ms off=<ms> on=<ms> slowdown=<ms>   run_query + messages (+ submit)
  bench recording writer queries_per_s=<n> written=<n> mb_per_file=<MB> files=<n> dropped=<n>
    (queries_per_s: a burst queued at once, until on disk; the rest: the paced run)

Each query is a 640x480 RGB-D frame through perception.run_query with the scripted backend and
the node's message conversions, then (recording on) QueryRecorder.submit() as the node calls it
after publishing; the writer thread serializes and writes the bag meanwhile. The pause between
queries (--gap-ms, default 20) leaves the writer time as a real robot's model latency would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "63")
REPO = Path(__file__).resolve().parents[1]
for extra in (REPO / "mimo_embodied_ros",):
    sys.path.insert(0, str(extra))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from mimo_embodied_ros.backends.scripted import ScriptedBackend  # noqa: E402
from mimo_embodied_ros.core.resize import smart_resize, source_to_model  # noqa: E402
from mimo_embodied_ros.core.types import CameraIntrinsics, ImageSize  # noqa: E402
from mimo_embodied_ros.perception import Frame, QuerySettings, run_query  # noqa: E402
from mimo_embodied_ros.recording import QueryRecorder, recording_from_result  # noqa: E402
from mimo_embodied_ros.ros import conversions  # noqa: E402
from mimo_embodied_ros.ros.images import (  # noqa: E402
    array_to_image,
    camera_info_from_intrinsics,
)

WIDTH, HEIGHT = 640, 480
K = CameraIntrinsics(fx=525.0, fy=525.0, cx=319.5, cy=239.5, width=WIDTH, height=HEIGHT)
INSTRUCTION = "point at the red square"


class Holder:
    """Collects recordings instead of writing them."""

    def __init__(self) -> None:
        self.items: list = []

    def submit(self, item) -> bool:
        self.items.append(item)
        return True


def one_query(backend, settings, recorder, stamp: int) -> tuple[float, float]:
    """(query ms, submit ms) of one query as the node runs it."""
    rgb = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    rgb[280:320, 380:420] = (200, 30, 30)
    depth = np.full((HEIGHT, WIDTH), 0.8, np.float32)
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec = stamp
    image = array_to_image(rgb, "rgb8", header)
    depth_msg = array_to_image(depth, "32FC1", header)
    info = camera_info_from_intrinsics(K, header)
    started = time.perf_counter()
    result = run_query(backend, Frame(rgb, depth, K), INSTRUCTION, "", settings)
    affordances = conversions.affordances_msg(result, header, "scripted")
    submitted = time.perf_counter()
    if recorder is not None:
        recorder.submit(recording_from_result(
            image, depth_msg, info, result, task="", thinking="", settings=settings,
            backend="scripted", model_id=backend.model_id, affordances=affordances))
    ended = time.perf_counter()
    return (ended - started) * 1e3, (ended - submitted) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--gap-ms", type=float, default=20.0)
    args = parser.parse_args()
    settings = QuerySettings()
    resized = smart_resize(HEIGHT, WIDTH, max_pixels=settings.max_pixels)
    x, y = source_to_model(400, 300, resized, ImageSize(WIDTH, HEIGHT))
    with tempfile.TemporaryDirectory() as scratch:
        answers = Path(scratch) / "answers.yaml"
        answers.write_text(yaml.safe_dump(
            {INSTRUCTION: f'<think>red.</think>[{{"points": [[{x:.0f}, {y:.0f}]]}}]'}))
        backend = ScriptedBackend(answers)
        for _ in range(5):  # warm up imports and caches
            one_query(backend, settings, None, 1)
        off = []
        for index in range(args.queries):
            off.append(one_query(backend, settings, None, index)[0])
            time.sleep(args.gap_ms / 1e3)
        recorder = QueryRecorder(Path(scratch) / "rec", max_bytes=64 * 2**20, max_queries=0)
        on, submit = [], []
        for index in range(args.queries):
            query_ms, submit_ms = one_query(backend, settings, recorder, index)
            on.append(query_ms)
            submit.append(submit_ms)
            time.sleep(args.gap_ms / 1e3)
        recorder.flush(60.0)
        recorder.close()
        status = recorder.status()
        written = int(status["record_queries_written"])
        files = sorted(p for p in (Path(scratch) / "rec").rglob("*.mcap"))
        mb = statistics.mean(p.stat().st_size for p in files) / 2**20 if files else 0.0
        burst = QueryRecorder(Path(scratch) / "burst", max_bytes=0, max_queries=0,
                              queue_size=args.queries)
        held = Holder()
        for index in range(args.queries):
            one_query(backend, settings, held, index)
        started = time.perf_counter()
        for item in held.items:  # queued at once; time until all are on disk
            burst.submit(item)
        burst.flush(120.0)
        burst.close()
        per_s = args.queries / (time.perf_counter() - started)
    submit.sort()
    print(f"bench recording submit_ms median={statistics.median(submit):.3f} "
          f"p99={submit[int(0.99 * (len(submit) - 1))]:.3f} max={submit[-1]:.3f} "
          f"queries={len(submit)}")
    print(f"bench recording query_ms off={statistics.median(off):.2f} "
          f"on={statistics.median(on):.2f} "
          f"slowdown={statistics.median(on) - statistics.median(off):.2f}")
    print(f"bench recording writer queries_per_s={per_s:.0f} written={written} "
          f"mb_per_file={mb:.1f} files={len(files)} dropped={status['record_dropped_queue_full']}")


if __name__ == "__main__":
    main()
