"""The PostgreSQL store's callback deliveries: queued with a task's final result, then attempted.

A delivery is inserted by the same statement or transaction that makes its task final
(`queue_delivery_cte`, `queue_deliveries`), so it exists exactly when its result does, as in
SQLite (tasks/sqlite/deliveries.py). `PostgresDeliveries` holds the store methods the delivery
loop (tasks/callbacks.py) and the admin API use.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tasks.ids import uuid7
from tasks.postgres.connection import PostgresBase
from tasks.rows import DELIVERY_COLUMNS
from tasks.store import Delivery


def queue_delivery_cte(finished: str, delivery_id: str, now: str) -> str:
    """A WITH item `queued` inserting a pending delivery, due at once, for the task that the
    WITH item `finished` (its id and agent_id) just made final, when its agent has a
    callback_url. `delivery_id` and `now` are the statement's parameters ($n) for them. One
    statement: the result and its delivery commit together."""
    return (
        "queued AS (INSERT INTO deliveries (id, task_id, agent_id, url, next_attempt_at, created_at)"
        f" SELECT {delivery_id}, f.id, a.id, a.callback_url, {now}, {now}"
        f" FROM {finished} AS f JOIN agents AS a ON a.id = f.agent_id WHERE a.callback_url IS NOT NULL"
        " RETURNING 1)"
    )


async def queue_deliveries(conn: Any, task_ids: Sequence[str], now: float) -> int:
    """In the caller's transaction: a pending delivery for each of these (just finished) tasks
    whose agent has a callback_url, due at once; how many were queued."""
    if not task_ids:
        return 0
    queued: list[Any] = await conn.fetch(
        "INSERT INTO deliveries (id, task_id, agent_id, url, next_attempt_at, created_at)"
        " SELECT d.id, t.id, a.id, a.callback_url, $3, $3"
        " FROM unnest($1::text[], $2::text[]) AS d (id, task_id)"
        " JOIN tasks AS t ON t.id = d.task_id JOIN agents AS a ON a.id = t.agent_id"
        " WHERE t.status IN ('SUCCESS', 'FAILURE') AND a.callback_url IS NOT NULL RETURNING 1",
        [uuid7() for _ in task_ids],
        list(task_ids),
        now,
    )
    return len(queued)


class PostgresDeliveries(PostgresBase):
    """Delivery operations of the PostgreSQL store (see tasks/store.py for their contracts)."""

    async def due_deliveries(self, now: float, limit: int, exclude: Sequence[str] = ()) -> list[Delivery]:
        rows = await self._fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries"
            " WHERE status = 'pending' AND next_attempt_at <= $1 AND id <> ALL($2::text[])"
            " ORDER BY next_attempt_at, id LIMIT $3",
            now,
            list(exclude),
            limit,
        )
        return [Delivery(*row) for row in rows]

    async def next_delivery_at(self, exclude: Sequence[str] = ()) -> float | None:
        row = await self._fetchrow(
            "SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending' AND id <> ALL($1::text[])",
            list(exclude),
        )
        return None if row[0] is None else float(row[0])

    async def record_delivery_attempt(
        self,
        delivery_id: str,
        *,
        status: str,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float | None,
    ) -> None:
        now = time.time()
        await self._execute(
            "UPDATE deliveries SET status = $2, attempts = attempts + 1, next_attempt_at = $3,"
            " last_attempt_at = $4, last_status_code = $5, last_error = $6, delivered_at = $7"
            " WHERE id = $1 AND status = 'pending'",
            delivery_id,
            status,
            next_attempt_at if status == "pending" else None,
            now,
            status_code,
            error,
            now if status == "delivered" else None,
        )

    async def list_deliveries(self, task_id: str) -> list[Delivery]:
        rows = await self._fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE task_id = $1 ORDER BY id", task_id
        )
        return [Delivery(*row) for row in rows]
