"""Helpers shared by the simulated worlds (tabletop, pick-and-place, apartment), defined once."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from mimo_embodied_ros.core.types import CameraIntrinsics


def fmt(values: tuple[float, ...] | np.ndarray) -> str:
    """Numbers as MJCF attribute text ("0.1 0.2 0.3")."""
    return " ".join(f"{float(v):.6g}" for v in values)


class RenderCache:
    """Renders of the current physics state, reused until the state changes.

    The world sets ``self._lock`` (re-entrant), ``self._cache = {}``, ``self.data`` (MjData) and
    bumps ``self._version`` whenever physics steps."""

    _lock: Any
    _cache: dict[str, tuple]
    _version: int
    data: Any

    def _cached(self, key: str, render: Callable[[Any], Any]) -> Any:
        with self._lock:
            cached = self._cache.get(key)
            if cached is None or cached[0] != self._version:
                cached = (self._version, render(self.data))
                self._cache[key] = cached
            return cached[1]


class MujocoWorld:
    """What every simulated world shares: context manager, sim time, timestep, the closing of
    its renderer and the pinhole intrinsics of its camera. A world sets ``model``, ``data``,
    ``width``, ``height``, ``_camera_id``, ``_lock`` and ``_renderer``."""

    model: Any
    data: Any
    width: int
    height: int
    _camera_id: int
    _lock: Any
    _renderer: Any

    def close(self) -> None:
        """Free the GL context (also done at interpreter exit)."""
        with self._lock:
            self._renderer.close()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def time(self) -> float:
        """Simulation time in seconds since the world settled."""
        return float(self.data.time)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics of the rendered images (square pixels, OpenCV / ROS pixel-centre
        convention: centre at ((W-1)/2, (H-1)/2))."""
        fy = (self.height / 2.0) / math.tan(math.radians(self.model.cam_fovy[self._camera_id]) / 2)
        return CameraIntrinsics(fx=fy, fy=fy, cx=(self.width - 1) / 2.0,
                                cy=(self.height - 1) / 2.0, width=self.width, height=self.height)
