"""The SQLite store and schema: constraints, pragmas, indexes behind the hot queries, ids."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path

import pytest

from agents.knowledge import prepare_source
from tasks.ids import uuid7
from tasks.sqlite_schema import schema_version
from tasks.sqlite_store import CLAIM_SCAN_ROWS_MAX, CLAIM_SQL, SQLiteStore


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


async def test_reopening_keeps_data(store: SQLiteStore) -> None:
    agent = await store.create_agent({"name": "keep"}, b"h" * 32)
    await store.close()
    await store.open()
    assert (await store.get_agent(agent.id)).name == "keep"


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
        plan = conn.execute("EXPLAIN QUERY PLAN " + CLAIM_SQL, {"now": 0, "limit": 1, "scan": 64}).fetchall()
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


async def test_claim_counts_an_attempt_and_finish_is_guarded(store: SQLiteStore) -> None:
    await store.create_agent({"name": "a", "max_attempts": 2}, b"h" * 32)
    assert await store.enqueue(b"x" * 32, "{}") is None  # no agent has that token
    task_id = await store.enqueue(b"h" * 32, '{"q": 1}')
    (claimed,) = await store.claim_batch(10)
    assert (claimed.task.id, claimed.task.status, claimed.task.attempts) == (task_id, "STARTED", 1)
    assert claimed.agent.name == "a" and not claimed.agent_has_sources
    assert await store.claim_batch(10) == []
    await store.cancel(task_id)
    assert await store.finish(task_id, "SUCCESS", {"answer": "late"}) is None  # cancel won
    task = await store.get_task(task_id)
    assert task is not None and task.result == {"error": "The task was cancelled.", "type": "cancelled"}


async def test_recovery_requeues_or_fails_by_attempts_left(store: SQLiteStore) -> None:
    await store.create_agent({"name": "a", "max_attempts": 2}, b"h" * 32)
    first = await store.enqueue(b"h" * 32, "{}")
    await store.claim_batch(1)
    second = await store.enqueue(b"h" * 32, "{}")
    await store.claim_batch(1)
    await store.retry_later(second, 0, {"error": "x", "type": "timeout"})
    await store.claim_batch(1)  # second is now STARTED on its last attempt
    recovery = await store.recover_interrupted()
    assert (recovery.requeued, recovery.failed) == (1, 1)
    one, two = await store.get_task(first), await store.get_task(second)
    assert one is not None and (one.status, one.attempts) == ("PENDING", 1)
    assert two is not None and two.status == "FAILURE" and two.result is not None
    assert two.result["type"] == "interrupted"


def test_uuid7_is_time_ordered_and_unique() -> None:
    ids = [uuid7() for _ in range(20_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {uuid.UUID(i).version for i in ids} == {7}


async def test_a_claim_says_whether_the_agent_has_knowledge_sources(store: SQLiteStore) -> None:
    with_sources = await store.create_agent({"name": "reads"}, b"r" * 32)
    await store.create_agent({"name": "plain"}, b"p" * 32)
    await store.add_source(with_sources.id, prepare_source("notes.md", "markdown", "# Notes\n\nSome text."))
    read, plain = await store.enqueue(b"r" * 32, "{}"), await store.enqueue(b"p" * 32, "{}")
    claims = {claim.task.id: claim.agent_has_sources for claim in await store.claim_batch(10)}
    assert claims == {read: True, plain: False}


async def test_finish_says_whether_it_queued_a_callback_delivery(store: SQLiteStore) -> None:
    await store.create_agent({"name": "calls-back", "callback_url": "https://example.com/hook"}, b"c" * 32)
    await store.create_agent({"name": "quiet"}, b"q" * 32)
    called, quiet = await store.enqueue(b"c" * 32, "{}"), await store.enqueue(b"q" * 32, "{}")
    await store.claim_batch(10)
    assert called and quiet
    finished = await store.finish(called, "SUCCESS", {"answer": "a", "model": "m", "usage": {}})
    assert finished is not None and finished.delivery_queued
    finished = await store.finish(quiet, "SUCCESS", {"answer": "a", "model": "m", "usage": {}})
    assert finished is not None and not finished.delivery_queued
    assert [d.task_id for d in await store.due_deliveries(time.time() + 1, 10)] == [called]


async def test_a_paused_agents_backlog_does_not_block_the_queue(store: SQLiteStore) -> None:
    """More queued tasks of a paused agent than a claim scans, ahead of an active agent's task,
    with max_concurrency set (the claim that scans a window of the queue)."""
    paused = await store.create_agent({"name": "paused"}, b"p" * 32)
    await asyncio.gather(*(store.enqueue(b"p" * 32, "{}") for _ in range(CLAIM_SCAN_ROWS_MAX + 10)))
    await store.update_agent(paused.id, {"status": "paused"})
    await store.create_agent({"name": "limited", "max_concurrency": 1}, b"l" * 32)
    waiting = await store.enqueue(b"l" * 32, "{}")
    assert [claim.task.id for claim in await store.claim_batch(1)] == [waiting]
