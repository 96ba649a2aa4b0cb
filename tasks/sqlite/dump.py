"""The SQLite store's half of moving a database (tasks/dump.py): its tables as rows by column
name, read in one snapshot, and another store's rows loaded in one transaction.

Both use a connection of their own rather than the store's reader and writer: the dump holds
its read transaction across many awaits, and the load holds its write transaction while the
source is read, where the writer's group commit applies each write in a transaction of its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import aiosqlite

from errors import Conflict, StorageUnavailable
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
from tasks.sqlite.knowledge import next_chunk_ids
from tasks.sqlite.writer import storage_error
from tasks.store import Store

# Columns a dump leaves out because a load makes them again: chunk ids, numbered in the agent's
# range (schema.sql, knowledge_ranges), where the FTS5 triggers index each chunk as it arrives.
DERIVED = {"chunks": {"id"}}
# One statement, so every count is of the same instant.
COUNT_SQL = " UNION ALL ".join(f"SELECT '{table}', count(*) FROM {table}" for table in TABLES)


def _counts(rows: Sequence[Sequence[Any]]) -> dict[str, int]:
    return {str(table): int(count) for table, count in rows}


def _dumped_columns(table_info: Iterable[Sequence[Any]], table: str) -> list[str]:
    """A table's columns (PRAGMA table_info rows) as a dump carries them."""
    return [str(row[1]) for row in table_info if row[1] not in DERIVED.get(table, ())]


def _select_sql(table: str, columns: Sequence[str]) -> tuple[str, list[str]]:
    """The statement that reads a table's rows for a dump, and the names of what it selects.
    Chunks come in id order (so each agent's in the order they were added), with their source's
    agent_id, which the chunks table does not hold."""
    selected = ", ".join(f't."{column}"' for column in columns)
    if table == "chunks":
        sql = f"SELECT {selected}, s.agent_id FROM chunks AS t JOIN sources AS s ON s.id = t.source_id ORDER BY t.id"
        return sql, [*columns, "agent_id"]
    return f"SELECT {selected} FROM {table} AS t", list(columns)


def _numbered_chunks(conn: sqlite3.Connection, rows: list[Row]) -> list[Row]:
    """Chunks as this schema keeps them: ids from their agent's range, in the order given, and
    no agent_id column."""
    by_agent: dict[str, list[Row]] = {}
    for row in rows:
        by_agent.setdefault(row["agent_id"], []).append(row)
    numbered = []
    for agent_id, chunks in by_agent.items():
        start = next_chunk_ids(conn, agent_id, len(chunks))
        for n, row in enumerate(chunks):
            numbered.append(
                {name: value for name, value in row.items() if name != "agent_id"} | {"id": start + n}
            )
    return numbered


def _insert(conn: sqlite3.Connection, table: str, rows: list[Row], columns: set[str]) -> None:
    """Insert one batch (on a worker thread, inside the load's transaction)."""
    if table == "chunks":
        rows = _numbered_chunks(conn, rows)
    refuse_unknown_columns(table, rows[0], columns)
    names = list(rows[0])  # one dump's rows of one table all have the same columns
    quoted = ", ".join(f'"{name}"' for name in names)
    sql = f"INSERT INTO {table} ({quoted}) VALUES ({', '.join('?' * len(names))})"
    try:
        conn.executemany(sql, [[row[name] for name in names] for row in rows])
    except sqlite3.IntegrityError as exc:
        raise Conflict(
            f"The source's {table} break a rule of this database ({exc}); nothing was copied."
        ) from None


class SQLiteDump(Store):
    path: str

    @abstractmethod
    def _connect_writer(self) -> sqlite3.Connection: ...

    @abstractmethod
    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]: ...

    async def row_counts(self) -> dict[str, int]:
        return _counts(await self._read(COUNT_SQL))

    async def dump(self) -> AsyncGenerator[Batch, None]:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute("PRAGMA query_only = ON")
            # One read transaction for every table: in WAL mode it keeps its snapshot while
            # other connections write, and it blocks none of them.
            await conn.execute("BEGIN")
            for table in TABLES:
                columns = _dumped_columns(await conn.execute_fetchall(f"PRAGMA table_info({table})"), table)
                async for batch in batched(table, self._rows(conn, table, columns)):
                    yield batch
        finally:
            await conn.close()

    @staticmethod
    async def _rows(conn: aiosqlite.Connection, table: str, columns: list[str]) -> AsyncIterator[Row]:
        sql, names = _select_sql(table, columns)
        async with conn.execute(sql) as cursor:
            while rows := await cursor.fetchmany(FETCH_ROWS):
                for row in rows:
                    yield dict(zip(names, row, strict=True))

    async def load(self, batches: AsyncIterable[Batch], expected: Mapping[str, int]) -> dict[str, int]:
        conn = await asyncio.to_thread(self._connect_writer)
        try:
            return await self._load(conn, batches, expected)
        except sqlite3.Error as exc:
            raise storage_error(exc) or StorageUnavailable(
                f"{self.where} cannot take the copy ({exc}); nothing was copied."
            ) from None
        finally:
            await asyncio.to_thread(conn.close)  # rolls back what is not committed

    async def _load(
        self, conn: sqlite3.Connection, batches: AsyncIterable[Batch], expected: Mapping[str, int]
    ) -> dict[str, int]:
        # IMMEDIATE: the write lock from the start, so nothing is written between the check that
        # the file is empty and the commit of the copy.
        await asyncio.to_thread(conn.execute, "BEGIN IMMEDIATE")
        refuse_unless_empty(self.where, _counts(await asyncio.to_thread(_fetch_all, conn, COUNT_SQL)))
        columns = {}
        for table in TABLES:
            info = await asyncio.to_thread(_fetch_all, conn, f"PRAGMA table_info({table})")
            columns[table] = {str(row[1]) for row in info}
        async for table, rows in batches:
            await asyncio.to_thread(_insert, conn, table, rows, columns[table])
        found = _counts(await asyncio.to_thread(_fetch_all, conn, COUNT_SQL))
        refuse_unless_counted(expected, found)
        await asyncio.to_thread(conn.execute, "COMMIT")
        return found


def _fetch_all(conn: sqlite3.Connection, sql: str) -> list[Any]:
    return conn.execute(sql).fetchall()
