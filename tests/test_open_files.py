"""Open files, with hookd as a real process started under a given RLIMIT_NOFILE: it raises its
soft limit to the hard one at start-up, closes idle connections after
HOOKD_KEEPALIVE_TIMEOUT_S, and when it runs out all the same (more idle connections held open
than its limit), it writes one line about it every 10 s, not a traceback per failed accept(),
and answers again once they close.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.processes import HookdProcess, HookdProcesses, start
from tests.remote import Api, read_response, wait_until

LOW_LIMIT = 64  # soft and hard: hookd cannot raise it
IDLE_CONNECTIONS = 150  # more than LOW_LIMIT: the rest wait in the listen backlog
HOLD_S = 2.0  # long enough for asyncio to retry accept() twice (it waits 1 s between rounds)


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[HookdProcesses]:
    with HookdProcesses(tmp_path, llm_provider="echo") as started:
        yield started


def open_files_limits(process: HookdProcess) -> tuple[str, str]:
    """(soft, hard) "Max open files" as the kernel holds them for the process."""
    for line in Path(f"/proc/{process.popen.pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return soft, hard
    raise AssertionError("no 'Max open files' in /proc/PID/limits")


async def test_the_soft_limit_is_raised_to_the_hard_one(processes: HookdProcesses) -> None:
    hookd = await start(processes, open_files=(256, 4096))
    assert open_files_limits(hookd) == ("4096", "4096")
    assert "open files: at most 4096 (hard limit 4096), raised from 256\n" in hookd.log()


async def test_out_of_file_descriptors_is_one_log_line_and_hookd_answers_after(
    processes: HookdProcesses, http: aiohttp.ClientSession
) -> None:
    hookd = await start(processes, open_files=(LOW_LIMIT, LOW_LIMIT))
    assert open_files_limits(hookd) == (str(LOW_LIMIT), str(LOW_LIMIT))
    started_lines = len(hookd.log().splitlines())
    connections = [await asyncio.open_connection("127.0.0.1", hookd.port) for _ in range(IDLE_CONNECTIONS)]
    try:
        await wait_until(lambda: "accept" in hookd.log(), "accept() failing")
        # Not waiting for a state: this is the time the descriptors stay used up, during which
        # asyncio keeps failing accept() (on Python 3.11, thousands of times a second).
        await asyncio.sleep(HOLD_S)
        exhausted = hookd.log().splitlines()[started_lines:]
    finally:
        for _, writer in connections:
            writer.close()
    assert len(exhausted) <= 3, exhausted[:10]
    assert sum(map(len, exhausted)) < 2000, exhausted[:10]
    (line,) = [line for line in exhausted if "accept" in line]
    assert " ERROR asyncio: cannot accept new connections: Too many open files; open files limit 64" in line
    assert "Traceback" not in hookd.log()
    assert f"open files: at most {LOW_LIMIT} (hard limit {LOW_LIMIT})\n" in hookd.log()  # said at start-up
    # Once the idle ones are gone, a new connection is accepted and answered.
    assert (await Api(http, hookd).health())["status"] == "ok"


async def test_an_idle_connection_is_closed_after_the_keepalive_timeout(processes: HookdProcesses) -> None:
    hookd = await start(processes, keepalive_timeout_s="0.5")
    began = time.monotonic()
    silent, silent_writer = await asyncio.open_connection("127.0.0.1", hookd.port)  # never sends a request
    reader, writer = await asyncio.open_connection("127.0.0.1", hookd.port)
    writer.write(b"GET /api/health HTTP/1.1\r\nHost: hookd\r\n\r\n")
    answer = await read_response(reader, timeout_s=5)
    assert (answer.status, answer.headers.get("connection")) == (200, None)  # kept alive, then closed
    assert answer.closed
    assert await asyncio.wait_for(silent.read(1), 5) == b""
    assert time.monotonic() - began >= 0.5
    writer.close()
    silent_writer.close()
