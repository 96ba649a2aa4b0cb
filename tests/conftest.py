"""Fixtures: hookd through its real app on a loopback server, a fresh SQLite file per test,
the fake model server (the only fake), and a real PostgreSQL server for the store tests."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from server import create_app, runner_kwargs
from settings import Settings, load_settings
from tests.fake_llm import FakeLLM
from tests.postgres_server import PostgresServer, running_postgres

ADMIN_KEY = "test-admin-key-not-a-secret"
FINAL = ("SUCCESS", "FAILURE")
_names = itertools.count(1)


class Hookd:
    """A running hookd app and the calls tests make on it."""

    def __init__(self, client: TestClient[Any, Any], settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.admin = {"Authorization": f"Bearer {settings.admin_key}"}

    async def create_agent(self, **fields: Any) -> dict[str, Any]:
        """Create an agent through the admin API; test-friendly defaults. Adds `webhook_path`."""
        body = {"name": f"agent-{next(_names)}", "prompt": "Be brief."} | fields
        response = await self.client.post("/api/agents", json=body, headers=self.admin)
        assert response.status == 201, await response.text()
        agent: dict[str, Any] = await response.json()
        agent["webhook_path"] = urlsplit(agent["webhook_url"]).path
        return agent

    async def trigger(self, agent: dict[str, Any], payload: Any = None) -> str:
        response = await self.client.post(agent["webhook_path"], json={} if payload is None else payload)
        body = await response.json()
        assert response.status == 200, body
        assert body["success"] is True
        return str(body["task_id"])

    async def status(self, task_id: str) -> dict[str, Any]:
        response = await self.client.get("/api/task_status", params={"task_id": task_id})
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body

    async def wait_for(
        self, task_id: str, statuses: tuple[str, ...] = FINAL, timeout_s: float = 10.0
    ) -> dict[str, Any]:
        """Poll until the task is in one of `statuses`; fail after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        pause_s = 0.005
        while True:
            body = await self.status(task_id)
            if body["status"] in statuses:
                return body
            assert time.monotonic() < deadline, f"task stuck in {body['status']}: {body}"
            await asyncio.sleep(pause_s)
            pause_s = min(pause_s * 2, 0.05)

    async def wait_for_agent(
        self, agent_id: str, count: int, timeout_s: float = 30.0
    ) -> list[dict[str, Any]]:
        """Poll until `count` of the agent's tasks are final (one poller, however many tasks)."""
        deadline = time.monotonic() + timeout_s
        params = {"agent_id": agent_id, "status": ",".join(FINAL), "limit": "500"}
        while True:
            response = await self.client.get("/api/tasks", params=params, headers=self.admin)
            tasks: list[dict[str, Any]] = (await response.json())["tasks"]
            if len(tasks) >= count:
                return tasks
            assert time.monotonic() < deadline, f"only {len(tasks)} of {count} tasks final"
            await asyncio.sleep(0.02)

    def count_rows(self, table: str = "tasks") -> int:
        """Count rows straight from the database file, as another process would see them."""
        with sqlite3.connect(self.settings.db) as conn:
            ((count,),) = conn.execute(f"SELECT count(*) FROM {table}").fetchall()
        return int(count)


@pytest.fixture
async def fake_llm(aiohttp_server: Any) -> FakeLLM:
    fake = FakeLLM()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def make_settings(tmp_path: Path, fake_llm: FakeLLM) -> Callable[..., Settings]:
    def make(**changes: Any) -> Settings:
        return load_settings(environ={}).replace(
            **{
                "db": str(tmp_path / "hookd.db"),
                "admin_key": ADMIN_KEY,
                "llm_base_url": fake_llm.url + "/v1",
                "llm_model": "ok",
                "retry_backoff_s": 0.05,
                "shutdown_grace_s": 0.1,
            }
            | changes
        )

    return make


@pytest.fixture
def make_hookd(
    make_settings: Callable[..., Settings], aiohttp_client: Any
) -> Callable[..., Awaitable[Hookd]]:
    # make_settings (and so the fake model) comes first: fixtures tear down in reverse, so
    # hookd stops before the fake model, and no run is left waiting on a closed server.
    async def make(**changes: Any) -> Hookd:
        settings = make_settings(**changes)
        # Started here because TestServer passes runner options only through start_server().
        server = TestServer(create_app(settings))
        await server.start_server(**runner_kwargs(settings))
        client = await aiohttp_client(server)
        return Hookd(client, settings)

    return make


@pytest.fixture
async def hookd(make_hookd: Callable[..., Awaitable[Hookd]]) -> Hookd:
    return await make_hookd()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP client for hookd subprocesses (tests/processes.py)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The tests' own PostgreSQL server (tests/postgres_server.py), started once per session
    when a test asks for it; skipped without initdb, failed under CI."""
    with running_postgres() as server:
        yield server


@pytest.fixture
async def postgres_url(postgres_server: PostgresServer) -> AsyncIterator[str]:
    """A fresh, empty database on that server, dropped after the test."""
    async with postgres_server.fresh_database() as url:
        yield url
