"""Base poses over time, and camera points to the map frame, without tf2.

A point the model found in a camera image must be placed with the robot pose of the moment the
image was taken, not the latest one: the base may be turning. Where tf2 is missing (here) or the
robot only publishes a pose topic, this buffer interpolates that pose from the topic's history and
refuses stamps it cannot vouch for.
"""

from __future__ import annotations

import bisect
import math
import threading
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from mimo_embodied_ros.core.navmap import wrap_angle


@dataclass(frozen=True)
class Pose2D:
    """A planar base pose in the map frame: position (m) and heading about +z (rad)."""

    x: float
    y: float
    yaw: float


class PoseLookupError(LookupError):
    """The buffer holds no pose for the requested stamp (too old, too new, or empty)."""


class PoseBuffer:
    """Timestamped 2D poses; :meth:`at` interpolates, refusing stamps outside the history.

    Thread-safe: a subscription callback adds while an action thread looks up.
    """

    def __init__(self, history_s: float = 30.0, tolerance_s: float = 0.1) -> None:
        if history_s <= 0.0 or tolerance_s < 0.0:
            raise ValueError("history_s must be > 0 and tolerance_s >= 0")
        self.history_s = history_s
        self.tolerance_s = tolerance_s
        self._stamps: list[float] = []
        self._poses: list[Pose2D] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)

    def clear(self) -> None:
        with self._lock:
            self._stamps.clear()
            self._poses.clear()

    def add(self, stamp_s: float, pose: Pose2D) -> None:
        """Store a pose; an older stamp than the newest one resets the buffer (time jumped back,
        e.g. a simulator reset), and poses older than ``history_s`` are dropped."""
        with self._lock:
            if self._stamps and stamp_s < self._stamps[-1]:
                self._stamps.clear()
                self._poses.clear()
            if self._stamps and stamp_s == self._stamps[-1]:
                self._poses[-1] = pose
                return
            self._stamps.append(stamp_s)
            self._poses.append(pose)
            cut = bisect.bisect_left(self._stamps, stamp_s - self.history_s)
            if cut > 0:
                del self._stamps[:cut]
                del self._poses[:cut]

    def latest(self) -> tuple[float, Pose2D] | None:
        with self._lock:
            return (self._stamps[-1], self._poses[-1]) if self._stamps else None

    def at(self, stamp_s: float) -> Pose2D:
        """The pose at a stamp: interpolated inside the history, the nearest end within
        ``tolerance_s`` outside it; PoseLookupError otherwise."""
        with self._lock:
            if not self._stamps:
                raise PoseLookupError("no pose received yet")
            first, last = self._stamps[0], self._stamps[-1]
            if stamp_s < first - self.tolerance_s or stamp_s > last + self.tolerance_s:
                raise PoseLookupError(
                    f"no pose at t={stamp_s:.3f} s: history spans {first:.3f}..{last:.3f} s "
                    f"(tolerance {self.tolerance_s:.3f} s)"
                )
            if stamp_s <= first:
                return self._poses[0]
            if stamp_s >= last:
                return self._poses[-1]
            i = bisect.bisect_right(self._stamps, stamp_s)
            t0, t1 = self._stamps[i - 1], self._stamps[i]
            p0, p1 = self._poses[i - 1], self._poses[i]
        f = (stamp_s - t0) / (t1 - t0)
        return Pose2D(
            p0.x + f * (p1.x - p0.x),
            p0.y + f * (p1.y - p0.y),
            wrap_angle(p0.yaw + f * wrap_angle(p1.yaw - p0.yaw)),
        )


def camera_point_to_map(
    point_camera: np.ndarray | tuple[float, float, float],
    base_pose: Pose2D,
    camera_translation: np.ndarray | tuple[float, float, float],
    camera_rotation_xyzw: np.ndarray | tuple[float, float, float, float],
) -> np.ndarray:
    """A camera-frame point (x right, y down, z forward) in the map frame.

    ``camera_translation`` / ``camera_rotation_xyzw`` are the camera frame's pose in base_link
    (the static extrinsic); the base stands on the floor (z = 0) at ``base_pose``.
    """
    point = np.asarray(point_camera, dtype=float).reshape(3)
    if not np.all(np.isfinite(point)):
        raise ValueError(f"camera point is not finite: {point}")
    in_base = Rotation.from_quat(np.asarray(camera_rotation_xyzw, dtype=float)).apply(point)
    in_base = in_base + np.asarray(camera_translation, dtype=float).reshape(3)
    c, s = math.cos(base_pose.yaw), math.sin(base_pose.yaw)
    return np.array([
        base_pose.x + c * in_base[0] - s * in_base[1],
        base_pose.y + s * in_base[0] + c * in_base[1],
        in_base[2],
    ])
