"""Faults that are real, with hookd as a real process on real sockets: a model that hangs,
resets, storms 5xx or answers garbage while many runs are in flight; a full disk and a
read-only database file; SIGTERM with 500 runs in flight.

hookd runs as `python server.py` (tests/processes.py); the fake model runs in this test's
event loop, so every blocking call (starting, waiting on a process, filling a disk) goes
through a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import sqlite3
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tasks.pool import MAX_FINAL_WRITE_RETRY_S
from tests.fake_llm import FakeLLM
from tests.processes import HookdProcesses, start
from tests.remote import (
    Api,
    integrity_problems,
    poll,
    questions_sent,
    read_tasks,
    row_problems,
    wait_until,
)


@pytest.fixture
def processes(tmp_path: Path, fake_llm: FakeLLM) -> Iterator[HookdProcesses]:
    with HookdProcesses(tmp_path, llm_base_url=fake_llm.url + "/v1", llm_model="ok") as started:
        yield started


# -- the model misbehaves ------------------------------------------------------------------

# The answer comes after one of these delays, so the faults keep arriving while runs are in flight.
FAULT_SLEEPS_S = (0.25, 0.5, 0.75, 1.0)
RUNS_PER_AGENT = 10


def model_faults() -> list[tuple[str, dict[str, Any], str, str]]:
    """(model, agent fields, error type, words the error must say): each ends FAILURE."""
    cases: list[tuple[str, dict[str, Any], str, str]] = []
    for s in FAULT_SLEEPS_S:
        cases += [
            ("mode=hang", {"timeout_s": 1 + s, "max_attempts": 1}, "timeout", f"timeout_s ({1 + s:g} s)"),
            (f"sleep={s},mode=reset", {"max_attempts": 2}, "llm_unreachable", "Could not reach"),
            (f"sleep={s},fail=1000000,status=500", {"max_attempts": 2}, "llm_http_error", "HTTP 500"),
            (f"sleep={s},mode=badjson", {"max_attempts": 2}, "llm_bad_response", "not JSON"),
            (f"sleep={s},mode=short", {"max_attempts": 2}, "llm_bad_response", "cut-short"),
        ]
    return cases


# A storm of 503s, one per run caught in it, that passes: each run is retried once, then succeeds.
STORM_RUNS = 40
STORM_MODEL = f"sleep=0.5,fail={STORM_RUNS},status=503"
HEALTH_SAMPLES_MIN = 50
HEALTH_P95_LIMIT_S = 0.050
MANY_RUNS = 50


async def test_model_faults_in_flight_leave_health_fast_and_webhooks_accepted(
    processes: HookdProcesses, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    # Backoff 0.5 s: retries spread out, and a RETRY lasts long enough to be seen.
    hookd = await start(processes, workers=300, retry_backoff_s="0.5")
    api = Api(http, hookd)
    faults = model_faults()
    fault_agents = [await api.create_agent(llm={"model": model}, **fields) for model, fields, *_ in faults]
    storm = await api.create_agent(llm={"model": STORM_MODEL}, max_attempts=4)
    ok = await api.create_agent(llm={"model": "ok"})

    # Meanwhile, from the first webhook until the last faulty run has ended: /api/health
    # timed every 10 ms, and a new webhook every 50 ms, each of which must be accepted.
    samples: list[tuple[float, int]] = []  # (latency, runs in flight)
    accepted: list[str] = []
    sent_all = asyncio.Event()

    async def sample_health() -> None:
        while True:
            started = time.perf_counter()
            health = await api.health()
            samples.append((time.perf_counter() - started, health["running"]))
            if sent_all.is_set() and health["running"] == 0 and health["queue_depth"] == 0:
                return
            await asyncio.sleep(0.01)

    async def keep_sending() -> None:
        while not sampler.done():
            status, body = await api.send(ok, {"question": f"meanwhile {len(accepted)}"})
            assert status == 200, body
            accepted.append(body["task_id"])
            await asyncio.sleep(0.05)

    async def see_a_retry() -> dict[str, Any]:
        params = {"agent_id": storm["id"], "status": "RETRY", "limit": "1"}

        async def retrying() -> list[dict[str, Any]]:
            async with http.get(api.url + "/api/tasks", params=params, headers=api.admin) as response:
                tasks: list[dict[str, Any]] = (await response.json())["tasks"]
            return tasks

        (task,) = await poll(retrying, bool, "a storm run in RETRY", pause_s=0.05)
        return task

    async with asyncio.timeout(30), asyncio.TaskGroup() as group:
        sampler = group.create_task(sample_health())
        group.create_task(keep_sending())
        retry_seen = group.create_task(see_a_retry())
        sends = [
            api.trigger(agent, {"question": f"{agent['llm']['model']} {n}"})
            for agent in [*fault_agents, storm]
            for n in range(RUNS_PER_AGENT if agent is not storm else STORM_RUNS)
        ]
        task_ids = list(await asyncio.gather(*sends))
        sent_all.set()

    # A storm run between its attempts: RETRY, saying why and until when.
    retry = retry_seen.result()
    assert retry["result"] is None and retry["last_error"]["type"] == "llm_http_error", retry
    assert "HTTP 503" in retry["last_error"]["error"] and retry["next_attempt_at"], retry

    under_load = sorted(latency for latency, running in samples if running >= MANY_RUNS)
    assert len(under_load) >= HEALTH_SAMPLES_MIN, f"{len(under_load)} samples under load: {samples}"
    p95_s = statistics.quantiles(under_load, n=20)[-1]
    print(
        f"/api/health with {len(task_ids)} faulty runs: {len(under_load)} samples with >= {MANY_RUNS}"
        f" in flight (most {max(r for _, r in samples)}): p50 {statistics.median(under_load) * 1000:.1f} ms,"
        f" p95 {p95_s * 1000:.1f} ms, max {under_load[-1] * 1000:.1f} ms;"
        f" {len(accepted)} webhooks accepted meanwhile"
    )
    assert p95_s < HEALTH_P95_LIMIT_S, under_load

    done = await api.wait_all(task_ids + accepted, timeout_s=10)
    case_of = {agent["id"]: case for case, agent in zip(faults, fault_agents, strict=True)}
    for body in done.values():
        if body["agent_id"] not in case_of:
            continue
        model, fields, error_type, words = case_of[body["agent_id"]]
        assert (body["status"], body["result"]["type"]) == ("FAILURE", error_type), (model, body)
        assert words in body["result"]["error"], (model, body)
        assert body["attempts"] == fields["max_attempts"], (model, body)
        if fields["max_attempts"] > 1:
            assert f"attempt {body['attempts']} of {body['max_attempts']}" in body["result"]["error"]
    storm_runs = [body for body in done.values() if body["agent_id"] == storm["id"]]
    assert [body["status"] for body in storm_runs] == ["SUCCESS"] * STORM_RUNS, storm_runs
    # Each 503 of the storm cost its run one retry, and nothing more.
    assert sum(body["attempts"] - 1 for body in storm_runs) == STORM_RUNS
    assert len(fake_llm.calls_for(STORM_MODEL)) == 2 * STORM_RUNS
    assert all(done[task_id]["status"] == "SUCCESS" for task_id in accepted)


# -- the database cannot be written ----------------------------------------------------------


class StorageFault:
    """A real reason the database file cannot take writes, applied and removed on demand."""

    kind = ""

    def __init__(self, db: Path) -> None:
        self.db = db

    def apply(self) -> None:
        raise NotImplementedError

    def remove(self) -> None:
        raise NotImplementedError


class DiskFull(StorageFault):
    """The database on a small tmpfs, filled up by another file; deleting it frees the space."""

    kind = "disk full"

    def __init__(self, db: Path) -> None:
        super().__init__(db)
        self.filler = db.with_name("filler")

    def apply(self) -> None:
        # A checkpoint first, so that the next commits reuse the WAL file from its start:
        # a few still fit in space it already holds, and then the disk is full mid-burst.
        with contextlib.closing(sqlite3.connect(self.db, timeout=5)) as conn:
            conn.execute("PRAGMA wal_checkpoint(RESTART)")
        with self.filler.open("wb", buffering=0) as file:
            for size in (1 << 20, 4096, 1):  # to the last byte tmpfs will give
                block = b"\0" * size
                while True:
                    try:
                        file.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break

    def remove(self) -> None:
        self.filler.unlink(missing_ok=True)


class ReadOnlyFile(StorageFault):
    """The immutable attribute on the database and its WAL: unlike the mode bits, it stops
    root too. (Not on -shm: SQLite maps that file, and a write to it would be SIGBUS.)"""

    kind = "read-only file"

    def _chattr(self, flag: str) -> None:
        for path in (self.db, self.db.with_name(self.db.name + "-wal")):
            if path.exists():
                subprocess.run(["chattr", flag, str(path)], check=True, capture_output=True)

    def apply(self) -> None:
        self._chattr("+i")

    def remove(self) -> None:
        self._chattr("-i")


def _skip_unless_runs(argv: list[str], why: str) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = (
            exc.stderr.decode(errors="replace").strip()
            if isinstance(exc, subprocess.CalledProcessError)
            else exc
        )
        pytest.skip(f"{why}: {' '.join(argv)} failed: {detail}")


@pytest.fixture(params=["disk_full", "read_only_file"])
def storage_fault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StorageFault]:
    """A place for hookd's database where writes can be made to fail for real. Needs root
    (mount) or the immutable attribute (chattr); skipped where they are not available."""
    folder = tmp_path / "data"
    folder.mkdir()
    if request.param == "disk_full":
        _skip_unless_runs(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)], "no small disk")
        fault: StorageFault = DiskFull(folder / "hookd.db")
        try:
            yield fault
        finally:
            fault.remove()
            # Lazy: the hookd processes may still hold it; they are killed after this fixture.
            subprocess.run(["umount", "-l", str(folder)], check=False, capture_output=True)
        return
    probe = folder / "probe"
    probe.touch()
    _skip_unless_runs(["chattr", "+i", str(probe)], "no immutable attribute on this filesystem")
    _skip_unless_runs(["chattr", "-i", str(probe)], "cannot clear the immutable attribute")
    fault = ReadOnlyFile(folder / "hookd.db")
    try:
        yield fault
    finally:
        fault.remove()


REFUSED_WORDS = ("disk full or read-only", "nothing was stored")


async def send_until_refused(
    api: Api, agent: dict[str, Any], label: str, max_requests: int = 3000
) -> list[tuple[str, int, dict[str, Any]]]:
    """Webhooks ten at a time until one is not accepted: the fault has reached the database.

    A full disk may still take a few commits into space SQLite's files already hold.
    """
    answers: list[tuple[str, int, dict[str, Any]]] = []
    while all(status == 200 for _, status, _ in answers):
        assert len(answers) < max_requests, f"{max_requests} webhooks and none refused"
        questions = [f"{label} {len(answers) + n}" for n in range(10)]
        results = await asyncio.gather(*(api.send(agent, {"question": q}) for q in questions))
        answers += [(q, status, body) for q, (status, body) in zip(questions, results, strict=True)]
    return answers


def check_refusals(answers: list[tuple[str, int, dict[str, Any]]]) -> tuple[list[str], list[str]]:
    """(acknowledged task ids, refused questions); anything but 200 or a clear 503 fails."""
    acked, refused = [], []
    for question, status, body in answers:
        if status == 200:
            acked.append(body["task_id"])
            continue
        assert status == 503, (question, status, body)
        assert body["success"] is False and all(w in body["message"] for w in REFUSED_WORDS), body
        refused.append(question)
    return acked, refused


async def test_webhooks_get_503_while_the_database_cannot_be_written_then_200_again(
    storage_fault: StorageFault, processes: HookdProcesses, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    hookd = await start(processes, db=storage_fault.db, workers=1)
    api = Api(http, hookd)
    ok = await api.create_agent(llm={"model": "ok"})
    before = [await api.trigger(ok, {"question": f"before {n}"}) for n in range(20)]
    await api.wait_all(before)
    # The one worker is held by a run that hangs, so no run ends while the fault lasts
    # (the next test is about those): every write here is a webhook's.
    holder = await api.trigger(
        await api.create_agent(llm={"model": "mode=hang"}, timeout_s=60), {"question": "holds the worker"}
    )
    await api.wait_all([holder], ("STARTED",))

    await asyncio.to_thread(storage_fault.apply)
    during = await send_until_refused(api, ok, "during")
    more = [await api.send(ok, {"question": f"still during {n}"}) for n in range(10)]
    answers = during + [(f"still during {n}", *answer) for n, answer in enumerate(more)]
    acked_during, refused = check_refusals(answers)
    # Reads still work: health, and the results stored before the fault.
    assert (await api.health())["status"] == "ok"
    assert all(body["status"] == "SUCCESS" for body in (await api.statuses(before)).values())

    await asyncio.to_thread(storage_fault.remove)
    # The same process takes webhooks again at once: no restart, no retry needed.
    after = [await api.trigger(ok, {"question": f"after {n}"}) for n in range(10)]
    assert hookd.popen.poll() is None
    await api.cancel(holder)
    done = await api.wait_all(before + acked_during + after)
    assert all(body["status"] == "SUCCESS" for body in done.values()), done
    print(
        f"{storage_fault.kind}: {len(acked_during)} webhooks stored before the fault bit, {len(refused)} refused"
    )

    hookd.terminate()
    assert await asyncio.to_thread(hookd.wait_exit, 10.0) == 0, hookd.log()
    rows = read_tasks(storage_fault.db)
    assert all(task_id in rows for task_id in before + acked_during + after)
    stored_questions = {json.loads(row["payload"]).get("question") for row in rows.values()}
    assert not stored_questions & set(refused), "a refused webhook was stored"
    max_attempts_of = {ok["id"]: ok["max_attempts"], rows[holder]["agent_id"]: 3}
    broken = {t: p for t, row in rows.items() if (p := row_problems(row, max_attempts_of, ("cancelled",)))}
    assert not broken, broken
    assert integrity_problems(storage_fault.db) == []


class LostRun(AssertionError):
    """A run's final write was refused and its task never became final: the known bug below."""


async def test_runs_that_end_while_the_database_cannot_be_written_finish_once_it_can(
    storage_fault: StorageFault, processes: HookdProcesses, http: aiohttp.ClientSession, fake_llm: FakeLLM
) -> None:
    slow_model = "sleep=1.5"
    hookd = await start(processes, db=storage_fault.db, workers=8)
    api = Api(http, hookd)
    slow = await api.create_agent(llm={"model": slow_model})
    ok = await api.create_agent(llm={"model": "ok"})
    running = [await api.trigger(slow, {"question": f"slow {n}"}) for n in range(4)]
    await api.wait_all(running, ("STARTED",))
    await wait_until(lambda: len(fake_llm.calls_for(slow_model)) == 4, "4 slow runs at the model")

    await asyncio.to_thread(storage_fault.apply)
    acked_during, _ = check_refusals(await send_until_refused(api, ok, "during"))
    assert fake_llm.in_flight[slow_model] == 4, "the slow runs ended before the fault reached the database"
    # The model answers while the fault lasts: the runs end and try to write their results.
    await wait_until(lambda: fake_llm.in_flight[slow_model] == 0, "the slow runs answered")
    # Today the pool drops a run whose final write fails, freeing its slot; a pool that
    # holds on to the result and retries keeps the slot busy. Either way, let it try first.
    with contextlib.suppress(AssertionError):
        await poll(api.health, lambda h: h["running"] == 0, "the slow runs ended", timeout_s=2)

    await asyncio.to_thread(storage_fault.remove)
    after = [await api.trigger(ok, {"question": f"after {n}"}) for n in range(3)]
    # No restart: the same process gets every task to a final state.
    try:
        # A run whose final write kept failing waits up to MAX_FINAL_WRITE_RETRY_S to try again.
        done = await api.wait_all(running + acked_during + after, timeout_s=MAX_FINAL_WRITE_RETRY_S + 5)
    except AssertionError as exc:
        raise LostRun(str(exc)[:1000]) from None
    for n, task_id in enumerate(running):
        assert done[task_id]["status"] == "SUCCESS", done[task_id]
        assert done[task_id]["result"]["answer"] == f"You said: slow {n}"


# -- SIGTERM with 500 runs in flight -------------------------------------------------------------

GRACE_S = 2.5
# Seconds each model takes to answer: well within the grace period, about as long as it
# (either outcome is right, but it must be one of the two), well past it.
FINISH_SLEEPS_S = (1.0, 1.2, 1.4)
BOUNDARY_SLEEPS_S = (2.3, 2.5, 2.7)
CUT_SLEEPS_S = (4.5, 5.0, 5.5)
RUNS_PER_MODEL = 56  # nine models: 504 runs in flight


async def test_sigterm_with_500_runs_in_flight_finishes_some_and_requeues_the_rest(
    processes: HookdProcesses, fake_llm: FakeLLM
) -> None:
    sleeps_s = FINISH_SLEEPS_S + BOUNDARY_SLEEPS_S + CUT_SLEEPS_S
    total = len(sleeps_s) * RUNS_PER_MODEL
    hookd = await start(processes, workers=total + 16, shutdown_grace_s=str(GRACE_S))
    # No keep-alive: no pooled connection may outlive the process it went to.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        api = Api(http, hookd)
        agents = [await api.create_agent(llm={"model": f"sleep={s}"}, max_attempts=3) for s in sleeps_s]
        sends = [
            (agent, f"{s} s run {n}")
            for agent, s in zip(agents, sleeps_s, strict=True)
            for n in range(RUNS_PER_MODEL)
        ]
        task_ids = list(await asyncio.gather(*(api.trigger(agent, {"question": q}) for agent, q in sends)))
        question_of = {task_id: q for task_id, (_, q) in zip(task_ids, sends, strict=True)}
        sleep_of = {task_id: float(q.split()[0]) for task_id, q in question_of.items()}
        await wait_until(lambda: len(fake_llm.calls) == total, "every run at the model")
        # The next start runs what is cut off on an instant model; runs in flight keep theirs.
        for agent in agents:
            await api.update_agent(agent["id"], llm={"model": "ok"})

        terminated_at = time.time()
        hookd.terminate()
        exit_code = await asyncio.to_thread(hookd.wait_exit, GRACE_S + 15)
        stopped_s = time.time() - terminated_at
        assert exit_code == 0, hookd.log()[-3000:]

        rows = read_tasks(hookd.db)
        assert sorted(rows) == sorted(task_ids)
        for task_id, row in rows.items():
            state = (row["status"], row["attempts"], row["result"] is None, row["last_error"])
            if row["status"] == "SUCCESS":  # finished: once, within the grace period
                assert state == ("SUCCESS", 1, False, None), row
                assert sleep_of[task_id] not in CUT_SLEEPS_S, row
            else:  # cut off: queued again, its attempt given back
                assert state == ("PENDING", 0, True, None) and row["started_at"] is None, row
                assert sleep_of[task_id] not in FINISH_SLEEPS_S, row
        finished = {task_id for task_id, row in rows.items() if row["status"] == "SUCCESS"}
        assert any(rows[t]["finished_at"] > terminated_at for t in finished), (
            "nothing finished in the grace period"
        )
        outcomes = Counter((sleep_of[t], rows[t]["status"]) for t in rows)
        print(
            f"SIGTERM with {total} runs in flight: stopped in {stopped_s:.1f} s; {sorted(outcomes.items())}"
        )

        await start(processes, port=hookd.port, workers=total + 16)
        done = await api.wait_all(task_ids, timeout_s=20)
    for task_id, body in done.items():
        assert (body["status"], body["attempts"]) == ("SUCCESS", 1), body
        assert body["result"]["answer"] == f"You said: {question_of[task_id]}"
        assert body["result"]["model"] == (f"sleep={sleep_of[task_id]}" if task_id in finished else "ok")
    # Nothing that finished ran again; each cut-off run was asked once more, on the new model.
    asked = questions_sent(fake_llm)
    assert asked == {q: (1 if t in finished else 2) for t, q in question_of.items()}
    assert questions_sent(fake_llm, "ok") == {question_of[t]: 1 for t in task_ids if t not in finished}
