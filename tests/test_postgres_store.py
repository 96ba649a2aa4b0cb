"""The PostgreSQL store and schema: what only it has. Its schema version and the advisory lock
around setting it up, the StorageUnavailable it makes of a server that is gone, refuses the
login or refuses writes (never showing the password), and the indexes behind its queries.

What every store does is proven on both backends by tests/test_store_contract.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from errors import StorageUnavailable
from tasks.backends import open_store
from tasks.postgres import PostgresStore
from tasks.postgres.connection import SCHEMA_LOCK, shown_url
from tasks.postgres.knowledge import SEARCH_SQL
from tasks.postgres.schema import migrations, schema_version
from tasks.postgres.store import CLAIM_SQL
from tasks.sqlite.store import SQLiteStore
from tests.postgres_server import PASSWORD, PASSWORD_USER, PostgresServer


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresStore]:
    store = PostgresStore(postgres_url)
    await store.open()
    yield store
    await store.close()


async def fetch(url: str, sql: str, *args: Any) -> list[Any]:
    conn = await asyncpg.connect(url)
    try:
        rows: list[Any] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()


def database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


# -- the schema ----------------------------------------------------------------------------


async def test_a_new_database_gets_the_schema_and_its_version(store: PostgresStore) -> None:
    assert schema_version() == 1 + len(migrations())
    assert await fetch(store.url, "SELECT version FROM hookd_schema") == [(schema_version(),)]
    tables = {
        r[0] for r in await fetch(store.url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"agents", "tasks", "idempotency_keys", "tool_calls", "deliveries", "sources", "chunks"} <= tables


async def columns_and_triggers(url: str) -> tuple[list[Any], list[Any]]:
    columns = await fetch(
        url,
        "SELECT table_name, column_name, data_type, collation_name, is_nullable, column_default"
        " FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
    )
    triggers = await fetch(
        url, "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"
    )
    return columns, triggers


async def test_a_database_of_the_first_schema_is_migrated_to_the_new_shape(
    store: PostgresStore, postgres_server: Any
) -> None:
    """tests/data/postgres_schema_v1.sql is schema.sql as hookd first shipped it: migrated, it
    has a new database's columns and triggers, and its tasks are kept."""
    async with postgres_server.fresh_database() as old_url:
        v1 = (Path(__file__).parent / "data" / "postgres_schema_v1.sql").read_text(encoding="utf-8")
        conn = await asyncpg.connect(old_url)
        try:
            await conn.execute(v1)
            await conn.execute("INSERT INTO hookd_schema (version) VALUES (1)")
            await conn.execute(
                "INSERT INTO agents (id, name, token_sha256, created_at, updated_at, callback_secret)"
                " VALUES ('a', 'a', 'x', 0, 0, 'whsec_eA==')"
            )
            await conn.execute(
                "INSERT INTO tasks (id, agent_id, status, payload, attempts, max_attempts, run_after, created_at,"
                " started_at) VALUES ('t', 'a', 'STARTED', '{}', 1, 3, 0, 0, 0)"
            )
        finally:
            await conn.close()
        migrated = PostgresStore(old_url)
        await migrated.open()
        try:
            assert await columns_and_triggers(old_url) == await columns_and_triggers(store.url)
            assert await fetch(old_url, "SELECT version FROM hookd_schema") == [(schema_version(),)]
            # A run started by a hookd from before leases has none: it is taken over at once.
            (taken,) = (await migrated.take_over_expired()).tasks
            assert (taken.task_id, taken.status) == ("t", "PENDING")
        finally:
            await migrated.close()


async def test_a_database_from_a_newer_hookd_is_refused(store: PostgresStore) -> None:
    await fetch(store.url, "UPDATE hookd_schema SET version = 99")
    newer = PostgresStore(store.url)
    with pytest.raises(StorageUnavailable, match="newer hookd"):
        await newer.open()


async def test_setting_up_waits_for_the_node_holding_the_lock(postgres_url: str) -> None:
    other = await asyncpg.connect(postgres_url)
    try:
        await other.execute("SELECT pg_advisory_lock($1, $2)", *SCHEMA_LOCK)  # a node setting up
        store = PostgresStore(postgres_url)
        opening = asyncio.create_task(store.open())
        await asyncio.sleep(0.3)
        assert not opening.done()
        await other.execute("SELECT pg_advisory_unlock($1, $2)", *SCHEMA_LOCK)
        await asyncio.wait_for(opening, 10)
        await store.close()
    finally:
        await other.close()


async def test_a_database_holding_another_applications_tables_is_refused(postgres_url: str) -> None:
    await fetch(postgres_url, "CREATE TABLE agents (id int)")
    with pytest.raises(StorageUnavailable, match="tables of another application"):
        await PostgresStore(postgres_url).open()
    assert await fetch(postgres_url, "SELECT to_regclass('hookd_schema')") == [(None,)]  # rolled back


# -- a server that is gone, or says no -----------------------------------------------------


def _refused(exc: pytest.ExceptionInfo[StorageUnavailable], secret: str) -> str:
    message = str(exc.value)
    assert secret not in message and secret not in repr(exc.value)
    assert exc.value.__cause__ is None and exc.value.__suppress_context__  # no chained asyncpg error
    return message


async def test_an_unreachable_server_is_unavailable_without_showing_the_password() -> None:
    from tests.processes import free_port

    url = f"postgresql://hookd:{PASSWORD}@127.0.0.1:{free_port()}/hookd"
    store = PostgresStore(url)
    assert PASSWORD not in repr(store) and PASSWORD not in store.shown_url
    with pytest.raises(StorageUnavailable) as refused:
        await store.open()
    assert "hookd:***@127.0.0.1" in _refused(refused, PASSWORD)


async def test_a_wrong_password_or_database_is_unavailable_without_showing_it(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    database = database_of(postgres_url)
    wrong = "wrong-pw-5e2a"
    with pytest.raises(StorageUnavailable, match="password authentication failed") as refused:
        await PostgresStore(postgres_server.url(database, user=PASSWORD_USER, password=wrong)).open()
    _refused(refused, wrong)
    with pytest.raises(StorageUnavailable, match="does not exist") as refused:
        await PostgresStore(postgres_server.url("no_such_db", user=PASSWORD_USER, password=PASSWORD)).open()
    _refused(refused, PASSWORD)
    right = PostgresStore(postgres_server.url(database, user=PASSWORD_USER, password=PASSWORD))
    await right.open()
    await right.close()


async def test_a_read_only_database_refuses_writes_and_still_answers_reads(
    store: PostgresStore, postgres_server: PostgresServer
) -> None:
    agent = await store.create_agent({"name": "a"}, b"t" * 32)
    await fetch(store.url, f"ALTER DATABASE {database_of(store.url)} SET default_transaction_read_only = on")
    standby = PostgresStore(store.url)  # a node whose connections are read-only, as on a standby
    await standby.open()
    try:
        with pytest.raises(StorageUnavailable, match="refuses writes"):
            await standby.create_agent({"name": "b"}, b"u" * 32)
        with pytest.raises(StorageUnavailable, match="refuses writes"):
            await standby.enqueue(b"t" * 32, "{}")
        assert [a.id for a in await standby.list_agents()] == [agent.id]
    finally:
        await standby.close()


async def test_lost_connections_are_at_worst_unavailable_once_then_replaced(store: PostgresStore) -> None:
    """As after a server restart or a failover: every pooled connection is gone. A call that
    meets one is StorageUnavailable (or works, if asyncpg saw the loss first); the next works."""
    await store.create_agent({"name": "a"}, b"t" * 32)
    for _ in range(3):
        await fetch(
            store.url,
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"  # waits for the exit
            " WHERE datname = $1 AND application_name = 'hookd'",
            database_of(store.url),
        )
        with contextlib.suppress(StorageUnavailable):
            await store.list_agents()
        assert [a.name for a in await store.list_agents()] == ["a"]
        assert await store.enqueue(b"t" * 32, "{}") is not None


def test_urls_are_shown_without_their_password() -> None:
    assert shown_url("postgresql://u:p%40ss@db:5432/h?sslmode=require") == (
        "postgresql://u:***@db:5432/h?sslmode=require"
    )
    assert (
        shown_url("postgresql://db/h?user=u&password=secret") == "postgresql://db/h?user=u&password=%2A%2A%2A"
    )
    assert shown_url("postgresql://u@db/h") == "postgresql://u@db/h"


async def test_the_backend_is_chosen_by_the_url(tmp_path: Any) -> None:
    assert isinstance(open_store("", str(tmp_path / "h.db"), "full"), SQLiteStore)
    for url in ("postgresql://u@db/h", "postgres://u@db/h"):
        assert isinstance(open_store(url, "", "full"), PostgresStore)
    with pytest.raises(StorageUnavailable, match="scheme 'mysql:'"):
        open_store("mysql://u@db/h", "", "full")


# -- indexes behind the hot queries --------------------------------------------------------


async def plan(url: str, sql: str, *args: Any) -> str:
    """The query's plan (EXPLAIN only plans it), with sequential scans priced out: which
    indexes can serve it, whatever the planner would pick for a few test rows."""
    conn = await asyncpg.connect(url, server_settings={"enable_seqscan": "off"})
    try:
        return "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
    finally:
        await conn.close()


async def test_the_claim_and_the_search_use_their_indexes(store: PostgresStore) -> None:
    claim = await plan(store.url, CLAIM_SQL, 0.0, 1, ["x"], 64, "node", 30.0)
    assert "tasks_queue" in claim and "tasks_running" in claim, claim
    search = await plan(store.url, SEARCH_SQL, "agent", ["harbour", "ferry"], 5)
    assert "chunks_words" in search, search
