"""The one model behind the perception node, ROS-free: one query at a time (or up to
``max_concurrent`` for a server that batches them), shared by the `~/instruct` service, the
`~/query` action and continuous mode.

A query while the model is full waits (policy "queue", at most one waiting) or is refused at once
(policy "reject"), with a message that says which query holds the model. A waiting query that is
cancelled leaves the queue; a running one stops its generation (the backend checks the event).
The engine never raises: a backend bug becomes a failed result, counted.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from mimo_embodied_ros.backends.base import Progress, VisionLanguageBackend
from mimo_embodied_ros.perception import Frame, QueryResult, QuerySettings, run_query

QUEUE_POLICIES = ("queue", "reject")


class QueryEngine:
    """Runs queries on one backend, at most ``max_concurrent`` at once, and counts how they ended.

    An in-process backend runs one generation at a time anyway; a server (vLLM, SGLang) batches
    concurrent requests, so two cameras' queries need not wait for each other there.
    """

    def __init__(self, policy: str = "queue", max_concurrent: int = 1) -> None:
        if policy not in QUEUE_POLICIES:
            raise ValueError(f"queue policy must be one of {QUEUE_POLICIES}, not {policy!r}")
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, not {max_concurrent}")
        self.policy = policy
        self.max_concurrent = max_concurrent
        self.counts: Counter[str] = Counter()
        self._condition = threading.Condition()
        self._backend: VisionLanguageBackend | None = None
        # The queries holding the model: their instruction and cancel event, in arrival order.
        self._running: dict[int, tuple[str, threading.Event]] = {}
        self._next_id = 0
        self._waiting = 0

    @property
    def backend(self) -> VisionLanguageBackend | None:
        return self._backend

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def set_backend(self, backend: VisionLanguageBackend | None) -> VisionLanguageBackend | None:
        """Install a backend (None removes it); returns the previous one for the caller to close."""
        with self._condition:
            previous, self._backend = self._backend, backend
            return previous

    def cancel_running(self) -> bool:
        """Stop the generation in flight, if any (e.g. before the backend is unloaded)."""
        with self._condition:
            for _, cancel in self._running.values():
                cancel.set()
            return bool(self._running)

    def count(self, what: str) -> None:
        """Count an event that happened outside the engine (e.g. a publish that failed)."""
        with self._condition:
            self.counts[what] += 1

    def run(
        self,
        frame: Frame | None,
        instruction: str,
        task: str,
        settings: QuerySettings,
        cancel: threading.Event | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        wait: bool = True,
    ) -> QueryResult:
        """One query; ``wait=False`` refuses at once when the model is busy (continuous mode)."""
        cancel = cancel or threading.Event()
        with self._condition:
            refusal = self._admit(cancel, wait)
            if refusal is not None:
                self.counts[refusal[0]] += 1
                return QueryResult(success=False, instruction=instruction, message=refusal[1],
                                   error_kind=refusal[0])
            backend = self._backend
            query_id, self._next_id = self._next_id, self._next_id + 1
            self._running[query_id] = (instruction, cancel)
        try:
            if backend is None:
                result = QueryResult(success=False, instruction=instruction,
                                     message="no model backend is loaded")
            else:
                result = run_query(backend, frame, instruction, task, settings, cancel,
                                   on_progress)
        except Exception as error:  # noqa: BLE001 - a backend bug must not end the node
            result = QueryResult(success=False, instruction=instruction, error_kind="internal",
                                 message=f"internal error in the query: {error!r}")
        finally:
            with self._condition:
                del self._running[query_id]
                self._condition.notify_all()
        with self._condition:
            self.counts["queries"] += 1
            if not result.success:
                self.counts["failed"] += 1
            if result.error_kind:
                self.counts[result.error_kind] += 1
        return result

    def _admit(self, cancel: threading.Event, wait: bool) -> tuple[str, str] | None:
        """Wait for the model (under the condition's lock); (kind, message) when refused."""
        if len(self._running) < self.max_concurrent:
            return None
        first = next(iter(self._running.values()))[0]
        holder = f"the model is busy with '{first[:60]}'"
        if not wait:
            return "rejected", f"{holder}; skipped"
        if self.policy == "reject":
            return "rejected", f"{holder} (queue_policy: reject); try again when it is done"
        if self._waiting >= 1:
            return "rejected", f"{holder} and one query already waits (queue depth one)"
        self._waiting += 1
        try:
            while len(self._running) >= self.max_concurrent and not cancel.is_set():
                self._condition.wait(timeout=0.05)
        finally:
            self._waiting -= 1
        if cancel.is_set():
            return "cancelled", "the query was cancelled while it waited for the model"
        return None
