"""The PostgreSQL store's agents: the store methods that read and write them.

`PostgresStore` (tasks/postgres/store.py) inherits `PostgresAgents`. The columns and their
mapping are every backend's (tasks/rows.py); SQLite's IntegrityError and PostgreSQL's class 23
errors alike become Conflict.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from asyncpg import exceptions as pg

from agents.agent import Agent
from agents.tokens import new_signing_secret
from errors import Conflict, NotFound
from tasks.ids import uuid7
from tasks.json_text import json_text
from tasks.postgres.connection import PostgresBase, changed
from tasks.rows import AGENT_COLUMNS, agent_from_row, agent_row
from tasks.store import cancelled_result


def _insert_agent(fields: dict[str, Any], token_sha256: bytes, now: float) -> tuple[str, list[Any]]:
    row = agent_row(fields) | {"id": uuid7(), "token_sha256": token_sha256}
    row |= {"callback_secret": new_signing_secret(), "created_at": now, "updated_at": now}
    placeholders = ", ".join(f"${n}" for n in range(1, len(row) + 1))
    sql = f"INSERT INTO agents ({', '.join(row)}) VALUES ({placeholders}) RETURNING {AGENT_COLUMNS}"
    return sql, list(row.values())


def _update_agent(agent_id: str, row: dict[str, Any], now: float) -> tuple[str, list[Any]]:
    row = row | {"updated_at": now}
    assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(row, start=2))
    return f"UPDATE agents SET {assignments} WHERE id = $1 RETURNING {AGENT_COLUMNS}", [
        agent_id,
        *row.values(),
    ]


class PostgresAgents(PostgresBase):
    """Agent operations of the PostgreSQL store (see tasks/store.py for their contracts)."""

    async def create_agent(self, fields: dict[str, Any], token_sha256: bytes) -> Agent:
        sql, args = _insert_agent(fields, token_sha256, time.time())
        try:
            created = await self._fetchrow(sql, *args)
        except pg.IntegrityConstraintViolationError:
            raise Conflict(f"An agent named '{fields['name']}' already exists.") from None
        return agent_from_row(created)

    async def get_agent(self, agent_id: str) -> Agent:
        row = await self._fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents WHERE id = $1", agent_id)
        if row is None:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return agent_from_row(row)

    async def get_agent_by_name(self, name: str) -> Agent:
        row = await self._fetchrow(f"SELECT {AGENT_COLUMNS} FROM agents WHERE name = $1", name)
        if row is None:
            raise NotFound(f"No agent is named '{name}'.")
        return agent_from_row(row)

    async def agent_for_token(self, token_sha256: bytes) -> Agent | None:
        row = await self._fetchrow(
            f"SELECT {AGENT_COLUMNS} FROM agents WHERE token_sha256 = $1", token_sha256
        )
        return None if row is None else agent_from_row(row)

    async def list_agents(self) -> list[Agent]:
        return [
            agent_from_row(r) for r in await self._fetch(f"SELECT {AGENT_COLUMNS} FROM agents ORDER BY name")
        ]

    async def _update_agent_columns(self, agent_id: str, row: dict[str, Any]) -> Agent:
        sql, args = _update_agent(agent_id, row, time.time())
        try:
            updated = await self._fetchrow(sql, *args)
        except pg.IntegrityConstraintViolationError:
            raise Conflict(f"An agent named '{row.get('name')}' already exists.") from None
        if updated is None:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return agent_from_row(updated)

    async def update_agent(self, agent_id: str, fields: dict[str, Any]) -> Agent:
        return await self._update_agent_columns(agent_id, agent_row(fields))

    async def save_agents(
        self, creates: Sequence[tuple[dict[str, Any], bytes]], updates: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[Agent]:
        now = time.time()
        statements = [_insert_agent(fields, token_sha256, now) for fields, token_sha256 in creates]
        statements += [_update_agent(agent_id, agent_row(fields), now) for agent_id, fields in updates]
        try:
            async with self._transaction() as conn:
                rows = [await conn.fetchrow(sql, *args) for sql, args in statements]
                if None in rows:  # an agent to update was deleted meanwhile: raising rolls all back
                    raise NotFound("An agent to update was deleted meanwhile; nothing was changed.")
        except pg.IntegrityConstraintViolationError:
            raise Conflict("One of these names was taken meanwhile; nothing was changed.") from None
        return [agent_from_row(row) for row in rows]

    async def set_agent_token(self, agent_id: str, token_sha256: bytes) -> Agent:
        return await self._update_agent_columns(agent_id, {"token_sha256": token_sha256})

    async def set_callback_secret(self, agent_id: str, secret: str) -> Agent:
        return await self._update_agent_columns(agent_id, {"callback_secret": secret})

    async def _delete_agent(self, agent_id: str) -> list[str]:
        now = time.time()
        async with self._transaction() as conn:
            cancelled = await conn.fetch(
                "UPDATE tasks SET status = 'FAILURE', result = $1, finished_at = $2, owner = NULL,"
                " lease_expires_at = NULL WHERE agent_id = $3 AND status NOT IN ('SUCCESS', 'FAILURE') RETURNING id",
                json_text(cancelled_result()),
                now,
                agent_id,
            )
            if changed(await conn.execute("DELETE FROM agents WHERE id = $1", agent_id)) == 0:
                raise NotFound(f"No agent has id '{agent_id}'.")  # rolls back (nothing was cancelled)
        return [row[0] for row in cancelled]
