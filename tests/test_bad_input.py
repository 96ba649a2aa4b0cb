"""Bad input: each malformed request gets a clear 4xx (or a closed connection where HTTP
cannot answer), stores nothing, and hookd goes on serving.

Requests an HTTP client can send go through the `hookd` fixture's client; malformed HTTP
goes over a raw socket to the same loopback server. The body cases in test_webhook.py
(broken JSON, arrays, bad UTF-8, duplicate keys, NaN, deep arrays, surrogates, huge ints,
the 1 MiB limit, odd tokens) are not repeated here.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import pytest

from tests.conftest import Hookd

UNKNOWN_ID = "00000000-0000-7000-8000-000000000000"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MIB = 1024 * 1024


async def assert_nothing_stored_and_up(hookd: Hookd, *, tasks: int = 0, agents: int | None = None) -> None:
    assert hookd.count_rows("tasks") == tasks
    if agents is not None:
        assert hookd.count_rows("agents") == agents
    health = await hookd.client.get("/api/health")
    assert health.status == 200


async def assert_refusal(response: Any, status: int) -> None:
    """The status, with hookd's one error body."""
    text = await response.text()
    assert response.status == status, text
    body = json.loads(text)
    assert body["success"] is False and isinstance(body["message"], str), body


def multipart(*parts: bytes, boundary: bytes = b"b0undary") -> bytes:
    return (
        b"".join(b"--" + boundary + b"\r\n" + part + b"\r\n" for part in parts) + b"--" + boundary + b"--\r\n"
    )


MULTIPART = "multipart/form-data; boundary=b0undary"


# -- webhook bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        pytest.param(b"q=%ff%fe", {"Content-Type": FORM}, 400, id="form-percent-bad-utf8"),
        pytest.param(b"q=caf\xe9", {"Content-Type": FORM}, 400, id="form-raw-bad-utf8"),
        pytest.param(b'{"q": "caf\xe9"}', {"Content-Type": JSON + "; charset=latin-1"}, 400, id="latin-1"),
        pytest.param('{"q": 1}'.encode("utf-16"), {"Content-Type": JSON}, 400, id="utf-16"),
        pytest.param(b"\xef\xbb\xbf", {"Content-Type": JSON}, 400, id="bom-only"),
        pytest.param(b'{"q": "a\x00b"}', {"Content-Type": JSON}, 400, id="raw-nul-in-json-string"),
        pytest.param(b"\x00", {"Content-Type": JSON}, 400, id="nul-body"),
        pytest.param(
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000, {"Content-Type": JSON}, 400, id="deep-objects"
        ),
        pytest.param(
            b'{"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", {"Content-Type": JSON}, 400, id="deep-in-object"
        ),
        pytest.param(b'{"a": {"b": 1, "b": 2}}', {"Content-Type": JSON}, 400, id="nested-duplicate-key"),
        pytest.param(b'{"a": -Infinity}', {"Content-Type": JSON}, 400, id="minus-infinity"),
        pytest.param(b"<q>hi</q>", {"Content-Type": "application/xml"}, 400, id="xml"),
        pytest.param(b'{"q": ', {"Content-Type": FORM}, 400, id="json-as-form-broken"),
        pytest.param(
            b'{"n": 1e400}',
            {"Content-Type": JSON},
            400,
            id="float-overflow",
        ),
        pytest.param(
            b'{"n": -1e400}',
            {"Content-Type": JSON},
            400,
            id="negative-float-overflow",
        ),
        pytest.param(
            b"not gzip",
            {"Content-Type": JSON, "Content-Encoding": "gzip"},
            400,
            id="content-encoding-garbage",
        ),
        pytest.param(
            multipart(b'Content-Disposition: form-data; name="f"; filename="a.txt"\r\n\r\nhi'),
            {"Content-Type": MULTIPART},
            400,
            id="multipart-file",
        ),
    ],
)
async def test_bad_webhook_bodies(hookd: Hookd, body: bytes, headers: dict[str, str], status: int) -> None:
    agent = await hookd.create_agent()
    response = await hookd.client.post(agent["webhook_path"], data=body, headers=headers)
    await assert_refusal(response, status)
    await assert_nothing_stored_and_up(hookd)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"garbage", MULTIPART, id="no-starting-boundary"),
        pytest.param(b"garbage", "multipart/form-data", id="no-boundary-parameter"),
        pytest.param(
            b'--b0undary\r\nContent-Disposition: form-data; name="a"\r\n\r\ncut sh', MULTIPART, id="truncated"
        ),
        pytest.param(
            multipart(b'Content-Disposition: form-data; name="a"\r\n\r\n\xff\xfe'),
            MULTIPART,
            id="bad-utf8-value",
        ),
        pytest.param(
            multipart(b'Content-Disposition: form-data; name="\x16"\r\n\r\nv'),
            MULTIPART,
            id="control-char-name",
        ),
        pytest.param(
            multipart(
                b'Content-Disposition: form-data; name="a"\r\nContent-Type: text/plain; charset=nope\r\n\r\nv'
            ),
            MULTIPART,
            id="unknown-charset",
        ),
    ],
)
async def test_malformed_multipart_is_400(hookd: Hookd, body: bytes, content_type: str) -> None:
    agent = await hookd.create_agent()
    response = await hookd.client.post(
        agent["webhook_path"], data=body, headers={"Content-Type": content_type}
    )
    await assert_refusal(response, 400)
    await assert_nothing_stored_and_up(hookd)


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b"q=" + b"x" * MIB, FORM, id="form"),
        pytest.param(
            multipart(b'Content-Disposition: form-data; name="q"\r\n\r\n' + b"x" * MIB),
            MULTIPART,
            id="multipart",
        ),
    ],
)
async def test_over_the_limit_form_bodies_are_413(hookd: Hookd, body: bytes, content_type: str) -> None:
    agent = await hookd.create_agent()
    response = await hookd.client.post(
        agent["webhook_path"], data=io.BytesIO(body), headers={"Content-Type": content_type}
    )
    await assert_refusal(response, 413)
    await assert_nothing_stored_and_up(hookd)


@pytest.mark.parametrize(
    ("payload", "stored"),
    [
        pytest.param(b'{"q": "a\\u0000b"}', {"q": "a\x00b"}, id="json-escaped-nul"),
        pytest.param(
            b'{"n": 1e308, "i": ' + b"9" * 4000 + b"}", {"n": 1e308, "i": int("9" * 4000)}, id="big-numbers"
        ),
    ],
)
async def test_valid_json_edge_values_are_stored_faithfully(
    hookd: Hookd, payload: bytes, stored: dict[str, Any]
) -> None:
    """Not bad input: valid JSON that an SQLite C string or a float could mangle, kept intact."""
    agent = await hookd.create_agent()
    response = await hookd.client.post(agent["webhook_path"], data=payload, headers={"Content-Type": JSON})
    assert response.status == 200, await response.text()
    task_id = (await response.json())["task_id"]
    task = await hookd.client.get(f"/api/tasks/{task_id}", headers=hookd.admin)
    assert (await task.json())["payload"] == stored


async def test_nul_in_a_query_value_is_stored_intact(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    response = await hookd.client.get(agent["webhook_path"] + "?q=a%00b")
    assert response.status == 200
    task = await hookd.client.get(f"/api/tasks/{(await response.json())['task_id']}", headers=hookd.admin)
    assert (await task.json())["payload"] == {"q": "a\x00b"}


async def test_bad_utf8_in_a_webhook_query_is_400(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    response = await hookd.client.get(agent["webhook_path"] + "?q=Zo%EB")
    await assert_refusal(response, 400)
    await assert_nothing_stored_and_up(hookd)


# -- admin bodies ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        pytest.param(b'{"name": "caf\xe9"}', {"Content-Type": JSON}, 400, id="bad-utf8"),
        pytest.param(b"name=x", {"Content-Type": FORM}, 400, id="form"),
        pytest.param(
            multipart(b'Content-Disposition: form-data; name="name"\r\n\r\nx'),
            {"Content-Type": MULTIPART},
            400,
            id="multipart",
        ),
        pytest.param(b'{"name": "a", "name": "b"}', {"Content-Type": JSON}, 400, id="duplicate-key"),
        pytest.param(b'{"name": "a\x00"}', {"Content-Type": JSON}, 400, id="raw-nul"),
        pytest.param(b'{"name": "d", "llm": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", {}, 400, id="deep"),
        pytest.param(
            json.dumps({"name": "big", "prompt": "x" * (MIB - 100)}).encode(), {}, 400, id="1MB-prompt"
        ),
        pytest.param(json.dumps({"name": "big", "prompt": "x" * MIB}).encode(), {}, 413, id="over-1MiB"),
        pytest.param(b'{"name": "n", "max_attempts": 1' + b"0" * 400 + b"}", {}, 400, id="huge-max-attempts"),
        pytest.param(
            b'{"name": "n", "max_concurrency": -1' + b"0" * 400 + b"}", {}, 400, id="huge-concurrency"
        ),
        pytest.param(b'{"name": "n", "timeout_s": 1e400}', {}, 400, id="timeout-overflow"),
        pytest.param(
            b'{"name": "n", "timeout_s": 1' + b"0" * 400 + b"}",
            {},
            400,
            id="huge-timeout",
        ),
        pytest.param(b'{"name": "\\ud800"}', {}, 400, id="surrogate-name"),
        pytest.param(b'{"name": "s", "prompt": "\\udfff"}', {}, 400, id="surrogate-prompt"),
        pytest.param(
            b'{"name": "u", "llm": {"base_url": "http://["}}',
            {},
            400,
            id="base-url-bad-ipv6",
        ),
    ],
)
async def test_bad_agent_bodies(hookd: Hookd, body: bytes, headers: dict[str, str], status: int) -> None:
    response = await hookd.client.post(
        "/api/agents", data=io.BytesIO(body), headers=hookd.admin | {"Content-Type": JSON} | headers
    )
    await assert_refusal(response, status)
    await assert_nothing_stored_and_up(hookd, agents=0)


async def test_surrogate_in_an_agent_update_is_400(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    response = await hookd.client.patch(
        f"/api/agents/{agent['id']}", data=b'{"description": "\\ud800"}', headers=hookd.admin
    )
    await assert_refusal(response, 400)
    await assert_nothing_stored_and_up(hookd, agents=1)


async def test_blank_rate_limit_is_no_limit(hookd: Hookd) -> None:
    agent = await hookd.create_agent(rate_limit="  ")
    assert agent["rate_limit"] is None
    response = await hookd.client.post(agent["webhook_path"], json={})
    assert response.status == 200


# -- ids and query values ----------------------------------------------------------------

# Already percent-encoded, as they travel.
ODD_IDS = {
    "traversal": "..%2F..%2Fetc%2Fpasswd",
    "dot-dot": "%2E%2E",
    "sql-or": "'%20OR%20'1'%3D'1",
    "sql-drop": "1%3B%20DROP%20TABLE%20tasks%3B%20--",
    "nul": "%00",
    "nul-in-uuid": UNKNOWN_ID[:8] + "%00" + UNKNOWN_ID[9:],
    "bad-utf8": "%FF%FE",
    "long": "7" * 4000,
}


@pytest.mark.parametrize("value", ODD_IDS.values(), ids=ODD_IDS.keys())
async def test_odd_ids_are_404_or_400(hookd: Hookd, value: str) -> None:
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent)
    expected = [
        ("GET", f"/api/task_status?task_id={value}", 404),
        ("GET", f"/api/tasks/{value}", 404),
        ("POST", f"/api/tasks/{value}/cancel", 404),
        ("GET", f"/api/agents/{value}", 404),
        ("PATCH", f"/api/agents/{value}", 404),
        ("DELETE", f"/api/agents/{value}", 404),
        ("POST", f"/api/agents/{value}/webhook", 404),
        ("GET", f"/api/tasks?agent_id={value}", 400),
        ("GET", f"/api/tasks?before={value}", 400),
        ("GET", f"/api/tasks?status={value}", 400),
        ("GET", f"/api/tasks?limit={value}", 400),
    ]
    for method, path, status in expected:
        response = await hookd.client.request(method, path, headers=hookd.admin, json={"status": "paused"})
        assert response.status == status, (method, path, await response.text())
        assert (await response.json())["success"] is False
    await assert_nothing_stored_and_up(hookd, tasks=1, agents=1)
    assert (await hookd.status(task_id))["task_id"] == task_id  # the table is still there


@pytest.mark.parametrize(
    "limit",
    [
        pytest.param("%C2%B2", id="superscript-two"),  # '²'.isdigit() is True, int('²') fails
        pytest.param("9" * 5000, id="5000-digits"),  # int() refuses more than 4300 digits
    ],
)
async def test_odd_list_limits_are_400(hookd: Hookd, limit: str) -> None:
    response = await hookd.client.get(f"/api/tasks?limit={limit}", headers=hookd.admin)
    await assert_refusal(response, 400)
    await assert_nothing_stored_and_up(hookd)


# -- malformed HTTP, over a raw socket ---------------------------------------------------


async def raw_exchange(hookd: Hookd, request: bytes, *, close_after_send: bool = False) -> bytes:
    """Send raw bytes; the answer's first bytes, or b'' if hookd closed without one."""
    server = hookd.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        if close_after_send:
            writer.write_eof()
        async with asyncio.timeout(5):
            return await reader.read(200)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def status_of(answer: bytes) -> int | None:
    """The status code of an HTTP answer, or None for a closed connection."""
    if not answer:
        return None
    assert answer.startswith(b"HTTP/1."), answer
    return int(answer.split(b" ", 2)[1])


def request_bytes(path: str, *headers: bytes, body: bytes = b"", method: bytes = b"POST") -> bytes:
    head = method + b" " + path.encode() + b" HTTP/1.1\r\nHost: hookd\r\nConnection: close\r\n"
    return head + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body


RAW_REQUESTS = {
    "nul-in-path": lambda p: request_bytes(p + "\x00", b"Content-Length: 2", body=b"{}"),
    "nul-in-header": lambda p: request_bytes(p, b"X-Note: a\x00b", b"Content-Length: 2", body=b"{}"),
    "nul-in-auth": lambda p: request_bytes("/api/agents", b"Authorization: Bearer \x00", method=b"GET"),
    "64KB-header": lambda p: request_bytes(p, b"X-Big: " + b"a" * 65_536, b"Content-Length: 2", body=b"{}"),
    "64KB-of-headers": lambda p: request_bytes(
        p, *(b"X-H%d: %s" % (i, b"a" * 500) for i in range(130)), b"Content-Length: 2", body=b"{}"
    ),
    "1MB-query": lambda p: request_bytes(p + "?q=" + "a" * MIB, method=b"GET"),
    "1MB-token": lambda p: request_bytes(
        "/api/webhooks/agents/" + "a" * MIB, b"Content-Length: 2", body=b"{}"
    ),
    "length-and-chunked": lambda p: request_bytes(
        p, b"Content-Length: 7", b"Transfer-Encoding: chunked", body=b"2\r\n{}\r\n0\r\n\r\n"
    ),
    "length-not-a-number": lambda p: request_bytes(p, b"Content-Length: 2x", body=b"{}"),
    "length-negative": lambda p: request_bytes(p, b"Content-Length: -2", body=b"{}"),
    "length-twice": lambda p: request_bytes(p, b"Content-Length: 2", b"Content-Length: 3", body=b"{}"),
    "chunk-size-not-hex": lambda p: request_bytes(
        p, b"Transfer-Encoding: chunked", body=b"zz\r\n{}\r\n0\r\n\r\n"
    ),
    "chunk-size-overflow": lambda p: request_bytes(
        p, b"Transfer-Encoding: chunked", body=b"f" * 20 + b"\r\n{}\r\n0\r\n\r\n"
    ),
    "transfer-encoding-gzip": lambda p: request_bytes(p, b"Transfer-Encoding: gzip", body=b"{}"),
    "control-char-in-method": lambda p: request_bytes(p, method=b"PO\x01ST"),
    "http2-preface": lambda p: b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "not-http": lambda p: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS hello
}


@pytest.mark.parametrize("name", RAW_REQUESTS)
async def test_malformed_http_is_400_or_closed(hookd: Hookd, name: str) -> None:
    agent = await hookd.create_agent()
    answer = await raw_exchange(hookd, RAW_REQUESTS[name](agent["webhook_path"]))
    status = status_of(answer)
    assert status is None or 400 <= status < 500, answer
    await assert_nothing_stored_and_up(hookd, agents=1)


async def test_bad_utf8_in_the_auth_header_is_401(hookd: Hookd) -> None:
    answer = await raw_exchange(
        hookd, request_bytes("/api/agents", b"Authorization: Bearer \xff\xfe", method=b"GET")
    )
    assert status_of(answer) == 401, answer
    await assert_nothing_stored_and_up(hookd)


@pytest.mark.parametrize(
    ("headers", "partial_body"),
    [
        pytest.param(b"Transfer-Encoding: chunked", b'10\r\n{"quest', id="chunked-stops-midway"),
        pytest.param(b"Transfer-Encoding: chunked", b"2\r\n{}\r\n", id="chunked-no-last-chunk"),
        pytest.param(b"Content-Length: 100", b'{"question": "hi"}', id="shorter-than-its-length"),
    ],
)
async def test_a_body_cut_off_by_a_closed_connection_stores_nothing(
    hookd: Hookd, headers: bytes, partial_body: bytes
) -> None:
    agent = await hookd.create_agent()
    request = request_bytes(
        agent["webhook_path"], headers, b"Content-Type: application/json", body=partial_body
    )
    answer = await raw_exchange(hookd, request, close_after_send=True)
    status = status_of(answer)
    assert status is None or 400 <= status < 500, answer
    await assert_nothing_stored_and_up(hookd, agents=1)


async def test_slow_clients_do_not_hold_up_others(hookd: Hookd) -> None:
    """Slowloris: connections trickling their headers a byte at a time, and one whose chunked
    body stalls midway, while a webhook and /api/health from others are answered at once.

    How long hookd keeps a trickled header is not tested (it takes minutes: aiohttp's
    keep-alive timer cuts it 75 s after connecting under `hookd serve`); a stalled body is cut
    after HOOKD_BODY_TIMEOUT_S, tested below.
    """
    agent = await hookd.create_agent()
    server = hookd.client.server
    head = request_bytes(agent["webhook_path"], b"Content-Type: application/json", b"Content-Length: 2")
    slow = [await asyncio.open_connection(server.host, server.port) for _ in range(20)]
    _, stalled = await asyncio.open_connection(server.host, server.port)
    stalled.write(request_bytes(agent["webhook_path"], b"Transfer-Encoding: chunked", body=b'10\r\n{"quest'))

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for byte in head[:-4]:  # never the blank line that ends the headers
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.005)

    trickling = asyncio.gather(*(trickle(writer) for _, writer in slow))
    started = time.monotonic()
    task_id = await hookd.trigger(agent, {"question": "while others dawdle"})
    assert (await hookd.client.get("/api/health")).status == 200
    assert time.monotonic() - started < 2.0
    assert not trickling.done()  # the slow ones were still sending meanwhile
    await trickling
    assert hookd.count_rows() == 1
    for writer in [stalled, *(writer for _, writer in slow)]:
        writer.close()
    await assert_nothing_stored_and_up(hookd, tasks=1, agents=1)
    assert (await hookd.wait_for(task_id))["status"] == "SUCCESS"


async def test_a_stalled_body_is_cut_with_408(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(body_timeout_s=0.3)
    agent = await hookd.create_agent()
    server = hookd.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(
            request_bytes(agent["webhook_path"], b"Transfer-Encoding: chunked", body=b'10\r\n{"quest')
        )
        await writer.drain()
        async with asyncio.timeout(5):  # the body never ends: only hookd's deadline answers
            answer = await reader.read(400)
    finally:
        writer.close()
    assert status_of(answer) == 408, answer
    assert b"HOOKD_BODY_TIMEOUT_S" in answer
    await assert_nothing_stored_and_up(hookd, agents=1)
