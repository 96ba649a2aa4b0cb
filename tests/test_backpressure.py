"""Backpressure and retention: a full queue refuses with 429, old results are deleted."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import Any

from settings import parse_rate_limit
from tests.conftest import Hookd


async def test_full_queue_is_429_and_drops_nothing(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(max_pending=3)
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, max_concurrency=1)
    running = await hookd.trigger(agent)
    await hookd.wait_for(running, ("STARTED",))
    queued = [await hookd.trigger(agent, {"n": i}) for i in range(3)]

    refused = await hookd.client.post(agent["webhook_path"], json={"n": "one too many"})
    assert refused.status == 429
    assert refused.headers["Retry-After"] == "5"
    body = await refused.json()
    assert body["success"] is False and "HOOKD_MAX_PENDING" in body["message"]
    assert hookd.count_rows() == 4
    for task_id in queued:
        assert (await hookd.status(task_id))["status"] == "PENDING"

    # Room again once the queue drains: here, by cancelling two waiting tasks.
    for task_id in queued[:2]:
        assert (await hookd.client.post(f"/api/tasks/{task_id}/cancel", headers=hookd.admin)).status == 200
    deadline = time.monotonic() + 10
    while (response := await hookd.client.post(agent["webhook_path"], json={})).status == 429:
        assert time.monotonic() < deadline, "the queue never made room"
        await asyncio.sleep(0.05)
    assert response.status == 200


async def test_agent_rate_limit_is_a_token_bucket(hookd: Hookd) -> None:
    limited = await hookd.create_agent(rate_limit="3/min")
    free = await hookd.create_agent()
    for _ in range(3):  # a burst up to the count
        await hookd.trigger(limited)
    refused = await hookd.client.post(limited["webhook_path"], json={})
    assert refused.status == 429
    assert 15 <= int(refused.headers["Retry-After"]) <= 20  # one token per 20 s
    assert "at most 3/min" in (await refused.json())["message"]
    for _ in range(5):  # other agents keep their own buckets
        await hookd.trigger(free)
    assert hookd.count_rows() == 8


async def test_server_rate_limit_applies_unless_the_agent_has_its_own(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(rate_limit=parse_rate_limit("2/hour"))
    default = await hookd.create_agent()
    generous = await hookd.create_agent(rate_limit="100/s")
    for _ in range(2):
        await hookd.trigger(default)
    assert (await hookd.client.post(default["webhook_path"], json={})).status == 429
    for _ in range(10):
        await hookd.trigger(generous)
    # Lifting the agent's limit takes effect within the one-second lookup cache.
    await hookd.client.patch(
        f"/api/agents/{default['id']}", json={"rate_limit": "1000/s"}, headers=hookd.admin
    )
    deadline = time.monotonic() + 5
    while (await hookd.client.post(default["webhook_path"], json={})).status == 429:
        assert time.monotonic() < deadline, "the new limit never applied"
        await asyncio.sleep(0.1)


async def test_finished_tasks_expire_and_queued_ones_stay(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(result_ttl_days=1 / 86400)  # one second
    quick = await hookd.create_agent()
    slow = await hookd.create_agent(llm={"model": "mode=hang"})
    done = [await hookd.trigger(quick, {"n": i}) for i in range(3)]
    waiting = await hookd.trigger(slow)
    for task_id in done:
        await hookd.wait_for(task_id)
    deadline = time.monotonic() + 10
    while hookd.count_rows() > 1:
        assert time.monotonic() < deadline, "finished tasks were not deleted"
        await asyncio.sleep(0.05)
    response = await hookd.client.get("/api/task_status", params={"task_id": done[0]})
    assert response.status == 404
    assert (await hookd.status(waiting))["status"] == "STARTED"


def page_count(hookd: Hookd) -> int:
    with sqlite3.connect(hookd.settings.db) as conn:
        ((pages,),) = conn.execute("PRAGMA page_count").fetchall()
    return int(pages)


async def test_database_stops_growing_under_steady_load(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(result_ttl_days=0.5 / 86400, workers=50)
    agent = await hookd.create_agent()
    pages = []
    for round_ in range(3):
        await asyncio.gather(
            *(hookd.trigger(agent, {"round": round_, "pad": "x" * 2000}) for _ in range(100))
        )
        # Only finished tasks are ever deleted, so an empty table means all 100 ran.
        deadline = time.monotonic() + 10
        while hookd.count_rows():
            assert time.monotonic() < deadline, "the round's tasks did not all finish and expire"
            await asyncio.sleep(0.05)
        pages.append(page_count(hookd))
    # Freed pages are reused: after the first round the file does not grow.
    assert max(pages[1:]) <= pages[0] + 2, pages
