"""The PostgreSQL store: the same contract as SQLite's (tasks/store.py), for several hookd nodes
sharing one database.

Every method is one statement or one transaction on a pooled connection, committed before it
returns. Where SQLite's single writer makes a read-then-write atomic, this store makes it one
statement (enqueue_once, finish, cancel) or takes a lock (claim_batch), because other nodes
write at the same time. Its agents are in tasks/postgres/agents.py, deliveries in
tasks/postgres/deliveries.py, sources and chunks in tasks/postgres/knowledge.py, dump and load
in tasks/postgres/dump.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from typing import Any

from errors import Conflict, NotFound
from tasks.ids import uuid7
from tasks.json_text import json_text
from tasks.postgres.agents import PostgresAgents
from tasks.postgres.connection import CLAIM_LOCK_CLASS
from tasks.postgres.deliveries import PostgresDeliveries, queue_deliveries, queue_delivery_cte
from tasks.postgres.dump import PostgresDump
from tasks.postgres.knowledge import PostgresKnowledge
from tasks.postgres.schema import set_up
from tasks.rows import (
    AGENT_COLUMNS,
    LIST_TASK_COLUMNS,
    TASK_COLUMNS,
    agent_from_row,
    listed_task_from_row,
    task_from_row,
)
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

# How far down the queue a claim looks when an agent with max_concurrency has tasks in it, as
# in SQLite (tasks/sqlite/store.py): a few rows per free slot, within bounds.
CLAIM_SCAN_ROWS_PER_SLOT = 4
CLAIM_SCAN_ROWS_MIN = 64
CLAIM_SCAN_ROWS_MAX = 4000
CLOSE_TIMEOUT_S = 10.0
# Leases are reckoned by the database's clock, the one clock every node shares: a node whose
# own clock is off neither cuts another's lease short nor keeps its own too long.
DB_NOW = "extract(epoch FROM clock_timestamp())"

_TASK_COLUMNS_OF_T = ", ".join(f"t.{column.strip()}" for column in TASK_COLUMNS.split(","))
_AGENT_COLUMNS_OF_A = ", ".join(f"a.{column.strip()}" for column in AGENT_COLUMNS.split(","))
_TASK_WIDTH = len(TASK_COLUMNS.split(","))

# A new task for the active agent holding a token (and, when the request's signature was
# checked, still the secret it was checked with): the token lookup is inside the insert.
ENQUEUE_SQL = (
    "INSERT INTO tasks (id, agent_id, payload, max_attempts, run_after, created_at)"
    " SELECT $1, id, $2, max_attempts, $3, $3 FROM agents"
    " WHERE token_sha256 = $4 AND status = 'active' AND signature_secret IS NOT DISTINCT FROM $5"
    " RETURNING id"
)
# enqueue_once in one statement: the key is claimed (inserted, or an expired one taken over)
# and the task inserted only if the claim succeeded. Two requests with one key: the unique key
# makes the second wait for the first to commit, then find the key and insert nothing. Keys are
# claimed only for an active agent; a paused one's replays are found by ENQUEUED_BEFORE_SQL.
ENQUEUE_ONCE_SQL = """
WITH agent AS (
    SELECT id, max_attempts FROM agents
    WHERE token_sha256 = $4 AND status = 'active' AND signature_secret IS NOT DISTINCT FROM $5
), claimed AS (
    INSERT INTO idempotency_keys (agent_id, key, body_sha256, task_id, created_at)
    SELECT id, $6, $7, $1, $3 FROM agent
    ON CONFLICT (agent_id, key) DO UPDATE
        SET body_sha256 = excluded.body_sha256, task_id = excluded.task_id, created_at = excluded.created_at
        WHERE idempotency_keys.created_at < $8
    RETURNING agent_id
)
INSERT INTO tasks (id, agent_id, payload, max_attempts, run_after, created_at)
SELECT $1, agent.id, $2, agent.max_attempts, $3, $3 FROM agent JOIN claimed ON claimed.agent_id = agent.id
RETURNING id
"""
ENQUEUED_BEFORE_SQL = (
    "SELECT k.task_id, k.body_sha256 FROM idempotency_keys AS k JOIN agents AS a ON a.id = k.agent_id"
    " WHERE a.token_sha256 = $1 AND a.signature_secret IS NOT DISTINCT FROM $2 AND k.key = $3"
    " AND k.created_at >= $4"
)


# The agents with max_concurrency that have runnable tasks among the first $2 of the queue:
# the ones a claim must lock. The queue is not read at all when no active agent has a limit.
LIMITED_IN_QUEUE_SQL = """
WITH limited AS (SELECT id FROM agents WHERE status = 'active' AND max_concurrency IS NOT NULL)
SELECT DISTINCT q.agent_id FROM (
    SELECT t.agent_id FROM tasks AS t
    WHERE t.status IN ('PENDING', 'RETRY') AND t.run_after <= $1
      AND t.agent_id IN (SELECT id FROM agents WHERE status = 'active')
      AND EXISTS (SELECT 1 FROM limited)
    ORDER BY t.run_after, t.id
    LIMIT $2
) AS q
WHERE q.agent_id IN (SELECT id FROM limited)
"""
# max_concurrency holds across nodes because a node claims for a limited agent only while it
# holds that agent's advisory lock (transaction-scoped, taken in key order so that two claims
# cannot deadlock). Within the lock, this statement's snapshot sees every STARTED task that
# the previous holder committed, so counting them is exact. Advisory locks rather than
# SELECT … FOR UPDATE on the agent rows: they live in the lock table only, so a claim writes
# nothing to the agents table (a row lock writes the row), and they never block the admin
# API's updates of an agent, nor the key-share locks every new task takes on its agent. Claims
# for unlimited agents take no lock at all. A hash collision between two agents only makes
# their claims wait for each other.
LOCK_AGENTS_SQL = """
SELECT pg_advisory_xact_lock($1, k.key)
FROM (SELECT DISTINCT hashtext(id) AS key FROM unnest($2::text[]) AS id) AS k
ORDER BY k.key
"""
# Runnable tasks in queue order, then the ones whose agent still has room once the running
# tasks and the earlier candidates of the same agent are counted. SKIP LOCKED: tasks another
# node is claiming this instant are passed over, not waited for, and never claimed twice (a
# row it claimed meanwhile is re-read as STARTED and left out). A limited agent's tasks are
# candidates only if this claim holds its lock ($3); the others wait for the next claim.
# Returns each task with its agent as this statement saw it, and whether it has sources.
CLAIM_SQL = f"""
WITH queue AS (
    SELECT t.id, t.agent_id, t.run_after FROM tasks AS t
    WHERE t.status IN ('PENDING', 'RETRY') AND t.run_after <= $1
      AND t.agent_id IN (
          SELECT id FROM agents
          WHERE status = 'active' AND (max_concurrency IS NULL OR id = ANY($3::text[]))
      )
    ORDER BY t.run_after, t.id
    LIMIT $4
    FOR UPDATE OF t SKIP LOCKED
), ranked AS (
    SELECT q.id, q.agent_id, q.run_after, a.max_concurrency,
           row_number() OVER (PARTITION BY q.agent_id ORDER BY q.run_after, q.id) AS nth
    FROM queue AS q JOIN agents AS a ON a.id = q.agent_id
), chosen AS (
    SELECT r.id, r.agent_id FROM ranked AS r
    WHERE r.max_concurrency IS NULL
       OR r.nth + (SELECT count(*) FROM tasks AS s
                   WHERE s.agent_id = r.agent_id AND s.status = 'STARTED') <= r.max_concurrency
    ORDER BY r.run_after, r.id
    LIMIT $2
)
UPDATE tasks AS t
SET status = 'STARTED', attempts = t.attempts + 1, started_at = $1, last_error = NULL,
    owner = $5, lease_expires_at = {DB_NOW} + $6
FROM chosen JOIN agents AS a ON a.id = chosen.agent_id
WHERE t.id = chosen.id
RETURNING {_TASK_COLUMNS_OF_T}, {_AGENT_COLUMNS_OF_A},
          EXISTS (SELECT 1 FROM sources AS s WHERE s.agent_id = a.id)
"""

# Whose server is gone: STARTED past its lease (NULL: started by a hookd from before leases).
# SKIP LOCKED: nodes taking over at the same moment take different tasks.
TAKE_OVER_SQL = f"""
WITH expired AS (
    SELECT id FROM tasks
    WHERE status = 'STARTED' AND (lease_expires_at IS NULL OR lease_expires_at < {DB_NOW})
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks AS t SET
    status = CASE WHEN attempts < max_attempts THEN 'PENDING' ELSE 'FAILURE' END,
    result = CASE WHEN attempts < max_attempts THEN NULL ELSE $1::text END,
    finished_at = CASE WHEN attempts < max_attempts THEN NULL ELSE $2::float8 END,
    run_after = CASE WHEN attempts < max_attempts THEN $2 ELSE run_after END,
    started_at = CASE WHEN attempts < max_attempts THEN NULL ELSE started_at END,
    owner = NULL, lease_expires_at = NULL
FROM expired WHERE t.id = expired.id
RETURNING t.id, t.agent_id, t.status, t.attempts
"""

FINISH_SQL = f"""
WITH finished AS (
    UPDATE tasks SET status = $2, result = $3, finished_at = $4, result_preview = $6,
                     owner = NULL, lease_expires_at = NULL
    WHERE id = $1 AND status = 'STARTED' AND owner = $7 AND attempts = $8 RETURNING id, agent_id
), {queue_delivery_cte("finished", "$5", "$4")}
SELECT (SELECT count(*) FROM finished), (SELECT count(*) FROM queued)
"""
CANCEL_SQL = f"""
WITH finished AS (
    UPDATE tasks SET status = 'FAILURE', result = $2, finished_at = $3, owner = NULL, lease_expires_at = NULL
    WHERE id = $1 AND status NOT IN ('SUCCESS', 'FAILURE') RETURNING {TASK_COLUMNS}
), {queue_delivery_cte("finished", "$4", "$3")}
SELECT {TASK_COLUMNS} FROM finished
"""


class PostgresStore(PostgresAgents, PostgresDeliveries, PostgresKnowledge, PostgresDump):
    """The store (tasks/store.py) on PostgreSQL, from a postgresql:// URL."""

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, and create or migrate the schema (under an advisory lock). StorageUnavailable
        if the server cannot be reached, refuses the login, or holds a newer hookd's schema."""
        self._closing = False
        pool = await self._create_pool()
        self._pool = pool
        try:
            async with self._connection() as conn:
                await set_up(conn, self.shown_url)
        except BaseException:
            self._pool = None
            pool.terminate()
            raise

    async def close(self) -> None:
        """Let the statements under way finish (for up to CLOSE_TIMEOUT_S), then disconnect."""
        pool, self._closing = self._pool, True
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), CLOSE_TIMEOUT_S)
            except TimeoutError:  # a statement stuck (on a lock, a dead network): cut it off
                pool.terminate()
        self._pool = None

    # -- tasks -------------------------------------------------------------------------

    async def _enqueue(
        self, token_sha256: bytes, payload_json: str, signature_secret: str | None
    ) -> str | None:
        now = time.time()
        row = await self._fetchrow(ENQUEUE_SQL, uuid7(), payload_json, now, token_sha256, signature_secret)
        return None if row is None else str(row[0])

    async def _enqueue_once(
        self,
        token_sha256: bytes,
        payload_json: str,
        key: str,
        body_sha256: bytes,
        signature_secret: str | None,
    ) -> Enqueued | None:
        now = time.time()
        since = now - IDEMPOTENCY_WINDOW_S
        async with self._connection() as conn:
            args = (uuid7(), payload_json, now, token_sha256, signature_secret, key, body_sha256, since)
            created = await conn.fetchrow(ENQUEUE_ONCE_SQL, *args)
            if created is not None:
                return Enqueued(created[0], replayed=False)
            # No new task: the key is taken (by a commit this statement waited for, perhaps),
            # or no active agent holds the token. A fresh statement sees the key either way.
            found = await conn.fetchrow(ENQUEUED_BEFORE_SQL, token_sha256, signature_secret, key, since)
        if found is None:
            return None
        return Enqueued(found[0], replayed=True, same_body=found[1] == body_sha256)

    async def get_task(self, task_id: str) -> Task | None:
        row = await self._fetchrow(f"SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1", task_id)
        return None if row is None else task_from_row(row)

    async def list_tasks(
        self,
        *,
        agent_id: str | None = None,
        statuses: Sequence[str] = (),
        limit: int = 50,
        before_id: str | None = None,
    ) -> list[Task]:
        where: list[str] = []
        args: list[Any] = []
        for condition, value in (
            ("agent_id = ${}", agent_id),
            ("status = ANY(${}::text[])", list(statuses) if statuses else None),
            ("id < ${}", before_id),
        ):
            if value is not None:
                args.append(value)
                where.append(condition.format(len(args)))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        sql = f"SELECT {LIST_TASK_COLUMNS} FROM tasks {clause} ORDER BY id DESC LIMIT ${len(args) + 1}"
        return [listed_task_from_row(row) for row in await self._fetch(sql, *args, limit)]

    async def queue_depth(self) -> int:
        row = await self._fetchrow("SELECT count(*) FROM tasks WHERE status IN ('PENDING', 'RETRY')")
        return int(row[0])

    async def count_by_status(self) -> dict[str, int]:
        # PostgreSQL has no cheaper exact count than reading every task's status, from
        # tasks_by_status (index-only) or the table, whichever the planner prices lower, in
        # parallel: about 0.15 s per million tasks on two busy cores, several times SQLite's.
        rows = await self._fetch("SELECT status, count(*) FROM tasks GROUP BY status")
        return dict.fromkeys(STATUSES, 0) | {status: int(count) for status, count in rows}

    async def _claim_batch(self, limit: int, lease_s: float) -> list[Claim]:
        now = time.time()
        scan = min(max(limit * CLAIM_SCAN_ROWS_PER_SLOT, CLAIM_SCAN_ROWS_MIN), CLAIM_SCAN_ROWS_MAX)
        async with self._connection() as conn:
            limited = [row[0] for row in await conn.fetch(LIMITED_IN_QUEUE_SQL, now, scan)]
            if not limited:  # no lock needed: look no further than the tasks to claim
                rows = await conn.fetch(CLAIM_SQL, now, limit, [], limit, self.node_id, lease_s)
            else:
                async with conn.transaction():
                    await conn.execute(LOCK_AGENTS_SQL, CLAIM_LOCK_CLASS, limited)
                    rows = await conn.fetch(CLAIM_SQL, now, limit, limited, scan, self.node_id, lease_s)
        claims = []
        for row in rows:
            values = tuple(row)
            task = task_from_row(values[:_TASK_WIDTH])
            claims.append(Claim(task, agent_from_row(values[_TASK_WIDTH:-1]), bool(values[-1])))
        return sorted(claims, key=lambda claim: (claim.task.run_after, claim.task.id))

    async def _update_claimed(self, task: Task, assignments: str, *args: Any) -> bool:
        """Change a task still held by the claim `task` (this node's, the same attempt); it
        leaves STARTED, so it is nobody's any more."""
        sql = (
            f"UPDATE tasks SET {assignments}, owner = NULL, lease_expires_at = NULL"
            " WHERE id = $1 AND status = 'STARTED' AND owner = $2 AND attempts = $3"
        )
        return await self._execute(sql, task.id, self.node_id, task.attempts, *args) == 1

    async def _finish(self, task: Task, status: str, result: dict[str, Any]) -> Finished | None:
        text = json_text(result)
        preview = list_preview(result, text)
        args = (task.id, status, text, time.time(), uuid7(), preview, self.node_id, task.attempts)
        row = await self._fetchrow(FINISH_SQL, *args)
        if row[0] != 1:
            return None
        return Finished(delivery_queued=row[1] > 0)

    async def _retry_later(self, task: Task, run_after: float, error: dict[str, Any]) -> bool:
        return await self._update_claimed(
            task,
            "status = 'RETRY', run_after = $4, last_error = $5, started_at = NULL",
            run_after,
            json_text(error),
        )

    async def _requeue(self, task: Task) -> bool:
        return await self._update_claimed(
            task, "status = 'PENDING', attempts = attempts - 1, started_at = NULL"
        )

    async def renew_leases(self, lease_s: float) -> set[tuple[str, int]]:
        rows = await self._fetch(
            f"UPDATE tasks SET lease_expires_at = {DB_NOW} + $2 WHERE status = 'STARTED' AND owner = $1"
            " RETURNING id, attempts",
            self.node_id,
            lease_s,
        )
        return {(task_id, attempts) for task_id, attempts in rows}

    async def _cancel(self, task_id: str) -> Task:
        row = await self._fetchrow(CANCEL_SQL, task_id, json_text(cancelled_result()), time.time(), uuid7())
        if row is not None:
            return task_from_row(row)
        task = await self.get_task(task_id)
        if task is None:
            raise NotFound(f"No task has id '{task_id}'.")
        raise Conflict(f"Task '{task_id}' already finished ({task.status}); there is nothing to cancel.")

    async def purge_finished(self, finished_before: float, limit: int) -> int:
        # SKIP LOCKED: two nodes purging at once delete different tasks, without waiting.
        return await self._execute(
            "DELETE FROM tasks WHERE id IN (SELECT id FROM tasks"
            " WHERE status IN ('SUCCESS', 'FAILURE') AND finished_at < $1 ORDER BY finished_at LIMIT $2"
            " FOR UPDATE SKIP LOCKED)",
            finished_before,
            limit,
        )

    async def purge_idempotency_keys(self, created_before: float, limit: int) -> int:
        return await self._execute(
            "DELETE FROM idempotency_keys WHERE (agent_id, key) IN (SELECT agent_id, key"
            " FROM idempotency_keys WHERE created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
            created_before,
            limit,
        )

    # -- the tool-call journal ---------------------------------------------------------

    async def tool_journal(self, task_id: str) -> dict[tuple[int, str, str], str]:
        rows = await self._fetch(
            "SELECT step, tool, arguments, output FROM tool_calls WHERE task_id = $1", task_id
        )
        return {(step, tool, arguments): bytes(output).decode() for step, tool, arguments, output in rows}

    async def journal_tool_call(
        self, task_id: str, attempt: int, key: tuple[int, str, str], output: str
    ) -> bool:
        step, tool, arguments = key
        digest = hashlib.sha256(arguments.encode()).digest()
        # Only while this run holds the task: a task purged, cancelled or taken over meanwhile
        # gets nothing from it. FOR SHARE: no one ends the task between the look and the insert.
        row = await self._fetchrow(
            """
            WITH held AS (
                SELECT id FROM tasks WHERE id = $1 AND status = 'STARTED' AND owner = $8 AND attempts = $9
                FOR SHARE
            ), journalled AS (
                INSERT INTO tool_calls (task_id, step, tool, arguments, arguments_sha256, output, created_at)
                SELECT id, $2, $3, $4, $5, $6, $7 FROM held
                ON CONFLICT DO NOTHING
            )
            SELECT count(*) FROM held
            """,
            task_id,
            step,
            tool,
            arguments,
            digest,
            output.encode(),
            time.time(),
            self.node_id,
            attempt,
        )
        return bool(row[0])

    async def _take_over_expired(self) -> Recovery:
        now = time.time()
        async with self._transaction() as conn:
            rows = await conn.fetch(TAKE_OVER_SQL, json_text(interrupted_result()), now)
            await queue_deliveries(conn, [row[0] for row in rows if row[2] == "FAILURE"], now)
        return Recovery([Recovered(*row) for row in rows])
