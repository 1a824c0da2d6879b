"""The manipulation bridge's one frame buffer: depth + camera_info keyed by stamp, with holds.

A model answers seconds after the frame it saw (a 7B in thinking mode: 3 s and more), while the
camera sends 30 frames a second. A buffer bounded by a frame count forgets the frame before the
answer arrives. Here:

- `FrameBuffer` keeps the frames of the last `window_s` seconds of stamps (not a count), keyed by
  stamp; it serves "the newest frame" and the lookup by stamp.
- `FrameBuffer.hold()` returns a `FrameHold` taken when a query is sent: a snapshot of the frames
  buffered then, plus the frames that arrive while the hold is open whose stamps are at most
  `window_s` after the newest frame of the snapshot (the frame a query runs on was the perception
  node's newest when it got the goal, so it is in the snapshot or arrives just after it). The
  hold keeps them for the query's whole life however long the model takes; memory is bounded by
  stamps, not by the model's latency. `release()` (or leaving the `with` block) lets them go.

Lookups pair by stamp with one tolerance, the same `sync_slop_s` as the perception node's
colour/depth pairing. Thread-safe: subscriptions add frames while action threads look them up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from mimo_embodied_ros.core.depth import depth_to_metres
from mimo_embodied_ros.core.types import CameraIntrinsics
from mimo_embodied_ros.ros.images import (
    ImageConversionError,
    image_to_array,
    intrinsics_from_camera_info,
)
from mimo_embodied_ros.ros.sync import stamp_seconds


@dataclass(frozen=True)
class StampedFrame:
    """A depth image and the camera_info nearest its stamp (raw messages, converted by users)."""

    depth: Any  # sensor_msgs/Image
    camera_info: Any  # sensor_msgs/CameraInfo

    @property
    def stamp_s(self) -> float:
        return stamp_seconds(self.depth.header.stamp)

    def arrays(self) -> tuple[np.ndarray, CameraIntrinsics]:
        """Depth in metres and the intrinsics; ValueError for an image or info it cannot use."""
        try:
            depth_m = depth_to_metres(image_to_array(self.depth), self.depth.encoding)
            return depth_m, intrinsics_from_camera_info(self.camera_info)
        except ImageConversionError as error:
            raise ValueError(str(error)) from error


def _stamp_ns(msg: Any) -> int:
    return int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)


class _Frames:
    """Depth and camera_info messages keyed by stamp (nanoseconds); not thread-safe."""

    def __init__(self) -> None:
        self.depths: dict[int, Any] = {}
        self.infos: dict[int, Any] = {}

    def copy(self) -> _Frames:
        other = _Frames()
        other.depths, other.infos = dict(self.depths), dict(self.infos)
        return other

    def newest_ns(self) -> int | None:
        return max(self.depths) if self.depths else None

    def prune_before(self, oldest_ns: int) -> None:
        for table in (self.depths, self.infos):
            for key in [k for k in table if k < oldest_ns]:
                del table[key]

    def find(self, stamp_s: float | None, tolerance_s: float) -> StampedFrame | None:
        if not self.depths or not self.infos:
            return None
        if stamp_s is None:
            depth_key = max(self.depths)
        else:
            wanted = int(round(stamp_s * 1e9))
            depth_key = min(self.depths, key=lambda k: abs(k - wanted))
            if abs(depth_key - wanted) > tolerance_s * 1e9 + 1:
                return None
        info_key = min(self.infos, key=lambda k: abs(k - depth_key))
        return StampedFrame(self.depths[depth_key], self.infos[info_key])

    def describe(self) -> str:
        if not self.depths:
            return f"no depth frame, {len(self.infos)} camera_info"
        first, last = min(self.depths) * 1e-9, max(self.depths) * 1e-9
        return (f"{len(self.depths)} depth frames stamped {first:.3f}..{last:.3f}, "
                f"{len(self.infos)} camera_info")


class FrameHold:
    """The frames around one query, kept until released; see the module docstring."""

    def __init__(self, buffer: FrameBuffer, frames: _Frames, window_s: float) -> None:
        self._buffer = buffer
        self._frames = frames
        self._window_ns = int(window_s * 1e9)
        anchor = frames.newest_ns()
        self._until_ns = None if anchor is None else anchor + self._window_ns
        self.released = False

    def _offer(self, table: str, key: int, msg: Any) -> None:  # under the buffer's lock
        if self._until_ns is None and table == "depths":
            self._until_ns = key + self._window_ns  # nothing buffered at hold time
        if self._until_ns is not None and key <= self._until_ns:
            getattr(self._frames, table)[key] = msg

    def at(self, stamp_s: float | None, tolerance_s: float,
           wait_s: float = 0.0) -> StampedFrame | None:
        """The held depth nearest `stamp_s` (None = newest held) within `tolerance_s`, with the
        camera_info nearest it; waits up to `wait_s` for it to arrive."""
        deadline = time.monotonic() + wait_s
        while True:
            with self._buffer.lock:
                found = self._frames.find(stamp_s, tolerance_s)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.01)

    def describe(self) -> str:
        with self._buffer.lock:
            return self._frames.describe()

    def release(self) -> None:
        self._buffer._release(self)

    def __enter__(self) -> FrameHold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class FrameBuffer:
    """Depth + camera_info of the last `window_s` seconds (by stamp), and holds on them."""

    def __init__(self, window_s: float = 1.0) -> None:
        if window_s <= 0:
            raise ValueError(f"the frame window must be positive, got {window_s}")
        self.window_s = float(window_s)
        self.lock = threading.Lock()
        self._frames = _Frames()
        self._holds: list[FrameHold] = []
        self.received = {"depth": 0, "camera_info": 0}
        self.last_depth_monotonic: float | None = None  # when the newest depth image arrived

    def add_depth(self, msg: Any) -> None:
        self._add("depths", msg)

    def add_camera_info(self, msg: Any) -> None:
        self._add("infos", msg)

    def _add(self, table: str, msg: Any) -> None:
        key = _stamp_ns(msg)
        with self.lock:
            self.received["depth" if table == "depths" else "camera_info"] += 1
            if table == "depths":
                self.last_depth_monotonic = time.monotonic()
            newest = self._frames.newest_ns()
            if newest is not None and key < newest - 10 * self.window_ns():
                self._frames = _Frames()  # the clock went back (a simulator restarted)
            getattr(self._frames, table)[key] = msg
            newest = self._frames.newest_ns()
            if newest is not None:
                self._frames.prune_before(newest - self.window_ns())
            for hold in self._holds:
                hold._offer(table, key, msg)

    def window_ns(self) -> int:
        return int(self.window_s * 1e9)

    def at(self, stamp_s: float | None, tolerance_s: float) -> StampedFrame | None:
        """A buffered frame by stamp (None = the newest), without holding it."""
        with self.lock:
            return self._frames.find(stamp_s, tolerance_s)

    def hold(self) -> FrameHold:
        """Snapshot the buffered frames and keep the ones that follow (see the module doc)."""
        with self.lock:
            hold = FrameHold(self, self._frames.copy(), self.window_s)
            self._holds.append(hold)
            return hold

    def _release(self, hold: FrameHold) -> None:
        with self.lock:
            if hold in self._holds:
                self._holds.remove(hold)
            hold.released = True

    def open_holds(self) -> int:
        with self.lock:
            return len(self._holds)

    def buffered(self) -> int:
        """Depth frames buffered now."""
        with self.lock:
            return len(self._frames.depths)

    def describe(self) -> str:
        with self.lock:
            return self._frames.describe()
