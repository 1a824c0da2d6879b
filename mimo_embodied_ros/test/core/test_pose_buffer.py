"""Pose history lookups at image stamps, and camera points placed in the map frame."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from mimo_embodied_ros.core.pose_buffer import (
    Pose2D,
    PoseBuffer,
    PoseLookupError,
    camera_point_to_map,
)

# Camera optical frame (x right, y down, z forward) on a base (x forward, y left, z up).
OPTICAL_IN_BASE_XYZW = (-0.5, 0.5, -0.5, 0.5)


def test_interpolates_position_and_shortest_yaw():
    buffer = PoseBuffer(history_s=10.0, tolerance_s=0.05)
    buffer.add(1.0, Pose2D(0.0, 0.0, math.radians(170)))
    buffer.add(2.0, Pose2D(1.0, -2.0, math.radians(-170)))
    pose = buffer.at(1.5)
    assert (pose.x, pose.y) == pytest.approx((0.5, -1.0))
    assert abs(pose.yaw) == pytest.approx(math.pi)  # through 180 deg, not through 0
    assert buffer.at(1.0) == Pose2D(0.0, 0.0, math.radians(170))
    assert buffer.at(2.04).x == 1.0  # past the end but within tolerance: the newest pose


def test_refuses_stamps_outside_history_by_more_than_tolerance():
    buffer = PoseBuffer(history_s=10.0, tolerance_s=0.05)
    with pytest.raises(PoseLookupError, match="no pose received"):
        buffer.at(0.0)
    buffer.add(5.0, Pose2D(1.0, 1.0, 0.0))
    buffer.add(6.0, Pose2D(2.0, 1.0, 0.0))
    for stamp in (4.9, 6.1, 100.0):
        with pytest.raises(PoseLookupError, match="history spans"):
            buffer.at(stamp)


def test_drops_old_poses_and_resets_when_time_jumps_back():
    buffer = PoseBuffer(history_s=1.0, tolerance_s=0.0)
    for i in range(20):
        buffer.add(i * 0.25, Pose2D(float(i), 0.0, 0.0))
    assert len(buffer) == 5  # 3.75 .. 4.75 s
    with pytest.raises(PoseLookupError):
        buffer.at(3.5)
    buffer.add(0.5, Pose2D(-1.0, 0.0, 0.0))  # simulator reset: clock restarted
    assert len(buffer) == 1 and buffer.latest() == (0.5, Pose2D(-1.0, 0.0, 0.0))
    buffer.add(0.5, Pose2D(-2.0, 0.0, 0.0))  # same stamp replaces
    assert len(buffer) == 1 and buffer.at(0.5).x == -2.0
    buffer.clear()
    assert buffer.latest() is None
    with pytest.raises(ValueError):
        PoseBuffer(history_s=0.0)


def test_concurrent_adds_and_lookups_stay_consistent():
    buffer = PoseBuffer(history_s=100.0, tolerance_s=0.0)
    buffer.add(0.0, Pose2D(0.0, 0.0, 0.0))
    errors: list[Exception] = []

    def writer() -> None:
        for i in range(1, 2000):
            buffer.add(i * 0.01, Pose2D(i * 0.01, 0.0, 0.0))

    def reader() -> None:
        for _ in range(2000):
            stamp, _ = buffer.latest()
            try:
                assert buffer.at(stamp).x == pytest.approx(stamp)
            except Exception as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_camera_point_in_map_frame():
    mount = (0.2, 0.0, 1.0)  # camera 0.2 m ahead of the base centre, 1 m up, looking forward
    # A point 2 m straight ahead of the camera, 0.5 m to its right and 0.3 m below its axis.
    point = (0.5, 0.3, 2.0)
    at_origin = camera_point_to_map(point, Pose2D(0.0, 0.0, 0.0), mount, OPTICAL_IN_BASE_XYZW)
    assert at_origin == pytest.approx([2.2, -0.5, 0.7])
    turned = camera_point_to_map(point, Pose2D(1.0, 2.0, math.pi / 2), mount,
                                 OPTICAL_IN_BASE_XYZW)
    assert turned == pytest.approx([1.0 + 0.5, 2.0 + 2.2, 0.7])
    with pytest.raises(ValueError):
        camera_point_to_map((np.nan, 0.0, 1.0), Pose2D(0.0, 0.0, 0.0), mount,
                            OPTICAL_IN_BASE_XYZW)


def test_history_is_sized_by_time_not_count():
    """20 Hz for 150 s (a 120 s model wait and more): the first pose is still there."""
    buffer = PoseBuffer(history_s=130.0, tolerance_s=0.1)
    for i in range(3000):
        buffer.add(i * 0.05, Pose2D(i * 0.001, 0.0, 0.0))
    assert buffer.at(149.95 - 125.0).x == pytest.approx((149.95 - 125.0) * 0.02, abs=1e-9)
    with pytest.raises(PoseLookupError):
        buffer.at(149.95 - 131.0)
