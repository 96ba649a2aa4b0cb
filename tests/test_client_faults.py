"""A client's own faults are its 4xx, with hookd as a real process on raw loopback sockets: a
client that leaves halfway through its body (499, nginx's "client closed request"), a body
that is not the gzip it says (400, and the connection closed), requests aiohttp cannot even
parse (400, one short line in the log however many there are). None of them is a 5xx in the
metrics, and none an ERROR or a traceback in the log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.processes import HookdProcess, HookdProcesses
from tests.remote import Api, read_response, send_raw, wait_until

WEBHOOK_ROUTE = "/api/webhooks/agents/{token}"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[HookdProcesses]:
    with HookdProcesses(tmp_path, llm_provider="echo") as started:
        yield started


async def start_with_agent(
    processes: HookdProcesses, http: aiohttp.ClientSession
) -> tuple[HookdProcess, str]:
    """A hookd process and its one agent's webhook path."""
    hookd = await asyncio.to_thread(processes.start)
    agent = await Api(http, hookd).create_agent()
    return hookd, urlsplit(agent["webhook_url"]).path


async def webhook_counts(http: aiohttp.ClientSession, hookd: HookdProcess) -> dict[str, float]:
    """POSTs to the webhook route so far, by status class, from hookd_http_request_duration_seconds."""
    async with http.get(hookd.url + "/metrics", headers=hookd.admin) as response:
        text = await response.text()
    counts = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "hookd_http_request_duration_seconds_count" and (
                labels["route"],
                labels["method"],
            ) == (WEBHOOK_ROUTE, "POST"):
                counts[labels["status_class"]] = sample.value
    return counts


def assert_quiet(log: str) -> None:
    """Nothing in the log says hookd failed: no ERROR line, no traceback."""
    assert " ERROR " not in log and "Traceback" not in log, log


async def test_a_client_that_leaves_midway_through_its_body_is_a_499_not_a_500(
    processes: HookdProcesses, http: aiohttp.ClientSession
) -> None:
    hookd, path = await start_with_agent(processes, http)
    reader, writer = await asyncio.open_connection("127.0.0.1", hookd.port)
    body = json.dumps({"question": "x" * 200}).encode()
    # Expect: 100-continue (as curl sends for a larger body): the answer says the request
    # has reached its handler, which is reading the body when the client goes.
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: hookd\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode()
    )
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(body[: len(body) // 2])
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    await wait_until(
        lambda: '"POST /api/webhooks/agents/<token> HTTP/1.1" 499' in hookd.log(), "a 499 logged"
    )
    assert await webhook_counts(http, hookd) == {"4xx": 1}
    assert (await Api(http, hookd).health())["queue_depth"] == 0  # nothing was stored
    assert_quiet(hookd.log())


async def test_a_body_that_is_not_the_gzip_it_says_is_a_400_and_closes_the_connection(
    processes: HookdProcesses, http: aiohttp.ClientSession
) -> None:
    hookd, path = await start_with_agent(processes, http)
    body = b'{"question": "not gzip at all"}'
    answer = await send_raw(
        hookd.port,
        f"POST {path} HTTP/1.1\r\nHost: hookd\r\nContent-Type: application/json\r\n"
        f"Content-Encoding: gzip\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body,
    )
    assert answer.status == 400
    assert "Content-Encoding" in json.loads(answer.body)["message"]
    # aiohttp's parser stopped at the bad bytes: this connection could not answer another request.
    assert answer.headers.get("connection") == "close" and answer.closed
    assert await webhook_counts(http, hookd) == {"4xx": 1}
    assert_quiet(hookd.log())

    # The next request, on its own connection, is served as usual.
    reader, writer = await asyncio.open_connection("127.0.0.1", hookd.port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: hookd\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    assert (await read_response(reader)).status == 200
    writer.close()


MALFORMED = [
    b"GET /api/health HTTP/9.9\r\nHost: hookd\r\n\r\n",  # a bad HTTP version
    b"GET /api/he\x01alth HTTP/1.1\r\nHost: hookd\r\n\r\n",  # a control byte in the path
    b"GET /api/health?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: hookd\r\n\r\n",  # a URL over 8,190 bytes
    b"GET /api/health HTTP/1.1\r\nHost: hookd\r\nAuthorization: Bearer \x01\r\n\r\n",  # a bad header
]


async def test_requests_aiohttp_cannot_parse_are_400s_and_one_short_log_line(
    processes: HookdProcesses,
) -> None:
    hookd = await asyncio.to_thread(processes.start)
    for _ in range(5):
        for request in MALFORMED:
            answer = await send_raw(hookd.port, request)
            assert answer.status == 400 and answer.closed
    await wait_until(
        lambda: hookd.log().count('"UNKNOWN / HTTP/1.0" 400') == 20, "an access log line for each"
    )
    log = hookd.log()
    assert_quiet(log)
    # At most one line a QUIET_INTERVAL_S (10 s) says why, without the bytes.
    (line,) = [line for line in log.splitlines() if "Error handling request" in line]
    assert line.endswith(": refused with 400, BadStatusLine: Bad status line: Invalid HTTP version"), line
    assert " INFO aiohttp.server: " in line
