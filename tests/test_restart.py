"""Crashes and shutdowns with real processes: kill -9 mid-run and on a last attempt, SIGTERM
within and past the grace period, and acknowledged webhooks surviving a kill -9.

hookd runs as `python server.py` (tests/processes.py); the fake model runs in this test's
event loop, so every blocking wait on a process goes through a thread.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fake_llm import FakeLLM
from tests.processes import REPO_ROOT, HookdProcess, HookdProcesses, clean_environ, free_port
from tests.remote import Api, poll, questions_sent, read_tasks

Spawn = Callable[..., Awaitable[HookdProcess]]


@pytest.fixture
def spawn_hookd(tmp_path: Path, fake_llm: FakeLLM) -> Iterator[Spawn]:
    """`await spawn_hookd(port=…, workers=…, **settings)`: hookd on the fake model, ready."""
    with HookdProcesses(tmp_path, llm_base_url=fake_llm.url + "/v1", llm_model="ok") as processes:

        async def spawn(**options: Any) -> HookdProcess:
            return await asyncio.to_thread(processes.start, **options)

        yield spawn


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # No keep-alive: after a kill, a pooled connection to the dead process must not be reused.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


async def wait_for_calls(fake_llm: FakeLLM, count: int) -> None:
    """Until the model has received `count` calls in all, so the runs are mid-call."""

    async def received() -> int:
        return len(fake_llm.calls)

    await poll(received, lambda n: n == count, f"{count} calls at the model")


def count_by_status(seen: dict[str, dict[str, Any]]) -> Counter[str]:
    return Counter(body["status"] for body in seen.values())


async def test_kill_9_mid_run_runs_the_interrupted_tasks_again(
    spawn_hookd: Spawn, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    hookd = await spawn_hookd(workers=8)
    api = Api(http, hookd)
    agent = await api.create_agent(llm={"model": "sleep=2"}, max_attempts=3)
    questions = [f"task {n}" for n in range(20)]
    task_ids = list(await asyncio.gather(*(api.trigger(agent, {"question": q}) for q in questions)))
    question_of = dict(zip(task_ids, questions, strict=True))

    # Eight workers: eight runs wait on the model for 2 s, twelve tasks queue behind them.
    await poll(
        lambda: api.statuses(task_ids),
        lambda seen: count_by_status(seen) == {"STARTED": 8, "PENDING": 12},
        "8 runs in flight",
    )
    await wait_for_calls(fake_llm, 8)  # each run is waiting on its 2 s answer
    hookd.kill()

    at_kill = read_tasks(hookd.db)
    interrupted = {task_id for task_id, row in at_kill.items() if row["status"] == "STARTED"}
    assert len(interrupted) == 8
    assert all(row["attempts"] == (1 if row["status"] == "STARTED" else 0) for row in at_kill.values())

    await spawn_hookd(port=hookd.port, workers=20)  # all twenty in one 2 s round
    done = await api.wait_all(task_ids)
    for task_id, body in done.items():
        assert body["status"] == "SUCCESS", body
        assert body["result"]["answer"] == f"You said: {question_of[task_id]}"
        assert body["attempts"] == (2 if task_id in interrupted else 1), body
    # Each interrupted run was asked again exactly once; nothing else ran twice.
    assert questions_sent(fake_llm, "sleep=2") == {
        question_of[task_id]: 2 if task_id in interrupted else 1 for task_id in task_ids
    }


async def test_kill_9_on_the_last_attempt_fails_the_task_interrupted(
    spawn_hookd: Spawn, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    hookd = await spawn_hookd()
    api = Api(http, hookd)
    agent = await api.create_agent(llm={"model": "mode=hang"}, max_attempts=1)
    task_id = await api.trigger(agent, {"question": "never answered"})
    await api.wait_all([task_id], ("STARTED",))
    await wait_for_calls(fake_llm, 1)
    hookd.kill()
    assert read_tasks(hookd.db)[task_id]["status"] == "STARTED"

    restarted = await spawn_hookd(port=hookd.port)
    body = await api.status(task_id)  # final once the server answers: recovery runs before it listens
    assert body["status"] == "FAILURE", body
    assert body["result"]["type"] == "interrupted"
    assert body["attempts"] == 1 and body["finished_at"] is not None
    # Recovery's change is a transition like any other: its log line and its metrics.
    assert re.search(f"task {task_id} FAILURE agent=\\S+ attempt=1 error_type=interrupted", restarted.log())
    async with http.get(restarted.url + "/metrics", headers=restarted.admin) as scrape:
        assert 'hookd_tasks_finished_total{status="FAILURE"} 1.0' in await scrape.text()

    # A later task runs to the end, so the restarted pool has been claiming: the
    # interrupted one was not among its claims.
    other = await api.create_agent(llm={"model": "ok"})
    after = await api.wait_all([await api.trigger(other, {"question": "after the restart"})])
    assert [body["status"] for body in after.values()] == ["SUCCESS"]
    assert len(fake_llm.calls_for("mode=hang")) == 1
    assert (await api.status(task_id))["status"] == "FAILURE"


async def test_sigterm_lets_short_runs_finish_and_requeues_cut_off_ones_unspent(
    spawn_hookd: Spawn, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    hookd = await spawn_hookd(shutdown_grace_s="3")
    api = Api(http, hookd)
    short = await api.create_agent(llm={"model": "sleep=1"}, max_attempts=3)
    long = await api.create_agent(llm={"model": "sleep=30"}, max_attempts=3)
    short_ids = [await api.trigger(short, {"question": f"short {n}"}) for n in range(3)]
    long_ids = [await api.trigger(long, {"question": f"long {n}"}) for n in range(3)]
    await api.wait_all(short_ids + long_ids, ("STARTED",))
    await wait_for_calls(fake_llm, 6)
    # The next start runs the long tasks on a fast model, to keep this test short. Runs in
    # flight keep the agent they started with.
    await api.update_agent(long["id"], llm={"model": "ok"})

    terminated_at = time.time()
    hookd.terminate()
    exit_code = await asyncio.to_thread(hookd.wait_exit, 10.0)
    assert exit_code == 0, hookd.log()

    stored = read_tasks(hookd.db)
    for task_id in short_ids:  # finished within the grace period, after SIGTERM
        assert stored[task_id]["status"] == "SUCCESS", stored[task_id]
        assert stored[task_id]["attempts"] == 1
        assert stored[task_id]["finished_at"] > terminated_at
    for task_id in long_ids:  # cut off: queued again, the attempt given back
        row = stored[task_id]
        assert (row["status"], row["attempts"], row["started_at"]) == ("PENDING", 0, None), row
        assert row["result"] is None

    await spawn_hookd(port=hookd.port)
    done = await api.wait_all(long_ids)
    for n, task_id in enumerate(long_ids):
        body = done[task_id]
        assert (body["status"], body["attempts"]) == ("SUCCESS", 1), body
        assert (body["result"]["answer"], body["result"]["model"]) == (f"You said: long {n}", "ok")
    assert questions_sent(fake_llm, "sleep=1") == {"short 0": 1, "short 1": 1, "short 2": 1}
    assert questions_sent(fake_llm, "sleep=30") == {"long 0": 1, "long 1": 1, "long 2": 1}
    assert questions_sent(fake_llm, "ok") == {"long 0": 1, "long 1": 1, "long 2": 1}
    assert all(body["status"] == "SUCCESS" for body in (await api.statuses(short_ids)).values())


async def test_every_acknowledged_webhook_survives_kill_9(
    spawn_hookd: Spawn, http: aiohttp.ClientSession
) -> None:
    hookd = await spawn_hookd()
    api = Api(http, hookd)
    agent = await api.create_agent(llm={"model": "ok"})
    acknowledged: list[str] = []
    half_acknowledged = asyncio.Event()

    async def send(n: int) -> None:
        async with http.post(agent["webhook_url"], json={"question": f"burst {n}"}) as response:
            if response.status == 200:  # the body read to its end: that is the acknowledgement
                acknowledged.append((await response.json())["task_id"])
        if len(acknowledged) == 100:
            half_acknowledged.set()

    sends = asyncio.gather(*(send(n) for n in range(200)), return_exceptions=True)
    # Killed mid-burst: the other half is in flight, queued in the client, or just answered.
    await asyncio.wait_for(half_acknowledged.wait(), timeout=10.0)
    hookd.kill()
    outcomes = await sends
    errors = [outcome for outcome in outcomes if outcome is not None]
    assert all(isinstance(error, aiohttp.ClientError | OSError) for error in errors), errors

    stored = read_tasks(hookd.db)
    assert len(acknowledged) >= 100
    missing = [task_id for task_id in acknowledged if task_id not in stored]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged tasks were lost"


async def test_sigterm_with_every_worker_busy_and_more_queued(
    spawn_hookd: Spawn, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    """A webhook while every worker is busy once left the dispatcher spinning without
    yielding (5c9bba1): no HTTP answers, SIGTERM ignored. Only a process shows that safely;
    in the test's own event loop the spin would hang the suite."""
    hookd = await spawn_hookd(workers=1, shutdown_grace_s="0.5")
    api = Api(http, hookd)
    agent = await api.create_agent(llm={"model": "mode=hang"})
    running = await api.trigger(agent, {"question": "takes the only worker"})
    await api.wait_all([running], ("STARTED",))
    queued = await api.trigger(agent, {"question": "waits for a worker"})

    async with asyncio.timeout(2.0):
        async with http.get(hookd.url + "/api/health") as response:
            assert response.status == 200
            assert (await response.json())["queue_depth"] == 1
    hookd.terminate()
    exit_code = await asyncio.to_thread(hookd.wait_exit, 5.0)
    assert exit_code == 0, hookd.log()
    stored = read_tasks(hookd.db)
    assert [stored[t]["status"] for t in (running, queued)] == ["PENDING", "PENDING"]
    assert len(fake_llm.calls) == 1


async def test_a_second_server_on_the_same_database_refuses_to_start(spawn_hookd: Spawn) -> None:
    first = await spawn_hookd()
    argv = [sys.executable, "server.py", "--port", str(free_port()), "--db", str(first.db)]
    env = clean_environ(admin_key="second-server-admin-key")
    second = await asyncio.to_thread(
        subprocess.run, argv, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=30
    )
    assert second.returncode != 0
    assert f"Another hookd (pid {first.popen.pid}) is already serving" in second.stderr
    assert "Traceback" not in second.stderr
    # Once the first has stopped, the database is free again.
    first.kill()
    await asyncio.to_thread(first.wait_exit, 10)
    await spawn_hookd(db=first.db)
