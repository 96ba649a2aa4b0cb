"""Waiting for a task's next committed change, without polling the database.

`TaskWatch` listens to the pool's TaskEvents and wakes the requests waiting on that task: a
long-poll, a webhook sent with `Prefer: wait`, an event stream. Two rules keep them exact:

- Subscribe first, then read. A change committed between a request's read and its wait has
  already set its wake-up, so it is never missed.
- After a wake-up, read the task again from the store. The answer is what was committed,
  never something pieced together from the event.

Changes made by another process arrive as events too (another node's, by LISTEN/NOTIFY), or
as a resync (SQLite sees only that the file changed; a lost LISTEN connection may have missed
some), which wakes every waiter to read its task again. A long-poll also reads the task once
more when its time is up, and a stream on every heartbeat.
`close()` (on shutdown) wakes every waiter for good, so no open request holds up the stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any

from errors import NotFound
from tasks.events import FINAL_STATUSES, TaskEvent, TaskEvents
from tasks.store import Store, Task

# How often a waiter looks whether its client is still connected: aiohttp does not cancel a
# handler whose client went away, so without a look it would wait out its whole time.
DISCONNECT_CHECK_S = 1.0
HEARTBEAT_S = 15.0

Connected = Callable[[], bool]


class Waiter:
    """One request's wake-up for one task."""

    def __init__(self, watch: TaskWatch) -> None:
        self._watch = watch
        self._changed = asyncio.Event()

    def wake(self) -> None:
        self._changed.set()

    async def changed(self, timeout_s: float) -> bool:
        """True once the task changed (or hookd is stopping), False after `timeout_s`.

        Re-armed before returning, so a change committed while the caller reads is not lost.
        """
        if not self._changed.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout_s, 0.0)):
                    await self._changed.wait()
        if self._watch.closed:
            return True
        fired = self._changed.is_set()
        self._changed.clear()
        return fired


class TaskWatch:
    def __init__(self, events: TaskEvents, *, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.heartbeat_s = heartbeat_s
        self.closed = False
        self._waiters: dict[str, set[Waiter]] = {}
        self._unsubscribe = events.subscribe(self._on_event)
        self._unsubscribe_resync = events.subscribe_resync(self._on_resync)

    @property
    def waiting(self) -> int:
        """How many requests wait on a task right now."""
        return sum(len(waiters) for waiters in self._waiters.values())

    def _on_event(self, event: TaskEvent) -> None:
        for waiter in self._waiters.get(event.task_id, ()):
            waiter.wake()

    def _on_resync(self) -> None:
        """Changes may have been missed: every waiter reads its task again."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake()

    @contextlib.contextmanager
    def watch(self, task_id: str) -> Iterator[Waiter]:
        """Wake-ups for the task's changes from now on, until the block ends."""
        waiter = Waiter(self)
        if self.closed:
            waiter.wake()
        waiters = self._waiters.setdefault(task_id, set())
        waiters.add(waiter)
        try:
            yield waiter
        finally:
            waiters.discard(waiter)
            if not waiters:
                self._waiters.pop(task_id, None)

    def close(self) -> None:
        """hookd is stopping: wake every waiter now and from now on."""
        if self.closed:
            return
        self.closed = True
        self._unsubscribe()
        self._unsubscribe_resync()
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake()


def is_final(task: Task) -> bool:
    return task.status in FINAL_STATUSES


async def wait_for_final(
    watch: TaskWatch, store: Store, task_id: str, timeout_s: float, connected: Connected
) -> Task | None:
    """The task once it is final, or as it is when `timeout_s` passes, its client leaves or hookd
    stops; None if no task has this id."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    with watch.watch(task_id) as waiter:
        task = await store.get_task(task_id)
        while task is not None and not is_final(task) and not watch.closed:
            remaining_s = deadline - loop.time()
            if remaining_s <= 0:
                return await store.get_task(task_id)  # its current state: another process may have moved it
            if not connected():
                return task
            if await waiter.changed(min(remaining_s, DISCONNECT_CHECK_S)):
                task = await store.get_task(task_id)
        return task


async def follow(
    watch: TaskWatch, store: Store, task_id: str, connected: Connected
) -> AsyncGenerator[Task | None, None]:
    """The task now, then each committed change of it, ending after its final state; None
    whenever `watch.heartbeat_s` passes without one. NotFound (before anything) for an unknown id.

    Changes that follow each other faster than the store is read arrive as the latest of them.
    Ends early, without the final state, when the client leaves or hookd stops.
    """
    loop = asyncio.get_running_loop()
    with watch.watch(task_id) as waiter:
        task = await store.get_task(task_id)
        if task is None:
            raise NotFound("No task has this id. Check it against the task_id the webhook returned.")
        yield task
        shown: dict[str, Any] = task.status_json()
        beat_at = loop.time() + watch.heartbeat_s
        while not is_final(task):
            if watch.closed or not connected():
                return
            changed = await waiter.changed(min(beat_at - loop.time(), DISCONNECT_CHECK_S))
            heartbeat = loop.time() >= beat_at
            if not (changed or heartbeat) or watch.closed:
                continue
            latest = await store.get_task(task_id)
            if latest is None:  # deleted (retention) while followed
                return
            task = latest
            if task.status_json() != shown:
                shown = task.status_json()
                beat_at = loop.time() + watch.heartbeat_s
                yield task
            elif heartbeat:
                beat_at = loop.time() + watch.heartbeat_s
                yield None
