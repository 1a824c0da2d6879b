"""Helpers shared by the simulated worlds (tabletop, pick-and-place, apartment), defined once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np


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
