"""Results without polling: `Prefer: wait=N` on the webhook, `wait=N` on task_status (a
long-poll), and a task's changes as Server-Sent Events; waiters go when their client or hookd does."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web

from api.app_keys import task_watch_key
from server import create_app, runner_kwargs
from settings import Settings
from tests.conftest import ADMIN_KEY, Hookd
from tests.remote import wait_until

UNKNOWN_TASK = "00000000-0000-7000-8000-000000000000"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MakeHookd = Callable[..., Awaitable[Hookd]]


async def webhook(hookd: Hookd, agent: dict[str, Any], prefer: str | None) -> aiohttp.ClientResponse:
    headers = {} if prefer is None else {"Prefer": prefer}
    return await hookd.client.post(agent["webhook_path"], json={"question": "hi"}, headers=headers)


# -- Prefer: wait ----------------------------------------------------------------------


async def test_prefer_wait_answers_with_the_final_status(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    response = await webhook(hookd, agent, "wait=10")
    assert response.status == 200
    assert response.headers["Preference-Applied"] == "wait=10"
    body = await response.json()
    assert body["success"] is True and body["status"] == "SUCCESS"
    assert body["result"]["answer"].startswith("You said: hi")
    # The same body task_status gives, plus "success".
    assert body == {"success": True} | await hookd.status(body["task_id"])


async def test_prefer_wait_gives_the_plain_answer_when_the_run_takes_longer(hookd: Hookd) -> None:
    agent = await hookd.create_agent(llm={"model": "sleep=5"})
    started = time.monotonic()
    response = await webhook(hookd, agent, "respond-async, wait=1")
    elapsed_s = time.monotonic() - started
    assert response.status == 200
    assert response.headers["Preference-Applied"] == "wait=1"
    body = await response.json()
    assert body == {"success": True, "task_id": body["task_id"]}
    assert 0.9 <= elapsed_s < 3, elapsed_s
    assert (await hookd.status(body["task_id"]))["status"] in ("PENDING", "STARTED")


async def test_without_wait_the_webhook_answers_at_once(hookd: Hookd) -> None:
    agent = await hookd.create_agent(llm={"model": "sleep=5"})
    for prefer in (None, "respond-async", "return=minimal"):
        started = time.monotonic()
        response = await webhook(hookd, agent, prefer)
        assert time.monotonic() - started < 1
        assert "Preference-Applied" not in response.headers
        assert set(await response.json()) == {"success", "task_id"}


@pytest.mark.parametrize("prefer", ["wait=abc", "wait=-1", "wait=61", "wait=1.5", "wait=", "wait=99999"])
async def test_a_bad_wait_is_400_and_stores_nothing(hookd: Hookd, prefer: str) -> None:
    agent = await hookd.create_agent()
    for response in (
        await webhook(hookd, agent, prefer),
        await hookd.client.get(agent["webhook_path"], params={"q": "x"}, headers={"Prefer": prefer}),
    ):
        assert response.status == 400
        body = await response.json()
        assert body["success"] is False
        assert "Prefer: wait=N must be a whole number of seconds from 0 to 60" in body["message"]
        assert "Nothing was stored" in body["message"]
    assert hookd.count_rows("tasks") == 0


# -- long-poll -------------------------------------------------------------------------


async def long_poll(hookd: Hookd, task_id: str, wait: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = await hookd.client.get("/api/task_status", params={"task_id": task_id, "wait": wait})
    return response.status, await response.json(), time.monotonic() - started


async def test_long_poll_answers_as_soon_as_the_task_is_final(hookd: Hookd) -> None:
    agent = await hookd.create_agent(llm={"model": "sleep=0.5"})
    task_id = await hookd.trigger(agent)
    status, body, elapsed_s = await long_poll(hookd, task_id, "20")
    assert status == 200 and body["status"] == "SUCCESS"
    assert body == await hookd.status(task_id)
    assert 0.3 <= elapsed_s < 5, elapsed_s


async def test_long_poll_answers_with_the_current_status_after_wait_seconds(hookd: Hookd) -> None:
    agent = await hookd.create_agent(llm={"model": "sleep=5"})
    task_id = await hookd.trigger(agent)
    await hookd.wait_for(task_id, ("STARTED",))
    status, body, elapsed_s = await long_poll(hookd, task_id, "1")
    assert status == 200 and body["status"] == "STARTED"
    assert 0.9 <= elapsed_s < 3, elapsed_s


async def test_long_poll_on_a_final_task_or_an_unknown_id_answers_at_once(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent)
    await hookd.wait_for(task_id)
    status, body, elapsed_s = await long_poll(hookd, task_id, "30")
    assert (status, body["status"]) == (200, "SUCCESS") and elapsed_s < 1
    status, body, elapsed_s = await long_poll(hookd, UNKNOWN_TASK, "30")
    assert status == 404 and body["success"] is False and elapsed_s < 1


@pytest.mark.parametrize("wait", ["x", "-1", "61", "2.5", "1e3"])
async def test_long_poll_with_a_bad_wait_is_400(hookd: Hookd, wait: str) -> None:
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent)
    status, body, _ = await long_poll(hookd, task_id, wait)
    assert status == 400
    assert "'wait' must be a whole number of seconds from 0 to 60" in body["message"]


# -- Server-Sent Events ----------------------------------------------------------------


@dataclass
class Stream:
    events: list[dict[str, str]] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)

    @property
    def statuses(self) -> list[str]:
        return [event["event"] for event in self.events]


async def read_stream(response: aiohttp.ClientResponse, timeout_s: float = 15.0) -> Stream:
    """Every event until the server ends the stream; fails if it has not ended by `timeout_s`."""
    stream, fields = Stream(), dict[str, str]()
    async with asyncio.timeout(timeout_s):
        async for raw in response.content:
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if fields:
                    stream.events.append(fields)
                fields = {}
            elif line.startswith(":"):
                stream.comments.append(line)
            else:
                name, _, value = line.partition(": ")
                fields[name] = value
    return stream


async def events(hookd: Hookd, task_id: str) -> aiohttp.ClientResponse:
    response = await hookd.client.get(f"/api/tasks/{task_id}/events")
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"] == "text/event-stream"
    return response


async def test_events_stream_each_state_change_then_end(hookd: Hookd) -> None:
    # One run at a time: the second task waits PENDING while the first runs.
    agent = await hookd.create_agent(llm={"model": "sleep=0.5"}, max_concurrency=1)
    first = await hookd.trigger(agent)
    await hookd.wait_for(first, ("STARTED",))
    task_id = await hookd.trigger(agent)
    stream = await read_stream(await events(hookd, task_id))
    assert stream.statuses == ["PENDING", "STARTED", "SUCCESS"]
    assert [event["id"] for event in stream.events] == ["1", "2", "3"]
    bodies = [json.loads(event["data"]) for event in stream.events]
    assert [body["status"] for body in bodies] == stream.statuses
    assert bodies[1]["started_at"] is not None and bodies[1]["result"] is None
    assert bodies[-1] == await hookd.status(task_id)


async def test_events_show_a_retry(make_hookd: MakeHookd) -> None:
    hookd = await make_hookd(retry_backoff_s=0.5)
    agent = await hookd.create_agent(llm={"model": "fail=1,sleep=0.3"})  # each call 0.3 s; the first fails
    task_id = await hookd.trigger(agent)
    stream = await read_stream(await events(hookd, task_id))
    assert stream.statuses[0] in ("PENDING", "STARTED")
    assert stream.statuses[-3:] == ["RETRY", "STARTED", "SUCCESS"], stream.statuses
    retry = json.loads(stream.events[-3]["data"])
    assert retry["last_error"]["type"] == "llm_http_error" and retry["next_attempt_at"] is not None
    assert json.loads(stream.events[-1]["data"])["attempts"] == 2


async def test_events_of_a_final_task_are_its_final_state(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent)
    await hookd.wait_for(task_id)
    stream = await read_stream(await events(hookd, task_id))
    assert stream.statuses == ["SUCCESS"]


async def test_events_carry_a_heartbeat_while_nothing_changes(hookd: Hookd) -> None:
    hookd.client.server.app[task_watch_key].heartbeat_s = 0.2
    agent = await hookd.create_agent(llm={"model": "sleep=1.5"})
    task_id = await hookd.trigger(agent)
    stream = await read_stream(await events(hookd, task_id))
    assert stream.statuses[-1] == "SUCCESS"
    assert len(stream.comments) >= 3 and set(stream.comments) == {": heartbeat"}


@pytest.mark.parametrize("task_id", [UNKNOWN_TASK, "not-a-task"])
async def test_events_of_an_unknown_task_are_a_json_404(hookd: Hookd, task_id: str) -> None:
    response = await hookd.client.get(f"/api/tasks/{task_id}/events")
    assert response.status == 404
    assert (await response.json())["success"] is False


# -- waiters go with their client and with hookd ---------------------------------------


@dataclass
class Served:
    app: web.Application
    runner: web.AppRunner
    http: aiohttp.ClientSession

    @property
    def waiting(self) -> int:
        return self.app[task_watch_key].waiting


@pytest.fixture
async def served(make_settings: Callable[..., Settings]) -> AsyncIterator[Served]:
    """hookd on a runner made as `web.run_app` makes it: unlike aiohttp's TestServer, it does not
    cancel a handler whose client left, so hookd must notice by itself."""
    settings = make_settings()
    app = create_app(settings)
    runner = web.AppRunner(app, **runner_kwargs(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    async with aiohttp.ClientSession(base_url=f"http://{host}:{port}", headers=ADMIN) as http:
        yield Served(app, runner, http)
    await runner.cleanup()


async def slow_task(served: Served) -> tuple[str, str]:
    """A task that runs for 30 s, and its agent's webhook path."""
    response = await served.http.post("/api/agents", json={"name": "slow", "llm": {"model": "sleep=30"}})
    webhook_path = urlsplit((await response.json())["webhook_url"]).path
    response = await served.http.post(webhook_path, json={})
    return str((await response.json())["task_id"]), webhook_path


async def test_waiters_are_dropped_when_their_client_leaves(served: Served) -> None:
    task_id, _ = await slow_task(served)
    stream = await served.http.get(f"/api/tasks/{task_id}/events")
    assert (await stream.content.readline()).startswith(b"id: 1")
    poll = asyncio.create_task(served.http.get("/api/task_status", params={"task_id": task_id, "wait": "60"}))
    await wait_until(lambda: served.waiting == 2, "two waiters")
    poll.cancel()
    stream.close()
    await wait_until(lambda: served.waiting == 0, "waiters gone with their client", timeout_s=5)


async def test_stopping_hookd_ends_long_polls_and_streams_at_once(served: Served) -> None:
    task_id, webhook_path = await slow_task(served)
    poll = asyncio.create_task(served.http.get("/api/task_status", params={"task_id": task_id, "wait": "60"}))
    waiting_webhook = asyncio.create_task(
        served.http.post(webhook_path, json={}, headers={"Prefer": "wait=60"})
    )
    stream = await served.http.get(f"/api/tasks/{task_id}/events")
    reading = asyncio.create_task(read_stream(stream))
    await wait_until(lambda: served.waiting == 3, "three waiters")
    started = time.monotonic()
    await served.runner.cleanup()  # aiohttp waits up to shutdown_timeout (60 s here) for open requests
    assert time.monotonic() - started < 3
    response = await poll
    assert response.status == 200 and (await response.json())["task_id"] == task_id
    response = await waiting_webhook
    assert response.status == 200 and set(await response.json()) == {"success", "task_id"}
    assert (await reading).statuses[-1] in ("PENDING", "STARTED")  # ended without a final state


@pytest.mark.parametrize("live", [True, False], ids=["while-running", "when-final"])
async def test_events_carry_an_answer_holding_a_lone_surrogate(hookd: Hookd, live: bool) -> None:
    """UTF-8 cannot carry an unpaired surrogate (a model may answer one): the event keeps it
    \\u-escaped, and the stream still ends with the final event."""
    agent = await hookd.create_agent(llm={"model": "mode=surrogate,sleep=0.5" if live else "mode=surrogate"})
    task_id = await hookd.trigger(agent)
    if not live:
        await hookd.wait_for(task_id)
    stream = await read_stream(await events(hookd, task_id))
    assert stream.statuses[-1] == "SUCCESS"
    assert len(stream.statuses) > 1 if live else stream.statuses == ["SUCCESS"]
    final = json.loads(stream.events[-1]["data"])
    assert final["result"]["answer"] == "half \ud800 a pair"
    assert final == await hookd.status(task_id)


async def test_prefer_wait_answers_with_a_lone_surrogate(hookd: Hookd) -> None:
    agent = await hookd.create_agent(llm={"model": "mode=surrogate"})
    response = await webhook(hookd, agent, "wait=10")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "SUCCESS" and body["result"]["answer"] == "half \ud800 a pair"
