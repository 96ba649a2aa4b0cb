"""The SQLite store: one file, one writer connection, two reader connections.

Writes are plain functions handed to the `Writer` (tasks/sqlite/writer.py), which applies
them with group commit; each method returns after its write is committed. Reads use their
own aiosqlite connection; in WAL mode they never wait for the writer. A task looked up by id
(the status poll, hookd's most frequent read) is read on the event loop's own thread instead:
a primary-key lookup takes microseconds, less than the hop to a reader thread and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from errors import Conflict, NotFound, StorageUnavailable
from tasks.ids import uuid7
from tasks.json_text import json_text
from tasks.rows import (
    AGENT_COLUMNS,
    LIST_TASK_COLUMNS,
    TASK_COLUMNS,
    agent_from_row,
    listed_task_from_row,
    task_from_row,
)
from tasks.sqlite import serve_lock
from tasks.sqlite.agents import SQLiteAgents
from tasks.sqlite.deliveries import SQLiteDeliveries, fill_callback_secrets, queue_deliveries
from tasks.sqlite.dump import SQLiteDump
from tasks.sqlite.knowledge import SQLiteKnowledge
from tasks.sqlite.schema import set_up as set_up_schema
from tasks.sqlite.writer import WriteOp, Writer
from tasks.store import (
    IDEMPOTENCY_WINDOW_S,
    STATUSES,
    Claim,
    Enqueued,
    Finished,
    Recovered,
    Recovery,
    Task,
    cancelled_result,
    interrupted_result,
    list_preview,
)

log = logging.getLogger("hookd.store")

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
# Task lookups by id read the file through a memory map: on a large database most lookups miss
# SQLite's own page cache, and a mapped page costs no read() call and no copy. Only pages
# looked at are touched; they stay the kernel's page cache, shared and reclaimable.
POINT_READ_MMAP_BYTES = 1 << 30
# How often a serving store looks whether another process (the CLI) committed to the file:
# PRAGMA data_version on the writer's connection, a read of one counter in the shared memory.
OUTSIDE_CHANGES_CHECK_S = 0.5

# How far down the queue a claim looks for tasks whose agent has room under its
# max_concurrency: a few rows per free slot, so a claim for one slot stays cheap on a deep
# queue. Tasks of other agents behind more than this many of a saturated agent's wait.
CLAIM_SCAN_ROWS_PER_SLOT = 4
CLAIM_SCAN_ROWS_MIN = 64
CLAIM_SCAN_ROWS_MAX = 4000

GET_TASK_SQL = f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?"
# A new task for the active agent holding a token (and, when the request's signature was
# checked, still the secret it was checked with). The token lookup happens inside the write:
# the webhook's hot path is one round trip to the writer, shared with every other webhook in its
# commit.
ENQUEUE_SQL = (
    "INSERT INTO tasks (id, agent_id, payload, max_attempts, run_after, created_at)"
    " SELECT ?1, id, ?2, max_attempts, ?3, ?3 FROM agents"
    " WHERE token_sha256 = ?4 AND status = 'active' AND signature_secret IS ?5"
)

# Runnable tasks in queue order, then the ones whose agent still has room once the
# running tasks and the earlier candidates of the same agent are counted.
CLAIM_SQL = f"""
UPDATE tasks
SET status = 'STARTED', attempts = attempts + 1, started_at = :now, last_error = NULL,
    owner = :node, lease_expires_at = :now + :lease_s
WHERE rowid IN (
    SELECT c.rowid FROM (
        SELECT q.rowid, q.agent_id, q.run_after, a.max_concurrency,
               row_number() OVER (PARTITION BY q.agent_id ORDER BY q.run_after, q.rowid) AS nth
        FROM (
            -- INDEXED BY: without statistics the planner picks tasks_by_status and sorts
            -- the whole queue; the partial index is already in claim order.
            -- A paused agent's tasks are skipped inside the scan, not after it: otherwise
            -- :scan of them at the head of the queue would block every other agent's.
            SELECT rowid, agent_id, run_after FROM tasks INDEXED BY tasks_queue
            WHERE status IN ('PENDING', 'RETRY') AND run_after <= :now
              AND agent_id IN (SELECT id FROM agents WHERE status = 'active')
            ORDER BY run_after, rowid LIMIT :scan
        ) AS q
        JOIN agents AS a ON a.id = q.agent_id
    ) AS c
    WHERE c.max_concurrency IS NULL
       OR c.nth + (SELECT count(*) FROM tasks AS r
                   WHERE r.agent_id = c.agent_id AND r.status = 'STARTED') <= c.max_concurrency
    ORDER BY c.run_after, c.rowid
    LIMIT :limit
)
RETURNING {TASK_COLUMNS}
"""


# The claim when no active agent has a max_concurrency (the common case): the first runnable
# tasks in queue order, without CLAIM_SQL's window over a scan of the queue.
CLAIM_UNLIMITED_SQL = f"""
UPDATE tasks
SET status = 'STARTED', attempts = attempts + 1, started_at = :now, last_error = NULL,
    owner = :node, lease_expires_at = :now + :lease_s
WHERE rowid IN (
    SELECT rowid FROM tasks INDEXED BY tasks_queue
    WHERE status IN ('PENDING', 'RETRY') AND run_after <= :now
      AND agent_id IN (SELECT id FROM agents WHERE status = 'active')
    ORDER BY run_after, rowid
    LIMIT :limit
)
RETURNING {TASK_COLUMNS}
"""
ANY_LIMITED_AGENT_SQL = "SELECT 1 FROM agents WHERE max_concurrency IS NOT NULL AND status = 'active' LIMIT 1"


def _create_private(path: str) -> None:
    """Create the database file readable by its owner only, before SQLite would create it under
    the umask (0644): it holds signing and callback secrets, payloads and results. SQLite makes
    the -wal and -shm files with the database file's mode, so they are private too. An empty
    file (made by `touch`, or the target of a dangling symlink) holds nothing yet: made private too."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size == 0:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _warn_if_shared(path: str) -> None:
    """A database made before hookd created it 0600 keeps its mode: say so, once per open."""
    modes = [stat.S_IMODE(os.stat(p).st_mode) for p in (path, path + "-wal") if os.path.exists(p)]
    mode = max(modes, key=lambda m: m & 0o077)
    if mode & 0o077:
        log.warning(
            "%s can be read by other users (mode %04o), and it holds secrets: chmod 600 it and its"
            " -wal and -shm files",
            path,
            mode,
        )


class SQLiteStore(SQLiteAgents, SQLiteDeliveries, SQLiteKnowledge, SQLiteDump):
    """The store (tasks/store.py), its agents in tasks/sqlite/agents.py, deliveries in
    tasks/sqlite/deliveries.py, sources and chunks in tasks/sqlite/knowledge.py, dump and load
    in tasks/sqlite/dump.py."""

    def __init__(self, path: str, *, sync: str = "full") -> None:
        super().__init__()
        self._serving = False
        # Set once a serving store has taken over what earlier servers left: no other owner can
        # start a task while it holds the file, so later looks would find nothing.
        self._taken_over = False
        self._outside_watch: asyncio.Task[None] | None = None
        self.path = str(Path(path).expanduser())
        self.sync = sync
        self._reader: aiosqlite.Connection | None = None
        self._point_reader: sqlite3.Connection | None = None  # the event loop's thread only
        self._writer: Writer | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def where(self) -> str:
        return str(Path(self.path).resolve())

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        with serve_lock.serving(self.path):  # a file lock beside the database, flock'd
            self._serving = True
            try:
                yield
            finally:
                self._serving = False

    async def leads_background_work(self) -> bool:
        return True  # the one server of this file

    async def _watch_outside_changes(self) -> None:
        """While serving: tell listeners (events.resync) when another process committed to the
        file — the CLI cancelling a task, pausing an agent — since nothing else would."""
        assert self._writer is not None
        seen = await self._writer.data_version()
        while True:
            await asyncio.sleep(OUTSIDE_CHANGES_CHECK_S)
            try:
                version = await self._writer.data_version()
            except Exception:  # closing, or the file is unreadable for a moment: look again
                continue
            if version != seen:
                seen = version
                self.events.resync()

    def _pragmas(self) -> list[str]:
        return [
            f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
            "PRAGMA foreign_keys = ON",
            f"PRAGMA synchronous = {self.sync.upper()}",
        ]

    def _connect_writer(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            for pragma in self._pragmas():
                conn.execute(pragma)
        except BaseException:
            conn.close()
            raise
        return conn

    async def open(self) -> None:
        """Connect, and create the schema if the file is new. StorageUnavailable if the
        path cannot hold a hookd database (a folder, another kind of file, no permission)."""
        try:
            # A new file's folder; tiny and once per start, so done inline.
            Path(self.path).resolve().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
            _create_private(self.path)
            writer = Writer(self._connect_writer)
            await writer.open(self._set_up)
        except (OSError, sqlite3.Error) as exc:
            raise StorageUnavailable(f"{self.path} cannot be opened as a hookd database: {exc}.") from None
        try:
            reader = await aiosqlite.connect(self.path, isolation_level=None)
            for pragma in [*self._pragmas(), "PRAGMA query_only = ON"]:
                await reader.execute(pragma)
        except BaseException:
            await writer.close()
            raise
        try:
            # No busy timeout: a point read never sleeps on the event loop; one that would wait
            # (e.g. while another process recovers the WAL) goes to the reader thread instead.
            point_reader = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            point_reader.execute("PRAGMA query_only = ON")
            point_reader.execute(f"PRAGMA mmap_size = {POINT_READ_MMAP_BYTES}")
        except BaseException:
            await reader.close()
            await writer.close()
            raise
        self._writer, self._reader, self._point_reader = writer, reader, point_reader
        _warn_if_shared(self.path)
        if self._serving:
            self._outside_watch = asyncio.create_task(
                self._watch_outside_changes(), name="hookd-sqlite-outside"
            )

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """WAL, and the newest schema (on the writer thread)."""
        conn.execute("PRAGMA journal_mode = WAL")
        set_up_schema(conn, self.path)
        fill_callback_secrets(conn)

    async def close(self) -> None:
        if self._outside_watch is not None:
            self._outside_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outside_watch
            self._outside_watch = None
        if self._writer is not None:
            await self._writer.close()
        if self._reader is not None:
            await self._reader.close()
        if self._point_reader is not None:
            self._point_reader.close()
        self._writer = self._reader = self._point_reader = None

    async def _write(self, op: WriteOp[T]) -> T:
        assert self._writer is not None, "store is not open"
        return await self._writer.submit(op)

    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        assert self._reader is not None, "store is not open"
        return list(await self._reader.execute_fetchall(sql, params))

    # -- tasks -------------------------------------------------------------------------

    async def _enqueue(
        self, token_sha256: bytes, payload_json: str, signature_secret: str | None
    ) -> str | None:
        task_id = uuid7()
        params = (task_id, payload_json, time.time(), token_sha256, signature_secret)

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(ENQUEUE_SQL, params).rowcount

        return task_id if await self._write(op) == 1 else None

    async def _enqueue_once(
        self,
        token_sha256: bytes,
        payload_json: str,
        key: str,
        body_sha256: bytes,
        signature_secret: str | None,
    ) -> Enqueued | None:
        task_id = uuid7()
        now = time.time()

        def op(conn: sqlite3.Connection) -> Enqueued | None:
            # Look-up and insert in one write op: the writer applies ops one at a time, so a
            # concurrent request with the same key runs after this one and finds the key.
            agent = conn.execute(
                "SELECT id FROM agents WHERE token_sha256 = ? AND signature_secret IS ?",
                (token_sha256, signature_secret),
            ).fetchone()
            if agent is None:
                return None
            found = conn.execute(
                "SELECT task_id, body_sha256 FROM idempotency_keys"
                " WHERE agent_id = ? AND key = ? AND created_at >= ?",
                (agent[0], key, now - IDEMPOTENCY_WINDOW_S),
            ).fetchone()
            if found is not None:
                return Enqueued(found[0], replayed=True, same_body=found[1] == body_sha256)
            params = (task_id, payload_json, now, token_sha256, signature_secret)
            if conn.execute(ENQUEUE_SQL, params).rowcount != 1:
                return None  # the agent is paused
            # An expired key not purged yet is taken over: it must not block a new task.
            conn.execute(
                "INSERT INTO idempotency_keys (agent_id, key, body_sha256, task_id, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (agent_id, key) DO UPDATE SET"
                " body_sha256 = excluded.body_sha256, task_id = excluded.task_id,"
                " created_at = excluded.created_at",
                (agent[0], key, body_sha256, task_id, now),
            )
            return Enqueued(task_id, replayed=False)

        return await self._write(op)

    async def get_task(self, task_id: str) -> Task | None:
        assert self._point_reader is not None, "store is not open"
        try:
            rows = self._point_reader.execute(GET_TASK_SQL, (task_id,)).fetchall()
        except sqlite3.OperationalError:  # busy: wait for the database on the reader thread
            rows = await self._read(GET_TASK_SQL, (task_id,))
        return task_from_row(rows[0]) if rows else None

    async def list_tasks(
        self,
        *,
        agent_id: str | None = None,
        statuses: Sequence[str] = (),
        limit: int = 50,
        before_id: str | None = None,
    ) -> list[Task]:
        where, params = [], []
        if agent_id is not None:
            where.append("agent_id = ?")
            params.append(agent_id)
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if before_id is not None:
            where.append("id < ?")
            params.append(before_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {LIST_TASK_COLUMNS} FROM tasks {clause} ORDER BY id DESC LIMIT ?"
        return [listed_task_from_row(r) for r in await self._read(sql, [*params, limit])]

    async def queue_depth(self) -> int:
        ((count,),) = await self._read("SELECT count(*) FROM tasks WHERE status IN ('PENDING', 'RETRY')")
        return int(count)

    async def count_by_status(self) -> dict[str, int]:
        # A scan of the covering index on (status, id), never the rows: about 40 ms per
        # million tasks, on the reader connection (the event loop does not wait).
        rows = await self._read(
            "SELECT status, count(*) FROM tasks INDEXED BY tasks_by_status GROUP BY status"
        )
        return dict.fromkeys(STATUSES, 0) | {status: int(count) for status, count in rows}

    async def _claim_batch(self, limit: int, lease_s: float) -> list[Claim]:
        scan = min(max(limit * CLAIM_SCAN_ROWS_PER_SLOT, CLAIM_SCAN_ROWS_MIN), CLAIM_SCAN_ROWS_MAX)
        params = {"now": time.time(), "limit": limit, "scan": scan, "node": self.node_id, "lease_s": lease_s}

        def op(conn: sqlite3.Connection) -> tuple[list[Any], list[Any], set[str]]:
            limited = conn.execute(ANY_LIMITED_AGENT_SQL).fetchall()
            tasks = conn.execute(CLAIM_SQL if limited else CLAIM_UNLIMITED_SQL, params).fetchall()
            if not tasks:
                return tasks, [], set()
            # The claim joined each task's agent as active, in this transaction: it exists.
            agent_ids = list({row[1] for row in tasks})
            among = f"({', '.join('?' * len(agent_ids))})"
            agents = conn.execute(
                f"SELECT {AGENT_COLUMNS} FROM agents WHERE id IN {among}", agent_ids
            ).fetchall()
            with_sources = conn.execute(
                f"SELECT DISTINCT agent_id FROM sources WHERE agent_id IN {among}", agent_ids
            ).fetchall()
            return tasks, agents, {agent_id for (agent_id,) in with_sources}

        task_rows, agent_rows, with_sources = await self._write(op)
        agents = {row[0]: agent_from_row(row) for row in agent_rows}
        return [Claim(task_from_row(row), agents[row[1]], row[1] in with_sources) for row in task_rows]

    async def _update_claimed(self, task: Task, assignments: str, params: dict[str, Any]) -> bool:
        """Change a task still held by the claim `task` (this node's, the same attempt); it
        leaves STARTED, so it is nobody's any more."""
        sql = (
            f"UPDATE tasks SET {assignments}, owner = NULL, lease_expires_at = NULL"
            " WHERE id = :id AND status = 'STARTED' AND owner = :node AND attempts = :attempt"
        )
        params = params | {"id": task.id, "node": self.node_id, "attempt": task.attempts}

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(sql, params).rowcount

        return await self._write(op) == 1

    async def _finish(self, task: Task, status: str, result: dict[str, Any]) -> Finished | None:
        now = time.time()
        text = json_text(result)
        params = {
            "id": task.id,
            "status": status,
            "result": text,
            "preview": list_preview(result, text),
            "now": now,
            "node": self.node_id,
            "attempt": task.attempts,
        }

        def op(conn: sqlite3.Connection) -> Finished | None:
            finished = conn.execute(
                "UPDATE tasks SET status = :status, result = :result, result_preview = :preview,"
                " finished_at = :now, owner = NULL, lease_expires_at = NULL"
                " WHERE id = :id AND status = 'STARTED' AND owner = :node AND attempts = :attempt",
                params,
            ).rowcount
            if finished != 1:
                return None
            return Finished(delivery_queued=queue_deliveries(conn, [task.id], now) > 0)

        return await self._write(op)

    async def _retry_later(self, task: Task, run_after: float, error: dict[str, Any]) -> bool:
        return await self._update_claimed(
            task,
            "status = 'RETRY', run_after = :run_after, last_error = :error, started_at = NULL",
            {"run_after": run_after, "error": json_text(error)},
        )

    async def _requeue(self, task: Task) -> bool:
        return await self._update_claimed(
            task, "status = 'PENDING', attempts = attempts - 1, started_at = NULL", {}
        )

    async def renew_leases(self, lease_s: float) -> set[tuple[str, int]]:
        params = (time.time() + lease_s, self.node_id)

        def op(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                "UPDATE tasks SET lease_expires_at = ?1 WHERE status = 'STARTED' AND owner = ?2"
                " RETURNING id, attempts",
                params,
            ).fetchall()

        return {(task_id, attempts) for task_id, attempts in await self._write(op)}

    async def _cancel(self, task_id: str) -> Task:
        now = time.time()
        params = (json_text(cancelled_result()), now, task_id)

        def op(conn: sqlite3.Connection) -> Any:
            rows = conn.execute(
                "UPDATE tasks SET status = 'FAILURE', result = ?, finished_at = ?, owner = NULL,"
                " lease_expires_at = NULL"
                f" WHERE id = ? AND status NOT IN ('SUCCESS', 'FAILURE') RETURNING {TASK_COLUMNS}",
                params,
            ).fetchall()
            queue_deliveries(conn, [row[0] for row in rows], now)
            return rows

        rows = await self._write(op)
        if rows:
            return task_from_row(rows[0])
        task = await self.get_task(task_id)
        if task is None:
            raise NotFound(f"No task has id '{task_id}'.")
        raise Conflict(f"Task '{task_id}' already finished ({task.status}); there is nothing to cancel.")

    async def purge_finished(self, finished_before: float, limit: int) -> int:
        params = (finished_before, limit)

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM tasks WHERE rowid IN (SELECT rowid FROM tasks INDEXED BY tasks_finished"
                " WHERE status IN ('SUCCESS', 'FAILURE') AND finished_at < ? ORDER BY finished_at LIMIT ?)",
                params,
            ).rowcount

        return await self._write(op)

    async def purge_idempotency_keys(self, created_before: float, limit: int) -> int:
        params = (created_before, limit)

        def op(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM idempotency_keys WHERE (agent_id, key) IN (SELECT agent_id, key"
                " FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?)",
                params,
            ).rowcount

        return await self._write(op)

    # -- the tool-call journal ---------------------------------------------------------

    async def tool_journal(self, task_id: str) -> dict[tuple[int, str, str], str]:
        rows = await self._read(
            "SELECT step, tool, arguments, output FROM tool_calls WHERE task_id = ?", (task_id,)
        )
        return {(step, tool, arguments): output for step, tool, arguments, output in rows}

    async def journal_tool_call(
        self, task_id: str, attempt: int, key: tuple[int, str, str], output: str
    ) -> bool:
        step, tool, arguments = key
        held = (task_id, self.node_id, attempt)
        params = (task_id, step, tool, arguments, output, time.time())

        def op(conn: sqlite3.Connection) -> bool:
            # Only while this run holds the task: a task purged, cancelled or taken over
            # meanwhile gets nothing from it.
            if not conn.execute(
                "SELECT 1 FROM tasks WHERE id = ? AND status = 'STARTED' AND owner = ? AND attempts = ?", held
            ).fetchone():
                return False
            conn.execute(
                "INSERT INTO tool_calls (task_id, step, tool, arguments, output, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                params,
            )
            return True

        return await self._write(op)

    async def _take_over_expired(self) -> Recovery:
        # This server holds the file (serving): a task STARTED by another owner is a dead
        # server's, whatever its lease says. Every lease a live one holds is this server's, so
        # once that is done (at start-up) there is nothing more to look for: no write each second.
        if self._taken_over:
            return Recovery([])
        self._taken_over = self._serving
        now = time.time()
        params = (json_text(interrupted_result()), now, self.node_id)

        def op(conn: sqlite3.Connection) -> list[Any]:
            rows = conn.execute(
                "UPDATE tasks SET"
                " status = CASE WHEN attempts < max_attempts THEN 'PENDING' ELSE 'FAILURE' END,"
                " result = CASE WHEN attempts < max_attempts THEN NULL ELSE ?1 END,"
                " finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE ?2 END,"
                " run_after = CASE WHEN attempts < max_attempts THEN ?2 ELSE run_after END,"
                " started_at = CASE WHEN attempts < max_attempts THEN NULL ELSE started_at END,"
                " owner = NULL, lease_expires_at = NULL"
                " WHERE status = 'STARTED' AND owner IS NOT ?3 RETURNING id, agent_id, status, attempts",
                params,
            ).fetchall()
            queue_deliveries(conn, [row[0] for row in rows if row[2] == "FAILURE"], now)
            return rows

        return Recovery([Recovered(*row) for row in await self._write(op)])
