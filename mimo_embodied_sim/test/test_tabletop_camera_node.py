"""The tabletop camera node publishes what a RealSense would, over real DDS on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("ROS_DOMAIN_ID", "53")
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"  # never leave this machine

import rclpy  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data, qos_profile_system_default  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from mimo_embodied_ros.ros.camera_topics import CAMERA_INFO_TOPIC, COLOR_TOPIC, DEPTH_TOPIC
from mimo_embodied_ros.ros.images import image_to_array  # noqa: E402
from mimo_embodied_sim.tabletop_camera_node import TabletopCameraNode  # noqa: E402

TOPICS = {
    "color": (COLOR_TOPIC, Image, qos_profile_sensor_data),
    "depth": (DEPTH_TOPIC, Image, qos_profile_sensor_data),
    "info": (CAMERA_INFO_TOPIC, CameraInfo, qos_profile_sensor_data),
    "clock": ("/clock", Clock, qos_profile_system_default),
}


@pytest.fixture()
def context() -> Iterator[Context]:
    ros_context = Context()
    rclpy.init(context=ros_context)
    yield ros_context
    rclpy.try_shutdown(context=ros_context)


class Recorder:
    """A plain subscriber node keeping every message by stamp (nanoseconds)."""

    def __init__(self, context: Context) -> None:
        self.node = Node("tabletop_camera_test_listener", context=context)
        self.by_stamp: dict[int, dict[str, object]] = defaultdict(dict)
        for key, (topic, message_type, qos) in TOPICS.items():
            self.node.create_subscription(message_type, topic, self._keeper(key), qos)

    def _keeper(self, key: str):
        def keep(message: object) -> None:
            stamp = message.clock if key == "clock" else message.header.stamp
            self.by_stamp[stamp.sec * 1_000_000_000 + stamp.nanosec][key] = message
        return keep

    def complete_frame(self) -> dict[str, object] | None:
        for stamp in sorted(self.by_stamp):
            if len(self.by_stamp[stamp]) == len(TOPICS):
                return self.by_stamp[stamp]
        return None


def _spin_until_frame(executor: SingleThreadedExecutor, recorder: Recorder,
                      timeout_s: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        frame = recorder.complete_frame()
        if frame is not None:
            return frame
    raise AssertionError(f"no complete frame within {timeout_s} s: {dict(recorder.by_stamp)}")


def test_node_publishes_one_consistent_rgbd_frame(context: Context) -> None:
    camera = TabletopCameraNode(context=context,
                                parameter_overrides=[Parameter("rate_hz", value=10)])
    recorder = Recorder(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(camera)
    executor.add_node(recorder.node)
    try:
        frame = _spin_until_frame(executor, recorder)
    finally:
        executor.shutdown()
        recorder.node.destroy_node()
    color, depth, info, clock = (frame[key] for key in ("color", "depth", "info", "clock"))
    assert color.header == depth.header == info.header
    assert color.header.frame_id == "camera_color_optical_frame"
    stamp_s = color.header.stamp.sec + color.header.stamp.nanosec * 1e-9
    assert clock.clock == color.header.stamp and stamp_s > 0.0  # sim time, not wall time
    assert stamp_s < 60.0
    assert (color.encoding, color.width, color.height) == ("rgb8", 640, 480)
    assert (depth.encoding, depth.width, depth.height) == ("32FC1", 640, 480)
    k = camera.scene.intrinsics()
    assert (info.width, info.height, info.distortion_model) == (640, 480, "plumb_bob")
    np.testing.assert_allclose(info.k, [k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1])
    np.testing.assert_allclose(info.p, [k.fx, 0, k.cx, 0, 0, k.fy, k.cy, 0, 0, 0, 1, 0])
    assert not any(info.d)
    # The pixels are the scene's (settled objects barely move between frames).
    np.testing.assert_array_equal(image_to_array(color).shape, (480, 640, 3))
    received_depth = image_to_array(depth)
    assert np.median(np.abs(received_depth - camera.scene.render_depth())) < 1e-4
    assert np.abs(image_to_array(color).astype(int) - camera.scene.render_rgb()).mean() < 2.0
    camera.destroy_node()


def test_16uc1_millimetres_with_holes_and_parameters(context: Context) -> None:
    camera = TabletopCameraNode(context=context, parameter_overrides=[
        Parameter("rate_hz", value=20.0),
        Parameter("width", value=320),
        Parameter("height", value=240),
        Parameter("depth_encoding", value="16UC1"),
        Parameter("depth_hole_fraction", value=0.2),
        Parameter("frame_id", value="sim_camera"),
    ])
    recorder = Recorder(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(camera)
    executor.add_node(recorder.node)
    try:
        frame = _spin_until_frame(executor, recorder)
    finally:
        executor.shutdown()
        recorder.node.destroy_node()
    depth, info = frame["depth"], frame["info"]
    assert depth.header.frame_id == info.header.frame_id == "sim_camera"
    assert (depth.encoding, depth.width, depth.height, depth.step) == ("16UC1", 320, 240, 640)
    assert (info.width, info.height) == (320, 240)
    millimetres = image_to_array(depth)
    assert millimetres.dtype == np.uint16
    holes = millimetres == 0
    assert holes.mean() == pytest.approx(0.2, abs=0.03)
    truth_mm = camera.scene.render_depth() * 1000.0
    assert np.median(np.abs(millimetres[~holes] - truth_mm[~holes])) <= 0.5
    assert descriptor_text(camera, "depth_encoding").startswith("32FC1")
    camera.destroy_node()


def descriptor_text(node: Node, name: str) -> str:
    return node.describe_parameter(name).description


def test_invalid_depth_encoding_is_refused(context: Context) -> None:
    with pytest.raises(ValueError, match="depth_encoding"):
        TabletopCameraNode(context=context,
                           parameter_overrides=[Parameter("depth_encoding", value="mono8")])


def test_executable_publishes_and_stops_cleanly_on_ctrl_c(context: Context) -> None:
    roots = [str(Path(__file__).resolve().parents[1]),
             str(Path(__file__).resolve().parents[2] / "mimo_embodied_ros")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(roots + [os.environ.get("PYTHONPATH", "")]))
    process = subprocess.Popen(
        [sys.executable, "-m", "mimo_embodied_sim.tabletop_camera_node", "--ros-args",
         "-p", "rate_hz:=10.0", "-p", "width:=160", "-p", "height:=120"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    recorder = Recorder(context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(recorder.node)
    try:
        frame = _spin_until_frame(executor, recorder)
        assert (frame["color"].width, frame["color"].height) == (160, 120)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    finally:
        executor.shutdown()
        recorder.node.destroy_node()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output.decode(errors="replace")
    assert b"Traceback" not in output, output.decode(errors="replace")
