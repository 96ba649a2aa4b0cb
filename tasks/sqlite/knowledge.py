"""The SQLite store's knowledge half: sources, their chunks, and the FTS5 index over them.

SQLiteStore inherits these methods; they use its writer (group commit) and its reader
connection like every other store method. schema.sql explains the tables and triggers.
"""

from __future__ import annotations

import sqlite3
import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, TypeVar

from agents.knowledge import Passage, PreparedSource, Source
from errors import Conflict, NotFound
from tasks.ids import uuid7
from tasks.rows import SOURCE_COLUMNS, source_from_row
from tasks.sqlite.writer import WriteOp
from tasks.store import Store

T = TypeVar("T")

RANGE_BITS = 32  # an agent's chunk ids: its knowledge_ranges id · 2^32 onwards (schema.sql)
MAX_RANGE = 2**31 - 1  # so the last id of the last range fits in a signed 64-bit integer

# The agent's best chunks: FTS5 scans only the agent's rowid range, ranks by BM25 and keeps
# :limit; only those few are joined to their text and source.
SEARCH_SQL = """
SELECT c.source_id, s.name, c.nth, c.body, -m.score
FROM (
    SELECT rowid, bm25(chunks_fts) AS score FROM chunks_fts
    WHERE chunks_fts MATCH :query AND rowid BETWEEN :first AND :last
    ORDER BY score LIMIT :limit
) AS m
JOIN chunks AS c ON c.id = m.rowid
JOIN sources AS s ON s.id = c.source_id
ORDER BY m.score, c.id
"""


def _range(number: int) -> tuple[int, int]:
    """The first and last chunk id of an agent's range."""
    first = number << RANGE_BITS
    return first, first + (1 << RANGE_BITS) - 1


def match_query(terms: Sequence[str]) -> str:
    """An FTS5 query for chunks holding any of the terms.

    Every term is a quoted string (FTS5 doubles a quote to escape it), so nothing in it is
    read as syntax: AND, NEAR, *, ^, : and parentheses are just text. A term FTS5 reads as
    no token at all (only punctuation) matches nothing rather than failing.
    """
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def next_chunk_ids(conn: sqlite3.Connection, agent_id: str, count: int) -> int:
    """The first of `count` free chunk ids in the agent's range, giving it a range if need be."""
    conn.execute("INSERT OR IGNORE INTO knowledge_ranges (agent_id) VALUES (?)", (agent_id,))
    ((number,),) = conn.execute("SELECT id FROM knowledge_ranges WHERE agent_id = ?", (agent_id,))
    first, last = _range(number)
    ((start,),) = conn.execute(
        "SELECT coalesce(max(id) + 1, ?1) FROM chunks WHERE id BETWEEN ?1 AND ?2", (first, last)
    )
    if number > MAX_RANGE or start + count - 1 > last:
        raise Conflict(
            "This hookd database has no room left for more chunks; delete unused sources or agents."
        )
    return int(start)


class SQLiteKnowledge(Store):
    @abstractmethod
    async def _write(self, op: WriteOp[T]) -> T: ...

    @abstractmethod
    async def _read(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]: ...

    async def add_source(self, agent_id: str, source: PreparedSource) -> Source:
        row = (uuid7(), source.name, source.format, len(source.chunks), source.bytes, time.time(), agent_id)

        def op(conn: sqlite3.Connection) -> Any:
            created = conn.execute(
                "INSERT INTO sources (id, agent_id, name, format, chunks, bytes, created_at)"
                f" SELECT ?1, id, ?2, ?3, ?4, ?5, ?6 FROM agents WHERE id = ?7 RETURNING {SOURCE_COLUMNS}",
                row,
            ).fetchall()
            if created:  # the trigger indexes each chunk as it is inserted
                start = next_chunk_ids(conn, agent_id, len(source.chunks))
                conn.executemany(
                    "INSERT INTO chunks (id, source_id, nth, body) VALUES (?, ?, ?, ?)",
                    [(start + nth, row[0], nth, body) for nth, body in enumerate(source.chunks)],
                )
            return created

        created = await self._write(op)
        if not created:
            raise NotFound(f"No agent has id '{agent_id}'.")
        return source_from_row(created[0])

    async def list_sources(self, agent_id: str) -> list[Source]:
        rows = await self._read(
            f"SELECT {SOURCE_COLUMNS} FROM sources WHERE agent_id = ? ORDER BY id", (agent_id,)
        )
        return [source_from_row(r) for r in rows]

    async def delete_source(self, agent_id: str, source_id: str) -> None:
        def op(conn: sqlite3.Connection) -> int:
            # Cascades to the chunks, whose trigger takes them out of the index.
            return conn.execute(
                "DELETE FROM sources WHERE id = ? AND agent_id = ?", (source_id, agent_id)
            ).rowcount

        if await self._write(op) == 0:
            raise NotFound(f"The agent has no source with id '{source_id}'.")

    async def search_chunks(self, agent_id: str, terms: Sequence[str], limit: int) -> list[Passage] | None:
        ranges = await self._read(
            "SELECT r.id FROM knowledge_ranges AS r WHERE r.agent_id = ?1"
            " AND EXISTS (SELECT 1 FROM sources WHERE agent_id = ?1)",
            (agent_id,),
        )
        if not ranges:
            return None
        if not terms or limit < 1:
            return []
        first, last = _range(ranges[0][0])
        params = {"query": match_query(terms), "first": first, "last": last, "limit": limit}
        return [
            Passage(source_id=r[0], source_name=r[1], chunk=r[2], text=r[3], score=r[4])
            for r in await self._read(SEARCH_SQL, params)
        ]
