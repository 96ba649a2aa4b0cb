"""The admin API: auth, agents CRUD and tokens, task listing and cancellation, health, status."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from tests.conftest import Hookd


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/agents"),
        ("POST", "/api/agents"),
        ("GET", "/api/agents/00000000-0000-7000-8000-000000000000"),
        ("PATCH", "/api/agents/00000000-0000-7000-8000-000000000000"),
        ("DELETE", "/api/agents/00000000-0000-7000-8000-000000000000"),
        ("POST", "/api/agents/00000000-0000-7000-8000-000000000000/webhook"),
        ("GET", "/api/tasks"),
        ("GET", "/api/tasks/00000000-0000-7000-8000-000000000000"),
        ("POST", "/api/tasks/00000000-0000-7000-8000-000000000000/cancel"),
    ],
)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Bearer ", "Bearer wrong-key", "test-admin-key-not-a-secret", "Basic dGVzdA=="],
)
async def test_admin_routes_need_the_key(
    hookd: Hookd, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await hookd.client.request(method, path, headers=headers, json={"name": "x"})
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = await response.json()
    assert body["success"] is False and "Authorization: Bearer" in body["message"]
    assert hookd.count_rows("agents") == 0


async def test_create_agent_defaults_and_webhook_url(hookd: Hookd) -> None:
    response = await hookd.client.post("/api/agents", json={"name": "triage"}, headers=hookd.admin)
    assert response.status == 201
    agent = await response.json()
    assert uuid.UUID(agent["id"]).version == 7
    masked = {
        "id": None,
        "created_at": None,
        "updated_at": None,
        "webhook_url": None,
        "callback_secret": None,
    }
    assert agent | masked == {
        "id": None,
        "name": "triage",
        "description": "",
        "prompt": "",
        "input_template": None,
        "llm": {"provider": None, "model": None, "base_url": None, "api_key_env": None},
        "max_attempts": 3,
        "timeout_s": 120.0,
        "max_concurrency": None,
        "rate_limit": None,
        "status": "active",
        "created_at": None,
        "updated_at": None,
        "signature": None,
        "tools": [],
        "max_steps": 8,
        "json_schema": None,
        "mcp_servers": [],
        "knowledge_top_k": 4,
        "webhook_url": None,
        "callback_url": None,
        "callback_secret": None,
    }
    assert agent["callback_secret"].startswith("whsec_")
    base = str(hookd.client.make_url("")).rstrip("/")
    assert agent["webhook_url"].startswith(base + "/api/webhooks/agents/")


async def test_public_url_setting_shapes_the_webhook_url(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(public_url="https://hooks.example.org")
    agent = await hookd.create_agent()
    assert agent["webhook_url"].startswith("https://hooks.example.org/api/webhooks/agents/")


@pytest.mark.parametrize(
    ("body", "status", "message_part"),
    [
        ({}, 400, "'name' is required"),
        ({"name": "  "}, 400, "must not be empty"),
        ({"name": 5}, 400, "must be a string"),
        ({"name": "a", "colour": "red"}, 400, "Unknown field 'colour'"),
        ({"name": "a", "llm": {"provider": "gemini"}}, 400, "'llm.provider' must be one of"),
        ({"name": "a", "llm": {"api_key": "sk-123"}}, 400, "never stores API keys"),
        ({"name": "a", "llm": {"base_url": "ftp://x"}}, 400, "'llm.base_url'"),
        ({"name": "a", "llm": {"api_key_env": "not a name"}}, 400, "'llm.api_key_env'"),
        ({"name": "a", "llm": "openai"}, 400, "'llm' must be an object"),
        ({"name": "a", "max_attempts": 0}, 400, "'max_attempts' must be from 1"),
        ({"name": "a", "max_attempts": True}, 400, "'max_attempts' must be a whole number"),
        ({"name": "a", "timeout_s": -1}, 400, "'timeout_s'"),
        ({"name": "a", "max_concurrency": 0}, 400, "'max_concurrency'"),
        ({"name": "a", "status": "sleeping"}, 400, "'status'"),
        ({"name": "a", "rate_limit": "60/week"}, 400, "'rate_limit' must look like 60/min"),
        ({"name": "a", "rate_limit": 60}, 400, "'rate_limit' must be a string"),
        ({"name": "a", "rate_limit": "1" + "0" * 400 + "/s"}, 400, "'rate_limit' must look like"),
        ({"name": "a", "rate_limit": "1000000000/s"}, 400, "'rate_limit' must look like"),
        ({"name": "a", "rate_limit": "\u0666/min"}, 400, "'rate_limit' must look like"),  # Arabic-Indic 6
        ({"name": "a", "max_attempts": 1.5}, 400, "'max_attempts' must be a whole number"),
        ({"name": "a", "llm": {"base_url": " http://h/v1"}}, 400, "'llm.base_url'"),
        ({"name": "a", "llm": {"base_url": "http://h:99999/v1"}}, 400, "a port up to 65535"),
        ({"name": "a", "llm": {"api_key_env": "HOOKD_ADMIN_KEY"}}, 400, "'llm.api_key_env'"),
        ({"name": "a", "input_template": "{{ os.system('x') }}"}, 400, "unknown placeholder"),
    ],
)
async def test_create_agent_refuses_bad_fields(
    hookd: Hookd, body: dict[str, Any], status: int, message_part: str
) -> None:
    response = await hookd.client.post("/api/agents", json=body, headers=hookd.admin)
    assert response.status == status
    payload = await response.json()
    assert payload["success"] is False and message_part in payload["message"], payload
    assert hookd.count_rows("agents") == 0


async def test_a_whole_number_may_be_written_with_a_point(hookd: Hookd) -> None:
    # JSON has one number type, and JSON Schema's "integer" takes 2.0: so does hookd.
    agent = await hookd.create_agent(max_attempts=2.0, knowledge_top_k=3.0)
    assert (agent["max_attempts"], agent["knowledge_top_k"]) == (2, 3)
    assert isinstance(agent["max_attempts"], int)


async def test_a_base_url_may_name_an_ipv6_address(hookd: Hookd) -> None:
    agent = await hookd.create_agent(llm={"base_url": "http://[::1]:11434/v1/"})
    assert agent["llm"]["base_url"] == "http://[::1]:11434/v1"


async def test_a_rate_limit_count_may_have_leading_zeros(hookd: Hookd) -> None:
    agent = await hookd.create_agent(rate_limit=" 0000000060 / min ")  # zeros are not digits of the count
    assert agent["rate_limit"] == "60/min"


async def test_agent_names_are_unique(hookd: Hookd) -> None:
    await hookd.create_agent(name="same")
    response = await hookd.client.post("/api/agents", json={"name": "same"}, headers=hookd.admin)
    assert response.status == 409
    assert "already exists" in (await response.json())["message"]
    other = await hookd.create_agent(name="other")
    renamed = await hookd.client.patch(
        f"/api/agents/{other['id']}", json={"name": "same"}, headers=hookd.admin
    )
    assert renamed.status == 409
    assert hookd.count_rows("agents") == 2


async def test_list_get_patch_delete(hookd: Hookd) -> None:
    first = await hookd.create_agent(name="b-agent")
    second = await hookd.create_agent(name="a-agent", llm={"provider": "echo"})
    listing = await (await hookd.client.get("/api/agents", headers=hookd.admin)).json()
    assert [a["name"] for a in listing["agents"]] == ["a-agent", "b-agent"]
    assert all("webhook_url" not in a for a in listing["agents"])

    got = await hookd.client.get(f"/api/agents/{first['id']}", headers=hookd.admin)
    assert (await got.json())["name"] == "b-agent"

    patched = await hookd.client.patch(
        f"/api/agents/{second['id']}",
        json={"prompt": "New prompt", "max_concurrency": 2, "llm": {"provider": "openai", "model": "m"}},
        headers=hookd.admin,
    )
    assert patched.status == 200
    body = await patched.json()
    assert body["prompt"] == "New prompt" and body["max_concurrency"] == 2
    assert body["llm"] == {"provider": "openai", "model": "m", "base_url": None, "api_key_env": None}
    assert body["updated_at"] >= body["created_at"]

    deleted = await hookd.client.delete(f"/api/agents/{first['id']}", headers=hookd.admin)
    assert deleted.status == 200
    assert (await deleted.json())["deleted"] is True
    gone = await hookd.client.get(f"/api/agents/{first['id']}", headers=hookd.admin)
    assert gone.status == 404
    webhook = await hookd.client.post(first["webhook_path"], json={})
    assert webhook.status == 404


@pytest.mark.parametrize("agent_id", ["00000000-0000-7000-8000-000000000000", "not-an-id", "1 OR 1=1"])
async def test_unknown_agent_is_404(hookd: Hookd, agent_id: str) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = await hookd.client.request(method, f"/api/agents/{agent_id}", headers=hookd.admin, json={})
        assert response.status == 404, method
    rotate = await hookd.client.post(f"/api/agents/{agent_id}/webhook", headers=hookd.admin)
    assert rotate.status == 404


async def test_deleting_an_agent_cancels_its_unfinished_tasks(hookd: Hookd, fake_llm: Any) -> None:
    agent = await hookd.create_agent(llm={"model": "mode=hang"})
    task_id = await hookd.trigger(agent, {"question": "forever"})
    await hookd.wait_for(task_id, ("STARTED",))
    deleted = await hookd.client.delete(f"/api/agents/{agent['id']}", headers=hookd.admin)
    assert (await deleted.json())["cancelled_tasks"] == 1
    status = await hookd.status(task_id)  # the result stays readable after the agent is gone
    assert status["status"] == "FAILURE" and status["result"]["type"] == "cancelled"
    assert status["agent_id"] is None


async def test_task_listing_filters_and_orders(hookd: Hookd) -> None:
    slow = await hookd.create_agent(llm={"model": "mode=hang"})
    quick = await hookd.create_agent()
    done = [await hookd.trigger(quick, {"n": i}) for i in range(3)]
    for task_id in done:
        await hookd.wait_for(task_id)
    hanging = await hookd.trigger(slow, {"n": "slow"})
    await hookd.wait_for(hanging, ("STARTED",))

    async def listed(**params: str) -> list[str]:
        response = await hookd.client.get("/api/tasks", params=params, headers=hookd.admin)
        assert response.status == 200
        return [t["id"] for t in (await response.json())["tasks"]]

    assert await listed() == [hanging, *reversed(done)]
    assert await listed(agent_id=quick["id"]) == list(reversed(done))
    assert await listed(status="STARTED") == [hanging]
    assert await listed(status="success,started") == [hanging, *reversed(done)]
    assert await listed(limit="2") == [hanging, done[2]]
    assert await listed(limit="2", before=done[2]) == [done[1], done[0]]

    for params in ({"status": "DONE"}, {"limit": "0"}, {"limit": "x"}, {"agent_id": "x"}, {"before": "x"}):
        response = await hookd.client.get("/api/tasks", params=params, headers=hookd.admin)
        assert response.status == 400, params
        assert (await response.json())["success"] is False


async def test_task_detail_includes_payload(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent, {"question": "détail", "n": 1})
    await hookd.wait_for(task_id)
    response = await hookd.client.get(f"/api/tasks/{task_id}", headers=hookd.admin)
    task = await response.json()
    assert task["payload"] == {"question": "détail", "n": 1}
    assert task["status"] == "SUCCESS" and task["id"] == task_id
    missing = await hookd.client.get(f"/api/tasks/{uuid.uuid4()}", headers=hookd.admin)
    assert missing.status == 404


async def running_count(hookd: Hookd, expected: int) -> None:
    """Wait (bounded) until /api/health reports `expected` runs in flight."""
    for _ in range(500):
        health = await (await hookd.client.get("/api/health")).json()
        if health["running"] == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"running stayed {health['running']}, expected {expected}")


async def test_cancel_pending_running_and_finished(hookd: Hookd, fake_llm: Any) -> None:
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, max_concurrency=1)
    running = await hookd.trigger(agent, {"question": "runs"})
    queued = await hookd.trigger(agent, {"question": "queued behind"})
    await hookd.wait_for(running, ("STARTED",))
    assert (await hookd.status(queued))["status"] == "PENDING"

    cancelled = await hookd.client.post(f"/api/tasks/{queued}/cancel", headers=hookd.admin)
    assert cancelled.status == 200
    assert (await cancelled.json())["status"] == "FAILURE"
    interrupted = await hookd.client.post(f"/api/tasks/{running}/cancel", headers=hookd.admin)
    assert interrupted.status == 200
    for task_id in (queued, running):
        status = await hookd.status(task_id)
        assert status["status"] == "FAILURE"
        assert status["result"] == {"error": "The task was cancelled.", "type": "cancelled"}
    await running_count(hookd, 0)  # the interrupted run gave its worker back
    again = await hookd.client.post(f"/api/tasks/{running}/cancel", headers=hookd.admin)
    assert again.status == 409
    assert "already finished" in (await again.json())["message"]
    assert len(fake_llm.calls_for("mode=hang")) == 1  # the queued one never reached the model
    missing = await hookd.client.post(f"/api/tasks/{uuid.uuid4()}/cancel", headers=hookd.admin)
    assert missing.status == 404


async def test_health_reports_queue_depth_and_running(hookd: Hookd) -> None:
    empty = await (await hookd.client.get("/api/health")).json()
    assert empty == {"status": "ok", "queue_depth": 0, "running": 0, "workers": 8}
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, max_concurrency=1)
    first = await hookd.trigger(agent)
    for _ in range(2):
        await hookd.trigger(agent)
    await hookd.wait_for(first, ("STARTED",))
    health = await (await hookd.client.get("/api/health")).json()
    assert health == {"status": "ok", "queue_depth": 2, "running": 1, "workers": 8}
