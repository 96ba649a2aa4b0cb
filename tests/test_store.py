"""The SQLite store and schema: constraints, pragmas, indexes behind the hot queries, ids.

What every store does is proven on both backends by tests/test_store_contract.py."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from tasks.ids import uuid7
from tasks.sqlite.schema import schema_version
from tasks.sqlite.store import CLAIM_SQL, SQLiteStore


@pytest.fixture
async def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(str(tmp_path / "nested" / "dir" / "hookd.db"))
    await store.open()
    yield store  # type: ignore[misc]
    await store.close()


def connect(store: SQLiteStore) -> sqlite3.Connection:
    return sqlite3.connect(store.path)


async def test_new_file_gets_the_schema_and_wal(store: SQLiteStore) -> None:
    with connect(store) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (schema_version(),)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"agents", "tasks"} <= tables


async def test_status_values_are_checked(store: SQLiteStore) -> None:
    await store.create_agent({"name": "a"}, b"h" * 32)
    task_id = await store.enqueue(b"h" * 32, "{}")
    with connect(store) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE tasks SET status = 'DONE' WHERE id = ?", (task_id,))
    with connect(store) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        # a final status without a result would be a task that never tells its outcome
        conn.execute("UPDATE tasks SET status = 'SUCCESS' WHERE id = ?", (task_id,))
    with connect(store) as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        conn.execute("UPDATE agents SET status = 'sleeping'")


async def test_claim_uses_the_queue_index(store: SQLiteStore) -> None:
    with connect(store) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN " + CLAIM_SQL, {"now": 0, "limit": 1, "scan": 64, "node": "n", "lease_s": 30}
        ).fetchall()
    details = " | ".join(row[-1] for row in plan)
    assert "tasks_queue" in details, details
    assert "tasks_running" in details, details


async def test_status_lookup_and_listing_use_indexes(store: SQLiteStore) -> None:
    with connect(store) as conn:
        by_id = conn.execute("EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE id = ?", ("x",)).fetchall()
        by_agent = conn.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM tasks WHERE agent_id = ? ORDER BY id DESC LIMIT 5", ("x",)
        ).fetchall()
    assert "USING INDEX sqlite_autoindex_tasks_1" in by_id[0][-1]
    assert "tasks_by_agent" in by_agent[0][-1] and "TEMP B-TREE" not in str(by_agent)


def test_uuid7_is_time_ordered_and_unique() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}
