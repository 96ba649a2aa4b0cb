"""The load generator: one process, C keep-alive connections, printing one JSON object on stdout.

    python bench/load.py URL --connections 64 --duration-s 10 [--warmup-s 1]
        Sustained: C loops send back to back. Only requests that finish inside the
        measurement window (after the warm-up) count towards rps and the latencies.
    python bench/load.py URL --connections 1000 --requests 1000
        Burst: exactly N requests over C connections, as fast as they are answered.
        Reports the epoch times of the first request and the last answer, so the caller
        can line them up with timestamps hookd writes.

POST (the default) sends small JSON webhooks, `{"question": "benchmark", "n": <i>}`; an
answer counts as accepted when it is a 200 carrying `"success": true`. `--get-ids FILE`
instead sends `GET URL?task_id=<id>` for the ids in FILE (one a line, taken in turn) and
counts every 200. Anything else counts as an error, by kind; requests still unanswered
`--drain-s` after the end are abandoned and count as errors too.

Two clients: `raw` (the default), a minimal HTTP/1.1 keep-alive client on asyncio
protocols that writes prepared bytes and reads only the status and Content-Length —
cheap enough per request that the server under test, not this process, is the limit; and
`aiohttp`, the client a real webhook sender would use, which spends more CPU per request
than a bare aiohttp server does, so on two cores it is usually the limit itself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp

HEADERS = {"Content-Type": "application/json"}
SUCCESS = b'"success": true'


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)  # requests that count
    ok: int = 0  # every accepted answer, warm-up included
    errors: Counter[str] = field(default_factory=Counter)
    first_send_epoch_s: float | None = None
    window_start_epoch_s: float | None = None  # sustained mode
    last_answer_epoch_s: float | None = None


def body(n: int) -> bytes:
    return b'{"question": "benchmark", "n": %d}' % n


def percentile_ms(sorted_s: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    if not sorted_s:
        return None
    rank = max(1, round(fraction * len(sorted_s) + 0.5))
    return sorted_s[min(rank, len(sorted_s)) - 1] * 1000


# One request: send number n, True when it was accepted (errors are tallied by the sender).
Send = Callable[[int], Coroutine[Any, Any, bool]]


# -- the raw client ---------------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0 or self.answer is None or self.answer.done():
            return
        head = bytes(self.buffer[:head_end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:  # hookd and the bare handler always send one; anything else is an error
            self._fail(ConnectionError("answer without Content-Length"))
            return
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : line_end if line_end > 0 else None])
        end = head_end + 4 + length
        if len(self.buffer) < end:
            return
        status, answer = int(head[9:12]), bytes(self.buffer[head_end + 4 : end])
        del self.buffer[:end]
        if b"\r\nconnection: close" in head:
            self.close()
        self.answer.set_result((status, answer))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class RawClient:
    """Requests over up to C connections, one per sending loop, reconnecting when one closes."""

    def __init__(self, url: str, get_ids: list[str] | None, timeout_s: float) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.path = (parts.path or "/").encode()
        self.get_ids = [i.encode() for i in get_ids] if get_ids else None
        self.timeout_s = timeout_s
        self.host_header = f"Host: {self.host}:{self.port}\r\n".encode()
        self.in_flight: dict[_Connection, float] = {}  # connection -> request start

    def request(self, n: int) -> bytes:
        if self.get_ids is not None:
            task_id = self.get_ids[n % len(self.get_ids)]
            return b"GET %s?task_id=%s HTTP/1.1\r\n%s\r\n" % (self.path, task_id, self.host_header)
        data = body(n)
        return b"POST %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
            self.path, self.host_header, len(data), data,
        )  # fmt: skip

    def sender(self, tally: Tally) -> Send:
        """A send function for one loop, holding that loop's connection."""
        loop = asyncio.get_running_loop()
        conn: _Connection | None = None
        accepted = (lambda status, answer: status == 200) if self.get_ids else (
            lambda status, answer: status == 200 and SUCCESS in answer
        )  # fmt: skip

        async def send(n: int) -> bool:
            nonlocal conn
            try:
                if conn is None or conn.closed:
                    _, conn = await loop.create_connection(_Connection, self.host, self.port)
                conn.answer = loop.create_future()
                assert conn.transport is not None
                self.in_flight[conn] = time.monotonic()
                conn.transport.write(self.request(n))
                try:
                    status, answer = await conn.answer
                finally:
                    self.in_flight.pop(conn, None)
            except (OSError, ValueError) as exc:
                tally.errors[type(exc).__name__] += 1
                conn = None
                return False
            if accepted(status, answer):
                return True
            tally.errors[f"HTTP {status}" if status != 200 else "200 without success"] += 1
            return False

        return send

    async def watchdog(self) -> None:
        """Abort requests older than the timeout (one check per 0.25 s, not a timer per request)."""
        while True:
            await asyncio.sleep(0.25)
            now = time.monotonic()
            for conn, started in list(self.in_flight.items()):
                if now - started > self.timeout_s:
                    conn._fail(TimeoutError(f"no answer within {self.timeout_s:g} s"))


# -- the aiohttp client -----------------------------------------------------------------


def aiohttp_sender(session: aiohttp.ClientSession, url: str, get_ids: list[str] | None, tally: Tally) -> Send:
    async def send(n: int) -> bool:
        try:
            if get_ids is not None:
                request = session.get(url, params={"task_id": get_ids[n % len(get_ids)]})
            else:
                request = session.post(url, data=body(n), headers=HEADERS)
            async with request as response:
                answer = await response.read()
                if response.status != 200:
                    tally.errors[f"HTTP {response.status}"] += 1
                    return False
                if get_ids is None and SUCCESS not in answer:
                    tally.errors["200 without success"] += 1
                    return False
                return True
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            tally.errors[type(exc).__name__] += 1
            return False

    return send


# -- the two load shapes ----------------------------------------------------------------


async def sustained(
    tally: Tally, senders: Iterator[Send], connections: int, warmup_s: float, duration_s: float,
    drain_s: float,
) -> tuple[float, float]:  # fmt: skip
    """C loops for warm-up + duration; returns the measurement window."""
    numbers = itertools.count()
    window_start_s = time.perf_counter() + warmup_s
    window_end_s = window_start_s + duration_s
    tally.window_start_epoch_s = time.time() + warmup_s

    async def loop(send: Send) -> None:
        while (started_s := time.perf_counter()) < window_end_s:
            accepted = await send(next(numbers))
            finished_s = time.perf_counter()
            if accepted:
                tally.ok += 1
                if started_s >= window_start_s and finished_s <= window_end_s:
                    tally.latencies_s.append(finished_s - started_s)

    await run_loops([loop(next(senders)) for _ in range(connections)], window_end_s, drain_s, tally)
    return window_start_s, window_end_s


async def burst(
    tally: Tally, senders: Iterator[Send], connections: int, requests: int, deadline_s: float
) -> None:
    """Exactly `requests` requests over `connections` loops, giving up after `deadline_s`."""
    numbers = iter(range(requests))
    end_s = time.perf_counter() + deadline_s
    tally.first_send_epoch_s = time.time()

    async def loop(send: Send) -> None:
        for n in numbers:
            if time.perf_counter() >= end_s:
                return
            started_s = time.perf_counter()
            if await send(n):
                tally.ok += 1
                tally.latencies_s.append(time.perf_counter() - started_s)
                tally.last_answer_epoch_s = time.time()

    count = min(connections, requests)
    await run_loops([loop(next(senders)) for _ in range(count)], end_s, 0.0, tally)


async def run_loops(
    loops: list[Coroutine[Any, Any, None]], end_s: float, drain_s: float, tally: Tally
) -> None:
    """Run the loops; past `end_s` + `drain_s`, abandon those still waiting."""
    tasks = [asyncio.create_task(loop) for loop in loops]
    done, pending = await asyncio.wait(tasks, timeout=end_s - time.perf_counter() + drain_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        # Each abandoned loop had one request in flight: the server stopped answering it.
        tally.errors["no answer by the end"] += len(pending)
    for task in done:
        task.result()  # a bug here must not pass silently


async def main_async(args: argparse.Namespace, get_ids: list[str] | None) -> dict[str, Any]:
    cpu_start_s = time.process_time()
    wall_start_s = time.perf_counter()
    tally = Tally()
    # No cookie jar, no decompression: less client CPU per request, so more left for the load.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=args.connections, limit_per_host=0),
        timeout=aiohttp.ClientTimeout(total=args.timeout_s),
        cookie_jar=aiohttp.DummyCookieJar(),
        auto_decompress=False,
    )
    raw = RawClient(args.url, get_ids, args.timeout_s)
    watchdog = asyncio.create_task(raw.watchdog())

    def senders() -> Iterator[Send]:
        while True:
            yield (
                raw.sender(tally)
                if args.client == "raw"
                else aiohttp_sender(session, args.url, get_ids, tally)
            )

    async with session:
        if args.requests:
            await burst(tally, senders(), args.connections, args.requests, args.deadline_s)
            first, last = tally.first_send_epoch_s, tally.last_answer_epoch_s
            elapsed_s = (last - first) if first is not None and last is not None else 0.0
        else:
            window_start_s, window_end_s = await sustained(
                tally, senders(), args.connections, args.warmup_s, args.duration_s, args.drain_s
            )
            elapsed_s = window_end_s - window_start_s
    watchdog.cancel()
    latencies_s = sorted(tally.latencies_s)
    counted = len(latencies_s)
    return {
        "client": args.client,
        "requests": counted,
        "ok_total": tally.ok,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "rps": counted / elapsed_s if elapsed_s > 0 else 0.0,
        "p50_ms": percentile_ms(latencies_s, 0.50),
        "p99_ms": percentile_ms(latencies_s, 0.99),
        "max_ms": latencies_s[-1] * 1000 if latencies_s else None,
        "elapsed_s": elapsed_s,
        "unsent": max(0, args.requests - tally.ok - sum(tally.errors.values())) if args.requests else 0,
        "window_start_epoch_s": tally.window_start_epoch_s,
        "first_send_epoch_s": tally.first_send_epoch_s,
        "last_answer_epoch_s": tally.last_answer_epoch_s,
        "client_cpu_pct": 100 * (time.process_time() - cpu_start_s) / (time.perf_counter() - wall_start_s),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--client", choices=("raw", "aiohttp"), default="raw")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=0, help="burst mode: send exactly this many")
    parser.add_argument("--deadline-s", type=float, default=60.0, help="burst mode: give up after this")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="per request")
    parser.add_argument("--drain-s", type=float, default=3.0, help="sustained mode: wait after the end")
    parser.add_argument("--get-ids", help="GET URL?task_id=<id> for the ids in this file, one a line")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    # Up to --connections sockets at once: lift the soft limit on open files to the hard one.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    get_ids = None
    if args.get_ids:
        with open(args.get_ids, encoding="ascii") as file:
            get_ids = [line.strip() for line in file if line.strip()]
    result = asyncio.run(main_async(args, get_ids))
    result["pid"] = os.getpid()
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
