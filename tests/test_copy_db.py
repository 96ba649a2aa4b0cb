"""`hookd db copy`: a SQLite database moved into a real PostgreSQL, and back, by the command as
users run it (`python cli.py db copy …` in a subprocess), with nothing lost: every agent, task,
idempotency key, journal entry, delivery, source and chunk read back equal through the store.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from agents.knowledge import prepare_source
from errors import Conflict
from tasks.backends import open_store
from tasks.dump import TABLES
from tasks.sqlite.store import SQLiteStore
from tasks.store import LIST_RESULT_MAX_BYTES, Store, Task
from tests.postgres_server import PASSWORD, PASSWORD_USER, PostgresServer
from tests.processes import REPO_ROOT, clean_environ

CLI_TIMEOUT_S = 60.0
LEASE_S = 30.0
SIGNATURE_SECRET = "whsec_c2VjcmV0LXNpZ25pbmcta2V5"
SEARCHES = (["zebra"], ["zoe"], ["river", "stone"], ["nothing-matches-this"])


def token(n: int) -> bytes:
    return hashlib.sha256(f"token {n}".encode()).digest()


def run_cli(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    """`python cli.py ARGS` with a clean HOOKD_* environment plus `environ` (names as given)."""
    return subprocess.run(
        [sys.executable, "cli.py", *args],
        cwd=REPO_ROOT,
        env=clean_environ() | environ,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed, without its prefix."""
    assert result.returncode != 0, result.stdout
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("hookd: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.removeprefix("hookd: ").strip()


async def opened(database_url: str, path: str = "") -> Store:
    store = open_store(database_url, path, "full")
    await store.open()
    return store


async def fill(store: Store) -> None:
    """Something of everything hookd keeps: agents of every kind, tasks in every status (one of
    a deleted agent), idempotency keys, journalled tool calls, deliveries in every status,
    sources with chunks."""
    full = await store.create_agent(
        {
            "name": "full",
            "description": "Does everything. Ünïcode ✓",
            "prompt": "Be brief. 🎉",
            "input_template": "{{ payload }}",
            "llm": {"provider": "openai", "model": "gpt", "api_key_env": "KEY"},
            "max_attempts": 5,
            "timeout_s": 2.5,
            "max_concurrency": 3,
            "rate_limit": "60/min",
            "signature_type": "standard-webhooks",
            "signature_secret": SIGNATURE_SECRET,
            "tools": [{"type": "notify", "url": "https://example.com/n"}, {"type": "read_webpage"}],
            "max_steps": 12,
            "json_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
            "callback_url": "https://example.com/callback",
            "mcp_servers": [{"name": "m", "url": "https://example.com/mcp"}],
            "knowledge_top_k": 7,
        },
        token(1),
    )
    await store.create_agent({"name": "plain"}, token(2))
    await store.create_agent(
        {"name": "paused", "status": "paused", "callback_url": "https://e.com/p"}, token(3)
    )
    gone = await store.create_agent({"name": "gone", "callback_url": "https://example.com/gone"}, token(4))

    async def enqueue(agent_token: bytes, payload: str) -> str | None:
        secret = SIGNATURE_SECRET if agent_token == token(1) else None  # the signed agent's
        return await store.enqueue(agent_token, payload, signature_secret=secret)

    async def started(agent_token: bytes, payload: str) -> Task:
        task_id = await enqueue(agent_token, payload)
        assert task_id is not None
        claims = await store.claim_batch(10, LEASE_S)
        assert [c.task.id for c in claims] == [task_id]
        return claims[0].task

    async def journal(task: Task, key: tuple[int, str, str], output: str) -> None:
        assert await store.journal_tool_call(task.id, task.attempts, key, output)

    payload = '{"b": 1,  "a": [1.0, 2e3], "é": "\\u00e9 ✓", "nul": "\\u0000"}'  # kept byte for byte
    success = await started(token(1), payload)
    await journal(success, (1, "http_request", '{"url":"a"}'), "first ✓")
    await journal(success, (2, "notify", '{"body":"x"}'), "a\x00b")  # NUL kept
    await journal(success, (3, "read_webpage", json.dumps({"y": "z" * 5000})), "long")
    answer = {"answer": "Zoë's answer ✓ 🎉 \x00 and \ud800", "model": "m", "usage": {"total_tokens": 3}}
    await store.finish(success, "SUCCESS", answer)
    large = await started(token(1), "{}")  # a result listed as its preview
    await store.finish(large, "SUCCESS", {"answer": "x" * (2 * LIST_RESULT_MAX_BYTES), "model": "m"})
    failure = await started(token(2), "[]")
    await store.finish(failure, "FAILURE", {"error": "It failed.", "type": "model_error"})
    retry = await started(token(1), '{"retry": true}')
    await journal(retry, (1, "notify", "{}"), "kept for the next attempt")
    await store.retry_later(retry, time.time() + 3600, {"error": "503", "type": "model_unavailable"})
    await started(token(2), '"running"')  # left STARTED
    orphan = await started(token(4), "{}")
    await store.finish(orphan, "SUCCESS", {"answer": "kept after its agent went", "model": "m"})
    await store.delete_agent(gone.id)  # the task stays, its agent_id NULL; its delivery too

    # Deliveries: pending (as queued), delivered, failed, and one retrying.
    delivered, failed, retrying = [(await started(token(1), "{}")) for _ in range(3)]
    for task in (delivered, failed, retrying):
        await store.finish(task, "SUCCESS", {"answer": "ok", "model": "m"})
    for task, status in ((delivered, "delivered"), (failed, "failed"), (retrying, "pending")):
        (delivery,) = await store.list_deliveries(task.id)
        await store.record_delivery_attempt(
            delivery.id,
            status=status,
            status_code={"delivered": 200, "failed": 410, "pending": 503}[status],
            error=None if status == "delivered" else f"Receiver said no ({status}).",
            next_attempt_at=time.time() + 60 if status == "pending" else None,
        )

    # Last, the tasks left in the queue: each `started` above claims only its own.
    await enqueue(token(2), '{"pending": 1}')
    await enqueue(token(3), '{"paused": 1}')
    cancelled = await enqueue(token(1), '{"cancel": 1}')
    assert cancelled is not None
    await store.cancel(cancelled)
    once = await store.enqueue_once(token(2), "{}", key="delivery-1", body_sha256=b"\x01" * 32)
    assert once is not None and not once.replayed

    await store.add_source(full.id, prepare_source("animals.md", "markdown", "# Zoo\n\nA zebra and Zoë.\n"))
    long_text = "\n\n".join(f"Paragraph {n}: the river runs past stone number {n}. " * 8 for n in range(40))
    await store.add_source(full.id, prepare_source("river.txt", "text", long_text))
    plain = await store.get_agent_by_name("plain")
    await store.add_source(plain.id, prepare_source("page.html", "html", "<p>A <b>zebra</b> crossing.</p>"))


async def everything(store: Store) -> dict[str, Any]:
    """All the store holds, read through its interface, in a shape to compare."""
    agents = await store.list_agents()
    tasks = await store.list_tasks(limit=1000)
    found: dict[str, Any] = {
        "rows": await store.row_counts(),
        "agents": agents,
        "agents by token": [await store.agent_for_token(token(n)) for n in range(1, 5)],
        "listed tasks": tasks,
        "tasks": [await store.get_task(t.id) for t in tasks],
        "journals": {t.id: await store.tool_journal(t.id) for t in tasks},
        "deliveries": {t.id: await store.list_deliveries(t.id) for t in tasks},
        "sources": {a.id: await store.list_sources(a.id) for a in agents},
        "queue": (await store.queue_depth(), await store.count_by_status()),
    }
    # The passages found, without their scores: BM25 and ts_rank score on other scales.
    found["passages"] = {
        (a.id, " ".join(terms)): sorted(
            (p.source_id, p.source_name, p.chunk, p.text)
            for p in await store.search_chunks(a.id, terms, 50) or []
        )
        for a in agents
        for terms in SEARCHES
    }
    return found


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Path]:
    """A SQLite database holding something of everything, closed."""
    path = tmp_path / "hookd.db"
    store = await opened("", str(path))
    try:
        await fill(store)
    finally:
        await store.close()
    yield path


async def read_all(database_url: str, path: str = "") -> dict[str, Any]:
    store = await opened(database_url, path)
    try:
        return await everything(store)
    finally:
        await store.close()


def password_url(postgres_server: PostgresServer, postgres_url: str) -> str:
    """The test's database, logging in with a password (which nothing may print)."""
    database = urlsplit(postgres_url).path.lstrip("/")
    return postgres_server.url(database, user=PASSWORD_USER, password=PASSWORD)


async def test_a_sqlite_database_moves_into_postgresql_and_back_with_nothing_lost(
    sqlite_db: Path, postgres_url: str, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    before = await read_all("", str(sqlite_db))
    assert all(before["rows"][table] > 0 for table in TABLES), before["rows"]
    assert all(before["queue"][1].values())  # tasks in every status
    assert any(t.result_truncated for t in before["listed tasks"])
    assert any(p for p in before["passages"].values())

    url = password_url(postgres_server, postgres_url)
    copied = run_cli("db", "copy", "--db", str(sqlite_db), "--to", url)
    assert copied.returncode == 0, copied.stderr
    assert copied.stderr == ""
    assert PASSWORD not in copied.stdout
    lines = copied.stdout.splitlines()
    shown = f"postgresql://{PASSWORD_USER}:***@127.0.0.1:{postgres_server.port}{urlsplit(url).path}"
    assert lines[0] == f"Copied {sqlite_db} into {shown}, in one transaction:"
    assert [line.split() for line in lines[1 : 1 + len(TABLES)]] == [
        [table, f"{before['rows'][table]:,}"] for table in TABLES
    ]
    assert f"HOOKD_DATABASE_URL={shown}" in copied.stdout
    assert "HOOKD_ADMIN_KEY=" in copied.stdout

    in_postgres = await read_all(postgres_url)
    for key, value in before.items():  # one by one, so that a failure names what differs
        assert in_postgres[key] == value, key
    assert await read_all("", str(sqlite_db)) == before  # the source as it was

    # And back, into a new SQLite file: PostgreSQL's rows read back the same there too.
    back = tmp_path / "back" / "hookd.db"
    returned = run_cli("db", "copy", "--to", str(back), HOOKD_DATABASE_URL=postgres_url)
    assert returned.returncode == 0, returned.stderr
    assert f"HOOKD_DB={back}" in returned.stdout
    again = await read_all("", str(back))
    for key, value in before.items():
        assert again[key] == value, key


async def test_the_copy_carries_on_where_the_source_left_off(sqlite_db: Path, postgres_url: str) -> None:
    """Keys, hashes and the schema's own numbering work on after the copy: a repeated webhook is
    recognised, a new source is added beside the copied ones, the queue goes on."""
    assert run_cli("db", "copy", "--db", str(sqlite_db), "--to", postgres_url).returncode == 0
    store = await opened(postgres_url)
    try:
        sqlite = await opened("", str(sqlite_db))
        try:
            first = await sqlite.enqueue_once(token(2), "{}", key="delivery-1", body_sha256=b"\x01" * 32)
        finally:
            await sqlite.close()
        replay = await store.enqueue_once(token(2), "{}", key="delivery-1", body_sha256=b"\x01" * 32)
        assert replay is not None and first is not None
        assert (replay.task_id, replay.replayed, replay.same_body) == (first.task_id, True, True)

        full = await store.get_agent_by_name("full")
        await store.add_source(full.id, prepare_source("more.txt", "text", "Another zebra."))
        passages = await store.search_chunks(full.id, ["zebra"], 10)
        assert passages is not None and {p.source_name for p in passages} == {"animals.md", "more.txt"}

        claimed = await store.claim_batch(10, LEASE_S)
        assert [c.task.payload for c in claimed] == ['{"pending": 1}', "{}"]  # the paused agent's waits
    finally:
        await store.close()


async def test_a_destination_holding_data_is_refused_and_left_as_it_was(
    sqlite_db: Path, postgres_url: str, postgres_server: PostgresServer
) -> None:
    store = await opened(postgres_url)
    try:
        await store.create_agent({"name": "already here"}, token(99))
    finally:
        await store.close()
    url = password_url(postgres_server, postgres_url)
    message = refused(run_cli("db", "copy", "--db", str(sqlite_db), "--to", url))
    assert "already holds 1 agents and 0 tasks; nothing was copied" in message
    assert PASSWORD not in message and f"{PASSWORD_USER}:***@" in message
    after = await read_all(postgres_url)
    assert after["rows"] == {table: int(table == "agents") for table in TABLES}

    # A copy already made is refused the second time.
    other = str(sqlite_db.with_name("other.db"))
    assert run_cli("db", "copy", "--to", other, HOOKD_DATABASE_URL=url).returncode == 0
    assert "already holds 1 agents" in refused(run_cli("db", "copy", "--to", other, HOOKD_DATABASE_URL=url))


async def test_a_served_sqlite_file_is_refused(sqlite_db: Path, postgres_url: str, tmp_path: Path) -> None:
    """Its one server would go on writing what the copy has read (a source), or hold copied runs
    it never claimed (a destination). PostgreSQL's nodes are not refused: they take over the
    copied runs once their leases expire."""
    async with SQLiteStore(str(sqlite_db)).serving():  # as `hookd serve` holds it
        message = refused(run_cli("db", "copy", "--db", str(sqlite_db), "--to", postgres_url))
    assert message.startswith(f"A hookd server is serving the source, {sqlite_db}; stop the server first")
    assert (await read_all(postgres_url))["rows"] == dict.fromkeys(TABLES, 0)

    served = tmp_path / "served.db"
    async with SQLiteStore(str(served)).serving():
        message = refused(run_cli("db", "copy", "--to", str(served), HOOKD_DATABASE_URL=postgres_url))
    assert message.startswith(f"A hookd server is serving the destination, {served}; stop the server first")


async def test_a_failed_copy_leaves_the_destination_empty(sqlite_db: Path, postgres_url: str) -> None:
    """The check at the end fails (the source seems to have changed): the whole copy rolls back."""
    source, destination = await opened("", str(sqlite_db)), await opened(postgres_url)
    try:
        expected = await source.row_counts() | {"chunks": 1}
        with pytest.raises(Conflict, match=r"\(chunks: 1 in the source, \d+ copied\); nothing was copied"):
            await destination.load(source.dump(), expected)
        assert await destination.row_counts() == dict.fromkeys(TABLES, 0)
        await destination.load(source.dump(), await source.row_counts())  # nothing was left behind
    finally:
        await source.close()
        await destination.close()


async def test_text_postgresql_cannot_hold_is_named_and_nothing_is_copied(
    tmp_path: Path, postgres_url: str
) -> None:
    path = tmp_path / "nul.db"
    store = await opened("", str(path))
    try:
        await store.create_agent({"name": "fine"}, token(1))
        agent = await store.create_agent({"name": "nul", "prompt": "a\x00b"}, token(2))  # SQLite keeps it
    finally:
        await store.close()
    message = refused(run_cli("db", "copy", "--db", str(path), "--to", postgres_url))
    assert message == (
        f"The source's agents row id {agent.id} holds a NUL character (U+0000) in prompt, which"
        " PostgreSQL's text cannot; nothing was copied. Remove it in the source, then copy again."
    )
    assert (await read_all(postgres_url))["rows"] == dict.fromkeys(TABLES, 0)


async def test_the_password_is_never_printed(
    sqlite_db: Path, postgres_url: str, postgres_server: PostgresServer
) -> None:
    url = password_url(postgres_server, postgres_url)
    wrong = url.replace(PASSWORD, PASSWORD + "-wrong")
    message = refused(run_cli("db", "copy", "--db", str(sqlite_db), "--to", wrong))
    assert PASSWORD not in message and "***" in message
    unreachable = url.replace(f":{postgres_server.port}/", ":1/")
    assert PASSWORD not in refused(run_cli("db", "copy", "--db", str(sqlite_db), "--to", unreachable))

    # The advice the help gives: the password in PGPASSWORD, out of the command line.
    without = url.replace(f":{PASSWORD}@", "@")
    copied = run_cli("db", "copy", "--db", str(sqlite_db), "--to", without, PGPASSWORD=PASSWORD)
    assert copied.returncode == 0, copied.stderr
    assert PASSWORD not in copied.stdout


def test_what_is_refused_before_anything_is_opened(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    assert refused(run_cli("db", "copy", "--db", str(missing), "--to", str(tmp_path / "to.db"))) == (
        f"{missing} does not exist: there is nothing to copy. Name the file with --db."
    )
    assert not missing.exists() and not (tmp_path / "to.db").exists()
    (tmp_path / "hookd.db").touch()
    same = refused(
        run_cli("db", "copy", "--db", str(tmp_path / "hookd.db"), "--to", str(tmp_path / "hookd.db"))
    )
    assert same == f"{tmp_path / 'hookd.db'} is the database hookd uses already; copy it somewhere else."
    assert "scheme 'mysql:'" in refused(
        run_cli("db", "copy", "--db", str(tmp_path / "hookd.db"), "--to", "mysql://u@h/d")
    )
