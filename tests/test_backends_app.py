"""hookd through its real app on each backend: SQLite (HOOKD_DB) and PostgreSQL
(HOOKD_DATABASE_URL, the tests' own server). The same requests, the same answers; only the
setting differs. Store-level behaviour is in test_store_contract.py; these tests check that
the app, the pool and the API work unchanged on top of either store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from server import load_admin_key
from settings import SettingsError, load_settings
from tests.conftest import Hookd
from tests.fake_llm import FakeLLM
from tests.postgres_server import PostgresServer
from tests.processes import REPO_ROOT, clean_environ


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, postgres_server: PostgresServer) -> AsyncIterator[str]:
    """HOOKD_DATABASE_URL for one backend: unset (SQLite), or a fresh PostgreSQL database. (The
    server is asked for as an argument: it starts with asyncio.run, which a running loop forbids.)"""
    if request.param == "sqlite":
        yield ""
        return
    async with postgres_server.fresh_database() as url:
        yield url


@pytest.fixture
async def backend_hookd(database_url: str, make_hookd: Callable[..., Awaitable[Hookd]]) -> Hookd:
    """hookd on one backend, with hookd's defaults otherwise."""
    return await make_hookd(database_url=database_url)


async def test_a_webhook_runs_and_its_result_is_served(backend_hookd: Hookd) -> None:
    hookd = backend_hookd
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent, {"question": "Hello?", "customer": "Zoë"})
    body = await hookd.wait_for(task_id)
    assert body["status"] == "SUCCESS"
    assert body["result"]["answer"].startswith("You said: Hello?")
    listed = await (await hookd.client.get("/api/tasks", headers=hookd.admin)).json()
    assert [t["id"] for t in listed["tasks"]] == [task_id]
    whole = await (await hookd.client.get(f"/api/tasks/{task_id}", headers=hookd.admin)).json()
    assert whole["payload"] == {"question": "Hello?", "customer": "Zoë"}
    health = await (await hookd.client.get("/api/health")).json()
    assert health == {"status": "ok", "queue_depth": 0, "running": 0, "workers": 8}


async def test_an_idempotent_repeat_gets_the_first_task(backend_hookd: Hookd) -> None:
    hookd = backend_hookd
    agent = await hookd.create_agent()
    headers = {"Idempotency-Key": "order-7"}
    first = await hookd.client.post(agent["webhook_path"], json={"n": 1}, headers=headers)
    again = await hookd.client.post(agent["webhook_path"], json={"n": 1}, headers=headers)
    assert first.status == again.status == 200
    assert (await first.json())["task_id"] == (await again.json())["task_id"]
    assert again.headers.get("Idempotent-Replayed") == "true"
    other = await hookd.client.post(agent["webhook_path"], json={"n": 2}, headers=headers)
    assert other.status == 422


async def test_a_transient_failure_is_retried(backend_hookd: Hookd, fake_llm: FakeLLM) -> None:
    hookd = backend_hookd
    agent = await hookd.create_agent(llm={"model": "fail=1,status=503"}, max_attempts=3)
    body = await hookd.wait_for(await hookd.trigger(agent))
    assert (body["status"], body["attempts"]) == ("SUCCESS", 2)


async def test_cancel_stops_a_running_task(backend_hookd: Hookd) -> None:
    hookd = backend_hookd
    agent = await hookd.create_agent(llm={"model": "mode=hang"})
    task_id = await hookd.trigger(agent)
    await hookd.wait_for(task_id, ("STARTED",))
    cancelled = await hookd.client.post(f"/api/tasks/{task_id}/cancel", headers=hookd.admin)
    assert cancelled.status == 200
    body = await hookd.wait_for(task_id)
    assert body["result"]["type"] == "cancelled"
    deadline = asyncio.get_running_loop().time() + 5
    while (await (await hookd.client.get("/api/health")).json())["running"]:
        assert asyncio.get_running_loop().time() < deadline, "the cancelled run kept its slot"
        await asyncio.sleep(0.02)


async def test_max_pending_holds_for_concurrent_senders(make_hookd: Any, database_url: str) -> None:
    hookd: Hookd = await make_hookd(max_pending=5, database_url=database_url)
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, max_concurrency=1)
    await hookd.wait_for(await hookd.trigger(agent), ("STARTED",))
    responses = await asyncio.gather(
        *(hookd.client.post(agent["webhook_path"], json={"n": n}) for n in range(60))
    )
    assert [r.status for r in responses].count(200) == 5


async def test_knowledge_is_searched_before_a_run(backend_hookd: Hookd, fake_llm: FakeLLM) -> None:
    hookd = backend_hookd
    agent = await hookd.create_agent(llm={"model": "knows"})
    response = await hookd.client.post(
        f"/api/agents/{agent['id']}/sources",
        json={"name": "returns", "content": "Refunds are paid within 14 days of a return."},
        headers=hookd.admin,
    )
    assert response.status == 201, await response.text()
    body = await hookd.wait_for(await hookd.trigger(agent, {"question": "When are refunds paid?"}))
    assert body["status"] == "SUCCESS"
    assert [s["source"]["name"] for s in body["result"]["sources"]] == ["returns"]
    (call,) = fake_llm.calls_for("knows")
    assert "Refunds are paid within 14 days" in call.body["messages"][0]["content"]


async def test_the_event_stream_follows_a_task(backend_hookd: Hookd) -> None:
    hookd = backend_hookd
    agent = await hookd.create_agent(llm={"model": "sleep=0.2"})
    task_id = await hookd.trigger(agent)
    response = await hookd.client.get(f"/api/tasks/{task_id}/events")
    events = [line for line in (await response.text()).splitlines() if line.startswith("event: ")]
    assert events[-1] == "event: SUCCESS"


# -- choosing the backend ------------------------------------------------------------------


def test_a_database_url_must_be_postgresql() -> None:
    with pytest.raises(SettingsError, match="must be a postgresql:// URL"):
        load_settings(environ={"HOOKD_DATABASE_URL": "mysql://db/hookd"})


def test_a_shared_database_needs_the_admin_key_set() -> None:
    settings = load_settings(environ={"HOOKD_DATABASE_URL": "postgresql://hookd@127.0.0.1/hookd"})
    with pytest.raises(SettingsError, match="HOOKD_DATABASE_URL needs HOOKD_ADMIN_KEY"):
        load_admin_key(settings)


def test_serve_refuses_a_database_url_without_an_admin_key_in_one_line(tmp_path: Path) -> None:
    import subprocess

    env = clean_environ(database_url="postgresql://hookd@127.0.0.1:1/hookd")
    env.pop("HOOKD_ADMIN_KEY", None)
    done = subprocess.run(
        [sys.executable, "cli.py", "serve"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        "hookd: HOOKD_DATABASE_URL needs HOOKD_ADMIN_KEY: set the same admin key (16 or more"
        " characters) on every hookd that uses this database."
    ]
