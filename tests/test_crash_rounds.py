"""kill -9 at random moments while 2,000 webhooks are being sent: five rounds on one database.

Each round starts hookd (a real `python server.py`) on the database the last round's kill
left behind, sends 2,000 webhooks over real sockets, and SIGKILLs the process once a randomly
chosen number of them has been acknowledged, while earlier tasks are being run. The kill
points and the mix of agents come from one seeded generator: the seed is printed, and
FAULT_SEED=<seed> replays the same rounds.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.fake_llm import FakeLLM
from tests.processes import HookdProcess, HookdProcesses, free_port
from tests.remote import (
    FINAL,
    Api,
    count_unfinished,
    integrity_problems,
    poll,
    questions_sent,
    read_tasks,
    row_problems,
)

ROUNDS = 5
WEBHOOKS_PER_ROUND = 2000
CONNECTIONS = 32  # concurrent webhook senders
WORKERS = 32
# The only way a stored task may fail here: killed on its last attempt.
FAILURE_TYPES = ("interrupted",)


@dataclass
class Round:
    number: int
    kill_after_acks: int
    acked: dict[str, str] = field(default_factory=dict)  # task id → question
    refused: list[tuple[int, Any]] = field(default_factory=list)  # answers other than 200
    dropped: int = 0  # requests that met the dead process
    killed_at: float = 0.0

    def summary(self, stored_unacked: int, interrupted: int) -> str:
        return (
            f"round {self.number}: killed after {len(self.acked)} of {WEBHOOKS_PER_ROUND} acks"
            f" (target {self.kill_after_acks}), {self.dropped} dropped, {stored_unacked} stored but"
            f" never acknowledged, {interrupted} runs interrupted"
        )


async def send_round(
    hookd: HookdProcess, agents: list[dict[str, Any]], rnd: Round, rng: random.Random
) -> None:
    """Send the round's webhooks; SIGKILL hookd the moment the chosen one is acknowledged."""
    targets = [rng.choice(agents) for _ in range(WEBHOOKS_PER_ROUND)]
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def send(n: int, agent: dict[str, Any]) -> None:
            question = f"round {rnd.number} webhook {n}"
            try:
                async with http.post(agent["webhook_url"], json={"question": question}) as response:
                    status, body = response.status, await response.json()
            except (aiohttp.ClientError, OSError):
                rnd.dropped += 1  # the process is gone: refused, reset, or cut mid-answer
                return
            if status != 200:
                rnd.refused.append((status, body))
                return
            # The whole answer has arrived: this task id is acknowledged.
            rnd.acked[body["task_id"]] = question
            if len(rnd.acked) == rnd.kill_after_acks:
                hookd.popen.send_signal(signal.SIGKILL)  # at once, from inside the answer
                rnd.killed_at = time.monotonic()

        await asyncio.gather(*(send(n, agent) for n, agent in enumerate(targets)))
    await asyncio.to_thread(hookd.popen.wait)


async def test_acknowledged_webhooks_survive_five_kill_9_rounds(tmp_path: Path, fake_llm: FakeLLM) -> None:
    seed = int(os.environ.get("FAULT_SEED") or random.randrange(2**32))
    print(f"kill -9 rounds: seed {seed} (replay: FAULT_SEED={seed} python -m pytest {__file__})")
    rng = random.Random(seed)
    db = tmp_path / "hookd.db"
    port = free_port()
    acked: dict[str, str] = {}
    finals: dict[str, dict[str, Any]] = {}  # rows seen final: they must never change again

    with HookdProcesses(tmp_path, llm_base_url=fake_llm.url + "/v1", llm_model="ok") as processes:
        hookd = await asyncio.to_thread(processes.start, port=port, workers=WORKERS)
        async with aiohttp.ClientSession() as http:
            api = Api(http, hookd)
            # Runs in flight at each kill: instant ones with attempts to spare, and slower
            # ones on their only attempt, which a kill ends FAILURE "interrupted".
            agents = [
                await api.create_agent(llm={"model": "ok"}, max_attempts=3),
                await api.create_agent(llm={"model": "sleep=0.05"}, max_attempts=1),
            ]
        max_attempts_of = {agent["id"]: agent["max_attempts"] for agent in agents}

        for number in range(1, ROUNDS + 1):
            rnd = Round(number, kill_after_acks=rng.randrange(1, WEBHOOKS_PER_ROUND))
            await send_round(hookd, agents, rnd, rng)
            context = f"seed {seed}, round {number}"
            assert rnd.killed_at, f"{context}: only {len(rnd.acked)} acks, never {rnd.kill_after_acks}"
            assert not rnd.refused, f"{context}: refused before the kill: {rnd.refused[:3]}"
            acked |= rnd.acked

            # The file as the kill left it, before any restart touches it.
            rows = read_tasks(db)
            missing = [task_id for task_id in rnd.acked if task_id not in rows]
            assert not missing, f"{context}: {len(missing)} acknowledged tasks not in the database"
            broken = {
                t: p for t, row in rows.items() if (p := row_problems(row, max_attempts_of, FAILURE_TYPES))
            }
            assert not broken, f"{context}: rows that are not whole tasks: {list(broken.items())[:3]}"
            changed = [t for t, row in finals.items() if rows.get(t) != row]
            assert not changed, (
                f"{context}: final results changed: {[(finals[t], rows.get(t)) for t in changed[:2]]}"
            )
            finals |= {t: row for t, row in rows.items() if row["status"] in FINAL}
            per_question = Counter(row["payload"] for row in rows.values())
            assert max(per_question.values()) == 1, f"{context}: one webhook stored twice"
            this_round = f'"round {number} webhook '
            stored_unacked = sum(
                1 for t, row in rows.items() if t not in acked and this_round in row["payload"]
            )
            interrupted = sum(1 for row in rows.values() if row["status"] == "STARTED")
            print(rnd.summary(stored_unacked, interrupted))

            hookd = await asyncio.to_thread(processes.start, port=port, workers=WORKERS)

        # The last start runs everything left: every stored task becomes final.
        await poll(
            lambda: asyncio.to_thread(count_unfinished, db),
            lambda unfinished: unfinished == 0,
            f"seed {seed}: every task final after the last restart",
            timeout_s=60.0,
            pause_s=0.1,
        )
        rows = read_tasks(db)
        async with aiohttp.ClientSession() as http:
            api = Api(http, hookd)
            sample = rng.sample(sorted(acked), 100)  # through the public API as well
            served = await api.statuses(sample)

    assert all(task_id in rows for task_id in acked), f"seed {seed}: acknowledged tasks lost"
    broken = {t: p for t, row in rows.items() if (p := row_problems(row, max_attempts_of, FAILURE_TYPES))}
    assert not broken, f"seed {seed}: rows that are not whole tasks: {list(broken.items())[:3]}"
    assert all(rows[t]["status"] in FINAL for t in rows)
    changed = [t for t, row in finals.items() if rows.get(t) != row]
    assert not changed, (
        f"seed {seed}: final results changed: {[(finals[t], rows.get(t)) for t in changed[:2]]}"
    )
    for task_id, body in served.items():
        row = rows[task_id]
        assert (body["status"], body["attempts"]) == (row["status"], row["attempts"]), (body, row)

    # Each acknowledged id holds the question it was sent with. The model was asked each
    # question at most once per attempt its task counted, never a question no stored task
    # holds; and every SUCCESS was really asked.
    question_of = {task_id: json.loads(row["payload"])["question"] for task_id, row in rows.items()}
    wrong = [t for t, question in acked.items() if question_of[t] != question]
    assert not wrong, f"seed {seed}: tasks holding another webhook's payload: {wrong[:3]}"
    attempts_of = {question_of[t]: row["attempts"] for t, row in rows.items()}
    asked = questions_sent(fake_llm)
    over = {q: (n, attempts_of.get(q)) for q, n in asked.items() if n > attempts_of.get(q, 0)}
    assert not over, f"seed {seed}: asked more often than attempts counted: {list(over.items())[:5]}"
    unasked = [t for t, row in rows.items() if row["status"] == "SUCCESS" and not asked[question_of[t]]]
    assert not unasked, f"seed {seed}: SUCCESS without a model call: {unasked[:3]}"
    assert integrity_problems(db) == []
    statuses = Counter(row["status"] for row in rows.values())
    print(
        f"{len(acked)} acknowledged, {len(rows)} stored, final: {dict(statuses)}, model calls: {len(fake_llm.calls)}"
    )
