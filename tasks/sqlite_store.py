"""The SQLite store: one file, one writer connection, one reader connection.

Writes go through `_WriteQueue`: every write submitted while the previous transaction was
committing is applied in the next single `BEGIN IMMEDIATE … COMMIT` (group commit), and
each caller is answered only after that commit. Reads use their own connection; in WAL
mode they never wait for the writer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from agents.agent import Agent
from errors import Conflict, NotFound, StorageUnavailable
from tasks.ids import uuid7
from tasks.store import Recovery, Store, Task, cancelled_result, interrupted_result

log = logging.getLogger("hookd.store")

T = TypeVar("T")
WriteOp = Callable[[aiosqlite.Connection], Awaitable[T]]

SCHEMA_VERSION = 1
MAX_BATCH_OPS = 512  # bounds how long one transaction holds the write lock
BUSY_TIMEOUT_MS = 5000

# How far down the queue a claim looks for tasks whose agent has room under its
# max_concurrency. Tasks of a saturated agent at the head of a deeper queue wait their turn.
CLAIM_SCAN_ROWS = 1000

TASK_COLUMNS = (
    "id, agent_id, status, payload, result, last_error, attempts, max_attempts,"
    " run_after, created_at, started_at, finished_at"
)
AGENT_COLUMNS = (
    "id, name, description, prompt, input_template, llm, max_attempts, timeout_s,"
    " max_concurrency, status, created_at, updated_at"
)
_AGENT_WRITABLE = (
    "name", "description", "prompt", "input_template", "llm",
    "max_attempts", "timeout_s", "max_concurrency", "status",
)  # fmt: skip

# Runnable tasks in queue order, then the ones whose agent still has room once the
# running tasks and the earlier candidates of the same agent are counted.
CLAIM_SQL = f"""
UPDATE tasks
SET status = 'STARTED', attempts = attempts + 1, started_at = :now, last_error = NULL
WHERE rowid IN (
    SELECT c.rowid FROM (
        SELECT q.rowid, q.agent_id, q.run_after, a.max_concurrency,
               row_number() OVER (PARTITION BY q.agent_id ORDER BY q.run_after, q.rowid) AS nth
        FROM (
            -- INDEXED BY: without statistics the planner picks tasks_by_status and sorts
            -- the whole queue; the partial index is already in claim order.
            SELECT rowid, agent_id, run_after FROM tasks INDEXED BY tasks_queue
            WHERE status IN ('PENDING', 'RETRY') AND run_after <= :now
            ORDER BY run_after, rowid LIMIT {CLAIM_SCAN_ROWS}
        ) AS q
        JOIN agents AS a ON a.id = q.agent_id AND a.status = 'active'
    ) AS c
    WHERE c.max_concurrency IS NULL
       OR c.nth + (SELECT count(*) FROM tasks AS r
                   WHERE r.agent_id = c.agent_id AND r.status = 'STARTED') <= c.max_concurrency
    ORDER BY c.run_after, c.rowid
    LIMIT :limit
)
RETURNING {TASK_COLUMNS}
"""


def schema_sql() -> str:
    """schema.sql: packaged inside `tasks` in a wheel, at the repository root in a checkout."""
    packaged = resources.files("tasks").joinpath("schema.sql")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "schema.sql").read_text(encoding="utf-8")


def _storage_error(exc: sqlite3.Error) -> StorageUnavailable | None:
    text = str(exc).lower()
    if any(s in text for s in ("full", "readonly", "read-only", "unable to open", "disk i/o")):
        return StorageUnavailable(
            "hookd cannot write to its database right now (disk full or read-only);"
            " nothing was stored. Try again later."
        )
    return None


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _task(row: Sequence[Any]) -> Task:
    return Task(
        id=row[0],
        agent_id=row[1],
        status=row[2],
        payload=row[3],
        result=_json_or_none(row[4]),
        last_error=_json_or_none(row[5]),
        attempts=row[6],
        max_attempts=row[7],
        run_after=row[8],
        created_at=row[9],
        started_at=row[10],
        finished_at=row[11],
    )


def _agent(row: Sequence[Any]) -> Agent:
    return Agent(
        id=row[0],
        name=row[1],
        description=row[2],
        prompt=row[3],
        input_template=row[4],
        llm=json.loads(row[5]),
        max_attempts=row[6],
        timeout_s=row[7],
        max_concurrency=row[8],
        status=row[9],
        created_at=row[10],
        updated_at=row[11],
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _WriteQueue:
    """The one writer: applies submitted operations in shared transactions."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._pending: list[tuple[WriteOp[Any], asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name="hookd-sqlite-writer")

    async def submit(self, op: WriteOp[T]) -> T:
        if self._closing:
            raise StorageUnavailable("hookd is shutting down; nothing was stored.")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wakeup.set()
        # Shielded: a caller cancelled mid-commit must not abandon the result of a write
        # that the writer will still apply.
        return await asyncio.shield(future)

    async def close(self) -> None:
        self._closing = True
        self._wakeup.set()
        await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[:MAX_BATCH_OPS]
                del self._pending[:MAX_BATCH_OPS]
                await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[tuple[WriteOp[Any], asyncio.Future[Any]]]) -> None:
        try:
            results = await self._transaction([op for op, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                self._settle(batch[0][1], exc=exc)
                return
            # One operation failed and took the shared transaction with it: apply each
            # on its own so the others still commit and only the culprit gets the error.
            for op, future in batch:
                try:
                    (result,) = await self._transaction([op])
                except Exception as single_exc:
                    self._settle(future, exc=single_exc)
                else:
                    self._settle(future, result=result)
            return
        for (_, future), result in zip(batch, results, strict=True):
            self._settle(future, result=result)

    async def _transaction(self, ops: Iterable[WriteOp[Any]]) -> list[Any]:
        conn = self._conn
        try:
            await conn.execute("BEGIN IMMEDIATE")
            results = [await op(conn) for op in ops]
            await conn.execute("COMMIT")
            return results
        except BaseException:
            if conn.in_transaction:
                try:
                    await conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
            raise

    @staticmethod
    def _settle(future: asyncio.Future[Any], *, result: Any = None, exc: Exception | None = None) -> None:
        if future.done():
            return
        if exc is None:
            future.set_result(result)
            return
        if isinstance(exc, sqlite3.Error) and (storage := _storage_error(exc)) is not None:
            log.error("database write failed: %s", exc)
            exc = storage
        future.set_exception(exc)


class SQLiteStore(Store):
    def __init__(self, path: str, *, sync: str = "full") -> None:
        self.path = path
        self.sync = sync
        self._writer_conn: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._writer: _WriteQueue | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA foreign_keys = ON")
        await conn.execute(f"PRAGMA synchronous = {self.sync.upper()}")
        return conn

    async def open(self) -> None:
        # A new file's folder; tiny and once per start, so done inline.
        Path(self.path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240
        writer = await self._connect()
        try:
            await writer.execute("PRAGMA journal_mode = WAL")
            await self._apply_schema(writer)
            self._reader = await self._connect()
            await self._reader.execute("PRAGMA query_only = ON")
        except BaseException:
            await writer.close()
            raise
        self._writer_conn = writer
        self._writer = _WriteQueue(writer)

    async def _apply_schema(self, conn: aiosqlite.Connection) -> None:
        ((version,),) = await conn.execute_fetchall("PRAGMA user_version")
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            raise StorageUnavailable(
                f"{self.path} was written by a newer hookd (schema {version}); upgrade hookd to open it."
            )
        try:
            await conn.executescript(f"BEGIN IMMEDIATE;\n{schema_sql()}\nCOMMIT;")
        except sqlite3.OperationalError:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            ((version,),) = await conn.execute_fetchall("PRAGMA user_version")
            if version != SCHEMA_VERSION:  # not a concurrent creator that got there first
                raise

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
        for conn in (self._reader, self._writer_conn):
            if conn is not None:
                await conn.close()
        self._writer = self._writer_conn = self._reader = None

    async def _write(self, op: WriteOp[T]) -> T:
        assert self._writer is not None, "store is not open"
        return await self._writer.submit(op)

    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        assert self._reader is not None, "store is not open"
        return list(await self._reader.execute_fetchall(sql, params))

    # -- agents ------------------------------------------------------------------------

    async def create_agent(self, fields: dict[str, Any], token_sha256: bytes) -> Agent:
        now = time.time()
        row = {k: (_dumps(v) if k == "llm" else v) for k, v in fields.items()}
        row |= {"id": uuid7(), "token_sha256": token_sha256, "created_at": now, "updated_at": now}
        columns = ", ".join(row)
        placeholders = ", ".join(f":{c}" for c in row)
        sql = f"INSERT INTO agents ({columns}) VALUES ({placeholders}) RETURNING {AGENT_COLUMNS}"

        async def op(conn: aiosqlite.Connection) -> Any:
            return await conn.execute_fetchall(sql, row)

        try:
            (created,) = await self._write(op)
        except sqlite3.IntegrityError:
            raise Conflict(f"An agent named '{fields['name']}' already exists.") from None
        return _agent(created)

    async def get_agent(self, agent_id: str) -> Agent:
        rows = await self._read(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?", (agent_id,))
        if not rows:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return _agent(rows[0])

    async def get_agent_by_name(self, name: str) -> Agent:
        rows = await self._read(f"SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"No agent is named '{name}'.")
        return _agent(rows[0])

    async def agent_for_token(self, token_sha256: bytes) -> Agent | None:
        rows = await self._read(f"SELECT {AGENT_COLUMNS} FROM agents WHERE token_sha256 = ?", (token_sha256,))
        return _agent(rows[0]) if rows else None

    async def list_agents(self) -> list[Agent]:
        return [_agent(r) for r in await self._read(f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY name")]

    async def _update_agent_columns(self, agent_id: str, row: dict[str, Any]) -> Agent:
        row = row | {"updated_at": time.time(), "id": agent_id}
        assignments = ", ".join(f"{c} = :{c}" for c in row if c != "id")
        sql = f"UPDATE agents SET {assignments} WHERE id = :id RETURNING {AGENT_COLUMNS}"

        async def op(conn: aiosqlite.Connection) -> Any:
            return await conn.execute_fetchall(sql, row)

        try:
            rows = await self._write(op)
        except sqlite3.IntegrityError:
            raise Conflict(f"An agent named '{row.get('name')}' already exists.") from None
        if not rows:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return _agent(rows[0])

    async def update_agent(self, agent_id: str, fields: dict[str, Any]) -> Agent:
        unknown = set(fields) - set(_AGENT_WRITABLE)
        assert not unknown, f"not agent columns: {unknown}"
        row = {k: (_dumps(v) if k == "llm" else v) for k, v in fields.items()}
        return await self._update_agent_columns(agent_id, row)

    async def set_agent_token(self, agent_id: str, token_sha256: bytes) -> Agent:
        return await self._update_agent_columns(agent_id, {"token_sha256": token_sha256})

    async def delete_agent(self, agent_id: str) -> list[str]:
        now = time.time()
        result = _dumps(cancelled_result())

        async def op(conn: aiosqlite.Connection) -> list[str] | None:
            cancelled = await conn.execute_fetchall(
                "UPDATE tasks SET status = 'FAILURE', result = ?, finished_at = ?"
                " WHERE agent_id = ? AND status NOT IN ('SUCCESS', 'FAILURE') RETURNING id",
                (result, now, agent_id),
            )
            cursor = await conn.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            return [r[0] for r in cancelled] if cursor.rowcount else None

        cancelled_ids = await self._write(op)
        if cancelled_ids is None:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return cancelled_ids

    # -- tasks -------------------------------------------------------------------------

    async def create_task(self, agent: Agent, payload_json: str) -> str:
        task_id = uuid7()
        now = time.time()
        params = (task_id, agent.id, payload_json, agent.max_attempts, now, now)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO tasks (id, agent_id, payload, max_attempts, run_after, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                params,
            )

        await self._write(op)
        return task_id

    async def get_task(self, task_id: str) -> Task | None:
        rows = await self._read(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?", (task_id,))
        return _task(rows[0]) if rows else None

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
        sql = f"SELECT {TASK_COLUMNS} FROM tasks {clause} ORDER BY id DESC LIMIT ?"
        return [_task(r) for r in await self._read(sql, [*params, limit])]

    async def queue_depth(self) -> int:
        ((count,),) = await self._read("SELECT count(*) FROM tasks WHERE status IN ('PENDING', 'RETRY')")
        return int(count)

    async def count_running(self) -> int:
        ((count,),) = await self._read("SELECT count(*) FROM tasks WHERE status = 'STARTED'")
        return int(count)

    async def claim_batch(self, limit: int) -> list[Task]:
        params = {"now": time.time(), "limit": limit}

        async def op(conn: aiosqlite.Connection) -> Any:
            return await conn.execute_fetchall(CLAIM_SQL, params)

        return [_task(r) for r in await self._write(op)]

    async def _update_started(self, task_id: str, assignments: str, params: dict[str, Any]) -> bool:
        sql = f"UPDATE tasks SET {assignments} WHERE id = :id AND status = 'STARTED'"
        params = params | {"id": task_id}

        async def op(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

        return await self._write(op) == 1

    async def finish(self, task_id: str, status: str, result: dict[str, Any]) -> bool:
        assert status in ("SUCCESS", "FAILURE")
        return await self._update_started(
            task_id,
            "status = :status, result = :result, finished_at = :now",
            {"status": status, "result": _dumps(result), "now": time.time()},
        )

    async def retry_later(self, task_id: str, run_after: float, error: dict[str, Any]) -> bool:
        return await self._update_started(
            task_id,
            "status = 'RETRY', run_after = :run_after, last_error = :error, started_at = NULL",
            {"run_after": run_after, "error": _dumps(error)},
        )

    async def requeue(self, task_id: str) -> bool:
        return await self._update_started(
            task_id,
            "status = 'PENDING', attempts = attempts - 1, started_at = NULL",
            {},
        )

    async def cancel(self, task_id: str) -> Task:
        params = (_dumps(cancelled_result()), time.time(), task_id)

        async def op(conn: aiosqlite.Connection) -> Any:
            return await conn.execute_fetchall(
                "UPDATE tasks SET status = 'FAILURE', result = ?, finished_at = ?"
                f" WHERE id = ? AND status NOT IN ('SUCCESS', 'FAILURE') RETURNING {TASK_COLUMNS}",
                params,
            )

        rows = await self._write(op)
        if rows:
            return _task(rows[0])
        task = await self.get_task(task_id)
        if task is None:
            raise NotFound(f"No task has id '{task_id}'.")
        raise Conflict(f"Task '{task_id}' already finished ({task.status}); there is nothing to cancel.")

    async def recover_interrupted(self) -> Recovery:
        params = (_dumps(interrupted_result()), time.time())

        async def op(conn: aiosqlite.Connection) -> Any:
            return await conn.execute_fetchall(
                "UPDATE tasks SET"
                " status = CASE WHEN attempts < max_attempts THEN 'PENDING' ELSE 'FAILURE' END,"
                " result = CASE WHEN attempts < max_attempts THEN NULL ELSE ?1 END,"
                " finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE ?2 END,"
                " run_after = CASE WHEN attempts < max_attempts THEN ?2 ELSE run_after END,"
                " started_at = CASE WHEN attempts < max_attempts THEN NULL ELSE started_at END"
                " WHERE status = 'STARTED' RETURNING status",
                params,
            )

        statuses = [r[0] for r in await self._write(op)]
        return Recovery(requeued=statuses.count("PENDING"), failed=statuses.count("FAILURE"))
