"""Every error path answers with the one body: {"success": false, "message": "<for a human>"}."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tests.conftest import Hookd

UNKNOWN_ID = "00000000-0000-7000-8000-000000000000"


async def error_cases(hookd: Hookd) -> list[tuple[str, str, dict[str, Any], int]]:
    agent = await hookd.create_agent()
    paused = await hookd.create_agent(status="paused")
    signed = await hookd.create_agent(signature={"type": "github", "secret": "s3cret"})
    admin = {"headers": hookd.admin}
    return [
        (
            "POST",
            agent["webhook_path"],
            {"data": b"{oops", "headers": {"Content-Type": "application/json"}},
            400,
        ),
        ("POST", agent["webhook_path"], {"data": b"[]"}, 400),
        ("POST", "/api/webhooks/agents/nope", {"json": {}}, 404),
        ("POST", paused["webhook_path"], {"json": {}}, 409),
        ("POST", signed["webhook_path"], {"json": {}}, 401),
        ("POST", agent["webhook_path"], {"json": {}, "headers": {"Idempotency-Key": "k" * 300}}, 400),
        ("POST", agent["webhook_path"], {"data": b"x" * (2 * 1024 * 1024)}, 413),
        ("PUT", agent["webhook_path"], {}, 405),
        ("GET", "/api/task_status", {}, 400),
        ("GET", "/api/task_status?task_id=" + UNKNOWN_ID, {}, 404),
        ("GET", "/api/agents", {}, 401),
        ("POST", "/api/agents", {"json": {"name": 1}, **admin}, 400),
        ("POST", "/api/agents", {"json": {"name": agent["name"]}, **admin}, 409),
        ("GET", f"/api/agents/{UNKNOWN_ID}", admin, 404),
        ("GET", "/api/tasks?limit=-1", admin, 400),
        ("POST", f"/api/tasks/{UNKNOWN_ID}/cancel", admin, 404),
        ("GET", "/no/such/route", {}, 404),
        ("DELETE", "/api/health", {}, 405),
    ]


async def test_every_error_has_the_same_shape(hookd: Hookd) -> None:
    for method, path, kwargs, status in await error_cases(hookd):
        if isinstance(kwargs.get("data"), bytes) and len(kwargs["data"]) > 1024 * 1024:
            kwargs = kwargs | {"data": io.BytesIO(kwargs["data"])}
        response = await hookd.client.request(method, path, **kwargs)
        assert response.status == status, (method, path, await response.text())
        assert response.content_type == "application/json", (method, path)
        body = json.loads(await response.text())
        assert set(body) == {"success", "message"}, (method, path, body)
        assert body["success"] is False
        assert isinstance(body["message"], str) and len(body["message"]) > 10, (method, path, body)
    assert hookd.count_rows() == 0


async def test_a_reused_idempotency_key_is_422_with_the_same_shape(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    key = {"Idempotency-Key": "k"}
    assert (await hookd.client.post(agent["webhook_path"], json={"n": 1}, headers=key)).status == 200
    response = await hookd.client.post(agent["webhook_path"], json={"n": 2}, headers=key)
    assert response.status == 422
    body = await response.json()
    assert set(body) == {"success", "message"} and body["success"] is False
    assert hookd.count_rows() == 1


async def test_405_says_what_is_allowed(hookd: Hookd) -> None:
    response = await hookd.client.put("/api/task_status")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]
    assert "use GET" in (await response.json())["message"]


@pytest.mark.parametrize("path", ["/api/webhooks/agents/abc/def", "/api/webhooks/agents/"])
async def test_near_miss_webhook_paths_are_404(hookd: Hookd, path: str) -> None:
    response = await hookd.client.post(path, json={})
    assert response.status == 404
    assert (await response.json())["success"] is False
