"""The public webhook: DocsGPT-compatible flows, payload forms, every refusal, token secrecy."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sqlite3
import uuid
from pathlib import Path

import pytest
from aiohttp import ClientResponse
from yarl import URL

from tests.conftest import Hookd

DOCSGPT_PAYLOAD = {"question": "What is the status of order 42?", "customer": "Zoë"}


async def test_docsgpt_curl_flow(hookd: Hookd) -> None:
    """curl -X POST -H 'Content-Type: application/json' -d '{...}' URL, then poll task_status."""
    agent = await hookd.create_agent()
    response = await hookd.client.post(
        agent["webhook_path"], data=json.dumps(DOCSGPT_PAYLOAD), headers={"Content-Type": "application/json"}
    )
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"success", "task_id"} and body["success"] is True
    assert uuid.UUID(body["task_id"]).version == 7

    done = await hookd.wait_for(body["task_id"])
    assert done["status"] == "SUCCESS"
    assert done["task_id"] == body["task_id"] and done["agent_id"] == agent["id"]
    assert done["result"]["answer"].startswith("You said: What is the status of order 42?")
    assert done["result"]["model"] == "ok"
    assert done["result"]["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert done["attempts"] == 1
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]


async def test_requests_and_fetch_style_bodies(hookd: Hookd, fake_llm: object) -> None:
    """requests.post(url, json=…) and fetch(url, {body: JSON.stringify(…)}) without a content type."""
    agent = await hookd.create_agent()
    with_json = await hookd.trigger(agent, DOCSGPT_PAYLOAD)
    text_plain = await hookd.client.post(
        agent["webhook_path"],
        data=json.dumps({"question": "as text"}),
        headers={"Content-Type": "text/plain"},
    )
    assert text_plain.status == 200
    assert (await hookd.wait_for(with_json))["status"] == "SUCCESS"
    plain_id = (await text_plain.json())["task_id"]
    assert (await hookd.wait_for(plain_id))["result"]["answer"] == "You said: as text"


async def test_get_with_query_parameters(hookd: Hookd) -> None:
    agent = await hookd.create_agent(prompt="")
    response = await hookd.client.get(agent["webhook_path"], params={"question": "from GET", "n": "5"})
    assert response.status == 200
    task = await hookd.wait_for((await response.json())["task_id"])
    assert task["result"]["answer"] == 'You said: from GET\n\nContext:\n{\n  "n": "5"\n}'


async def test_empty_body_is_an_empty_object(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    response = await hookd.client.post(agent["webhook_path"])
    assert response.status == 200
    task = await hookd.wait_for((await response.json())["task_id"])
    assert task["result"]["answer"] == "You said: {}"


async def test_form_bodies(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    form = await hookd.client.post(agent["webhook_path"], data={"question": "from a form", "tag": "x"})
    assert form.status == 200
    # curl -d '{"question": …}' labels JSON as a form; it is read as the JSON it is.
    curl_d = await hookd.client.post(
        agent["webhook_path"],
        data=b'{"question": "curl -d"}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert curl_d.status == 200
    first = await hookd.wait_for((await form.json())["task_id"])
    second = await hookd.wait_for((await curl_d.json())["task_id"])
    assert first["result"]["answer"].startswith("You said: from a form\n\nContext:")
    assert second["result"]["answer"] == "You said: curl -d"


@pytest.mark.parametrize(
    ("body", "content_type", "message_part"),
    [
        (b"{not json", "application/json", "not valid JSON"),
        (b"[1, 2, 3]", "application/json", "must be a JSON object"),
        (b'"text"', "application/json", "must be a JSON object"),
        (b"\xff\xfe{}", "application/json", "not valid UTF-8"),
        (b'{"a": 1, "a": 2}', "application/json", "twice"),
        (b'{"a": NaN}', "application/json", "NaN"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "levels deep"),
        (b'{"a": "\\ud800"}', "application/json", "surrogate"),
        (b'{"n": ' + b"9" * 5000 + b"}", "application/json", "cannot read"),
    ],
    ids=["broken", "array", "string", "bad-utf8", "duplicate-key", "nan", "deep", "surrogate", "huge-int"],
)
async def test_malformed_bodies_are_400_and_store_nothing(
    hookd: Hookd, body: bytes, content_type: str, message_part: str
) -> None:
    agent = await hookd.create_agent()
    response = await hookd.client.post(
        agent["webhook_path"], data=body, headers={"Content-Type": content_type}
    )
    assert response.status == 400
    error = await response.json()
    assert error["success"] is False and message_part in error["message"]
    assert hookd.count_rows() == 0


async def test_body_over_the_limit_is_413(make_hookd: object) -> None:
    hookd: Hookd = await make_hookd(max_body_bytes=1000)  # type: ignore[operator]
    agent = await hookd.create_agent()
    big = json.dumps({"question": "x" * 2000})
    response = await hookd.client.post(
        agent["webhook_path"], data=big, headers={"Content-Type": "application/json"}
    )
    assert response.status == 413
    assert "1000" in (await response.json())["message"]

    async def chunked() -> object:  # no Content-Length: the limit applies while reading
        for _ in range(4):
            yield b" " * 500

    streamed = await hookd.client.post(agent["webhook_path"], data=chunked())
    assert streamed.status == 413
    assert (await streamed.json())["success"] is False
    assert hookd.count_rows() == 0


async def test_default_body_limit_is_one_mebibyte(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    just_under = json.dumps({"question": "q", "blob": "x" * (1024 * 1024 - 40)})
    assert len(just_under) <= 1024 * 1024
    # BytesIO: aiohttp's client warns about (and tests refuse) large raw bytes bodies.
    accepted = await hookd.client.post(agent["webhook_path"], data=io.BytesIO(just_under.encode()))
    assert accepted.status == 200
    over = json.dumps({"blob": "x" * (1024 * 1024)})
    assert (await hookd.client.post(agent["webhook_path"], data=io.BytesIO(over.encode()))).status == 413
    assert hookd.count_rows() == 1


@pytest.mark.parametrize(
    "token",
    ["unknown", "A" * 43, "..%2F..%2Fapi%2Fagents", "x' OR '1'='1", "%00", "a" * 5000],
    ids=["word", "token-shaped", "traversal", "sql", "nul", "long"],
)
async def test_unknown_token_is_404(hookd: Hookd, token: str) -> None:
    await hookd.create_agent()
    response = await hookd.client.post(f"/api/webhooks/agents/{token}", json={"question": "hi"})
    assert response.status == 404
    body = await response.json()
    assert body["success"] is False and "No agent has this webhook token" in body["message"]
    assert token not in body["message"]
    assert hookd.count_rows() == 0


async def test_rotated_token_stops_working_at_once(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    rotated = await hookd.client.post(f"/api/agents/{agent['id']}/webhook", headers=hookd.admin)
    assert rotated.status == 200
    new_url = (await rotated.json())["webhook_url"]
    assert new_url != agent["webhook_url"]
    old = await hookd.client.post(agent["webhook_path"], json={})
    assert old.status == 404
    new = await hookd.client.post(new_url.split(str(hookd.client.make_url("")).rstrip("/"))[1], json={})
    assert new.status == 200
    assert hookd.count_rows() == 1


async def test_paused_agent_is_409(hookd: Hookd) -> None:
    agent = await hookd.create_agent(status="paused")
    response = await hookd.client.post(agent["webhook_path"], json={"question": "hi"})
    assert response.status == 409
    assert "paused" in (await response.json())["message"]
    assert hookd.count_rows() == 0


async def test_token_is_stored_only_as_its_hash(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    token = agent["webhook_path"].rsplit("/", 1)[1]
    assert len(token) == 43
    await hookd.trigger(agent, {"question": "hi"})
    with sqlite3.connect(hookd.settings.db) as conn:
        (stored,) = conn.execute("SELECT token_sha256 FROM agents").fetchone()
    assert stored == hashlib.sha256(token.encode()).digest()
    for path in Path(hookd.settings.db).parent.glob("hookd.db*"):
        assert token.encode() not in path.read_bytes(), path
    for response in [
        await hookd.client.get("/api/agents", headers=hookd.admin),
        await hookd.client.get(f"/api/agents/{agent['id']}", headers=hookd.admin),
    ]:
        assert token not in await response.text()


async def test_token_never_reaches_the_logs(hookd: Hookd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    agent = await hookd.create_agent()
    token = agent["webhook_path"].rsplit("/", 1)[1]
    task_id = await hookd.trigger(agent, {"question": "hi"})
    await hookd.wait_for(task_id)
    await hookd.client.post(agent["webhook_path"] + "/extra", json={})  # 404 for a route
    await hookd.client.post(agent["webhook_path"], data=b"{bad")
    # aiohttp routes on the decoded path: a percent-encoded route must be redacted too.
    encoded = URL(str(hookd.client.make_url("/api/%77ebhooks/agents/" + token)), encoded=True)
    assert (await hookd.client.session.post(encoded, json={})).status == 200
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/api/webhooks/agents/<token>" in logged
    assert token not in logged
    assert hookd.settings.admin_key not in logged


async def test_an_unknown_token_is_refused_before_its_body_is_read(hookd: Hookd) -> None:
    """404 even for a body that would be 400 or 413: hookd does not read it for nobody."""
    await hookd.create_agent()
    unknown = "/api/webhooks/agents/" + "A" * 43
    for body in (b"{broken", io.BytesIO(b"x" * (2 * 1024 * 1024))):
        response = await hookd.client.post(unknown, data=body, headers={"Content-Type": "application/json"})
        assert response.status == 404
    assert hookd.count_rows() == 0


def allowed(response: ClientResponse) -> set[str]:
    return {method.strip() for method in response.headers["Allow"].split(",")}


async def test_head_is_405_and_runs_nothing(hookd: Hookd) -> None:
    """Link previewers and uptime checkers send HEAD: it must not run the agent."""
    agent = await hookd.create_agent()
    for query in ({}, {"question": "hi"}):
        response = await hookd.client.head(agent["webhook_path"], params=query)
        assert response.status == 405
        assert allowed(response) == {"GET", "POST"}
        assert response.content_type == "application/json"
    unknown = await hookd.client.head("/api/webhooks/agents/" + "A" * 43)
    assert unknown.status == 405 and allowed(unknown) == {"GET", "POST"}
    assert hookd.count_rows() == 0
    assert (await hookd.client.get(agent["webhook_path"], params={"question": "hi"})).status == 200
    assert hookd.count_rows() == 1
