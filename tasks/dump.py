"""hookd's data as rows by column name: what `Store.dump` yields and `Store.load` takes, so that
a database moves from one backend to the other (tasks/copy.py) with nothing lost.

A row is a dict from column name to value, in the types both stores read back the same: str for
text and JSON text, int, float for times (epoch seconds), bytes for hashes, None. A row carries
every column its table has on the source, except what a backend derives from the others:

- a chunk's id: each backend numbers chunks its own way (SQLite in per-agent ranges, PostgreSQL
  by an identity), and nothing outside the store refers to one; a chunk carries its source's
  agent_id instead, which SQLite's chunks table does not hold. A chunk's search index (FTS5's,
  PostgreSQL's tsvector) is the destination's to build;
- a journalled tool call's arguments_sha256 (PostgreSQL's key); its output is text (str),
  whether a backend keeps it as text or as bytea.

Columns go by name: a column the destination has and the source lacks gets its default, so a
migration that adds a column to both backends needs no change here. A column the source has and
the destination lacks is refused rather than dropped (nothing is lost silently).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from errors import Conflict

Row = dict[str, Any]
Batch = tuple[str, list[Row]]  # a table's name, and some of its rows

# Every table hookd keeps, in an order in which each row's references are loaded before it.
# Not SQLite's knowledge_ranges (chunks carry agent_id instead) nor PostgreSQL's hookd_schema:
# they are how a backend keeps the others, rebuilt by the destination.
TABLES = ("agents", "tasks", "idempotency_keys", "tool_calls", "deliveries", "sources", "chunks")

# A batch is cut at whichever comes first, so that memory stays bounded whatever the table's
# size and the rows' (a result may be several MiB): BATCH_ROWS rows, or BATCH_BYTES of text.
BATCH_ROWS = 1000
BATCH_BYTES = 16 << 20
# Rows read from the source per round trip while a batch fills.
FETCH_ROWS = 16


def row_bytes(row: Row) -> int:
    """About what the row holds in memory, counting its text and bytes."""
    return sum(len(value) for value in row.values() if isinstance(value, str | bytes))


async def batched(table: str, rows: AsyncIterator[Row]) -> AsyncIterator[Batch]:
    """The table's rows as batches of at most BATCH_ROWS rows and about BATCH_BYTES."""
    batch: list[Row] = []
    size = 0
    async for row in rows:
        batch.append(row)
        size += row_bytes(row)
        if len(batch) >= BATCH_ROWS or size >= BATCH_BYTES:
            yield table, batch
            batch, size = [], 0
    if batch:
        yield table, batch


def refuse_unless_empty(where: str, counts: Mapping[str, int]) -> None:
    """Conflict when the destination already holds agents or tasks: a copy never merges. (Every
    other table's rows belong to an agent or a task, so these two tell whether it is empty.)"""
    if counts["agents"] or counts["tasks"]:
        raise Conflict(
            f"{where} already holds {counts['agents']} agents and {counts['tasks']} tasks; nothing was"
            " copied. Copy into an empty database."
        )


def refuse_unknown_columns(table: str, columns: Mapping[str, Any], known: set[str]) -> None:
    """Conflict when a row has a column the destination's table lacks: it would be lost."""
    unknown = sorted(set(columns) - known)
    if unknown:
        raise Conflict(
            f"The destination's {table} table has no column {', '.join(unknown)}, which the source's"
            " has; nothing was copied. Are both on the same hookd version?"
        )


def refuse_unless_counted(expected: Mapping[str, int], found: Mapping[str, int]) -> None:
    """Conflict unless the destination now holds as many rows per table as the source did."""
    differ = [f"{table}: {expected[table]} in the source, {found[table]} copied" for table in TABLES
              if expected[table] != found[table]]  # fmt: skip
    if differ:
        raise Conflict(
            f"The copy does not hold what the source does ({'; '.join(differ)}); nothing was"
            " copied. Did something write to the source meanwhile? Try again."
        )
