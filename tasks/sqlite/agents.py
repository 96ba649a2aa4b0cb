"""The SQLite store's agents: their columns, and the store methods that read and write them.

`SQLiteStore` (tasks/sqlite/store.py) inherits `SQLiteAgents`; claims read agents with the same
columns (`AGENT_COLUMNS`, `agent_from_row`).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any, TypeVar

from agents.agent import Agent
from agents.tokens import new_signing_secret
from errors import Conflict, NotFound
from tasks.ids import uuid7
from tasks.json_text import json_text
from tasks.rows import AGENT_COLUMNS, agent_from_row, agent_row
from tasks.sqlite.writer import WriteOp
from tasks.store import cancelled_result

T = TypeVar("T")


def _insert_agent(fields: dict[str, Any], token_sha256: bytes, now: float) -> tuple[str, dict[str, Any]]:
    row = agent_row(fields) | {"id": uuid7(), "token_sha256": token_sha256}
    row["callback_secret"] = new_signing_secret()
    row |= {"created_at": now, "updated_at": now}
    columns = ", ".join(row)
    placeholders = ", ".join(f":{c}" for c in row)
    return f"INSERT INTO agents ({columns}) VALUES ({placeholders}) RETURNING {AGENT_COLUMNS}", row


def _update_agent(agent_id: str, row: dict[str, Any], now: float) -> tuple[str, dict[str, Any]]:
    row = row | {"updated_at": now, "id": agent_id}
    assignments = ", ".join(f"{c} = :{c}" for c in row if c != "id")
    return f"UPDATE agents SET {assignments} WHERE id = :id RETURNING {AGENT_COLUMNS}", row


class SQLiteAgents:
    """Agent operations of the SQLite store (see tasks/store.py for their contracts)."""

    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        raise NotImplementedError  # SQLiteStore's

    async def _write(self, op: WriteOp[T]) -> T:
        raise NotImplementedError  # SQLiteStore's

    async def create_agent(self, fields: dict[str, Any], token_sha256: bytes) -> Agent:
        sql, row = _insert_agent(fields, token_sha256, time.time())

        def op(conn: sqlite3.Connection) -> Any:
            return conn.execute(sql, row).fetchall()

        try:
            (created,) = await self._write(op)
        except sqlite3.IntegrityError:
            raise Conflict(f"An agent named '{fields['name']}' already exists.") from None
        return agent_from_row(created)

    async def get_agent(self, agent_id: str) -> Agent:
        rows = await self._read(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = ?", (agent_id,))
        if not rows:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return agent_from_row(rows[0])

    async def get_agent_by_name(self, name: str) -> Agent:
        rows = await self._read(f"SELECT {AGENT_COLUMNS} FROM agents WHERE name = ?", (name,))
        if not rows:
            raise NotFound(f"No agent is named '{name}'.")
        return agent_from_row(rows[0])

    async def agent_for_token(self, token_sha256: bytes) -> Agent | None:
        rows = await self._read(f"SELECT {AGENT_COLUMNS} FROM agents WHERE token_sha256 = ?", (token_sha256,))
        return agent_from_row(rows[0]) if rows else None

    async def list_agents(self) -> list[Agent]:
        return [
            agent_from_row(r) for r in await self._read(f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY name")
        ]

    async def _update_agent_columns(self, agent_id: str, row: dict[str, Any]) -> Agent:
        sql, row = _update_agent(agent_id, row, time.time())

        def op(conn: sqlite3.Connection) -> Any:
            return conn.execute(sql, row).fetchall()

        try:
            rows = await self._write(op)
        except sqlite3.IntegrityError:
            raise Conflict(f"An agent named '{row.get('name')}' already exists.") from None
        if not rows:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return agent_from_row(rows[0])

    async def update_agent(self, agent_id: str, fields: dict[str, Any]) -> Agent:
        return await self._update_agent_columns(agent_id, agent_row(fields))

    async def save_agents(
        self, creates: Sequence[tuple[dict[str, Any], bytes]], updates: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[Agent]:
        now = time.time()
        statements = [_insert_agent(fields, token_sha256, now) for fields, token_sha256 in creates]
        statements += [_update_agent(agent_id, agent_row(fields), now) for agent_id, fields in updates]

        def op(conn: sqlite3.Connection) -> list[Any]:
            rows = [conn.execute(sql, row).fetchall() for sql, row in statements]
            if [] in rows:  # an agent to update was deleted meanwhile: raising rolls all back
                raise NotFound("An agent to update was deleted meanwhile; nothing was changed.")
            return [found for (found,) in rows]

        try:
            rows = await self._write(op)
        except sqlite3.IntegrityError:
            raise Conflict("One of these names was taken meanwhile; nothing was changed.") from None
        return [agent_from_row(row) for row in rows]

    async def set_agent_token(self, agent_id: str, token_sha256: bytes) -> Agent:
        return await self._update_agent_columns(agent_id, {"token_sha256": token_sha256})

    async def set_callback_secret(self, agent_id: str, secret: str) -> Agent:
        return await self._update_agent_columns(agent_id, {"callback_secret": secret})

    async def _delete_agent(self, agent_id: str) -> list[str]:
        now = time.time()
        result = json_text(cancelled_result())

        def op(conn: sqlite3.Connection) -> list[str] | None:
            cancelled = conn.execute(
                "UPDATE tasks SET status = 'FAILURE', result = ?, finished_at = ?, owner = NULL,"
                " lease_expires_at = NULL WHERE agent_id = ? AND status NOT IN ('SUCCESS', 'FAILURE') RETURNING id",
                (result, now, agent_id),
            ).fetchall()
            cursor = conn.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            return [r[0] for r in cancelled] if cursor.rowcount else None

        cancelled_ids = await self._write(op)
        if cancelled_ids is None:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return cancelled_ids
