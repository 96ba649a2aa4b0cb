"""Task state changes, as they are committed, for whoever in the process listens.

The store (tasks/store.py) publishes one `TaskEvent` after each change of a task's status it
commits, and, while it serves, the changes other processes commit (`local` False: another
node's, or the CLI's). Listeners — the worker pool, waiters for a result, metrics, logs,
callbacks — subscribe here instead of reaching into each other. A listener is a plain function
called in the event loop: it must be quick and must not raise.

Where a backend cannot tell what another process changed (SQLite sees only that the file
changed), or may have missed some changes (a lost LISTEN connection), it calls `resync()`:
whoever keeps state derived from the events reads the database again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("hookd.events")

FINAL_STATUSES = ("SUCCESS", "FAILURE")


@dataclass(frozen=True)
class TaskEvent:
    task_id: str
    agent_id: str | None  # None when the publisher does not know it (a queued webhook task)
    status: str  # the status just committed: PENDING, STARTED, RETRY, SUCCESS or FAILURE
    attempt: int  # the attempt this change belongs to; 0 before the first
    elapsed_s: float | None = None  # the attempt's run time, for RETRY, SUCCESS and FAILURE
    error_type: str | None = None  # the result's or last error's `type`, if it failed
    at: float = field(default_factory=time.time)  # epoch seconds
    # For a final status: whether a callback delivery was queued with it (None: not known, so a
    # listener that sends deliveries looks).
    delivery_queued: bool | None = None
    # False for a change another process committed: counted and logged by that process, so
    # metrics and log lines take local events only.
    local: bool = True

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


Listener = Callable[[TaskEvent], None]
Resync = Callable[[], None]


class TaskEvents:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._resyncs: list[Resync] = []

    def subscribe_resync(self, listener: Resync) -> Callable[[], None]:
        """Call `listener` whenever changes may have been missed; returns the function that stops it."""
        self._resyncs.append(listener)
        return lambda: self._resyncs.remove(listener)

    def resync(self) -> None:
        for listener in list(self._resyncs):
            try:
                listener()
            except Exception:
                log.exception("a task event listener failed on a resync")

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event from now on; returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, event: TaskEvent) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # one broken listener must not stop the others, or the pool
                log.exception("a task event listener failed on %s %s", event.task_id, event.status)
