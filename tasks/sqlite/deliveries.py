"""The SQLite store's callback deliveries: queued with a task's final result, then attempted.

`queue_deliveries` runs inside the writes that make tasks final (tasks/sqlite/store.py), so a
delivery exists exactly when its result does. `SQLiteDeliveries` holds the store methods the
delivery loop (tasks/callbacks.py) and the admin API use; `SQLiteStore` inherits them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from agents.tokens import new_signing_secret
from tasks.ids import uuid7
from tasks.rows import DELIVERY_COLUMNS
from tasks.sqlite.writer import WriteOp
from tasks.store import Delivery

T = TypeVar("T")

_QUEUE_SQL = (
    "INSERT INTO deliveries (id, task_id, agent_id, url, next_attempt_at, created_at)"
    " SELECT ?, t.id, a.id, a.callback_url, ?, ? FROM tasks AS t JOIN agents AS a ON a.id = t.agent_id"
    " WHERE t.id = ? AND t.status IN ('SUCCESS', 'FAILURE') AND a.callback_url IS NOT NULL"
)


def queue_deliveries(conn: sqlite3.Connection, task_ids: Iterable[str], now: float) -> int:
    """In the caller's transaction: a pending delivery for each of these (just finished) tasks
    whose agent has a callback_url, due at once; how many were queued."""
    return sum(conn.execute(_QUEUE_SQL, (uuid7(), now, now, task_id)).rowcount for task_id in task_ids)


def fill_callback_secrets(conn: sqlite3.Connection) -> None:
    """Give a signing secret to agents from a file made before callbacks (outside a transaction,
    at open: SQL alone cannot make base64, so the migration leaves them NULL)."""
    for (agent_id,) in conn.execute("SELECT id FROM agents WHERE callback_secret IS NULL").fetchall():
        conn.execute(
            "UPDATE agents SET callback_secret = ? WHERE id = ? AND callback_secret IS NULL",
            (new_signing_secret(), agent_id),
        )


def _delivery(row: Sequence[Any]) -> Delivery:
    return Delivery(*row)


def _not_in(exclude: Sequence[str]) -> str:
    return f" AND id NOT IN ({', '.join('?' * len(exclude))})" if exclude else ""


class SQLiteDeliveries:
    """Delivery operations of the SQLite store (see tasks/store.py for their contracts)."""

    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        raise NotImplementedError  # SQLiteStore's

    async def _write(self, op: WriteOp[T]) -> T:
        raise NotImplementedError  # SQLiteStore's

    async def due_deliveries(self, now: float, limit: int, exclude: Sequence[str] = ()) -> list[Delivery]:
        sql = (
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries INDEXED BY deliveries_due"
            f" WHERE status = 'pending' AND next_attempt_at <= ?{_not_in(exclude)}"
            " ORDER BY next_attempt_at LIMIT ?"
        )
        return [_delivery(r) for r in await self._read(sql, [now, *exclude, limit])]

    async def next_delivery_at(self, exclude: Sequence[str] = ()) -> float | None:
        sql = (
            "SELECT min(next_attempt_at) FROM deliveries INDEXED BY deliveries_due"
            f" WHERE status = 'pending'{_not_in(exclude)}"
        )
        ((due,),) = await self._read(sql, list(exclude))
        return None if due is None else float(due)

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
        params = {
            "id": delivery_id,
            "status": status,
            "code": status_code,
            "error": error,
            "next": next_attempt_at if status == "pending" else None,
            "delivered": now if status == "delivered" else None,
            "now": now,
        }

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE deliveries SET status = :status, attempts = attempts + 1,"
                " next_attempt_at = :next, last_attempt_at = :now, last_status_code = :code,"
                " last_error = :error, delivered_at = :delivered"
                " WHERE id = :id AND status = 'pending'",
                params,
            )

        await self._write(op)

    async def list_deliveries(self, task_id: str) -> list[Delivery]:
        sql = f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE task_id = ? ORDER BY id"
        return [_delivery(r) for r in await self._read(sql, (task_id,))]
