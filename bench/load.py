"""The load generator: one process, one aiohttp client, C connections posting small JSON webhooks.

Two modes, both printing one JSON object on stdout:

    python bench/load.py URL --connections 64 --duration-s 10 [--warmup-s 1]
        Sustained: C loops post back to back. Only requests that finish inside the
        measurement window (after the warm-up) count towards rps and the latencies.
    python bench/load.py URL --connections 1000 --requests 1000
        Burst: exactly N requests over C connections, as fast as they are answered.
        Reports the epoch times of the first request and the last answer, so the caller
        can line them up with timestamps hookd writes.

Every answer that is not a 200 carrying `"success": true` counts as an error, by kind.
Requests still unanswered `--drain-s` after the end are abandoned and count as errors too.
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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

HEADERS = {"Content-Type": "application/json"}


@dataclass
class Tally:
    latencies_s: list[float] = field(default_factory=list)  # requests that count
    ok: int = 0  # every 200 success, warm-up included
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


async def post_one(session: aiohttp.ClientSession, url: str, n: int, tally: Tally) -> bool:
    """One webhook; True when it was accepted."""
    try:
        async with session.post(url, data=body(n), headers=HEADERS) as response:
            answer = await response.read()
            if response.status != 200:
                tally.errors[f"HTTP {response.status}"] += 1
                return False
            if b'"success": true' not in answer:
                tally.errors["200 without success"] += 1
                return False
            return True
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        tally.errors[type(exc).__name__] += 1
        return False


async def sustained(
    session: aiohttp.ClientSession,
    url: str,
    connections: int,
    warmup_s: float,
    duration_s: float,
    drain_s: float,
) -> tuple[Tally, float, float]:
    """C loops for warm-up + duration; returns the tally and the measurement window."""
    tally = Tally()
    numbers = itertools.count()
    window_start_s = time.perf_counter() + warmup_s
    window_end_s = window_start_s + duration_s
    tally.window_start_epoch_s = time.time() + warmup_s

    async def loop() -> None:
        while (started_s := time.perf_counter()) < window_end_s:
            accepted = await post_one(session, url, next(numbers), tally)
            finished_s = time.perf_counter()
            if accepted:
                tally.ok += 1
                if started_s >= window_start_s and finished_s <= window_end_s:
                    tally.latencies_s.append(finished_s - started_s)

    await run_loops(loop, connections, window_end_s, drain_s, tally)
    return tally, window_start_s, window_end_s


async def burst(
    session: aiohttp.ClientSession, url: str, connections: int, requests: int, deadline_s: float
) -> Tally:
    """Exactly `requests` webhooks over `connections` loops, giving up after `deadline_s`."""
    tally = Tally()
    numbers = iter(range(requests))
    end_s = time.perf_counter() + deadline_s
    tally.first_send_epoch_s = time.time()

    async def loop() -> None:
        for n in numbers:
            if time.perf_counter() >= end_s:
                return
            started_s = time.perf_counter()
            if await post_one(session, url, n, tally):
                tally.ok += 1
                tally.latencies_s.append(time.perf_counter() - started_s)
                tally.last_answer_epoch_s = time.time()

    await run_loops(loop, min(connections, requests), end_s, 0.0, tally)
    return tally


async def run_loops(
    loop: Callable[[], Coroutine[Any, Any, None]],
    count: int,
    end_s: float | None,
    drain_s: float,
    tally: Tally,
) -> None:
    """Run `count` copies of `loop`; past `end_s` + `drain_s`, abandon those still waiting."""
    tasks = [asyncio.create_task(loop()) for _ in range(count)]
    timeout_s = None if end_s is None else end_s - time.perf_counter() + drain_s
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.wait(pending)
        # Each abandoned loop had one request in flight: the server stopped answering it.
        tally.errors["no answer by the end"] += len(pending)
    for task in done:
        task.result()  # a bug here must not pass silently


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=args.connections, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=args.timeout_s)
    cpu_start_s = time.process_time()
    wall_start_s = time.perf_counter()
    # No cookie jar, no decompression: less client CPU per request, so more left for the load.
    session = aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False
    )
    async with session:
        if args.requests:
            tally = await burst(session, args.url, args.connections, args.requests, args.deadline_s)
            first, last = tally.first_send_epoch_s, tally.last_answer_epoch_s
            elapsed_s = (last - first) if first is not None and last is not None else 0.0
        else:
            tally, window_start_s, window_end_s = await sustained(
                session, args.url, args.connections, args.warmup_s, args.duration_s, args.drain_s
            )
            elapsed_s = window_end_s - window_start_s
    latencies_s = sorted(tally.latencies_s)
    counted = len(latencies_s)
    return {
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
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration-s", type=float, default=10.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--requests", type=int, default=0, help="burst mode: send exactly this many")
    parser.add_argument("--deadline-s", type=float, default=60.0, help="burst mode: give up after this")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="per request")
    parser.add_argument("--drain-s", type=float, default=3.0, help="sustained mode: wait after the end")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    # Up to --connections sockets at once: lift the soft limit on open files to the hard one.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    result = asyncio.run(main_async(args))
    result["pid"] = os.getpid()
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
