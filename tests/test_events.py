"""The store tells in-process listeners about every state change it commits, in order."""

from __future__ import annotations

from typing import Any

from api.app_keys import store_key
from tasks.events import TaskEvent
from tests.conftest import Hookd


def record(hookd: Hookd) -> list[TaskEvent]:
    events: list[TaskEvent] = []
    hookd.client.server.app[store_key].events.subscribe(events.append)
    return events


def statuses(events: list[TaskEvent], task_id: str) -> list[str]:
    return [event.status for event in events if event.task_id == task_id]


async def test_a_run_publishes_pending_started_success(hookd: Hookd) -> None:
    events = record(hookd)
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent)
    await hookd.wait_for(task_id)
    assert statuses(events, task_id) == ["PENDING", "STARTED", "SUCCESS"]
    success = events[-1]
    assert success.final and success.agent_id == agent["id"] and success.attempt == 1
    assert success.elapsed_s is not None and success.elapsed_s >= 0 and success.error_type is None


async def test_retries_and_failures_carry_the_error_type(hookd: Hookd) -> None:
    events = record(hookd)
    agent = await hookd.create_agent(llm={"model": "fail=9"}, max_attempts=2)
    final = await hookd.wait_for(await hookd.trigger(agent))
    assert statuses(events, final["task_id"]) == ["PENDING", "STARTED", "RETRY", "STARTED", "FAILURE"]
    retry, failure = (e for e in events if e.status in ("RETRY", "FAILURE"))
    assert (retry.attempt, failure.attempt) == (1, 2)
    assert retry.error_type == failure.error_type == "llm_http_error"


async def test_cancel_and_agent_deletion_publish_failure(hookd: Hookd) -> None:
    events = record(hookd)
    agent = await hookd.create_agent(llm={"model": "sleep=30"})
    running = await hookd.trigger(agent)
    await hookd.wait_for(running, ("STARTED",))
    response = await hookd.client.post(f"/api/tasks/{running}/cancel", headers=hookd.admin)
    assert response.status == 200
    other = await hookd.trigger(agent)
    response = await hookd.client.delete(f"/api/agents/{agent['id']}", headers=hookd.admin)
    assert response.status == 200
    finals: dict[str, Any] = {e.task_id: e.error_type for e in events if e.final}
    assert finals == {running: "cancelled", other: "cancelled"}
