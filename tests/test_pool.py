"""The worker pool's own bookkeeping, against the real SQLite store and writer: which runs it
counts, cancels and waits for. (Runs through the model are tested end to end in test_runs.py;
here an agent run is a coroutine the test scripts, so that interleavings can be pinned.)"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import tasks.sqlite.writer as sqlite_writer
from agents.providers import ModelError
from agents.run import RunContext
from tasks.pool import WorkerPool
from tasks.sqlite.store import SQLiteStore

TOKEN_SHA256 = b"h" * 32


async def test_a_task_retried_at_once_and_claimed_in_its_retrys_commit_is_tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that fails with Retry-After: 0 gives its slot back before its RETRY commits, so the
    next claim can share that commit and take the same task again while the first run is
    still finishing. The first run must then leave the second's bookkeeping alone: the
    second is counted, an admin cancel interrupts it, and the pool's stop waits for it."""
    loop = asyncio.get_running_loop()
    model_answers: list[asyncio.Future[None]] = []
    apply = sqlite_writer.Writer._apply

    def apply_then_answer(self: sqlite_writer.Writer, ops: list[Any]) -> Any:
        outcomes = apply(self, ops)
        # The first attempt's model answers just as a claim commits: its RETRY and the next
        # claim are then submitted together, and the claim sees the task due again.
        if model_answers and any("claim_batch" in op.__qualname__ for op in ops):
            loop.call_soon_threadsafe(model_answers.pop().set_result, None)
        return outcomes

    monkeypatch.setattr(sqlite_writer.Writer, "_apply", apply_then_answer)
    store = SQLiteStore(str(tmp_path / "hookd.db"))
    await store.open()
    await store.create_agent({"name": "a", "max_attempts": 3}, TOKEN_SHA256)
    second_attempt = asyncio.Event()
    interrupted = asyncio.Event()

    async def run_agent(agent: Any, run: RunContext) -> dict[str, Any]:
        if run.attempt == 1:
            answer = loop.create_future()
            model_answers.append(answer)
            await answer
            raise ModelError("llm_http_error", "HTTP 429", transient=True, retry_after_s=0.0)
        second_attempt.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            interrupted.set()
            raise
        raise AssertionError("not reached")

    pool = WorkerPool(
        store,
        run_agent,
        workers=2,
        shutdown_grace_s=0,
        retry_backoff_s=0,
        max_pending=100,
        max_result_bytes=1 << 20,
    )
    await pool.start()
    try:
        task_id = await store.enqueue(TOKEN_SHA256, "{}")
        assert task_id is not None
        await asyncio.sleep(0.05)
        pool.notify()  # another claim (as another webhook would make) while attempt 1 waits
        await asyncio.wait_for(second_attempt.wait(), 5)
        await asyncio.sleep(0.1)  # attempt 1 has finished by now
        task = await store.get_task(task_id)
        assert task is not None and (task.status, task.attempts) == ("STARTED", 2)
        assert pool.busy == 1  # attempt 2, still counted

        await store.cancel(task_id)  # the pool hears it, and interrupts the run
        await asyncio.wait_for(interrupted.wait(), 5)
        await asyncio.sleep(0.05)
        assert pool.busy == 0
        task = await store.get_task(task_id)
        assert task is not None and task.status == "FAILURE" and task.result is not None
        assert task.result["type"] == "cancelled"
    finally:
        await pool.stop()
        await store.close()
