"""The bridge's frame buffer: keyed by stamp, bounded by seconds, held per query."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from mimo_embodied_ros.core.types import CameraIntrinsics
from mimo_embodied_ros.ros.depth_buffer import FrameBuffer
from mimo_embodied_ros.ros.images import array_to_image, camera_info_from_intrinsics

K = CameraIntrinsics(fx=100.0, fy=100.0, cx=15.5, cy=11.5, width=32, height=24)


def _header(stamp_s: float) -> Header:
    header = Header(frame_id="camera_color_optical_frame")
    nanoseconds = int(round(stamp_s * 1e9))
    header.stamp.sec, header.stamp.nanosec = divmod(nanoseconds, 10**9)
    return header


def _frame(buffer: FrameBuffer, stamp_s: float, value: float) -> None:
    header = _header(stamp_s)
    buffer.add_depth(array_to_image(np.full((24, 32), value, np.float32), "32FC1", header))
    buffer.add_camera_info(camera_info_from_intrinsics(K, header))


def test_window_is_seconds_of_stamps_not_a_count() -> None:
    buffer = FrameBuffer(window_s=0.5)
    for i in range(300):  # 10 s at 30 Hz
        _frame(buffer, 100.0 + i / 30, float(i))
    assert buffer.at(100.0, 0.05) is None  # older than the window
    found = buffer.at(100.0 + 299 / 30, 0.05)
    assert found is not None and float(found.arrays()[0][0, 0]) == 299.0
    assert buffer.describe().startswith("16 depth frames")  # 0.5 s of 30 Hz stamps


def test_a_hold_keeps_the_frame_a_slow_query_ran_on() -> None:
    """A 3 s model at 30 Hz: 90 frames arrive before the answer; the held frame survives."""
    buffer = FrameBuffer(window_s=0.5)
    for i in range(30):
        _frame(buffer, 10.0 + i / 30, float(i))
    asked_on = 10.0 + 29 / 30  # the perception node's newest frame when the query is sent
    with buffer.hold() as hold:
        for i in range(30, 120):
            _frame(buffer, 10.0 + i / 30, float(i))
        assert buffer.at(asked_on, 0.05) is None  # the shared buffer forgot it
        found = hold.at(asked_on, 0.05)
        assert found is not None and abs(found.stamp_s - asked_on) < 1e-6
        depth, k = found.arrays()
        assert float(depth[0, 0]) == 29.0 and k.fx == 100.0
        # Frames shortly after the hold (the query's frame may reach the bridge late) are held,
        # frames long after are not: memory is bounded by stamps, not by the model's latency.
        assert hold.at(asked_on + 0.2, 0.01) is not None
        assert hold.at(asked_on + 2.0, 0.01) is None
        assert buffer.open_holds() == 1
    assert buffer.open_holds() == 0 and hold.released


def test_pairing_tolerance_and_nearest_camera_info() -> None:
    buffer = FrameBuffer(window_s=1.0)
    buffer.add_depth(array_to_image(np.ones((24, 32), np.float32), "32FC1", _header(5.0)))
    assert buffer.at(5.0, 0.05) is None  # no camera_info yet
    buffer.add_camera_info(camera_info_from_intrinsics(K, _header(4.99)))
    assert buffer.at(5.04, 0.05) is not None and buffer.at(5.06, 0.05) is None
    assert buffer.at(None, 0.0).stamp_s == 5.0


def test_hold_before_any_frame_waits_for_the_first() -> None:
    buffer = FrameBuffer(window_s=0.5)
    hold = buffer.hold()
    _frame(buffer, 1.0, 1.0)
    _frame(buffer, 1.3, 2.0)
    _frame(buffer, 3.0, 3.0)  # beyond the window after the first frame
    assert hold.at(1.3, 0.01) is not None and hold.at(3.0, 0.01) is None
    hold.release()


def test_messages_are_plain_ros_types() -> None:
    assert isinstance(array_to_image(np.zeros((2, 2), np.float32), "32FC1", _header(0)), Image)
    assert isinstance(camera_info_from_intrinsics(K, _header(0)), CameraInfo)
