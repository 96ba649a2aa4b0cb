"""A serving node's own connection to PostgreSQL: the other nodes' task changes, by
LISTEN/NOTIFY, and the lock that makes one node at a time do the background work.

Every committed change of a task's status or attempt sends a notification on CHANNEL, from a
trigger (tasks/postgres/schema.sql, hookd_task_changed), whoever made it: a node, the CLI, a
person at psql. The listener publishes each one that another process made on the store's
events, as a TaskEvent with `local` False; its own changes the store has published already.

PostgreSQL delivers a notification only to sessions listening when it is committed. While
the connection is down, changes go unheard: once it is back, `events.resync()` tells the
listeners to read the database again. The background lock is a session lock on the same
connection, so PostgreSQL lets it go when the node dies, whatever the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from errors import StorageUnavailable
from tasks.events import TaskEvent, TaskEvents

log = logging.getLogger("hookd.store")

CHANNEL = "hookd_tasks"
RECONNECT_S = 1.0
MAX_RECONNECT_S = 10.0
ABSENT = "-"  # the trigger's NULL: no agent (deleted), or a change made outside any node (the CLI, psql)


def parse_notification(payload: str) -> tuple[str, TaskEvent] | None:
    """(node, event) from the trigger's payload "STATUS ATTEMPTS TASK_ID AGENT_ID NODE"."""
    parts = payload.split(" ", 4)
    if len(parts) != 5 or not parts[1].isdigit():
        return None
    status, attempts, task_id, agent_id, node = parts
    event = TaskEvent(task_id, None if agent_id == ABSENT else agent_id, status, int(attempts), local=False)
    return node, event


class Listener:
    """The node's listening connection, kept open (reconnecting) from `start` to `stop`."""

    def __init__(
        self,
        connect: Callable[[], Any],
        events: TaskEvents,
        node_id: str,
        background_lock: tuple[int, int],
        shown_url: str,
    ) -> None:
        self._connect = connect
        self._events = events
        self._node_id = node_id
        self._background_lock = background_lock
        self._shown_url = shown_url
        self._conn: Any = None
        self._leads = False
        self._lock = asyncio.Lock()  # one statement at a time on the connection
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    async def start(self) -> None:
        """Connect and listen; the first connection's failure is the caller's (StorageUnavailable)."""
        await self._listen()
        self._task = asyncio.create_task(self._keep_listening(), name="hookd-postgres-listen")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._close()

    async def leads_background_work(self) -> bool:
        """Whether this node holds the background lock, trying to take it if not."""
        async with self._lock:
            conn = self._conn
            if conn is None or conn.is_closed():
                return False
            if not self._leads:
                try:
                    self._leads = bool(
                        await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", *self._background_lock)
                    )
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    self._lost.set()
                    return False
                if self._leads:
                    log.info("this node now sends the callbacks and applies retention")
            return self._leads

    async def _listen(self) -> None:
        conn = await self._connect()
        try:
            conn.add_termination_listener(lambda _conn: self._lost.set())
            await conn.add_listener(CHANNEL, self._on_notification)
        except BaseException:
            conn.terminate()
            raise
        self._conn = conn
        self._lost.clear()

    async def _keep_listening(self) -> None:
        delay_s = RECONNECT_S
        while True:
            await self._lost.wait()
            async with self._lock:
                self._leads = False  # the session, and its lock, are gone
                await self._close()
            log.warning("lost the LISTEN connection to %s; reconnecting", self._shown_url)
            while True:
                try:
                    await self._listen()
                    break
                except (
                    StorageUnavailable,
                    OSError,
                    TimeoutError,
                    asyncpg.PostgresError,
                    asyncpg.InterfaceError,
                ) as exc:
                    log.warning(
                        "cannot reconnect to %s (%s); again in %g s",
                        self._shown_url,
                        type(exc).__name__,
                        delay_s,
                    )
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, MAX_RECONNECT_S)
            delay_s = RECONNECT_S
            log.info("listening to %s again", self._shown_url)
            self._events.resync()  # changes committed while no one listened

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5.0)
            if not conn.is_closed():
                conn.terminate()

    def _on_notification(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        parsed = parse_notification(payload)
        if parsed is None:
            log.warning("ignored a notification hookd did not send on %s", CHANNEL)
            return
        node, event = parsed
        if node != self._node_id:
            self._events.publish(event)
