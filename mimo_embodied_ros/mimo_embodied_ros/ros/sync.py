"""Approximate-time pairing of colour and depth frames, plus the matching camera_info.

message_filters is not available everywhere the stack runs, and the node needs only one thing
from it: the newest colour/depth pair whose stamps are within a tolerance. Callbacks only store
messages (no conversion), so ingest stays cheap however slow the model is.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from builtin_interfaces.msg import Time

CLOCK_RESET_S = 1.0  # a stamp this much older than the latest frame means the clock restarted


def stamp_seconds(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


@dataclass(frozen=True)
class SyncedFrame:
    """Raw messages of one synchronized frame (converted only when a query uses them)."""

    image: Any  # sensor_msgs/Image or CompressedImage
    depth: Any | None  # sensor_msgs/Image
    camera_info: Any | None  # sensor_msgs/CameraInfo, attached by latest()


class FrameSynchronizer:
    """Keeps the latest colour/depth pair within `slop_s`; thread-safe, queue depth per stream."""

    def __init__(self, slop_s: float = 0.05, queue_size: int = 5, use_depth: bool = True) -> None:
        self._slop_s = slop_s
        self._use_depth = use_depth
        self._images: deque[Any] = deque(maxlen=queue_size)
        self._depths: deque[Any] = deque(maxlen=queue_size)
        self._camera_infos: deque[Any] = deque(maxlen=queue_size)
        self._latest: SyncedFrame | None = None
        self._lock = threading.Lock()
        self.counts = {"image": 0, "depth": 0, "camera_info": 0, "synced": 0}

    def add_image(self, msg: Any) -> None:
        with self._lock:
            self.counts["image"] += 1
            self._images.append(msg)
            self._match()

    def add_depth(self, msg: Any) -> None:
        with self._lock:
            self.counts["depth"] += 1
            self._depths.append(msg)
            self._match()

    def add_camera_info(self, msg: Any) -> None:
        with self._lock:
            self.counts["camera_info"] += 1
            self._camera_infos.append(msg)

    def latest(self) -> SyncedFrame | None:
        """The newest synchronized frame with the camera_info nearest its stamp (or the newest).

        camera_info is matched when a query asks, not when the images pair up: it often arrives
        a moment after them, and intrinsics rarely change.
        """
        with self._lock:
            if self._latest is None:
                return None
            t_image = stamp_seconds(self._latest.image.header.stamp)
            info = min(
                reversed(self._camera_infos),
                key=lambda c: abs(stamp_seconds(c.header.stamp) - t_image),
                default=None,
            )
            return SyncedFrame(self._latest.image, self._latest.depth, info)

    def missing(self) -> str | None:
        """What has not arrived yet, phrased for an operator; None when a frame is ready."""
        with self._lock:
            if self.counts["image"] == 0:
                return "no colour image received yet"
            if self._use_depth and self.counts["depth"] == 0:
                return "no depth image received yet"
            if self._latest is None:
                return (
                    "colour and depth images arrive but their stamps never match within "
                    f"{self._slop_s * 1e3:.0f} ms"
                )
            return None

    def _match(self) -> None:
        if not self._use_depth:
            self._latest = SyncedFrame(self._images[-1], None, None)
            self.counts["synced"] += 1
            return
        # Newest colour image first: the first pair within the slop is the freshest frame.
        for image in reversed(self._images):
            t_image = stamp_seconds(image.header.stamp)
            best = min(
                self._depths,
                key=lambda d: abs(stamp_seconds(d.header.stamp) - t_image),
                default=None,
            )
            if best is not None and abs(stamp_seconds(best.header.stamp) - t_image) <= self._slop_s:
                if self._is_newer(image):
                    self._latest = SyncedFrame(image, best, None)
                    self.counts["synced"] += 1
                return

    def _is_newer(self, image: Any) -> bool:
        """A late pair never replaces a newer one, but a clock jumping back (a simulator reset,
        a looping bag) by more than CLOCK_RESET_S starts over."""
        if self._latest is None:
            return True
        if self._latest.image is image:
            return False
        age = stamp_seconds(self._latest.image.header.stamp) - stamp_seconds(image.header.stamp)
        return age < 0 or age > CLOCK_RESET_S
