"""How a test talks to and looks into a hookd subprocess (tests/processes.py starts it): its
HTTP API over real sockets, bounded polling, the tasks table read straight from its database
file with the checks that say a row is whole, and what the fake model was asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from tests.fake_llm import FakeLLM
from tests.processes import HookdProcess

T = TypeVar("T")
FINAL = ("SUCCESS", "FAILURE")
STATUSES = ("PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE")


async def poll(
    probe: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    what: str,
    timeout_s: float = 10.0,
    pause_s: float = 0.02,
) -> T:
    """Await `probe()` until `done(value)`; fail after `timeout_s` with the last value seen."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"{what}: not reached after {timeout_s} s; last seen {value!r}"
        await asyncio.sleep(pause_s)


async def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Until `condition()` holds (something this process can see, e.g. the fake model's calls)."""

    async def check() -> bool:
        return condition()

    await poll(check, bool, what, timeout_s)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes
    closed: bool  # the server closed the connection after it


async def read_response(reader: asyncio.StreamReader, timeout_s: float = 5.0) -> RawResponse:
    """One HTTP/1.1 response with a Content-Length (all of hookd's and aiohttp's have one),
    and whether the server then closed the connection within `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    try:
        async with asyncio.timeout(timeout_s):
            closed = await reader.read(1) == b""
    except TimeoutError:
        closed = False
    return RawResponse(int(status_line.split()[1]), headers, body, closed)


async def send_raw(port: int, data: bytes, timeout_s: float = 5.0) -> RawResponse:
    """Send `data` as it is (malformed requests too) on a new loopback connection; the answer.
    It waits for the server to close the connection: send `Connection: close` with a good request."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_response(reader, timeout_s)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


class Api:
    """hookd's HTTP API at one address; it stays valid across restarts on the same port."""

    def __init__(self, http: aiohttp.ClientSession, hookd: HookdProcess) -> None:
        self.http = http
        self.url = hookd.url
        self.admin = hookd.admin

    async def create_agent(self, **fields: Any) -> dict[str, Any]:
        body = {"name": f"agent-{time.monotonic_ns()}", "prompt": "Be brief."} | fields
        async with self.http.post(self.url + "/api/agents", json=body, headers=self.admin) as response:
            assert response.status == 201, await response.text()
            agent: dict[str, Any] = await response.json()
        # `trigger` and `send` post to this URL: it must reach this process, and the next one on the port.
        assert agent["webhook_url"].startswith(self.url + "/api/webhooks/agents/")
        return agent

    async def update_agent(self, agent_id: str, **fields: Any) -> None:
        url = f"{self.url}/api/agents/{agent_id}"
        async with self.http.patch(url, json=fields, headers=self.admin) as response:
            assert response.status == 200, await response.text()

    async def cancel(self, task_id: str) -> None:
        url = f"{self.url}/api/tasks/{task_id}/cancel"
        async with self.http.post(url, headers=self.admin) as response:
            assert response.status == 200, await response.text()

    async def send(self, agent: dict[str, Any], payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST the webhook: (HTTP status, JSON body), whatever the status."""
        async with self.http.post(agent["webhook_url"], json=payload) as response:
            body: dict[str, Any] = await response.json()
            return response.status, body

    async def trigger(self, agent: dict[str, Any], payload: dict[str, Any]) -> str:
        """POST the webhook and insist on 200: the task id."""
        status, body = await self.send(agent, payload)
        assert status == 200, body
        return str(body["task_id"])

    async def status(self, task_id: str) -> dict[str, Any]:
        async with self.http.get(self.url + "/api/task_status", params={"task_id": task_id}) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
        return body

    async def statuses(self, task_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(task_ids)
        bodies = await asyncio.gather(*(self.status(task_id) for task_id in ids))
        return dict(zip(ids, bodies, strict=True))

    async def health(self) -> dict[str, Any]:
        async with self.http.get(self.url + "/api/health") as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
        return body

    async def wait_all(
        self, task_ids: Iterable[str], statuses: tuple[str, ...] = FINAL, timeout_s: float = 10.0
    ) -> dict[str, dict[str, Any]]:
        """Poll until every task is in one of `statuses`."""
        ids = list(task_ids)
        return await poll(
            lambda: self.statuses(ids),
            lambda seen: all(body["status"] in statuses for body in seen.values()),
            f"{len(ids)} tasks in {'/'.join(statuses)}",
            timeout_s,
            pause_s=0.05,
        )


def read_tasks(db: Path) -> dict[str, dict[str, Any]]:
    """Every column of the tasks table, straight from the file, as the next process finds it."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        return {row["id"]: dict(row) for row in conn.execute("SELECT * FROM tasks")}


def count_unfinished(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        ((count,),) = conn.execute("SELECT count(*) FROM tasks WHERE status NOT IN ('SUCCESS', 'FAILURE')")
        return int(count)


def integrity_problems(db: Path) -> list[str]:
    """What `PRAGMA integrity_check` and `foreign_key_check` find; empty when the file is sound."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        problems = [row[0] for row in conn.execute("PRAGMA integrity_check") if row[0] != "ok"]
        problems += [f"foreign key: {tuple(row)}" for row in conn.execute("PRAGMA foreign_key_check")]
    return problems


def row_problems(
    row: dict[str, Any], max_attempts_of: dict[str, int], failure_types: Iterable[str] = ()
) -> list[str]:
    """Why a tasks row is not a whole, valid task: empty when it is.

    `max_attempts_of` maps each agent id to its max_attempts; a FAILURE must have one of
    `failure_types`. A SUCCESS must be the fake model's answer to the payload's question.
    """
    problems = []
    try:
        uuid.UUID(row["id"])
    except (TypeError, ValueError):
        problems.append("id is not a UUID")
    if row["agent_id"] not in max_attempts_of:
        problems.append("unknown agent")
    elif row["max_attempts"] != max_attempts_of[row["agent_id"]]:
        problems.append("max_attempts differs from the agent's")
    status = row["status"]
    if status not in STATUSES:
        problems.append(f"status {status!r}")
    try:
        payload = json.loads(row["payload"])
    except (TypeError, ValueError):
        return [*problems, "payload is not JSON"]
    if not (isinstance(payload, dict) and isinstance(payload.get("question"), str)):
        problems.append("payload has no question")
    if not 0 <= row["attempts"] <= row["max_attempts"]:
        problems.append(f"attempts {row['attempts']} of {row['max_attempts']}")
    if not (isinstance(row["created_at"], float) and isinstance(row["run_after"], float)):
        problems.append("created_at or run_after missing")
    if (status in FINAL) != (row["finished_at"] is not None):
        problems.append("finished_at does not match the status")
    if status == "STARTED" and (row["started_at"] is None or row["attempts"] < 1):
        problems.append("STARTED without started_at or an attempt")
    if row["last_error"] is not None:
        last_error = json.loads(row["last_error"])
        if not (isinstance(last_error, dict) and {"error", "type"} <= last_error.keys()):
            problems.append("last_error is not {error, type}")
    if status not in FINAL:
        if row["result"] is not None:
            problems.append("a result before the task is final")
        return problems
    result = json.loads(row["result"]) if row["result"] is not None else None
    if status == "SUCCESS":
        if not (isinstance(result, dict) and result.keys() == {"answer", "model", "usage"}):
            problems.append(f"SUCCESS result {result!r}")
        elif result["answer"] != f"You said: {payload.get('question')}":
            problems.append(f"SUCCESS answers another question: {result['answer']!r}")
        if row["attempts"] < 1:
            problems.append("SUCCESS without an attempt")
    elif not (isinstance(result, dict) and result.keys() == {"error", "type"}):
        problems.append(f"FAILURE result {result!r}")
    elif result["type"] not in failure_types:
        problems.append(f"FAILURE of type {result['type']!r}")
    elif result["type"] == "interrupted" and row["attempts"] != row["max_attempts"]:
        problems.append("interrupted with attempts left")
    return problems


def questions_sent(fake_llm: FakeLLM, model: str | None = None) -> Counter[str]:
    """How many times the model was asked each question (the webhook payload's `question`)."""
    calls = fake_llm.calls if model is None else fake_llm.calls_for(model)
    return Counter(call.body["messages"][-1]["content"] for call in calls)
