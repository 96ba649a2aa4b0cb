"""The PostgreSQL store's half of moving a database (tasks/dump.py): its tables as rows by column
name, read in one REPEATABLE READ snapshot through cursors, and another store's rows loaded with
COPY in one transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from typing import Any

from asyncpg import exceptions as pg

from errors import Conflict, InvalidInput
from tasks.dump import (
    FETCH_ROWS,
    TABLES,
    Batch,
    Row,
    batched,
    refuse_unknown_columns,
    refuse_unless_counted,
    refuse_unless_empty,
)
from tasks.postgres.connection import PostgresBase

# Columns a dump leaves out because a load makes them again: a chunk's id (an identity) and
# words (generated from its body), a tool call's arguments_sha256 (of its arguments).
DERIVED = {"chunks": {"id", "words"}, "tool_calls": {"arguments_sha256"}}
# Text kept as bytea here (it may hold NUL): str in a dump, UTF-8 in the table.
TEXT_AS_BYTEA = {"tool_calls": {"output"}}
COLUMNS_SQL = (
    "SELECT column_name, data_type FROM information_schema.columns"
    " WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position"
)
# One statement, so every count is of the same snapshot.
COUNT_SQL = "SELECT " + ", ".join(f"(SELECT count(*) FROM {table})" for table in TABLES)


async def _column_types(conn: Any, table: str) -> dict[str, str]:
    """The table's columns and their types, in the table's order."""
    return {str(name): str(kind) for name, kind in await conn.fetch(COLUMNS_SQL, table)}


async def _counts(conn: Any) -> dict[str, int]:
    row = await conn.fetchrow(COUNT_SQL)
    return {table: int(count) for table, count in zip(TABLES, row, strict=True)}


def _row_name(row: Row) -> str:
    """How a message names a row: its id, else the task or agent it belongs to."""
    for key in ("id", "task_id", "agent_id"):
        if row.get(key) is not None:
            return f"{key} {row[key]}"
    return "(without an id)"


def _refuse_nul(table: str, rows: list[Row], types: Mapping[str, str]) -> None:
    """InvalidInput, naming the row, for text holding NUL, which PostgreSQL's text cannot (SQLite
    keeps it in a few free-text fields, e.g. an agent's prompt)."""
    text_columns = [name for name in rows[0] if types.get(name) == "text"]
    for row in rows:
        for name in text_columns:
            if isinstance(row[name], str) and "\x00" in row[name]:
                raise InvalidInput(
                    f"The source's {table} row {_row_name(row)} holds a NUL character (U+0000) in"
                    f" {name}, which PostgreSQL's text cannot; nothing was copied. Remove it in the"
                    " source, then copy again."
                )


async def _insert(conn: Any, table: str, rows: list[Row], types: Mapping[str, str]) -> None:
    """COPY one batch into the table, inside the load's transaction."""
    refuse_unknown_columns(table, rows[0], set(types) - DERIVED.get(table, set()))
    _refuse_nul(table, rows, types)
    names = list(rows[0])  # one dump's rows of one table all have the same columns
    encoded = TEXT_AS_BYTEA.get(table, set())
    records = [[row[n].encode() if n in encoded else row[n] for n in names] for row in rows]
    if table == "tool_calls":
        arguments = names.index("arguments")
        for record in records:
            record.append(hashlib.sha256(record[arguments].encode()).digest())
        names.append("arguments_sha256")
    try:
        await conn.copy_records_to_table(table, records=records, columns=names)
    except pg.IntegrityConstraintViolationError as exc:
        raise Conflict(
            f"The source's {table} break a rule of this database ({exc}); nothing was copied."
        ) from None


class PostgresDump(PostgresBase):
    """Dump and load of the PostgreSQL store (see tasks/store.py for their contracts)."""

    async def row_counts(self) -> dict[str, int]:
        async with self._connection() as conn:
            return await _counts(conn)

    async def dump(self) -> AsyncGenerator[Batch, None]:
        async with (
            self._connection() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            for table in TABLES:
                types = await _column_types(conn, table)
                columns = [name for name in types if name not in DERIVED.get(table, ())]
                async for batch in batched(table, _rows(conn, table, columns)):
                    yield batch

    async def load(self, batches: AsyncIterable[Batch], expected: Mapping[str, int]) -> dict[str, int]:
        async with self._transaction() as conn:
            # Other writers wait until the copy commits: nothing is written between the check
            # that the database is empty and the commit. Readers are not held up.
            await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN EXCLUSIVE MODE")
            refuse_unless_empty(self.where, await _counts(conn))
            types = {table: await _column_types(conn, table) for table in TABLES}
            async for table, rows in batches:
                await _insert(conn, table, rows, types[table])
            found = await _counts(conn)
            refuse_unless_counted(expected, found)  # raising rolls the copy back
        return found


async def _rows(conn: Any, table: str, columns: list[str]) -> AsyncIterator[Row]:
    """The table's rows, FETCH_ROWS per round trip. Chunks in id order: each agent's in the
    order they were added."""
    order = " ORDER BY id" if table == "chunks" else ""
    quoted = ", ".join(f'"{name}"' for name in columns)
    cursor = await conn.cursor(f"SELECT {quoted} FROM {table}{order}")
    decoded = TEXT_AS_BYTEA.get(table, set())
    while rows := await cursor.fetch(FETCH_ROWS):
        for row in rows:
            yield {
                name: bytes(value).decode() if name in decoded else value
                for name, value in zip(columns, row, strict=True)
            }
