"""A wall-clock loop thread that steps a simulator node.

Why not an executor timer: a timer whose callback (a camera render) outlasts its period stays
ready while it runs, and rclpy's executors then spin hot on it, starving the very callback they
wait on (measured: the apartment graph ran at 0.05-0.6x real time on 2 cores). The loop runs
`tick` under the node's lock, skips ticks it is late for rather than bursting, and logs a tick
that raises and goes on.

Why the loop lowers the interpreter's GIL switch interval: a physics tick makes hundreds of
short calls into MuJoCo, each of which releases the GIL. In the same process an executor thread
is busy rebuilding rclpy wait sets for every message, and CPython lets a thread that asks for
the GIL back wait up to the switch interval (5 ms by default) each time. Measured on 2 cores:
the pick-and-place world ran at about 0.15x real time instead of 8x, and every arm motion timed
out. At 0.5 ms the same graph runs at its configured rate. The setting is process-wide; it is
only ever lowered, and only in processes that run a simulator loop.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

GIL_SWITCH_INTERVAL_S = 0.0005


class TickLoop:
    """Calls ``tick()`` every ``period_s`` of wall time, holding ``lock``, until ``stop()``."""

    def __init__(self, name: str, period_s: float, tick: Callable[[], None],
                 lock: threading.RLock, logger: Any) -> None:
        if period_s <= 0.0:
            raise ValueError("period_s must be > 0")
        self._period_s, self._tick, self._lock, self._logger = period_s, tick, lock, logger
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_INTERVAL_S))
        self._thread.start()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            try:
                with self._lock:
                    self._tick()
            except Exception as error:  # noqa: BLE001 - a bad tick is logged; the loop goes on
                self._logger.error(f"simulation tick failed: {error!r}",
                                   throttle_duration_sec=5.0)
            next_tick = max(next_tick + self._period_s, time.monotonic())
            self._stop.wait(next_tick - time.monotonic())
