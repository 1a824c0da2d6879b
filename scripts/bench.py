"""CPU cost of each perception stage, frame delivery, and how fast the node ingests RGB-D frames.

`make bench` prints one line per measurement:
- `bench <stage> <W>x<H> median_ms=<value>`: the stages alone (decode, preprocess, parse, depth
  lift, 3D box);
- `bench resize_vs_pillow <W>x<H> pillow_ms=.. ours_ms=.. speedup=..`: the query's resize
  (core/bicubic.py, bit-equal to Pillow) against Pillow's own, same image, same run;
- `bench overhead_point|overhead_box3d <W>x<H> points|boxes=<n> median_ms=<value>`: one whole
  query around an instant model (the node's message conversion + run_query) at 640x480,
  1280x720 and 1920x1080 with 1, 4 and 16 points or boxes in the answer;
- `bench delivery <W>x<H> 30Hz profile=default|shm node/published=.. node/bare=..
  bare/published=..`: RGB-D frames received per frame published, for a bare rclpy subscriber and
  for the perception node, on the same camera publisher, without and with the shipped Fast DDS
  profile (config/fastdds_large_images.xml, opted into with FASTRTPS_DEFAULT_PROFILES_FILE);
- `bench ingest <W>x<H> fps=<value>`, `bench ingest_lag <W>x<H> frames=<value>` and
  `bench ingest_during_query <W>x<H> fps=<value>` (60 Hz camera, node in this process).
Lines starting with `#` explain them.

Scenes are synthetic and built here with numpy (a textured image, a table with a box ray-cast
into a depth image). The delivery and ingest tests run the real perception node from
config/robot.yaml with the scripted backend, fed by a camera publisher in a separate process over
loopback DDS (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# DDS stays on this machine, in a domain of its own, even when run outside `make bench`.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", "63")

REPO = Path(__file__).resolve().parents[1]
for package_root in (REPO / "mimo_embodied_ros", REPO / "mimo_embodied_sim"):
    if str(package_root) not in sys.path:
        sys.path.insert(0, str(package_root))

import numpy as np  # noqa: E402

from mimo_embodied_ros.core.types import CameraIntrinsics  # noqa: E402
from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC  # noqa: E402

SIZES = ((640, 480), (1280, 720))
CAMERA_RATE_HZ = 60.0  # the top rate of common RGB-D cameras at these resolutions
INGEST_WINDOW_S = 3.0
QUERY_DELAY_S = 1.0  # scripted model latency while measuring ingest during a query
INSTRUCTION = "point at the handle of the mug"

# A thinking-mode pointing answer as MiMo-Embodied writes it: reasoning, then fenced JSON.
POINTING_REPLY = (
    "<think>\nThe user wants points on the handle of the mug. The mug stands on the right side "
    "of the table, next to a bowl; its handle faces the camera and curves to the right. The "
    "handle is a thin loop, so points should lie on the loop itself rather than in the gap it "
    "encloses. I will place five points along the handle from its upper joint to its lower "
    "joint, avoiding the body of the mug and the shadow on the table.\n</think>\n"
    "```json\n"
    '[{"points": [[412, 233], [418, 241], [423, 250], [421, 259], [415, 266]], '
    '"label": "the handle of the mug"}]\n'
    "```"
)


# Synthetic scenes ------------------------------------------------------------------------------


def intrinsics(width: int, height: int) -> CameraIntrinsics:
    """A RealSense-like pinhole camera (about 69 degrees horizontal field of view)."""
    focal = 0.727 * width
    return CameraIntrinsics(fx=focal, fy=focal, cx=(width - 1) / 2, cy=(height - 1) / 2,
                            width=width, height=height)


def textured_rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth shading, a few flat objects and mild sensor noise: JPEG-realistic content."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[..., 0] = 90 + 60 * cols / width
    image[..., 1] = 110 + 50 * rows / height
    image[..., 2] = 70 + 30 * np.sin(cols / 37.0) * np.cos(rows / 23.0)
    for _ in range(6):
        x, y = rng.integers(0, width - width // 6), rng.integers(0, height - height // 6)
        w, h = rng.integers(width // 20, width // 6), rng.integers(height // 20, height // 6)
        image[y:y + h, x:x + w] = rng.integers(20, 235, 3)
    image += rng.normal(0.0, 3.0, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


class TabletopScene:
    """A camera 0.7 m above a table, looking down at 50 degrees at a 12 x 8 x 9 cm box."""

    camera_position = np.array([0.0, -0.6, 0.7])
    box_min = np.array([-0.06, -0.04, 0.0])
    box_max = np.array([0.06, 0.04, 0.09])

    def __init__(self, width: int, height: int) -> None:
        self.K = intrinsics(width, height)
        forward = -self.camera_position / np.linalg.norm(self.camera_position)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        self.world_from_camera = np.column_stack((right, np.cross(forward, right), forward))
        self.depth_m = self._render(width, height)

    def _render(self, width: int, height: int) -> np.ndarray:
        """Optical-frame depth of table and box, by ray casting every pixel (NaN: no hit)."""
        K = self.K
        cols, rows = np.meshgrid(np.arange(width), np.arange(height))
        rays_camera = np.stack(((cols - K.cx) / K.fx, (rows - K.cy) / K.fy, np.ones((height,
                                                                                   width))))
        rays = np.einsum("ij,jhw->hwi", self.world_from_camera, rays_camera)
        origin = self.camera_position
        with np.errstate(divide="ignore", invalid="ignore"):
            t_table = np.where(rays[..., 2] < 0, -origin[2] / rays[..., 2], np.inf)
            t_low = (self.box_min - origin) / rays
            t_high = (self.box_max - origin) / rays
        t_near = np.nanmax(np.minimum(t_low, t_high), axis=-1)
        t_far = np.nanmin(np.maximum(t_low, t_high), axis=-1)
        t_box = np.where((t_far >= t_near) & (t_near > 0), t_near, np.inf)
        depth = np.minimum(t_table, t_box)
        return np.where(np.isfinite(depth), depth, np.nan).astype(np.float32)

    def depth_16uc1(self) -> np.ndarray:
        """The depth as a camera driver sends it: uint16 millimetres, 0 where invalid."""
        return np.nan_to_num(np.round(self.depth_m * 1000.0), nan=0.0).astype(np.uint16)

    def box_pixels(self, margin: float = 4.0) -> tuple[float, float, float, float]:
        """The box's 2D bounding box in the image, as a detector (the model) would give it."""
        from mimo_embodied_ros.core.depth import project

        corners = np.array([[x, y, z] for x in (self.box_min[0], self.box_max[0])
                            for y in (self.box_min[1], self.box_max[1])
                            for z in (self.box_min[2], self.box_max[2])])
        pixels = project((corners - self.camera_position) @ self.world_from_camera, self.K)
        (u1, v1), (u2, v2) = pixels.min(axis=0) - margin, pixels.max(axis=0) + margin
        return float(u1), float(v1), float(u2), float(v2)


# Stage timings ---------------------------------------------------------------------------------


def median_ms(
    run: Callable[[], object], min_reps: int = 15, min_seconds: float = 0.4, max_reps: int = 3000
) -> float:
    """Median wall time of `run` over enough repetitions (one warm-up call first)."""
    from time import perf_counter

    run()
    samples: list[float] = []
    started = perf_counter()
    while len(samples) < max_reps and (
        len(samples) < min_reps or perf_counter() - started < min_seconds
    ):
        begin = perf_counter()
        run()
        samples.append(perf_counter() - begin)
    return statistics.median(samples) * 1e3


def report(stage: str, width: int, height: int, **value: float) -> None:
    ((name, number),) = value.items()
    print(f"bench {stage} {width}x{height} {name}={number:.3f}", flush=True)


def bench_stages(width: int, height: int) -> None:
    from PIL import Image as PILImage
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CompressedImage, Image

    from mimo_embodied_ros.core.boxes3d import box_from_depth
    from mimo_embodied_ros.core.depth import depth_to_metres, lift_point
    from mimo_embodied_ros.core.parsing import parse_reply
    from mimo_embodied_ros.core.prompts import Task
    from mimo_embodied_ros.core.resize import resize_for_model, smart_resize
    from mimo_embodied_ros.perception import QuerySettings
    from mimo_embodied_ros.ros.images import (
        array_to_image,
        compressed_to_rgb,
        image_msg_to_rgb,
        rgb_to_compressed,
    )

    rgb = textured_rgb(width, height)
    scene = TabletopScene(width, height)

    # Messages as a subscription hands them over (deserialized), not as built in Python.
    image_msg = deserialize_message(serialize_message(array_to_image(rgb, "rgb8")), Image)
    report("decode", width, height, median_ms=median_ms(lambda: image_msg_to_rgb(image_msg)))
    jpeg_msg = deserialize_message(serialize_message(rgb_to_compressed(rgb)), CompressedImage)
    report("decode_jpeg", width, height, median_ms=median_ms(lambda: compressed_to_rgb(jpeg_msg)))

    max_pixels = QuerySettings().max_pixels
    resized = smart_resize(height, width, max_pixels=max_pixels)
    print(f"# preprocess {width}x{height}: smart_resize + resize_for_model at max_pixels="
          f"{max_pixels} (the default cap) -> {resized.width}x{resized.height}", flush=True)

    def preprocess() -> np.ndarray:
        size = smart_resize(height, width, max_pixels=max_pixels)
        return resize_for_model(rgb, size)

    ours = median_ms(preprocess)
    report("preprocess", width, height, median_ms=ours)
    pillow = median_ms(lambda: np.asarray(PILImage.fromarray(rgb).resize(
        (resized.width, resized.height), PILImage.BICUBIC)))
    print(f"bench resize_vs_pillow {width}x{height} pillow_ms={pillow:.3f} ours_ms={ours:.3f} "
          f"speedup={pillow / ours:.2f}", flush=True)
    parsed = parse_reply(Task.POINT, POINTING_REPLY, True)
    assert parsed.ok and len(parsed.points) == 5, parsed
    report("parse", width, height,
           median_ms=median_ms(lambda: parse_reply(Task.POINT, POINTING_REPLY, True)))

    depth_mm = scene.depth_16uc1()
    u1, v1, u2, v2 = scene.box_pixels()
    points = [(u1 + (u2 - u1) * f, v1 + (v2 - v1) * f) for f in (0.3, 0.4, 0.5, 0.6, 0.7)]

    def depth_lift() -> list:
        metres = depth_to_metres(depth_mm, "16UC1")
        return [lift_point(u, v, metres, scene.K)[0] for u, v in points]

    lifted = depth_lift()
    assert all(p is not None for p in lifted), "the synthetic scene has holes under the points"
    report("depth_lift", width, height, median_ms=median_ms(depth_lift))

    box_px = scene.box_pixels()
    fitted = box_from_depth(scene.depth_m, scene.K, box_px)
    assert fitted.ok and abs(fitted.box.size[2] - scene.box_max[2]) < 0.015, fitted
    report("box3d", width, height, median_ms=median_ms(
        lambda: box_from_depth(scene.depth_m, scene.K, box_px), min_reps=10))


# Per-query overhead around the model -------------------------------------------------------

OVERHEAD_SIZES = ((640, 480), (1280, 720), (1920, 1080))
ANSWER_COUNTS = (1, 4, 16)


class InstantBackend:
    """A backend that answers at once with a fixed text: what a query costs around the model."""

    name = "instant"
    model_id = "instant"

    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, request):
        from mimo_embodied_ros.backends.base import ModelReply

        return ModelReply(text=self.text, model_id=self.model_id, model_ms=0.0,
                          prompt_tokens=None, image_sizes=None)

    def close(self) -> None:
        pass


def _answers(width: int, height: int, count: int, task: str) -> str:
    """A no-think answer with `count` points on the box, or `count` boxes around it (slightly
    shifted copies), in the pixels of the image the model sees at the default cap."""
    from mimo_embodied_ros.core.resize import smart_resize, source_to_model
    from mimo_embodied_ros.core.types import ImageSize
    from mimo_embodied_ros.perception import QuerySettings

    scene = TabletopScene(width, height)
    source = ImageSize(width=width, height=height)
    resized = smart_resize(height, width, max_pixels=QuerySettings().max_pixels)
    u1, v1, u2, v2 = scene.box_pixels()
    rng = np.random.default_rng(count)
    if task == "point":
        uv = [(u1 + (u2 - u1) * rng.uniform(0.3, 0.7), v1 + (v2 - v1) * rng.uniform(0.3, 0.7))
              for _ in range(count)]
        pairs = [source_to_model(u, v, resized, source) for u, v in uv]
        points = ", ".join(f"[{round(x)}, {round(y)}]" for x, y in pairs)
        return f'[{{"points": [{points}], "label": "the box"}}]'
    boxes = []
    for _ in range(count):
        d = rng.uniform(-3, 3, 4) * width / 640
        x1, y1 = source_to_model(u1 + d[0], v1 + d[1], resized, source)
        x2, y2 = source_to_model(u2 + d[2], v2 + d[3], resized, source)
        boxes.append(f'{{"bbox_2d": [{round(x1)}, {round(y1)}, {round(x2)}, {round(y2)}], '
                     f'"label": "the box"}}')
    return "[" + ", ".join(boxes) + "]"


def bench_overhead(width: int, height: int, count: int, task: str) -> float:
    """Median ms of one query around an instant model: the node's frame conversion of the
    deserialized messages (ros.frames) and run_query (resize, parse, rescale, lift / box)."""
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import CameraInfo, Image

    from mimo_embodied_ros.perception import QuerySettings, run_query
    from mimo_embodied_ros.ros.frames import frame_from_synced
    from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics
    from mimo_embodied_ros.ros.sync import SyncedFrame

    scene = TabletopScene(width, height)
    synced = SyncedFrame(
        deserialize_message(serialize_message(array_to_image(textured_rgb(width, height),
                                                             "rgb8")), Image),
        deserialize_message(serialize_message(array_to_image(scene.depth_16uc1(), "16UC1")),
                            Image),
        deserialize_message(serialize_message(camera_info_from_intrinsics(scene.K)), CameraInfo),
    )
    backend = InstantBackend(_answers(width, height, count, task))
    settings = QuerySettings(think=False)
    instruction = "the box"
    kind = "point" if task == "point" else "detect"

    def query():
        return run_query(backend, frame_from_synced(synced), instruction, kind, settings)

    result = query()
    located = result.points if task == "point" else result.objects
    assert result.success and len(located) == count, result.message
    return median_ms(query, min_reps=10, min_seconds=0.5)


# Ingest: a camera publisher process and the real node ------------------------------------------


def publish_camera(width: int, height: int, rate_hz: float, max_seconds: float) -> None:
    """Child process: publish image + depth + camera_info with equal wall-clock stamps.

    Runs until stdin closes (the benchmark is done) or max_seconds pass, then prints one JSON
    line with what it published.
    """
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics

    rclpy.init(domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    node = Node("bench_camera")
    qos = qos_profile_sensor_data
    publishers = (
        node.create_publisher(Image, COLOR_TOPIC, qos),
        node.create_publisher(Image, DEPTH_TOPIC, qos),
        node.create_publisher(CameraInfo, CAMERA_INFO_TOPIC, qos),
    )
    scene = TabletopScene(width, height)
    messages = (
        array_to_image(textured_rgb(width, height), "rgb8"),
        array_to_image(scene.depth_16uc1(), "16UC1"),
        camera_info_from_intrinsics(scene.K),
    )
    for msg in messages:
        msg.header.frame_id = "camera_color_optical_frame"
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    deadline = time.monotonic() + 15.0
    while not all(p.get_subscription_count() for p in publishers) and time.monotonic() < deadline:
        time.sleep(0.05)
    period = 1.0 / rate_hz
    started = time.monotonic()
    next_tick = started
    published = 0
    stamps: list[int] = []
    while not stop.is_set() and time.monotonic() - started < max_seconds:
        now_ns = time.time_ns()
        for msg, publisher in zip(messages, publishers, strict=True):
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now_ns, 1_000_000_000)
            publisher.publish(msg)
        published += 1
        stamps.append(now_ns)
        next_tick += period
        time.sleep(max(0.0, next_tick - time.monotonic()))
    elapsed = time.monotonic() - started
    print(json.dumps({"published": published, "seconds": elapsed, "stamps": stamps}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


class QueryLoop:
    """Back-to-back ~/instruct calls from a client node in a thread, so one is always in flight."""

    def __init__(self, context, instruction: str) -> None:
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        from mimo_embodied_msgs.srv import Instruct

        self._request = Instruct.Request(instruction=instruction)
        self._node = Node("bench_client", context=context)
        self._client = self._node.create_client(Instruct, "/mimo_embodied/instruct")
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(self._node)
        self._stop = threading.Event()
        self.first_sent = threading.Event()
        self.answers: list[tuple[bool, float, str]] = []  # success, frame age at call (s), message
        if not self._client.wait_for_service(timeout_sec=10.0):
            raise RuntimeError("the instruct service never appeared")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            sent = time.time()
            future = self._client.call_async(self._request)
            self.first_sent.set()
            self._executor.spin_until_future_complete(future, timeout_sec=30.0)
            response = future.result()
            if response is None:
                self.answers.append((False, float("nan"), "no answer within 30 s"))
                continue
            stamp = response.affordances.header.stamp
            age = sent - (stamp.sec + stamp.nanosec * 1e-9)
            self.answers.append((response.success, age, response.message))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=QUERY_DELAY_S + 30.0)
        self._executor.shutdown()
        self._node.destroy_node()


@dataclass
class IngestWindow:
    fps: float  # frames the node's FrameSynchronizer synced per second
    received: float  # colour images the node's callbacks took per second
    depth_received: float
    lag: float  # median lag of the latest synced frame, in publish periods
    lag_max: float


def measure_window(node, rate_hz: float, seconds: float) -> IngestWindow:
    """Synced frames per second over the window, and how far the latest synced frame lags.

    Lag = (wall clock now - stamp of the node's latest synced frame) x rate, sampled every
    20 ms: the publisher stamps with the wall clock, so this is how many publish periods the
    frame a query would use trails the newest one (transport time included; < 1 is ideal).
    """
    from mimo_embodied_ros.ros.sync import stamp_seconds

    sync = node._sync
    lags: list[float] = []
    before = dict(sync.counts)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        latest = sync.latest()
        if latest is not None:
            lags.append((time.time() - stamp_seconds(latest.image.header.stamp)) * rate_hz)
        time.sleep(0.02)
    elapsed = time.monotonic() - started
    rates = {key: (sync.counts[key] - before[key]) / elapsed for key in before}
    return IngestWindow(rates["synced"], rates["image"], rates["depth"],
                        statistics.median(lags), max(lags))


def bench_ingest(width: int, height: int, answers_file: str) -> None:
    import rclpy
    from rclpy.context import Context

    from mimo_embodied_ros.runner import GraphRunner, load_graph

    entry = next(e for e in load_graph("robot.yaml") if e["name"] == "mimo_embodied")
    overrides = {"mimo_embodied": {
        "backend": "scripted", "scripted.answers_file": answers_file,
        "scripted.delay_s": QUERY_DELAY_S, "autostart": True,
    }}
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    runner = camera = queries = None
    try:
        runner = GraphRunner([entry], overrides, context)
        node = runner.nodes["mimo_embodied"]
        camera = subprocess.Popen(
            [sys.executable, __file__, "--publish", f"{width}x{height}",
             "--rate", str(CAMERA_RATE_HZ)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy(),
        )
        deadline = time.monotonic() + 20.0
        while node._sync.counts["synced"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if node._sync.counts["synced"] == 0:
            raise RuntimeError(f"the node synced no frame: {node._sync.missing()}")
        time.sleep(0.5)  # let discovery and the first bursts settle

        idle_before = measure_window(node, CAMERA_RATE_HZ, INGEST_WINDOW_S)
        queries = QueryLoop(context, INSTRUCTION)
        queries.first_sent.wait(5.0)
        time.sleep(0.1)  # the first call is now inside the model
        busy = measure_window(node, CAMERA_RATE_HZ, INGEST_WINDOW_S)
        queries.stop()
        answered, queries = queries.answers, None
        idle_after = measure_window(node, CAMERA_RATE_HZ, INGEST_WINDOW_S)

        # Without a query: the mean of a window before and one after the query window, so slow
        # drifts in DDS delivery do not read as an effect of the query.
        report("ingest", width, height, fps=(idle_before.fps + idle_after.fps) / 2)
        report("ingest_lag", width, height, frames=(idle_before.lag + idle_after.lag) / 2)
        report("ingest_during_query", width, height, fps=busy.fps)
        for name, window in (("before queries", idle_before), ("during queries", busy),
                             ("after queries", idle_after)):
            print(f"# ingest {width}x{height} {name}: synced {window.fps:.1f}/s, colour images "
                  f"received {window.received:.1f}/s, depth {window.depth_received:.1f}/s, lag "
                  f"median {window.lag:.2f} max {window.lag_max:.2f} frames", flush=True)
        print(f"# ingest {width}x{height} queries: {queries_summary(answered)}", flush=True)
    finally:
        if queries is not None:
            queries.stop()
        if camera is not None:
            out, _ = camera.communicate(timeout=30.0)  # closing stdin stops the publisher
            stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
            if stats:
                print(f"# camera {width}x{height}: published "
                      f"{stats['published'] / stats['seconds']:.1f} frames/s", flush=True)
        if runner is not None:
            runner.shutdown()
        context.try_shutdown()


# Delivery: frames received per frame published, bare subscriber and perception node ----------

DELIVERY_RATE_HZ = 30.0
DELIVERY_SETTLE_S = 2.0  # after the first frame arrives (node start-up done), before the window
DELIVERY_WINDOW_S = 5.0
DELIVERY_GRACE_S = 0.5  # frames stamped inside the window may still arrive after it closes
PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"  # what Fast DDS 2.x (Humble, Jazzy) reads
PROFILE_ENV_FASTDDS3 = "FASTDDS_DEFAULT_PROFILES_FILE"  # its name from Fast DDS 3 (Kilted) on
LARGE_IMAGES_PROFILE = REPO / "mimo_embodied_ros" / "config" / "fastdds_large_images.xml"


def _stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _window_after_first_frame(got_first: threading.Event) -> tuple[int, int]:
    """Wait for the first frame, settle, then keep the process receiving through the window
    and the grace period. Returns the window as wall-clock ns."""
    if not got_first.wait(20.0):
        raise RuntimeError("no camera frame arrived within 20 s")
    time.sleep(DELIVERY_SETTLE_S)
    start = time.time_ns()
    time.sleep(DELIVERY_WINDOW_S)
    end = time.time_ns()
    time.sleep(DELIVERY_GRACE_S)
    return start, end


def subscribe_bare() -> None:
    """Child process: a plain rclpy node with sensor-data QoS on colour and depth; prints the
    stamps it received and its window as one JSON line."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image

    rclpy.init(domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    node = Node("bench_bare_subscriber")
    received: dict[str, list[int]] = {"colour": [], "depth": []}
    got_first = threading.Event()

    def keep(stream: str):
        def callback(msg) -> None:
            received[stream].append(_stamp_ns(msg))
            got_first.set()
        return callback

    node.create_subscription(Image, COLOR_TOPIC, keep("colour"),
                             qos_profile_sensor_data)
    node.create_subscription(Image, DEPTH_TOPIC, keep("depth"),
                             qos_profile_sensor_data)
    node.create_subscription(CameraInfo, CAMERA_INFO_TOPIC, lambda msg: None,
                             qos_profile_sensor_data)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    result: list[tuple[int, int]] = []
    timer = threading.Thread(target=lambda: result.append(_window_after_first_frame(got_first)),
                             daemon=True)
    timer.start()
    while timer.is_alive():
        executor.spin_once(timeout_sec=0.05)
    if not result:
        raise RuntimeError("no camera frame arrived within 20 s")
    print(json.dumps({"window": result[0], **received}), flush=True)
    executor.remove_node(node)
    node.destroy_node()
    rclpy.try_shutdown()


def subscribe_node(answers_file: str) -> None:
    """Child process: the perception node of robot.yaml (scripted backend) as the stack runs
    it; its FrameSynchronizer records the stamps its subscription callbacks hand over."""
    import rclpy
    from rclpy.context import Context

    from mimo_embodied_ros.ros import sync
    from mimo_embodied_ros.runner import GraphRunner, load_graph

    received: dict[str, list[int]] = {"colour": [], "depth": []}
    got_first = threading.Event()
    original_image = sync.FrameSynchronizer.add_image
    original_depth = sync.FrameSynchronizer.add_depth

    def add_image(self, msg) -> None:  # the node's own callback, plus one list append
        received["colour"].append(_stamp_ns(msg))
        got_first.set()
        original_image(self, msg)

    def add_depth(self, msg) -> None:
        received["depth"].append(_stamp_ns(msg))
        original_depth(self, msg)

    sync.FrameSynchronizer.add_image, sync.FrameSynchronizer.add_depth = add_image, add_depth
    entry = next(e for e in load_graph("robot.yaml") if e["name"] == "mimo_embodied")
    overrides = {"mimo_embodied": {"backend": "scripted", "scripted.answers_file": answers_file,
                                   "autostart": True}}
    context = Context()
    rclpy.init(context=context, domain_id=int(os.environ["ROS_DOMAIN_ID"]))
    runner = GraphRunner([entry], overrides, context)
    try:
        window = _window_after_first_frame(got_first)
        synced = runner.nodes["mimo_embodied"]._sync.counts["synced"]
        print(json.dumps({"window": window, "synced": synced, **received}), flush=True)
    finally:
        runner.shutdown()
        context.try_shutdown()


@dataclass
class Delivery:
    """Frames (colour and depth of one stamp both received) per frame published in a window."""

    frames: float
    colour: float
    depth: float
    published_hz: float


def _delivery(stamps: list[int], report_json: dict) -> Delivery:
    start, end = report_json["window"]
    published = [t for t in stamps if start <= t < end]
    if not published:
        raise RuntimeError("the camera published nothing inside the subscriber's window")
    colour = {t for t in report_json["colour"] if start <= t < end}
    depth = {t for t in report_json["depth"] if start <= t < end}
    n = len(published)
    return Delivery(len(colour & depth) / n, len(colour) / n, len(depth) / n,
                    n / ((end - start) * 1e-9))


def non_loopback_tx_bytes() -> dict[str, int]:
    """Bytes each network interface but lo has sent (Linux /proc/net/dev), to show the runs
    keep to loopback; empty where the file does not exist."""
    sent: dict[str, int] = {}
    try:
        lines = Path("/proc/net/dev").read_text().splitlines()[2:]
    except OSError:
        return sent
    for line in lines:
        name, _, fields = line.partition(":")
        if name.strip() != "lo" and fields.split():
            sent[name.strip()] = int(fields.split()[8])
    return sent


def _child(args: list[str], env: dict[str, str], **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], env=env, text=True,
                            stdout=subprocess.PIPE, **popen)


def _last_json(process: subprocess.Popen, timeout: float, what: str) -> dict:
    out, _ = process.communicate(timeout=timeout)
    lines = [line for line in out.strip().splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"{what} failed (exit {process.returncode})")
    return json.loads(lines[-1])


def bench_delivery(width: int, height: int, profile: str, answers_file: str) -> None:
    """One camera publisher process; a bare subscriber process, then the perception node in a
    process of its own, each measured over its own window on the same publisher."""
    env = os.environ.copy()
    for name in (PROFILE_ENV, PROFILE_ENV_FASTDDS3):
        env.pop(name, None)
        if profile == "shm":
            env[name] = str(LARGE_IMAGES_PROFILE)
    assert env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    camera = _child(["--publish", f"{width}x{height}", "--rate", str(DELIVERY_RATE_HZ)], env,
                    stdin=subprocess.PIPE)
    try:
        bare = _last_json(_child(["--subscribe-bare"], env), 60.0, "bare subscriber")
        node = _last_json(_child(["--subscribe-node", answers_file], env), 60.0,
                          "perception node")
    finally:
        published = _last_json(camera, 30.0, "camera publisher")  # closing stdin stops it
    bare_d, node_d = _delivery(published["stamps"], bare), _delivery(published["stamps"], node)
    node_bare = node_d.frames / bare_d.frames if bare_d.frames else float("nan")
    print(f"bench delivery {width}x{height} {DELIVERY_RATE_HZ:g}Hz profile={profile} "
          f"node/published={node_d.frames:.2f} node/bare={node_bare:.2f} "
          f"bare/published={bare_d.frames:.2f}", flush=True)
    for name, d in (("bare", bare_d), ("node", node_d)):
        print(f"# delivery {width}x{height} profile={profile} {name}: published "
              f"{d.published_hz:.1f} frames/s; received colour {d.colour:.2f}, depth "
              f"{d.depth:.2f}, both {d.frames:.2f} of them", flush=True)


def queries_summary(loop_answers: list[tuple[bool, float, str]]) -> str:
    ok = sum(1 for success, _, _ in loop_answers if success)
    ages = [age for success, age, _ in loop_answers if success]
    age = f", frame age at call {statistics.median(ages) * 1e3:.0f} ms" if ages else ""
    return f"{len(loop_answers)} queries, {ok} succeeded{age}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--publish", metavar="WxH", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=CAMERA_RATE_HZ, help=argparse.SUPPRESS)
    parser.add_argument("--subscribe-bare", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--subscribe-node", metavar="ANSWERS", help=argparse.SUPPRESS)
    parser.add_argument("--skip-ingest", action="store_true",
                        help="only the CPU stages (no delivery or ingest measurement)")
    parser.add_argument("--only-delivery", action="store_true", help="only the delivery ratios")
    args = parser.parse_args()
    if args.publish:
        width, height = (int(v) for v in args.publish.split("x"))
        publish_camera(width, height, args.rate, max_seconds=120.0)
        return
    if args.subscribe_bare:
        subscribe_bare()
        return
    if args.subscribe_node:
        subscribe_node(args.subscribe_node)
        return

    import cv2

    print(f"# machine: {os.cpu_count()} CPUs, {platform.platform()},"
          f" python {platform.python_version()}, numpy {np.__version__}, opencv {cv2.__version__},"
          f" ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}", flush=True)
    print("# stage timings: median of repeated time.perf_counter measurements, one thread",
          flush=True)
    from mimo_embodied_ros.core.resize import warm_up_resize

    print(f"# {warm_up_resize()}", flush=True)
    started = time.monotonic()
    if not args.only_delivery:
        for width, height in SIZES:
            bench_stages(width, height)
        print("# overhead: one query around an instant model (no-think answer): the node's "
              "conversion of the deserialized colour/depth/camera_info messages, then run_query "
              "(smart-resize + one bicubic resize, parse, rescale, depth lift or 3D box); "
              "median ms", flush=True)
        for task, noun in (("point", "points"), ("box3d", "boxes")):
            for width, height in OVERHEAD_SIZES:
                for count in ANSWER_COUNTS:
                    ms = bench_overhead(width, height, count, task)
                    print(f"bench overhead_{task} {width}x{height} {noun}={count} "
                          f"median_ms={ms:.3f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="mimo_bench_") as folder:
        answers = Path(folder) / "answers.yaml"
        answers.write_text(json.dumps({"*": POINTING_REPLY}))  # JSON is valid YAML
        if not args.skip_ingest:
            print(f"# delivery: one camera process publishing RGB-D at {DELIVERY_RATE_HZ:g} Hz "
                  f"(sensor-data QoS); a bare rclpy subscriber process, then the perception node "
                  f"(robot.yaml) in a process of its own, each over a {DELIVERY_WINDOW_S:g} s "
                  f"window; a frame counts when its colour and depth both arrived. profile=shm: "
                  f"{PROFILE_ENV}={LARGE_IMAGES_PROFILE.relative_to(REPO)} in all three; "
                  f"profile=default: Fast DDS defaults. ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST "
                  f"in both", flush=True)
            sent_before = non_loopback_tx_bytes()
            for profile in ("default", "shm"):
                for width, height in SIZES:
                    bench_delivery(width, height, profile, str(answers))
            sent = {name: count - sent_before.get(name, 0)
                    for name, count in non_loopback_tx_bytes().items()}
            print(f"# delivery: bytes sent on non-loopback interfaces during these runs (every "
                  f"process on the machine): {sent or 'n/a'}", flush=True)
        if not args.skip_ingest and not args.only_delivery:
            # The ingest node runs in this process: it uses the shipped profile unless the
            # environment names another (FASTRTPS_DEFAULT_PROFILES_FILE is read at rclpy.init).
            os.environ.setdefault(PROFILE_ENV, str(LARGE_IMAGES_PROFILE))
            print(f"# ingest: perception node (robot.yaml, scripted backend) in this process, "
                  f"camera publisher in another at {CAMERA_RATE_HZ:g} Hz; fps = frames the "
                  f"node's FrameSynchronizer synced per second over {INGEST_WINDOW_S:g} s "
                  f"windows; during_query: a {QUERY_DELAY_S:g} s scripted query is always in "
                  f"flight; {PROFILE_ENV}={os.environ.get(PROFILE_ENV, '(unset)')}", flush=True)
            print("# best-effort camera QoS: frames DDS drops never reach the node; compare the "
                  "published rate with the received one", flush=True)
            for width, height in SIZES:
                bench_ingest(width, height, str(answers))
    print(f"# total {time.monotonic() - started:.1f} s", flush=True)


if __name__ == "__main__":
    main()
