"""Logs: one line per task transition with its fields, as text or as JSON lines, and never a
token or a key in any line.

The line shapes are checked in-process (caplog); the whole output of a real `python
server.py` — every line, access log included — in both formats, in a subprocess, also
after requests so malformed that aiohttp quotes their raw bytes in its tracebacks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from logs import TEXT_FORMAT, JsonFormatter, Redactor, keep_out_of_logs, redact
from tests.conftest import ADMIN_KEY, Hookd
from tests.fake_llm import FakeLLM
from tests.processes import HookdProcesses
from tests.remote import Api, poll, send_raw

TRANSITIONS = "hookd.tasks"
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def transition_records(caplog: pytest.LogCaptureFixture, task_id: str) -> list[logging.LogRecord]:
    """Every hookd line that mentions the task (to catch a second line for one transition)."""
    return [r for r in caplog.records if r.name.startswith("hookd") and task_id in r.getMessage()]


async def logged(caplog: pytest.LogCaptureFixture, task_id: str, count: int) -> list[logging.LogRecord]:
    """The task's lines once there are `count` (a line waits for its agent's name, bounded)."""

    async def probe() -> list[logging.LogRecord]:
        return transition_records(caplog, task_id)

    return await poll(probe, lambda records: len(records) >= count, f"{count} lines for {task_id}")


async def test_one_line_per_transition_with_its_fields(
    hookd: Hookd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    agent = await hookd.create_agent(name="retry once", llm={"model": "fail=1"}, max_attempts=2)
    task_id = await hookd.trigger(agent)
    await hookd.wait_for(task_id)
    records = await logged(caplog, task_id, 5)
    assert {r.name for r in records} == {TRANSITIONS}
    lines = [json.loads(JsonFormatter().format(r)) for r in records]
    assert [(line["status"], line["attempt"]) for line in lines] == [
        ("PENDING", 0),
        ("STARTED", 1),
        ("RETRY", 1),
        ("STARTED", 2),
        ("SUCCESS", 2),
    ]
    pending, started, retry, restarted, success = lines
    assert pending["agent"] is None  # a webhook's event does not know its agent; STARTED does
    for line in lines[1:]:
        assert (line["agent"], line["agent_id"], line["task_id"]) == ("retry once", agent["id"], task_id)
    assert started["queued_s"] >= 0 and started["elapsed_s"] is None
    assert retry["error_type"] == "llm_http_error" and retry["elapsed_s"] >= 0
    assert restarted["queued_s"] >= 0  # waited out the backoff
    assert success["error_type"] is None and success["elapsed_s"] >= 0
    text = [r.getMessage() for r in records]
    assert text[2].startswith(f"task {task_id} RETRY agent='retry once' attempt=1 elapsed_s=")
    assert text[2].endswith(" error_type=llm_http_error")


async def test_a_cancel_is_one_failure_line(hookd: Hookd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    agent = await hookd.create_agent(name="slow", llm={"model": "sleep=30"})
    task_id = await hookd.trigger(agent)
    await hookd.wait_for(task_id, ("STARTED",))
    response = await hookd.client.post(f"/api/tasks/{task_id}/cancel", headers=hookd.admin)
    assert response.status == 200
    records = await logged(caplog, task_id, 3)
    assert [r.getMessage() for r in records][1:] == [
        f"task {task_id} STARTED agent=slow attempt=1 queued_s={records[1].hookd_fields['queued_s']}",
        f"task {task_id} FAILURE agent=slow attempt=1 error_type=cancelled",
    ]


def test_a_json_line_is_one_line_whatever_it_holds() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("hookd", logging.ERROR, __file__, 1, "name %s", ("a\nb\ud800",), None)
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["msg"] == "name a\nb\ud800" and parsed["level"] == "error" and "boom" in parsed["exc"]
    assert ISO_UTC.match(parsed["ts"])


# -- the whole output of a real process ----------------------------------------------------


async def run_and_log(
    tmp_path: Path, fake_llm: FakeLLM, http: aiohttp.ClientSession, log_format: str
) -> dict[str, Any]:
    """Run a success, a failure, refused webhooks and a scrape on a hookd process; stop it; its output."""
    with HookdProcesses(
        tmp_path, llm_base_url=fake_llm.url + "/v1", llm_model="ok", log_format=log_format
    ) as processes:
        process = await asyncio.to_thread(processes.start)
        api = Api(http, process)
        ok = await api.create_agent(name="summarise")
        failing = await api.create_agent(name="fails", llm={"model": "fail=9"}, max_attempts=1)
        success_id = await api.trigger(ok, {"question": "hi"})
        failure_id = await api.trigger(failing, {"question": "hi"})
        await api.wait_all([success_id, failure_id])
        token = ok["webhook_url"].rsplit("/", 1)[1]
        unknown = "B" * 43
        async with http.post(f"{process.url}/api/webhooks/agents/{unknown}", json={}) as response:
            assert response.status == 404
        encoded = "%" + format(ord(token[0]), "02X") + token[1:]  # a percent-encoded token, too
        in_query = "qk-a-key-in-the-query"  # a GET's query string is its payload
        async with http.get(
            f"{process.url}/api/webhooks/agents/{encoded}", params={"question": "again", "api_key": in_query}
        ) as response:
            assert response.status == 200
        async with http.get(f"{process.url}/metrics", headers=process.admin) as response:
            assert response.status == 200
        process.terminate()
        assert await asyncio.to_thread(process.wait_exit, 30) == 0
        return {
            "log": process.log(),
            "secrets": [token, encoded, unknown, ADMIN_KEY, in_query],
            "success_id": success_id,
            "failure_id": failure_id,
        }


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_no_token_or_key_in_any_line(
    tmp_path: Path, fake_llm: FakeLLM, http: aiohttp.ClientSession, log_format: str
) -> None:
    run = await run_and_log(tmp_path, fake_llm, http, log_format)
    for secret in run["secrets"]:
        assert secret not in run["log"]
    assert "/api/webhooks/agents/<token>" in run["log"]
    assert f"task {run['success_id']} SUCCESS agent=summarise attempt=1 elapsed_s=" in run["log"]


async def test_json_lines_carry_the_transitions_and_the_access_log(
    tmp_path: Path, fake_llm: FakeLLM, http: aiohttp.ClientSession
) -> None:
    run = await run_and_log(tmp_path, fake_llm, http, "json")
    lines = [json.loads(line) for line in run["log"].splitlines()]  # every line is a JSON object
    assert lines and all({"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
    assert all(ISO_UTC.match(line["ts"]) and datetime.fromisoformat(line["ts"]) for line in lines)

    def transitions(task_id: str) -> list[dict[str, Any]]:
        return [line for line in lines if line["logger"] == TRANSITIONS and line.get("task_id") == task_id]

    success = transitions(run["success_id"])
    assert [line["status"] for line in success] == ["PENDING", "STARTED", "SUCCESS"]
    assert success[1]["agent"] == success[2]["agent"] == "summarise"
    assert success[1]["queued_s"] >= 0 and success[2]["elapsed_s"] >= 0 and success[2]["attempt"] == 1
    failure = transitions(run["failure_id"])
    assert [line["status"] for line in failure] == ["PENDING", "STARTED", "FAILURE"]
    assert (failure[2]["agent"], failure[2]["error_type"]) == ("fails", "llm_http_error")

    access = [line for line in lines if line["logger"] == "aiohttp.access"]
    refused = [line for line in access if line["status"] == 404]
    assert [(line["method"], line["path"]) for line in refused] == [("POST", "/api/webhooks/agents/<token>")]
    assert any(line["path"] == "/api/webhooks/agents/<token>?<redacted>" for line in access)
    assert any(line["path"].startswith("/api/task_status?task_id=") for line in access)  # only webhooks'
    assert any(line["path"] == "/metrics" and line["status"] == 200 for line in access)
    assert all(line["duration_ms"] >= 0 for line in access)


# -- credentials in requests too broken for hookd to see them --------------------------------

METRICS_KEY = "mk-the-metrics-key-0123456789"
LLM_KEY = "sk-the-model-api-key-0123456789"


def percent_encoded(text: str, upper: bool = True) -> str:
    """Every character percent-encoded, as a client may send any of them."""
    return "".join(f"%{byte:02X}" if upper else f"%{byte:02x}" for byte in text.encode())


def spellings(*secrets: str) -> list[str]:
    return [form for s in secrets for form in (s, percent_encoded(s), percent_encoded(s, upper=False))]


def credential_requests(token: str) -> list[bytes]:
    """Requests that carry a token or a key where hookd's own checks never look at it: each
    is refused by aiohttp's parser (with the C parser), or by hookd (401, or a wrong route)."""
    host = b"Host: hookd\r\n"
    close = b"Connection: close\r\n\r\n"
    hook = f"/api/webhooks/agents/{token}".encode()
    mixed = f"/api/%77ebhooks/agents/%{ord(token[0]):02X}{token[1:]}".encode()
    return [
        b"GET " + hook + b" HTTP/9.9\r\n" + host + close,  # a bad HTTP version
        b"GET " + mixed + b" HTTP/9.9\r\n" + host + close,  # the same, percent-encoded
        b"GET " + hook[:30] + b"\x01" + hook[30:] + b" HTTP/1.1\r\n" + host + close,  # a control byte
        b"GET " + hook + b"?question=" + b"a" * 9000 + b" HTTP/1.1\r\n" + host + close,  # over 8,190 bytes
        b"GET /api/agents HTTP/1.1\r\n"
        + host
        + f"Authorization: Bearer {ADMIN_KEY}\x01\r\n".encode()
        + close,
        b"GET /api/agents HTTP/1.1\r\n"
        + host
        + b"Authorization: Bearer \xff"
        + ADMIN_KEY.encode()
        + b"\r\n"
        + close,
        f"GET /api/agents?key={ADMIN_KEY} HTTP/1.1\r\n".encode() + host + close,
        f"GET /api/agents?authorization={percent_encoded(ADMIN_KEY)}&limit=1 HTTP/1.1\r\n".encode()
        + host
        + close,
        f"GET /metrics?x={percent_encoded(METRICS_KEY, upper=False)} HTTP/1.1\r\n".encode() + host + close,
        f"GET /api/health?{LLM_KEY} HTTP/1.1\r\n".encode() + host + close,
        f"GET /api/agents?k={ADMIN_KEY[:5]}%{ord(ADMIN_KEY[5]):02x}{ADMIN_KEY[6:]} HTTP/9.9\r\n".encode()
        + host
        + close,
    ]


@pytest.mark.parametrize(
    ("log_format", "parser"), [("text", "c"), ("json", "c"), ("text", "python"), ("json", "python")]
)
async def test_no_token_or_key_in_any_line_after_malformed_requests(
    tmp_path: Path, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, log_format: str, parser: str
) -> None:
    if parser == "python":  # aiohttp's pure-Python parser words its errors otherwise
        monkeypatch.setenv("AIOHTTP_NO_EXTENSIONS", "1")
    keys = {"metrics_key": METRICS_KEY, "llm_api_key": LLM_KEY}
    with HookdProcesses(tmp_path, llm_provider="echo", log_format=log_format, **keys) as processes:
        process = await asyncio.to_thread(processes.start)
        token = (await Api(http, process).create_agent())["webhook_url"].rsplit("/", 1)[1]
        for request in credential_requests(token):
            answer = await send_raw(process.port, request)
            assert answer.status in (200, 400, 401, 404), (request[:80], answer)
        process.terminate()
        assert await asyncio.to_thread(process.wait_exit, 30) == 0
    log = process.log()
    for secret in spellings(token, ADMIN_KEY, METRICS_KEY, LLM_KEY):
        assert secret not in log, secret
    assert "Traceback" not in log
    assert "?key=<redacted>" in log and "?authorization=<redacted>&limit=1" in log
    if log_format == "json":
        assert all(json.loads(line) for line in log.splitlines())


async def test_tracebacks_that_quote_a_raw_request_are_redacted(
    hookd: Hookd, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp's own tracebacks, as logged in-process (without configure_logging's shortening),
    through the Redactor and each format: the exception is still there, the credentials not."""
    caplog.set_level(logging.DEBUG)
    keep_out_of_logs(ADMIN_KEY)
    token = (await hookd.create_agent())["webhook_path"].rsplit("/", 1)[1]
    assert hookd.client.port is not None
    for request in credential_requests(token):
        await send_raw(hookd.client.port, request)
    records = [r for r in caplog.records if r.name == "aiohttp.server" and r.exc_info]
    assert len(records) >= 5, [r.getMessage() for r in caplog.records]
    for record in records:
        exception = type(record.exc_info[1]).__name__ if record.exc_info else ""
        assert Redactor().filter(record)
        for formatter in (logging.Formatter(TEXT_FORMAT), JsonFormatter()):
            line = formatter.format(record)
            assert "Traceback" in line and exception in line, line
            for secret in spellings(token, ADMIN_KEY):
                assert secret not in line, (secret, line)


TOKEN = "Xb3dVv0Zq1FvHk2m9Q7cJbW8sLr4tNy6uPa5eKg0iO1"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"/api/webhooks/agents/{TOKEN}", "/api/webhooks/agents/<token>"),
        (f"/API/%57ebhooks%2Fagents/{TOKEN}?q=1", "/API/%57ebhooks%2Fagents/<token>?<redacted>"),
        (
            f"b'GET /api/webhooks/agents/{TOKEN[:9]}\\x01{TOKEN[9:]} HTTP/1.1'",
            "b'GET /api/webhooks/agents/<token> HTTP/1.1'",
        ),
        (f"/api/webhooks/agents/<token>{TOKEN}", "/api/webhooks/agents/<token>"),
        (
            "/api/webhooks/agents/<token>?<redacted>",
            "/api/webhooks/agents/<token>?<redacted>",
        ),  # twice: the same
        (
            f"GET /api/agents?limit=5&api_key={TOKEN} HTTP/1.1",
            "GET /api/agents?limit=5&api_key=<redacted> HTTP/1.1",
        ),
        (f"{{'Authorization': 'Bearer {TOKEN}'}}", "{'Authorization': 'Bearer <redacted>'}"),
        (f"x={percent_encoded(ADMIN_KEY)[:30]}{ADMIN_KEY[10:]}", "x=<redacted>"),
        (
            "task 0197 STARTED agent='basic triage' attempt=1",
            "task 0197 STARTED agent='basic triage' attempt=1",
        ),
        ("GET /api/task_status?task_id=0197 HTTP/1.1", "GET /api/task_status?task_id=0197 HTTP/1.1"),
    ],
)
def test_redact_finds_credentials_however_they_are_spelled(text: str, redacted: str) -> None:
    keep_out_of_logs(ADMIN_KEY)
    assert redact(text) == redacted
