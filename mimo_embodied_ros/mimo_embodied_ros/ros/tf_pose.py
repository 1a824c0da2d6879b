"""Robot poses from TF (map -> base_link) for robots that have tf2_ros (every Nav2 robot does).

Import-guarded: tf2_ros has no wheels where this project is built and tested, so the navigator
defaults to AMCL's /amcl_pose topic (PoseWithCovarianceStamped). With ``robot_pose_source: tf``
this sampler looks up the latest transform at a fixed rate and hands each one, with its own
stamp, to the same pose buffer the topic fills, so interpolation at an image's stamp works the
same way for both sources.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from rclpy.node import Node

PoseSink = Callable[[float, float, float, float], None]
"""Receives (stamp_s, x, y, yaw) of the base in the map frame."""


class TfUnavailableError(RuntimeError):
    """tf2_ros cannot be imported here."""


def _import_tf2() -> Any:
    try:
        import tf2_ros
    except ImportError as error:
        raise TfUnavailableError(
            "robot_pose_source is 'tf' but tf2_ros is not installed; install ros-<distro>-tf2-ros "
            "or take AMCL's /amcl_pose (PoseWithCovarianceStamped): set robot_pose_source to "
            "'topic'"
        ) from error
    return tf2_ros


class TfPoseSampler:
    """Samples map -> base frame from TF at ``rate_hz`` and passes each new pose to ``sink``."""

    def __init__(
        self, node: Node, sink: PoseSink, map_frame: str, base_frame: str, rate_hz: float,
        callback_group: Any = None,
    ) -> None:
        self._tf2 = _import_tf2()
        self._buffer = self._tf2.Buffer()
        self._listener = self._tf2.TransformListener(self._buffer, node)
        self._sink = sink
        self._frames = (map_frame, base_frame)
        self._last_stamp_s = -math.inf
        self._timer = node.create_timer(1.0 / rate_hz, self._sample, callback_group=callback_group)

    def _sample(self) -> None:
        from rclpy.time import Time

        try:
            transform = self._buffer.lookup_transform(*self._frames, Time())
        except (self._tf2.LookupException, self._tf2.ConnectivityException,
                self._tf2.ExtrapolationException):
            return  # not available yet; the navigator reports a missing pose when it needs one
        stamp = transform.header.stamp
        stamp_s = stamp.sec + stamp.nanosec * 1e-9
        if stamp_s <= self._last_stamp_s:
            return
        self._last_stamp_s = stamp_s
        t, q = transform.transform.translation, transform.transform.rotation
        yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
        self._sink(stamp_s, t.x, t.y, yaw)
