"""A client's own faults are its 4xx, with hookd as a real process on raw loopback sockets:
requests aiohttp cannot even parse (400, one short line in the log however many there are)
are not an ERROR or a traceback in the log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import HookdProcesses
from tests.remote import send_raw, wait_until


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[HookdProcesses]:
    with HookdProcesses(tmp_path, llm_provider="echo") as started:
        yield started


def assert_quiet(log: str) -> None:
    """Nothing in the log says hookd failed: no ERROR line, no traceback."""
    assert " ERROR " not in log and "Traceback" not in log, log


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
