"""Several hookd nodes on one PostgreSQL database: real `python server.py` processes, the
tests' own PostgreSQL server, the fake model over HTTP.

What must hold with several nodes: any node accepts any webhook and answers any status; a
task runs on one node at a time; a change made on one node reaches the others (SSE, cancel)
without polling; max_concurrency holds across nodes; and a node that dies or stalls loses
its runs to the others once its lease is over, without a task lost, finished twice, or a
journalled tool call made twice.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from tests.fake_llm import FakeLLM
from tests.processes import HookdProcess, HookdProcesses, start
from tests.remote import FINAL, Api, poll, wait_until

LEASE_S = 2.0
# A takeover comes once the lease is over, plus the next look for expired leases (every
# second), plus a claim.
TAKEOVER_S = LEASE_S + 2.0
LOOPBACK_HTTP = {"type": "http_request", "allow_hosts": ["127.0.0.1"], "allow_private": True}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


@pytest.fixture
def nodes(tmp_path: Path, postgres_url: str, fake_llm: FakeLLM) -> HookdProcesses:
    processes = HookdProcesses(
        tmp_path,
        database_url=postgres_url,
        lease_s=str(LEASE_S),
        llm_base_url=fake_llm.url + "/v1",
        llm_model="ok",
    )
    with processes:
        yield processes


def webhook(node: HookdProcess, agent: dict[str, Any]) -> str:
    """The agent's webhook URL at this node (any node accepts any agent's webhooks)."""
    return node.url + urlsplit(agent["webhook_url"]).path


async def send(http: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> str:
    async with http.post(url, json=payload) as response:
        body = await response.json()
        assert response.status == 200, body
        return str(body["task_id"])


async def task_rows(url: str) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(url)
    try:
        return {row["id"]: dict(row) for row in await conn.fetch("SELECT * FROM tasks")}
    finally:
        await conn.close()


async def test_a_task_accepted_by_one_node_runs_on_another_and_its_stream_follows(
    nodes: HookdProcesses, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    """Node A runs nothing (HOOKD_WORKERS=0): what A's event stream and long-poll see of a
    task, B did — they hear it by LISTEN/NOTIFY, not by polling."""
    a, b = await start(nodes, workers=0), await start(nodes, workers=4)
    agent = await Api(http, a).create_agent(llm={"model": "sleep=0.5"})
    task_id = await send(http, webhook(a, agent), {"question": "Across?"})
    seen: list[str] = []
    started = time.monotonic()
    async with http.get(f"{a.url}/api/tasks/{task_id}/events", headers=a.admin) as stream:
        assert stream.status == 200
        async for line in stream.content:
            if line.startswith(b"data: "):
                body = json.loads(line[6:])
                seen.append(body["status"])
                if body["status"] in FINAL:
                    break
    assert seen[0] in ("PENDING", "STARTED") and seen[-1] == "SUCCESS" and "STARTED" in seen
    # Far under the 15 s heartbeat at which a stream would otherwise look again.
    assert time.monotonic() - started < 5.0
    assert len(fake_llm.calls_for("sleep=0.5")) == 1  # run by B: A has no workers
    async with http.get(f"{a.url}/api/task_status", params={"task_id": task_id}) as response:
        assert (await response.json())["result"]["answer"] == "You said: Across?"
    assert b.popen.poll() is None


async def test_a_cancel_sent_to_one_node_stops_the_run_on_another(
    nodes: HookdProcesses, http: aiohttp.ClientSession
) -> None:
    a, b = await start(nodes, workers=0), await start(nodes, workers=4)
    api_a, api_b = Api(http, a), Api(http, b)
    agent = await api_a.create_agent(llm={"model": "sleep=3600"}, timeout_s=3600)
    task_id = await send(http, webhook(a, agent), {"question": "Forever?"})
    await poll(lambda: api_b.health(), lambda h: h["running"] == 1, "the run on B", 10.0)
    await api_a.cancel(task_id)
    # B hears of the cancel and gives its worker back long before the run's timeout.
    await poll(lambda: api_b.health(), lambda h: h["running"] == 0, "B's run stopped", 5.0)
    body = await api_b.status(task_id)
    assert (body["status"], body["result"]["type"]) == ("FAILURE", "cancelled")


async def test_max_concurrency_holds_across_three_nodes(
    nodes: HookdProcesses, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    three = [await start(nodes, workers=8) for _ in range(3)]
    agent = await Api(http, three[0]).create_agent(llm={"model": "sleep=0.2"}, max_concurrency=2)
    task_ids = await asyncio.gather(
        *(send(http, webhook(three[n % 3], agent), {"question": f"q{n}"}) for n in range(24))
    )
    finals = await Api(http, three[1]).wait_all(task_ids, timeout_s=60.0)
    assert {body["status"] for body in finals.values()} == {"SUCCESS"}
    assert fake_llm.max_in_flight["sleep=0.2"] == 2  # reached, never passed
    assert len(fake_llm.calls_for("sleep=0.2")) == 24


async def test_a_node_paused_past_its_lease_loses_its_run_and_its_late_result_is_refused(
    nodes: HookdProcesses, http: aiohttp.ClientSession, fake_llm: FakeLLM, postgres_url: str
) -> None:
    first = await start(nodes, workers=4)
    api = Api(http, first)
    agent = await api.create_agent(llm={"model": "sleep=3"}, max_attempts=3)
    task_id = await send(http, webhook(first, agent), {"question": "Whose?"})
    await poll(lambda: api.status(task_id), lambda s: s["status"] == "STARTED", "started on the first", 10.0)
    second = await start(nodes, workers=4)
    first.popen.send_signal(signal.SIGSTOP)  # the model answers it meanwhile; it cannot hear
    try:
        await poll(
            lambda: Api(http, second).status(task_id),
            lambda s: s["status"] == "STARTED" and s["attempts"] == 2,
            "taken over by the second node",
            TAKEOVER_S + 2.0,
        )
    finally:
        first.popen.send_signal(signal.SIGCONT)
    (final,) = (await Api(http, second).wait_all([task_id], timeout_s=15.0)).values()
    assert (final["status"], final["attempts"]) == ("SUCCESS", 2)
    # On resuming, the first node hears that the task is no longer its own and stops its run,
    # or, if the model's answer is read first, its write is refused (fenced by attempt; the
    # store's contract tests hold both).
    await wait_until(
        lambda: "no longer this node's" in first.log() or "discarded" in first.log(),
        "the first node's run stopped or its late result refused",
    )
    assert f"task {task_id} SUCCESS" not in first.log()
    row = (await task_rows(postgres_url))[task_id]
    assert row["status"] == "SUCCESS" and row["owner"] is None
    assert len(fake_llm.calls_for("sleep=3")) == 2  # one per attempt, and one result


async def send_round(
    http: aiohttp.ClientSession,
    live: list[HookdProcess],
    agents: tuple[dict[str, Any], dict[str, Any]],
    round_number: int,
    kill_after: int,
    victim: int,
    acked: dict[str, str],
    receiver_url: str,
) -> None:
    """2,000 webhooks from 24 senders, round-robin over the nodes; `live[victim]` is killed -9
    once the `kill_after`-th has been sent. Acknowledged task ids go into `acked`."""
    plain, tooled = agents
    numbers = iter(range(2000))

    async def sender() -> None:
        for n in numbers:
            node = live[n % 3]
            question = f"r{round_number}-{n}"
            agent, payload = plain, {"question": question}
            if n % 4 == 0:  # a tool call the journal keeps
                agent, payload = (
                    tooled,
                    {"args": {"url": f"{receiver_url}?q={question}"}},
                )
            try:
                async with http.post(webhook(node, agent), json=payload) as response:
                    if response.status == 200:
                        acked[(await response.json())["task_id"]] = question
            except (TimeoutError, aiohttp.ClientError):
                pass  # it met the killed node: not acknowledged
            if n == kill_after:
                live[victim].kill()

    await asyncio.gather(*(sender() for _ in range(24)))


async def test_webhooks_to_every_node_survive_a_kill_9_in_each_of_three_rounds(
    nodes: HookdProcesses, http: aiohttp.ClientSession, postgres_url: str, tmp_path: Path, aiohttp_server: Any
) -> None:
    """2,000 webhooks per round, sent round-robin to three nodes; one node is killed -9 in the
    middle of each round and started again after it. Every acknowledged task ends SUCCESS or
    FAILURE, with one result; each tool call the journal holds was made once. (How long a
    takeover takes is measured by bench/, `takeover`.)"""
    seed = random.randrange(1 << 32)
    print(f"seed {seed}")
    rng = random.Random(seed)
    calls: dict[str, list[float]] = {}  # question → when the tool call reached the receiver

    async def receive(request: web.Request) -> web.Response:
        calls.setdefault(request.query["q"], []).append(time.time())
        return web.Response(text="noted")

    receiver = web.Application()
    receiver.router.add_get("/note", receive)
    receiver_url = str((await aiohttp_server(receiver, host="127.0.0.1")).make_url("/note"))
    live = [await start(nodes, workers=16) for _ in range(3)]
    api = Api(http, live[0])
    plain = await api.create_agent(llm={"model": "sleep=0.05"}, max_attempts=3)
    tooled = await api.create_agent(llm={"model": "tool=http_request"}, tools=[LOOPBACK_HTTP], max_attempts=3)
    acked: dict[str, str] = {}
    for round_number in range(3):
        kill_after = rng.randrange(400, 1600)
        victim = rng.randrange(3)
        await send_round(http, live, (plain, tooled), round_number, kill_after, victim, acked, receiver_url)
        # The killed node comes back (a restart); its runs have been taken over meanwhile.
        live[victim] = await start(nodes, workers=16)
    finals = await Api(http, live[0]).wait_all(list(acked), timeout_s=120.0)
    assert {body["status"] for body in finals.values()} <= {"SUCCESS", "FAILURE"}
    rows = await task_rows(postgres_url)
    assert set(acked) <= set(rows)
    problems = []
    for task_id, question in acked.items():
        row = rows[task_id]
        result = json.loads(row["result"])
        if row["status"] == "FAILURE" and result["type"] != "interrupted":
            problems.append((task_id, result))
        with_tool = int(question.split("-")[1]) % 4 == 0  # as send_round chose
        expected = "Tool said: HTTP 200 OK" if with_tool else f"You said: {question}"
        if row["status"] == "SUCCESS" and not result["answer"].startswith(expected):
            problems.append((task_id, result["answer"][:80]))
    assert problems == []
    conn = await asyncpg.connect(postgres_url)
    try:
        journalled = await conn.fetch("SELECT arguments, created_at FROM tool_calls")
    finally:
        await conn.close()
    # A call the killed node made but had not journalled yet is made again (at least
    # once); a call made after its journal entry was committed would be a replay missed.
    assert journalled
    twice = []
    for row in journalled:
        question = json.loads(row["arguments"])["url"].split("q=")[1]
        if any(at > row["created_at"] for at in calls[question]):
            twice.append(question)
    assert twice == []  # a journalled call was made once, whatever the kills
    assert sum(1 for r in rows.values() if r["status"] not in FINAL) == 0
    # Each kill left runs behind that another node took over.
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("hookd-*.log"))  # noqa: ASYNC240
    assert logs.count("took over tasks of a hookd that stopped") >= 3


async def test_a_callback_the_dying_node_was_sending_is_delivered_by_another(
    nodes: HookdProcesses, http: aiohttp.ClientSession, aiohttp_server: Any
) -> None:
    """One node at a time sends callbacks. The receiver holds the first attempt unanswered; the
    sending node is killed -9 meanwhile; the other node takes over the sending and delivers it
    (the same webhook-id, as every attempt of a delivery has)."""
    received: list[str] = []
    first_arrived, released = asyncio.Event(), asyncio.Event()

    async def receive(request: web.Request) -> web.Response:
        received.append(request.headers["webhook-id"])
        if len(received) == 1:
            first_arrived.set()
            await released.wait()  # not answered before its sender dies
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", receive)
    hook_url = str((await aiohttp_server(receiver, host="127.0.0.1")).make_url("/hook"))
    try:
        one = await start(nodes, callback_allow_private="true")
        two = await start(nodes, callback_allow_private="true")
        agent = await Api(http, one).create_agent(callback_url=hook_url)
        task_id = await send(http, webhook(two, agent), {"question": "Call me back"})
        await asyncio.wait_for(first_arrived.wait(), 15)
        sender, other = (one, two) if "now sends the callbacks" in one.log() else (two, one)
        assert "now sends the callbacks" in sender.log() and "now sends the callbacks" not in other.log()
        sender.kill()
        await wait_until(lambda: len(received) == 2, "the delivery sent again by the other node", 15.0)
        assert received[0] == received[1]
        await wait_until(lambda: "now sends the callbacks" in other.log(), "the other node sending")
        async with http.get(f"{other.url}/api/tasks/{task_id}/deliveries", headers=other.admin) as response:
            (delivery,) = (await response.json())["deliveries"]
        assert (delivery["id"], delivery["status"]) == (received[0], "delivered")
    finally:
        released.set()  # so that the receiver's server stops at once
