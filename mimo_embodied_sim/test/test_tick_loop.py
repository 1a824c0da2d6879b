"""TickLoop: ticks under the lock until stopped; a tick that raises is logged, the loop goes on."""

from __future__ import annotations

import sys
import threading
import time

from mimo_embodied_sim.tick_loop import GIL_SWITCH_INTERVAL_S, TickLoop


class _Logger:
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, message: str, **_: object) -> None:
        self.errors.append(message)


def test_ticks_under_the_lock_survive_errors_and_stop():
    lock, logger, ticks = threading.RLock(), _Logger(), []

    def tick() -> None:
        assert lock._is_owned()  # the loop holds the node's lock during a tick
        ticks.append(time.monotonic())
        if len(ticks) <= 2:
            raise RuntimeError("renderer lost its context")

    loop = TickLoop("test_loop", 0.01, tick, lock, logger)
    loop.start()
    deadline = time.monotonic() + 5.0
    while len(ticks) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    loop.stop()
    assert len(ticks) >= 10 and not loop.is_alive()
    assert len(logger.errors) == 2 and "renderer lost its context" in logger.errors[0]
    count = len(ticks)
    time.sleep(0.05)
    assert len(ticks) == count  # no tick after stop()


def test_start_lowers_the_gil_switch_interval_and_never_raises_it():
    """The physics thread releases the GIL at every MuJoCo call; at CPython's default 5 ms
    switch interval a busy executor thread held it back so long that the sim crawled."""
    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        loop = TickLoop("gil_loop", 0.01, lambda: None, threading.RLock(), _Logger())
        loop.start()
        loop.stop()
        assert sys.getswitchinterval() <= GIL_SWITCH_INTERVAL_S + 1e-9
        sys.setswitchinterval(0.0001)
        loop = TickLoop("gil_loop", 0.01, lambda: None, threading.RLock(), _Logger())
        loop.start()
        loop.stop()
        assert sys.getswitchinterval() < GIL_SWITCH_INTERVAL_S / 2  # a lower setting is kept
    finally:
        sys.setswitchinterval(before)
