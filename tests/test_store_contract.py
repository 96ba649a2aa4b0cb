"""The store's contract (tasks/store.py), proven against every backend: each test runs unchanged
on a SQLite file and on a fresh database of a real PostgreSQL server.

Where the backends differ on purpose, the test says so and asserts each one's behaviour:
knowledge ranking (FTS5's BM25 against ts_rank), and text PostgreSQL cannot hold (NUL).
Several stores on one database stand for several hookd nodes (or the CLI beside the server).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from agents.agent import Agent
from agents.knowledge import prepare_source
from errors import Conflict, InvalidInput, NotFound
from tasks.backends import open_store
from tasks.postgres.store import CLAIM_SCAN_ROWS_MIN as POSTGRES_SCAN_ROWS_MIN
from tasks.postgres.store import CLAIM_SCAN_ROWS_PER_SLOT as POSTGRES_ROWS_PER_SLOT
from tasks.sqlite.store import CLAIM_SCAN_ROWS_MIN, CLAIM_SCAN_ROWS_PER_SLOT, SQLiteStore
from tasks.store import (
    IDEMPOTENCY_WINDOW_S,
    LIST_PREVIEW_CHARS,
    LIST_RESULT_MAX_BYTES,
    STATUSES,
    Store,
    Task,
)

BACKENDS = ("sqlite", "postgres")
_tokens = itertools.count(1)

MakeStore = Callable[[], Awaitable[Store]]


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Where the stores of a test keep their data: (PostgreSQL URL or "", SQLite path)."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url, ""
    return "", str(tmp_path / "hookd.db")


@pytest.fixture
async def make_store(database: tuple[str, str]) -> AsyncIterator[MakeStore]:
    """`await make_store()`: another opened store on the test's database (another node)."""
    made: list[Store] = []

    async def make() -> Store:
        store = open_store(database[0], database[1], "full")
        await store.open()
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    return await make_store()


def is_postgres(store: Store) -> bool:
    return not isinstance(store, SQLiteStore)


async def run_sql(store: Store, sql: str) -> None:
    """Change the database behind the store's back, as another program would (to age rows)."""
    if isinstance(store, SQLiteStore):
        with sqlite3.connect(store.path) as conn:
            conn.execute(sql)
        conn.close()
        return
    import asyncpg

    conn = await asyncpg.connect(store.url)  # type: ignore[attr-defined]
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


LEASE_S = 30.0


async def held(store: Store, task_id: str) -> Task:
    """The task as its claim returned it (what a run names when it writes its outcome); for an
    unknown id, a task that no one holds."""
    task = await store.get_task(task_id)
    if task is None:
        return Task(task_id, None, "STARTED", "{}", None, None, 1, 1, 0.0, 0.0, 0.0, None)
    return task


def new_token() -> bytes:
    return hashlib.sha256(str(next(_tokens)).encode()).digest()


async def make_agent(store: Store, **fields: Any) -> tuple[Agent, bytes]:
    token = new_token()
    fields = {"name": f"agent-{token.hex()[:8]}"} | fields
    return await store.create_agent(fields, token), token


async def started(store: Store, token: bytes, payload: str = "{}") -> str:
    """A task of the token's agent, enqueued and claimed (the only runnable one)."""
    task_id = await store.enqueue(token, payload)
    assert task_id is not None
    assert [claim.task.id for claim in await store.claim_batch(1, LEASE_S)] == [task_id]
    return task_id


ANSWER = {"answer": "42", "model": "m", "usage": {}}


# -- lifecycle -----------------------------------------------------------------------------


async def test_a_reopened_database_keeps_its_data(store: Store, make_store: MakeStore) -> None:
    agent, token = await make_agent(store, name="keep")
    task_id = await store.enqueue(token, "{}")
    await store.close()
    again = await make_store()
    assert (await again.get_agent(agent.id)).name == "keep"
    assert (task := await again.get_task(str(task_id))) is not None and task.status == "PENDING"


async def test_stores_opening_a_new_database_together_set_it_up_once(
    database: tuple[str, str], make_store: MakeStore
) -> None:
    stores = await asyncio.gather(*(make_store() for _ in range(3)))
    agent, _ = await make_agent(stores[0])
    assert [a.id for a in await stores[2].list_agents()] == [agent.id]


# -- agents --------------------------------------------------------------------------------


async def test_an_agent_keeps_every_field_as_given(store: Store) -> None:
    fields = {
        "name": "full",
        "description": "Does everything.",
        "prompt": "Be brief. Ünïcode ✓",
        "input_template": "{{ payload }}",
        "llm": {"provider": "openai", "model": "gpt", "api_key_env": "KEY"},
        "max_attempts": 5,
        "timeout_s": 2.5,
        "max_concurrency": 3,
        "rate_limit": "60/min",
        "status": "paused",
        "signature_type": "github",
        "signature_secret": "s3cret",
        "tools": [{"type": "notify", "url": "https://example.com/n"}],
        "max_steps": 12,
        "json_schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "callback_url": "https://example.com/callback",
        "mcp_servers": [{"name": "m", "url": "https://example.com/mcp"}],
        "knowledge_top_k": 7,
    }
    before = time.time()
    agent = await store.create_agent(fields, b"t" * 32)
    assert agent.created_at == agent.updated_at and before <= agent.created_at <= time.time()
    assert agent.callback_secret is not None and agent.callback_secret.startswith("whsec_")
    assert agent.signature is not None and (agent.signature.type, agent.signature.secret) == (
        "github",
        "s3cret",
    )
    for key, value in fields.items():
        if not key.startswith("signature"):
            assert getattr(agent, key) == value, key
    assert isinstance(agent.timeout_s, float)
    assert await store.get_agent(agent.id) == agent
    assert await store.get_agent_by_name("full") == agent
    assert await store.agent_for_token(b"t" * 32) == agent
    assert await store.agent_for_token(b"x" * 32) is None

    plain = await store.create_agent({"name": "plain"}, b"p" * 32)
    assert (plain.llm, plain.tools, plain.mcp_servers, plain.json_schema) == ({}, [], [], None)
    assert (plain.max_attempts, plain.timeout_s, plain.max_steps, plain.knowledge_top_k) == (3, 120.0, 8, 4)
    assert (plain.status, plain.signature, plain.max_concurrency) == ("active", None, None)


async def test_agents_are_listed_by_name_byte_by_byte(store: Store) -> None:
    for name in ("beta", "Alpha", "alpha", "Émile", "_x"):
        await make_agent(store, name=name)
    # Byte order, like SQLite's BINARY collation, whatever the PostgreSQL database's locale.
    assert [a.name for a in await store.list_agents()] == ["Alpha", "_x", "alpha", "beta", "Émile"]


async def test_names_are_unique_and_unknown_agents_are_not_found(store: Store) -> None:
    agent, _ = await make_agent(store, name="taken")
    with pytest.raises(Conflict, match="'taken' already exists"):
        await make_agent(store, name="taken")
    other, _ = await make_agent(store, name="other")
    with pytest.raises(Conflict, match="'taken' already exists"):
        await store.update_agent(other.id, {"name": "taken"})
    with pytest.raises(NotFound):
        await store.get_agent("no-such-id")
    with pytest.raises(NotFound):
        await store.get_agent_by_name("nobody")
    with pytest.raises(NotFound):
        await store.update_agent("no-such-id", {"prompt": "x"})
    assert [a.name for a in await store.list_agents()] == ["other", "taken"]
    assert (await store.get_agent(agent.id)).name == "taken"


async def test_an_update_changes_only_the_fields_given(store: Store) -> None:
    agent, _ = await make_agent(store, prompt="old", max_concurrency=2)
    updated = await store.update_agent(
        agent.id, {"prompt": "new", "max_concurrency": None, "llm": {"model": "x"}}
    )
    assert (updated.prompt, updated.max_concurrency, updated.llm) == ("new", None, {"model": "x"})
    assert updated.updated_at >= agent.updated_at and updated.created_at == agent.created_at
    assert updated.name == agent.name and updated.callback_secret == agent.callback_secret
    assert await store.get_agent(agent.id) == updated


async def test_save_agents_is_all_or_nothing(store: Store) -> None:
    first, _ = await make_agent(store, name="first")
    second, _ = await make_agent(store, name="second")
    saved = await store.save_agents(
        [({"name": "new-1"}, new_token()), ({"name": "new-2"}, new_token())],
        [(first.id, {"prompt": "changed"})],
    )
    assert [a.name for a in saved] == ["new-1", "new-2", "first"]  # creates first
    assert saved[2].prompt == "changed" and saved[2].id == first.id
    names = [a.name for a in await store.list_agents()]

    with pytest.raises(Conflict):  # a create takes a name: nothing of the batch stays
        await store.save_agents([({"name": "fine"}, new_token()), ({"name": "second"}, new_token())], [])
    with pytest.raises(Conflict):  # an update takes a name
        await store.save_agents([({"name": "fine"}, new_token())], [(first.id, {"name": "second"})])
    await store.delete_agent(second.id)
    with pytest.raises(NotFound):  # an agent to change is gone
        await store.save_agents([({"name": "fine"}, new_token())], [(second.id, {"prompt": "x"})])
    assert [a.name for a in await store.list_agents()] == [n for n in names if n != "second"]
    assert (await store.get_agent(first.id)).prompt == "changed"


async def test_a_new_token_replaces_the_old_one_at_once(store: Store) -> None:
    agent, old = await make_agent(store)
    new = new_token()
    assert (await store.set_agent_token(agent.id, new)).id == agent.id
    assert await store.agent_for_token(old) is None
    assert (await store.agent_for_token(new)) is not None
    assert await store.enqueue(old, "{}") is None
    assert await store.enqueue(new, "{}") is not None
    with pytest.raises(NotFound):
        await store.set_agent_token("no-such-id", new_token())


async def test_a_new_callback_secret_replaces_the_old_one(store: Store) -> None:
    agent, _ = await make_agent(store)
    changed = await store.set_callback_secret(agent.id, "whsec_bmV3")
    assert changed.callback_secret == "whsec_bmV3" != agent.callback_secret
    assert (await store.get_agent(agent.id)).callback_secret == "whsec_bmV3"
    with pytest.raises(NotFound):
        await store.set_callback_secret("no-such-id", "whsec_bmV3")


async def test_deleting_an_agent_cancels_its_unfinished_tasks_without_callbacks(store: Store) -> None:
    agent, token = await make_agent(store, callback_url="https://example.com/cb")
    other, other_token = await make_agent(store)
    done = await started(store, token)
    await store.finish(await held(store, done), "SUCCESS", ANSWER)
    running = await started(store, token)
    waiting = await store.enqueue(token, "{}")
    untouched = await store.enqueue(other_token, "{}")
    await store.enqueue_once(token, "{}", key="k", body_sha256=b"b")
    await store.add_source(agent.id, prepare_source("notes.md", "markdown", "Some notes."))
    deliveries_before = await store.list_deliveries(done)

    cancelled = await store.delete_agent(agent.id)
    assert len(cancelled) == 3 and {running, waiting} <= set(cancelled)
    with pytest.raises(NotFound):
        await store.get_agent(agent.id)
    for task_id in cancelled:
        task = await store.get_task(task_id)
        assert task is not None and task.status == "FAILURE" and task.agent_id is None
        assert task.result == {"error": "The task was cancelled.", "type": "cancelled"}
        assert await store.list_deliveries(task_id) == []
    kept = await store.get_task(done)
    assert kept is not None and kept.status == "SUCCESS" and kept.result == ANSWER and kept.agent_id is None
    assert [d.agent_id for d in await store.list_deliveries(done)] == [None]  # it will fail: no agent
    assert len(deliveries_before) == 1
    assert (task := await store.get_task(str(untouched))) is not None and task.status == "PENDING"
    assert await store.list_sources(agent.id) == []
    with pytest.raises(NotFound):
        await store.delete_agent(agent.id)
    assert (await store.get_agent(other.id)).id == other.id


# -- enqueue -------------------------------------------------------------------------------


async def test_enqueue_stores_the_payload_as_accepted(store: Store) -> None:
    agent, token = await make_agent(store, max_attempts=4)
    payload = '{"b": 1,  "a": [1.0, 2e3], "é": "\\u00e9 ✓", "nul": "\\u0000"}'
    before = time.time()
    task_id = await store.enqueue(token, payload)
    assert task_id is not None
    task = await store.get_task(task_id)
    assert task is not None and task.payload == payload  # key order, spacing and escapes kept
    assert (task.status, task.attempts, task.max_attempts, task.agent_id) == ("PENDING", 0, 4, agent.id)
    assert task.run_after == task.created_at and before <= task.created_at <= time.time()
    assert (task.result, task.last_error, task.started_at, task.finished_at) == (None, None, None, None)
    assert await store.get_task("no-such-task") is None


async def test_enqueue_needs_an_active_agent_with_the_token_and_its_current_secret(store: Store) -> None:
    agent, token = await make_agent(store, signature_type="github", signature_secret="one")
    assert await store.enqueue(new_token(), "{}") is None  # nobody holds that token
    assert await store.enqueue(token, "{}") is None  # its secret is "one", not "unchecked"
    assert await store.enqueue(token, "{}", signature_secret="two") is None
    assert await store.enqueue(token, "{}", signature_secret="one") is not None
    await store.update_agent(agent.id, {"status": "paused"})
    assert await store.enqueue(token, "{}", signature_secret="one") is None
    assert await store.queue_depth() == 1


async def test_a_repeated_key_answers_with_the_first_task(store: Store) -> None:
    agent, token = await make_agent(store)
    other, other_token = await make_agent(store)
    first = await store.enqueue_once(token, '{"n": 1}', key="k", body_sha256=b"one")
    assert first is not None and not first.replayed
    again = await store.enqueue_once(token, '{"n": 1}', key="k", body_sha256=b"one")
    assert again is not None and (again.task_id, again.replayed, again.same_body) == (
        first.task_id,
        True,
        True,
    )
    changed = await store.enqueue_once(token, '{"n": 2}', key="k", body_sha256=b"two")
    assert changed is not None and (changed.task_id, changed.replayed, changed.same_body) == (
        first.task_id,
        True,
        False,
    )
    elsewhere = await store.enqueue_once(other_token, "{}", key="k", body_sha256=b"one")  # keys are per agent
    assert elsewhere is not None and not elsewhere.replayed and elsewhere.task_id != first.task_id
    assert await store.enqueue_once(new_token(), "{}", key="k", body_sha256=b"one") is None
    assert await store.queue_depth() == 2

    await store.update_agent(agent.id, {"status": "paused"})
    paused_again = await store.enqueue_once(token, "{}", key="k", body_sha256=b"one")  # still answered
    assert paused_again is not None and paused_again.task_id == first.task_id and paused_again.replayed
    assert await store.enqueue_once(token, "{}", key="new", body_sha256=b"one") is None  # no new task
    await store.update_agent(agent.id, {"status": "active"})
    fresh = await store.enqueue_once(token, "{}", key="new", body_sha256=b"one")  # the paused try left no key
    assert fresh is not None and not fresh.replayed
    assert other.id != agent.id


async def test_an_idempotency_key_is_remembered_for_its_window_only(store: Store) -> None:
    _, token = await make_agent(store)
    first = await store.enqueue_once(token, "{}", key="k", body_sha256=b"one")
    assert first is not None
    await run_sql(store, f"UPDATE idempotency_keys SET created_at = created_at - {IDEMPOTENCY_WINDOW_S - 60}")
    again = await store.enqueue_once(token, "{}", key="k", body_sha256=b"one")
    assert again is not None and again.replayed and again.task_id == first.task_id
    await run_sql(store, "UPDATE idempotency_keys SET created_at = created_at - 120")  # expired, not purged
    later = await store.enqueue_once(token, "{}", key="k", body_sha256=b"two")
    assert later is not None and not later.replayed and later.task_id != first.task_id
    # The key now stands for the new task, for another window.
    last = await store.enqueue_once(token, "{}", key="k", body_sha256=b"two")
    assert last is not None and last.replayed and last.task_id == later.task_id


async def test_concurrent_requests_with_one_key_make_one_task(store: Store, make_store: MakeStore) -> None:
    _, token = await make_agent(store)
    nodes = [store, await make_store()]
    answers = await asyncio.gather(
        *(nodes[n % 2].enqueue_once(token, "{}", key="same", body_sha256=b"b") for n in range(20))
    )
    assert all(answer is not None for answer in answers)
    assert len({answer.task_id for answer in answers if answer is not None}) == 1
    assert sum(1 for answer in answers if answer is not None and not answer.replayed) == 1
    assert await store.queue_depth() == 1


async def test_purging_keys_forgets_the_oldest_first(store: Store) -> None:
    _, token = await make_agent(store)
    for n, key in enumerate(("old-1", "old-2", "old-3")):
        await store.enqueue_once(token, "{}", key=key, body_sha256=b"b")
        await run_sql(
            store, f"UPDATE idempotency_keys SET created_at = created_at - {1000 - n} WHERE key = '{key}'"
        )
    await store.enqueue_once(token, "{}", key="fresh", body_sha256=b"b")
    assert await store.purge_idempotency_keys(time.time() - 500, limit=2) == 2
    assert await store.purge_idempotency_keys(time.time() - 500, limit=10) == 1
    assert await store.purge_idempotency_keys(time.time() - 500, limit=10) == 0
    again = await store.enqueue_once(token, "{}", key="old-1", body_sha256=b"b")
    assert again is not None and not again.replayed  # forgotten: a new task
    fresh = await store.enqueue_once(token, "{}", key="fresh", body_sha256=b"b")
    assert fresh is not None and fresh.replayed
    assert await store.queue_depth() == 5  # tasks are not the keys' to delete


# -- reading tasks -------------------------------------------------------------------------


async def test_tasks_are_listed_newest_first_by_agent_status_and_page(store: Store) -> None:
    a, a_token = await make_agent(store)
    b, b_token = await make_agent(store)
    ids = [await store.enqueue(a_token if n % 2 == 0 else b_token, f'{{"n": {n}}}') for n in range(6)]
    assert await store.claim_batch(2, LEASE_S) != []  # ids[0] and ids[1] STARTED
    listed = await store.list_tasks()
    assert [t.id for t in listed] == ids[::-1]
    assert all(t.payload == "" for t in listed)  # payloads are never listed
    assert [t.id for t in await store.list_tasks(agent_id=a.id)] == ids[4::-2]
    assert [t.id for t in await store.list_tasks(statuses=["STARTED"])] == ids[1::-1]
    assert [t.id for t in await store.list_tasks(agent_id=b.id, statuses=["PENDING", "RETRY"])] == [
        ids[5],
        ids[3],
    ]
    page = await store.list_tasks(limit=2)
    assert [t.id for t in page] == [ids[5], ids[4]]
    assert [t.id for t in await store.list_tasks(limit=2, before_id=page[-1].id)] == [ids[3], ids[2]]
    assert [t.id for t in await store.list_tasks(agent_id=a.id, before_id=ids[2])] == [ids[0]]
    assert await store.list_tasks(agent_id="no-such-agent") == []


def _result_of_bytes(size: int, key: str = "answer") -> dict[str, Any]:
    """A result whose compact JSON text is exactly `size` bytes."""
    result = {"type": "answer", "model": "m", key: ""}
    result[key] = "x" * (size - len(json.dumps(result, separators=(",", ":"))))
    return result


async def test_a_large_result_is_listed_as_a_preview(store: Store) -> None:
    _, token = await make_agent(store)
    whole, cut, error, multibyte = [await started(store, token) for _ in range(4)]
    at_limit = _result_of_bytes(LIST_RESULT_MAX_BYTES)
    over = _result_of_bytes(LIST_RESULT_MAX_BYTES + 1)
    failed = {"type": "timeout", "error": "é" * 1500}  # fewer characters than bytes: bytes count
    await store.finish(await held(store, whole), "SUCCESS", at_limit)
    await store.finish(await held(store, cut), "SUCCESS", over)
    await store.finish(await held(store, error), "FAILURE", failed)
    await store.finish(await held(store, multibyte), "SUCCESS", {"answer": "✓" * 700, "model": 7})
    listed = {t.id: t for t in await store.list_tasks()}
    assert listed[whole].result == at_limit and not listed[whole].result_truncated
    assert listed[cut].result_truncated
    assert listed[cut].result == {"type": "answer", "model": "m", "answer": "x" * LIST_PREVIEW_CHARS + "…"}
    assert listed[error].result == {"type": "timeout", "error": "é" * LIST_PREVIEW_CHARS + "…"}
    assert listed[multibyte].result == {"answer": "✓" * LIST_PREVIEW_CHARS + "…"}  # model: not text
    full = await store.get_task(cut)  # one task by id comes whole
    assert full is not None and full.result == over and not full.result_truncated


async def test_a_preview_survives_an_answer_no_text_can_hold(store: Store) -> None:
    _, token = await make_agent(store)
    task_id = await started(store, token)
    answer = "a\ud800b\x00c" + "x" * 3000  # an unpaired surrogate and a NUL: escaped in the JSON
    await store.finish(await held(store, task_id), "SUCCESS", {"answer": answer, "type": "answer"})
    (listed,) = await store.list_tasks()
    assert listed.result_truncated and listed.result is not None
    # The preview is made from the result itself when it is stored, not by either database.
    assert listed.result["answer"] == answer[:LIST_PREVIEW_CHARS] + "…"
    full = await store.get_task(task_id)
    assert full is not None and full.result is not None and full.result["answer"] == answer


async def test_queue_depth_and_counts_by_status(store: Store) -> None:
    assert await store.count_by_status() == dict.fromkeys(STATUSES, 0)
    assert await store.queue_depth() == 0
    _, token = await make_agent(store)
    ok, retried, failed = [await started(store, token) for _ in range(3)]
    await store.finish(await held(store, ok), "SUCCESS", ANSWER)
    await store.retry_later(await held(store, retried), time.time() + 60, {"error": "x", "type": "timeout"})
    await store.finish(await held(store, failed), "FAILURE", {"error": "x", "type": "bad"})
    await started(store, token)
    await store.enqueue(token, "{}")
    await store.enqueue(token, "{}")
    counts = await store.count_by_status()
    assert counts == {"PENDING": 2, "STARTED": 1, "RETRY": 1, "SUCCESS": 1, "FAILURE": 1}
    assert list(counts) == list(STATUSES)
    assert await store.queue_depth() == 3


# -- claims --------------------------------------------------------------------------------


async def test_a_claim_takes_runnable_tasks_in_queue_order(store: Store) -> None:
    agent, token = await make_agent(store, max_attempts=3)
    first, second, third = [await store.enqueue(token, f'{{"n": {n}}}') for n in range(3)]
    claims = await store.claim_batch(2, LEASE_S)
    assert {c.task.id for c in claims} == {first, second}
    for claim in claims:
        assert (claim.task.status, claim.task.attempts, claim.agent.id) == ("STARTED", 1, agent.id)
        assert claim.task.started_at is not None and claim.task.payload.startswith('{"n"')
        assert claim.agent == await store.get_agent(agent.id) and not claim.agent_has_sources
    # A retry waits for its time; once due it comes before tasks queued after its time.
    await store.retry_later(
        await held(store, str(first)), time.time() + 0.3, {"error": "slow", "type": "timeout"}
    )
    await store.retry_later(
        await held(store, str(second)), time.time() - 10, {"error": "slow", "type": "timeout"}
    )
    retried = await store.get_task(str(second))
    assert retried is not None and retried.last_error == {"error": "slow", "type": "timeout"}
    assert [c.task.id for c in await store.claim_batch(1, LEASE_S)] == [second]  # due 10 s ago: before third
    (again,) = [c.task for c in await store.claim_batch(1, LEASE_S)]
    assert again.id == third
    assert await store.claim_batch(5, LEASE_S) == []  # first is not due yet
    await asyncio.sleep(0.35)
    (late,) = await store.claim_batch(5, LEASE_S)
    assert late.task.id == first and late.task.attempts == 2 and late.task.last_error is None


async def test_a_paused_agents_tasks_wait_and_do_not_block_the_queue(store: Store) -> None:
    paused, paused_token = await make_agent(store)
    waiting = [await store.enqueue(paused_token, "{}") for _ in range(3)]
    await store.update_agent(paused.id, {"status": "paused"})
    _, token = await make_agent(store)
    _, limited_token = await make_agent(store, max_concurrency=1)
    runnable = await store.enqueue(token, "{}")
    limited = await store.enqueue(limited_token, "{}")
    assert {c.task.id for c in await store.claim_batch(10, LEASE_S)} == {runnable, limited}
    await store.update_agent(paused.id, {"status": "active"})
    assert {c.task.id for c in await store.claim_batch(10, LEASE_S)} == set(waiting)


async def test_a_long_paused_backlog_does_not_block_a_limited_agent(store: Store) -> None:
    """More queued tasks of a paused agent than a claim scans, ahead of an active agent's task,
    with max_concurrency set (the claim that scans a window of the queue)."""
    assert (
        CLAIM_SCAN_ROWS_MIN == POSTGRES_SCAN_ROWS_MIN and CLAIM_SCAN_ROWS_PER_SLOT == POSTGRES_ROWS_PER_SLOT
    )
    paused, paused_token = await make_agent(store)
    # A claim of one task scans CLAIM_SCAN_ROWS_MIN rows: twice that many are ahead of it.
    await asyncio.gather(*(store.enqueue(paused_token, "{}") for _ in range(2 * CLAIM_SCAN_ROWS_MIN)))
    await store.update_agent(paused.id, {"status": "paused"})
    _, limited_token = await make_agent(store, max_concurrency=1)
    waiting = await store.enqueue(limited_token, "{}")
    assert [claim.task.id for claim in await store.claim_batch(1, LEASE_S)] == [waiting]


async def test_max_concurrency_counts_the_running_tasks(store: Store) -> None:
    limited, limited_token = await make_agent(store, max_concurrency=2)
    _, free_token = await make_agent(store)
    queued = [await store.enqueue(limited_token, "{}") for _ in range(4)]
    free = [await store.enqueue(free_token, "{}") for _ in range(2)]
    claims = await store.claim_batch(10, LEASE_S)
    assert {c.task.id for c in claims} == {*queued[:2], *free}  # the free agent's are not held back
    assert await store.claim_batch(10, LEASE_S) == []
    await store.finish(await held(store, str(queued[0])), "SUCCESS", ANSWER)
    assert [c.task.id for c in await store.claim_batch(10, LEASE_S)] == [queued[2]]
    await store.update_agent(limited.id, {"max_concurrency": None})
    assert [c.task.id for c in await store.claim_batch(10, LEASE_S)] == [queued[3]]


async def test_a_claim_says_whether_the_agent_has_knowledge_sources(store: Store) -> None:
    reads, reads_token = await make_agent(store)
    _, plain_token = await make_agent(store)
    await store.add_source(reads.id, prepare_source("notes.md", "markdown", "# Notes\n\nSome text."))
    read, plain = await store.enqueue(reads_token, "{}"), await store.enqueue(plain_token, "{}")
    claims = {claim.task.id: claim.agent_has_sources for claim in await store.claim_batch(10, LEASE_S)}
    assert claims == {read: True, plain: False}


async def claim_in_rounds(loops: list[tuple[Store, int]]) -> tuple[list[str], list[list[str]]]:
    """Claim from every (node, batch size) at once, then each node finishes what it claimed,
    and again, until nothing is left: every claimed id, and each round's. All that a round
    claims runs at once (nothing finishes during the claims)."""
    claimed: list[str] = []
    rounds: list[list[str]] = []
    while True:
        batches = await asyncio.gather(*(node.claim_batch(batch, LEASE_S) for node, batch in loops))
        ids = [claim.task.id for batch in batches for claim in batch]
        if not ids:
            return claimed, rounds
        claimed += ids
        rounds.append(ids)
        finishes = [
            node.finish(claim.task, "SUCCESS", ANSWER)
            for (node, _), batch in zip(loops, batches, strict=True)
            for claim in batch
        ]
        assert None not in await asyncio.gather(*finishes)


async def test_nodes_claiming_at_once_never_claim_a_task_twice(store: Store, make_store: MakeStore) -> None:
    """Two stores on one database (two nodes), claiming from eight loops at once."""
    _, token = await make_agent(store)
    queued = [await store.enqueue(token, "{}") for _ in range(120)]
    nodes = [store, await make_store()]
    claimed, _ = await claim_in_rounds([(nodes[n % 2], 4) for n in range(8)])
    assert sorted(claimed) == sorted(queued)  # every task once, none twice


async def test_nodes_claiming_at_once_keep_max_concurrency(store: Store, make_store: MakeStore) -> None:
    """As above, with an agent limited to two runs at a time beside an unlimited one: no round
    holds more than two of its tasks."""
    _, limited_token = await make_agent(store, max_concurrency=2)
    _, free_token = await make_agent(store)
    limited = {await store.enqueue(limited_token, "{}") for _ in range(40)}
    free = {await store.enqueue(free_token, "{}") for _ in range(40)}
    nodes = [store, await make_store()]
    loops = [(nodes[n % 2], batch) for n, batch in enumerate((1, 2, 3, 5, 1, 2, 3, 5))]
    claimed, rounds = await claim_in_rounds(loops)
    assert sorted(claimed) == sorted(limited | free)
    assert max(sum(1 for task_id in ids if task_id in limited) for ids in rounds) == 2


# -- ending tasks --------------------------------------------------------------------------


async def test_finish_ends_a_started_task_once(store: Store) -> None:
    _, token = await make_agent(store)
    task_id = await started(store, token)
    pending = await store.enqueue(token, "{}")
    before = time.time()
    assert (
        await store.finish(await held(store, str(pending)), "SUCCESS", ANSWER) is None
    )  # not STARTED: unchanged
    finished = await store.finish(await held(store, task_id), "SUCCESS", ANSWER)
    assert finished is not None and not finished.delivery_queued
    task = await store.get_task(task_id)
    assert task is not None and (task.status, task.result) == ("SUCCESS", ANSWER)
    assert task.finished_at is not None and before <= task.finished_at <= time.time()
    assert await store.finish(await held(store, task_id), "FAILURE", {"error": "late", "type": "x"}) is None
    assert (again := await store.get_task(task_id)) is not None and again.result == ANSWER
    assert await store.finish(await held(store, "no-such-task"), "SUCCESS", ANSWER) is None


async def test_finish_queues_a_callback_delivery_with_the_result(store: Store) -> None:
    calls, calls_token = await make_agent(store, callback_url="https://example.com/hook")
    _, quiet_token = await make_agent(store)
    called, quiet = await started(store, calls_token), await started(store, quiet_token)
    finished = await store.finish(await held(store, called), "SUCCESS", ANSWER)
    assert finished is not None and finished.delivery_queued
    finished = await store.finish(await held(store, quiet), "SUCCESS", ANSWER)
    assert finished is not None and not finished.delivery_queued
    (delivery,) = await store.due_deliveries(time.time() + 1, 10)
    assert (delivery.task_id, delivery.agent_id, delivery.url) == (
        called,
        calls.id,
        "https://example.com/hook",
    )
    assert (delivery.status, delivery.attempts, delivery.last_attempt_at) == ("pending", 0, None)
    assert delivery.next_attempt_at == delivery.created_at
    assert await store.list_deliveries(quiet) == []


async def test_retry_later_and_requeue_need_a_started_task(store: Store) -> None:
    _, token = await make_agent(store)
    task_id = await started(store, token)
    pending = await store.enqueue(token, "{}")
    assert not await store.retry_later(await held(store, str(pending)), 0, {"error": "x", "type": "timeout"})
    assert not await store.requeue(await held(store, str(pending)))
    assert await store.requeue(await held(store, task_id))  # cut off by a shutdown: the attempt is not spent
    task = await store.get_task(task_id)
    assert task is not None and (task.status, task.attempts, task.started_at) == ("PENDING", 0, None)
    assert not await store.requeue(await held(store, task_id))
    assert len(await store.claim_batch(10, LEASE_S)) == 2
    run_after = time.time() + 30
    assert await store.retry_later(
        await held(store, task_id), run_after, {"error": "slow", "type": "timeout"}
    )
    task = await store.get_task(task_id)
    assert task is not None and (task.status, task.run_after, task.started_at) == ("RETRY", run_after, None)
    assert task.attempts == 1 and task.status_json()["last_error"] == {"error": "slow", "type": "timeout"}
    assert not await store.retry_later(
        await held(store, task_id), run_after, {"error": "again", "type": "timeout"}
    )


async def test_cancel_ends_an_unfinished_task_and_refuses_a_final_one(store: Store) -> None:
    _, token = await make_agent(store, callback_url="https://example.com/cb")
    running = await started(store, token)
    pending = await store.enqueue(token, "{}")
    cancelled = await store.cancel(str(pending))
    assert (cancelled.id, cancelled.status, cancelled.result) == (
        pending,
        "FAILURE",
        {"error": "The task was cancelled.", "type": "cancelled"},
    )
    assert cancelled.finished_at is not None and cancelled == await store.get_task(str(pending))
    assert (await store.cancel(running)).status == "FAILURE"
    assert await store.finish(await held(store, running), "SUCCESS", ANSWER) is None  # the cancel won
    assert [len(await store.list_deliveries(t)) for t in (str(pending), running)] == [1, 1]
    with pytest.raises(Conflict, match="already finished"):
        await store.cancel(running)
    with pytest.raises(NotFound):
        await store.cancel("no-such-task")


async def test_purge_finished_deletes_the_oldest_final_tasks_with_their_journal(store: Store) -> None:
    _, token = await make_agent(store, callback_url="https://example.com/cb")
    ended = [await started(store, token) for _ in range(3)]
    for n, task_id in enumerate(ended):
        await store.finish(await held(store, task_id), "SUCCESS", ANSWER)
        await store.journal_tool_call(task_id, 1, (1, "notify", "{}"), "sent")
        await run_sql(
            store, f"UPDATE tasks SET finished_at = finished_at - {1000 - n} WHERE id = '{task_id}'"
        )
    unfinished = await started(store, token)
    assert await store.purge_finished(time.time() - 500, limit=2) == 2
    assert [await store.get_task(t) for t in ended[:2]] == [None, None]  # the oldest first
    assert await store.tool_journal(ended[0]) == {} and await store.list_deliveries(ended[0]) == []
    assert await store.purge_finished(time.time() - 500, limit=10) == 1
    assert await store.purge_finished(time.time() + 10, limit=10) == 0  # never an unfinished task
    assert await store.get_task(unfinished) is not None


async def test_a_dead_servers_tasks_are_taken_over_and_its_late_writes_refused(
    store: Store, make_store: MakeStore
) -> None:
    """`store` is a server that stops renewing its leases (killed, or paused), `successor` the
    server that takes over. SQLite: the successor holds the file, so every task STARTED by
    another owner is a dead server's at once. PostgreSQL: once the lease has expired."""
    _, token = await make_agent(store, max_attempts=2, callback_url="https://example.com/cb")
    first, second = await store.enqueue(token, "{}"), await store.enqueue(token, "{}")
    await store.claim_batch(1, LEASE_S)  # first
    await store.retry_later(await held(store, first), 0, {"error": "x", "type": "timeout"})
    lease_s = 1.0
    claims = {claim.task.id: claim.task for claim in await store.claim_batch(2, lease_s)}
    assert (claims[first].attempts, claims[second].attempts) == (2, 1)  # first: its last attempt
    waiting = await store.enqueue(token, "{}")
    successor = await make_store()
    if is_postgres(store):
        assert (await successor.take_over_expired()).tasks == []  # the leases hold
        await asyncio.sleep(lease_s + 0.2)
    recovery = await successor.take_over_expired()
    assert (recovery.requeued, recovery.failed) == (1, 1)
    assert sorted((r.task_id, r.status, r.attempts) for r in recovery.tasks) == sorted(
        [(second, "PENDING", 1), (first, "FAILURE", 2)]
    )
    one, two = await store.get_task(second), await store.get_task(first)
    assert one is not None and (one.status, one.attempts, one.started_at) == ("PENDING", 1, None)
    assert two is not None and two.status == "FAILURE" and two.result is not None
    assert two.result["type"] == "interrupted" and two.finished_at is not None
    assert [len(await store.list_deliveries(t)) for t in (second, first)] == [0, 1]
    assert (w := await store.get_task(str(waiting))) is not None and w.status == "PENDING"
    assert (await successor.take_over_expired()).tasks == []

    # The successor runs `second` again (attempt 2). The old server's writes are refused.
    (again,) = [c.task for c in await successor.claim_batch(2, LEASE_S) if c.task.id == second]
    assert again.attempts == 2
    assert await store.renew_leases(LEASE_S) == set()  # it holds nothing any more
    late = claims[second]
    assert await store.journal_tool_call(second, late.attempts, (1, "notify", "{}"), "late") is False
    assert await store.finish(late, "SUCCESS", {"answer": "late", "type": "answer"}) is None
    assert not await store.retry_later(late, 0, {"error": "x", "type": "timeout"})
    assert not await store.requeue(late)
    assert await successor.journal_tool_call(second, again.attempts, (1, "notify", "{}"), "sent") is True
    assert await successor.finish(again, "SUCCESS", ANSWER) is not None
    final = await store.get_task(second)
    assert final is not None and (final.status, final.result, final.attempts) == ("SUCCESS", ANSWER, 2)
    assert await store.tool_journal(second) == {(1, "notify", "{}"): "sent"}


async def test_a_renewed_lease_keeps_the_task(store: Store, make_store: MakeStore) -> None:
    _, token = await make_agent(store)
    task_id = await store.enqueue(token, "{}")
    (claim,) = await store.claim_batch(1, 1.0)
    other = await store.enqueue(token, "{}")
    assert await store.renew_leases(LEASE_S) == {(task_id, 1)}
    if is_postgres(store):  # a live lease is not taken over, however old the claim
        await asyncio.sleep(1.2)
        assert (await (await make_store()).take_over_expired()).tasks == []
    assert (await store.take_over_expired()).tasks == []  # never its own
    assert await store.finish(claim.task, "SUCCESS", ANSWER) is not None
    assert await store.renew_leases(LEASE_S) == set()
    assert (t := await store.get_task(str(other))) is not None and t.status == "PENDING"


async def test_changes_are_published_after_their_commit(store: Store) -> None:
    events: list[tuple[str, str, int, str | None]] = []
    store.events.subscribe(lambda e: events.append((e.task_id, e.status, e.attempt, e.error_type)))
    agent, token = await make_agent(store)
    task_id = await store.enqueue(token, "{}")
    replayed = await store.enqueue_once(token, "{}", key="k", body_sha256=b"b")
    assert replayed is not None
    again = await store.enqueue_once(token, "{}", key="k", body_sha256=b"b")
    assert again is not None and again.replayed and again.task_id == replayed.task_id  # nothing new
    (claim,) = await store.claim_batch(1, LEASE_S)
    await store.retry_later(claim.task, 0, {"error": "x", "type": "timeout"})
    (claim,) = [c for c in await store.claim_batch(1, LEASE_S) if c.task.id == task_id]
    await store.finish(claim.task, "FAILURE", {"error": "x", "type": "bad"})
    await store.cancel(replayed.task_id)
    doomed = await store.enqueue(token, "{}")
    await store.delete_agent(agent.id)
    assert events == [
        (task_id, "PENDING", 0, None),
        (replayed.task_id, "PENDING", 0, None),
        (task_id, "STARTED", 1, None),
        (task_id, "RETRY", 1, "timeout"),
        (task_id, "STARTED", 2, None),
        (task_id, "FAILURE", 2, "bad"),
        (replayed.task_id, "FAILURE", 0, "cancelled"),
        (doomed, "PENDING", 0, None),
        (doomed, "FAILURE", 0, "cancelled"),
    ]


# -- the tool-call journal -----------------------------------------------------------------


async def test_the_journal_keeps_each_first_output_by_step_tool_and_arguments(store: Store) -> None:
    _, token = await make_agent(store)
    task_id = await started(store, token)
    long_arguments = json.dumps({"body": "y" * 10_000}, sort_keys=True, separators=(",", ":"))
    await store.journal_tool_call(task_id, 1, (1, "http_request", '{"url":"a"}'), "first")
    await store.journal_tool_call(task_id, 1, (1, "http_request", '{"url":"a"}'), "second")  # ignored
    await store.journal_tool_call(task_id, 1, (2, "http_request", '{"url":"a"}'), "step two")
    await store.journal_tool_call(task_id, 1, (1, "notify", long_arguments), "a\x00b ✓")  # NUL kept
    await store.journal_tool_call("no-such-task", 1, (1, "notify", "{}"), "nothing")
    assert await store.tool_journal(task_id) == {
        (1, "http_request", '{"url":"a"}'): "first",
        (2, "http_request", '{"url":"a"}'): "step two",
        (1, "notify", long_arguments): "a\x00b ✓",
    }
    assert await store.tool_journal("no-such-task") == {}


# -- callback deliveries -------------------------------------------------------------------


async def test_deliveries_come_due_longest_waiting_first_and_record_their_attempts(store: Store) -> None:
    _, token = await make_agent(store, callback_url="https://example.com/cb")
    task_ids = [await started(store, token) for _ in range(3)]
    for task_id in task_ids:
        await store.finish(await held(store, task_id), "SUCCESS", ANSWER)
    first, second, third = [(await store.list_deliveries(t))[0] for t in task_ids]
    now = time.time() + 1
    assert [d.id for d in await store.due_deliveries(now, 10)] == [first.id, second.id, third.id]
    assert [d.id for d in await store.due_deliveries(now, 2, exclude=[first.id])] == [second.id, third.id]
    assert await store.next_delivery_at() == first.next_attempt_at
    assert await store.next_delivery_at(exclude=[first.id]) == second.next_attempt_at

    retry_at = time.time() + 60
    await store.record_delivery_attempt(
        first.id, status="pending", status_code=503, error="Receiver said 503.", next_attempt_at=retry_at
    )
    await store.record_delivery_attempt(
        second.id, status="delivered", status_code=200, error=None, next_attempt_at=None
    )
    await store.record_delivery_attempt(
        third.id, status="failed", status_code=410, error="Gone.", next_attempt_at=retry_at
    )
    # A delivery that is no longer pending takes no more attempts.
    await store.record_delivery_attempt(
        second.id, status="failed", status_code=500, error="x", next_attempt_at=None
    )
    assert await store.due_deliveries(time.time() + 1, 10) == []
    assert await store.next_delivery_at() == retry_at
    assert await store.next_delivery_at(exclude=[first.id]) is None
    assert [d.id for d in await store.due_deliveries(retry_at, 10)] == [first.id]
    (one,), (two,), (three,) = [await store.list_deliveries(t) for t in task_ids]
    assert (one.status, one.attempts, one.next_attempt_at, one.last_status_code, one.last_error) == (
        "pending",
        1,
        retry_at,
        503,
        "Receiver said 503.",
    )
    assert one.last_attempt_at is not None and one.delivered_at is None
    assert (two.status, two.attempts, two.next_attempt_at, two.last_status_code) == (
        "delivered",
        1,
        None,
        200,
    )
    assert two.delivered_at is not None and two.delivered_at == two.last_attempt_at
    assert (three.status, three.attempts, three.next_attempt_at, three.last_error) == (
        "failed",
        1,
        None,
        "Gone.",
    )
    assert three.delivered_at is None
    assert await store.list_deliveries("no-such-task") == []


# -- knowledge -----------------------------------------------------------------------------


async def test_sources_are_stored_listed_and_deleted(store: Store) -> None:
    agent, _ = await make_agent(store)
    other, _ = await make_agent(store)
    text = "# Title\n\n" + "A paragraph about storage engines. " * 80
    prepared = prepare_source("guide.md", "markdown", text)
    source = await store.add_source(agent.id, prepared)
    assert (source.agent_id, source.name, source.format) == (agent.id, "guide.md", "markdown")
    assert (source.chunks, source.bytes) == (len(prepared.chunks), prepared.bytes) and source.chunks > 1
    second = await store.add_source(agent.id, prepare_source("b.txt", "text", "Second."))
    assert await store.list_sources(agent.id) == [source, second]  # oldest first
    assert await store.list_sources(other.id) == [] and await store.list_sources("no-such-agent") == []
    with pytest.raises(NotFound):
        await store.add_source("no-such-agent", prepared)
    with pytest.raises(NotFound):
        await store.delete_source(other.id, source.id)  # not the other agent's to delete
    await store.delete_source(agent.id, source.id)
    assert await store.list_sources(agent.id) == [second]
    with pytest.raises(NotFound):
        await store.delete_source(agent.id, source.id)


async def test_a_search_finds_the_agents_chunks_holding_any_of_the_terms(store: Store) -> None:
    agent, _ = await make_agent(store)
    other, _ = await make_agent(store)
    assert await store.search_chunks(agent.id, ["anything"], 5) is None  # no sources: nothing searched
    notes = await store.add_source(agent.id, prepare_source("notes.txt", "text", "Zoë feeds the Cats."))
    await store.add_source(agent.id, prepare_source("dogs.txt", "text", "Dogs bark at the mail carrier."))
    await store.add_source(other.id, prepare_source("theirs.txt", "text", "Cats and dogs of another agent."))

    (passage,) = await store.search_chunks(agent.id, ["cats"], 5) or []
    assert (passage.source_id, passage.source_name, passage.chunk) == (notes.id, "notes.txt", 0)
    assert passage.text == "Zoë feeds the Cats." and passage.score > 0
    found = await store.search_chunks(agent.id, ["dogs", "cats", "birds"], 5)  # any of the terms
    assert found is not None and {p.source_name for p in found} == {"notes.txt", "dogs.txt"}
    assert len(await store.search_chunks(agent.id, ["dogs", "cats"], 1) or []) == 1
    assert [p.source_name for p in await store.search_chunks(agent.id, ["zoe"], 5) or []] == ["notes.txt"]
    assert [p.source_name for p in await store.search_chunks(agent.id, ["ZOË"], 5) or []] == ["notes.txt"]
    assert await store.search_chunks(agent.id, ["birds"], 5) == []
    assert await store.search_chunks(agent.id, [], 5) == []
    assert await store.search_chunks(agent.id, ["cats"], 0) == []
    assert await store.search_chunks(other.id, ["feeds"], 5) == []  # never another agent's chunks


async def test_search_terms_are_never_query_syntax(store: Store) -> None:
    agent, _ = await make_agent(store)
    await store.add_source(agent.id, prepare_source("a.txt", "text", "Alpha AND beta, near gamma."))
    for term in (
        '"',
        "AND",
        "NEAR(",
        "*",
        "^",
        ":",
        "(",
        ")",
        "!",
        "&",
        "|",
        "<->",
        "a:*",
        "'",
        "\\",
        "-x",
        "--",
    ):
        found = await store.search_chunks(agent.id, [term, "gamma"], 5)
        assert found is not None and len(found) == 1, term
    assert await store.search_chunks(agent.id, ["!!!", "..."], 5) == []  # no word in them: nothing
    assert len(await store.search_chunks(agent.id, ["and"], 5) or []) == 1  # just a word


async def test_a_chunk_with_more_of_the_terms_ranks_first(store: Store) -> None:
    agent, _ = await make_agent(store)
    await store.add_source(agent.id, prepare_source("one.txt", "text", "The harbour opens at dawn."))
    await store.add_source(agent.id, prepare_source("both.txt", "text", "The harbour ferry leaves at dawn."))
    found = await store.search_chunks(agent.id, ["harbour", "ferry"], 5)
    assert found is not None and [p.source_name for p in found] == ["both.txt", "one.txt"]
    assert found[0].score > found[1].score


async def test_a_rare_term_weighs_more_only_under_bm25(store: Store) -> None:
    """On purpose, the backends rank differently: FTS5's BM25 weighs a term by its rarity
    (inverse document frequency), PostgreSQL's ts_rank only by how often a chunk holds it."""
    agent, _ = await make_agent(store)
    await store.add_source(agent.id, prepare_source("rare.txt", "text", "A zeppelin over the fields."))
    await store.add_source(
        agent.id, prepare_source("common.txt", "text", "Town news: the town hall, town square.")
    )
    for n in range(6):
        await store.add_source(agent.id, prepare_source(f"filler-{n}.txt", "text", f"The town, page {n}."))
    found = await store.search_chunks(agent.id, ["zeppelin", "town"], 10)
    assert found is not None and len(found) == 8  # the same chunks either way
    names = [p.source_name for p in found]
    if is_postgres(store):  # "town" three times beats "zeppelin" once
        assert names[0] == "common.txt" and names.index("rare.txt") > 0
    else:  # "town" is in nearly every chunk, so it counts for little
        assert names[:2] == ["rare.txt", "common.txt"]


async def test_deleting_the_last_source_leaves_nothing_to_search(store: Store) -> None:
    agent, _ = await make_agent(store)
    source = await store.add_source(agent.id, prepare_source("a.txt", "text", "Harbour."))
    assert len(await store.search_chunks(agent.id, ["harbour"], 5) or []) == 1
    await store.delete_source(agent.id, source.id)
    assert await store.search_chunks(agent.id, ["harbour"], 5) is None
    again = await store.add_source(agent.id, prepare_source("b.txt", "text", "Harbour again."))
    assert [p.source_id for p in await store.search_chunks(agent.id, ["harbour"], 5) or []] == [again.id]


# -- what PostgreSQL's text cannot hold ----------------------------------------------------


async def test_a_nul_character_in_agent_text_is_stored_only_by_sqlite(store: Store) -> None:
    """On purpose, the backends differ: PostgreSQL's text cannot hold U+0000, so its store
    refuses it as invalid input rather than fail; SQLite stores it as given."""
    if is_postgres(store):
        with pytest.raises(InvalidInput, match="NUL"):
            await make_agent(store, prompt="a\x00b")
        assert await store.list_agents() == []
    else:
        agent, _ = await make_agent(store, prompt="a\x00b")
        assert (await store.get_agent(agent.id)).prompt == "a\x00b"
