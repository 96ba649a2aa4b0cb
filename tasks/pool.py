"""The worker pool: runs claimed tasks in-process, at most `workers` waiting on their model
at a time (a run whose outcome is known is only writing it, and no longer counts).

One dispatcher claims batches of runnable tasks (one atomic UPDATE … RETURNING each) as
slots free up; each run is its own asyncio task with its own timeout. The pool listens to the
store's events: a task queued (here, or on another node) wakes the dispatcher at once, and a
task that a run here no longer holds (cancelled, by the API, the CLI or another node; taken
over by another node) stops that run. `notify()` and a slow safety poll cover anything else.

Every claimed task is held under a lease of `lease_s`, renewed every third of it while the run
goes on. A run whose task the renewal no longer finds has lost it, and stops without writing;
every write of a run's outcome is fenced (tasks/store.py) in case the run cannot be stopped in
time. Every `TAKE_OVER_CHECK_S` the pool takes over the tasks of servers that are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from agents.agent import Agent
from agents.providers import ModelError
from agents.run import RunContext
from errors import StorageUnavailable
from tasks.events import TaskEvent
from tasks.json_text import MAX_RESULT_DEPTH, json_text, may_nest_deeper_than, nested_deeper_than
from tasks.store import Claim, Recovery, Store, Task

log = logging.getLogger("hookd.pool")

RunAgent = Callable[[Agent, RunContext], Awaitable[dict[str, Any]]]
MAX_BACKOFF_S = 300.0
QUEUE_RECOUNT_S = 1.0
FINAL_WRITE_RETRY_S = 0.1
MAX_FINAL_WRITE_RETRY_S = 5.0
INLINE_DEPTH_CHECK_BYTES = 65_536
LEASE_RENEWALS_PER_LEASE = 3
# How often the tasks of a server that is gone are looked for: a takeover comes at most this
# long after the lease expired.
TAKE_OVER_CHECK_S = 1.0


def backoff_s(attempt: int, base_s: float) -> float:
    """Exponential backoff with jitter: base·2^(attempt-1), between half and all of it."""
    ceiling: float = min(base_s * 2.0 ** (attempt - 1), MAX_BACKOFF_S)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class _Outcome:
    status: str  # SUCCESS, FAILURE or RETRY
    result: dict[str, Any]
    retry_after_s: float = 0.0


class WorkerPool:
    def __init__(
        self,
        store: Store,
        run_agent: RunAgent,
        *,
        workers: int,
        shutdown_grace_s: float,
        retry_backoff_s: float,
        max_pending: int,
        max_result_bytes: int,
        lease_s: float = 30.0,
        poll_interval_s: float = 1.0,
    ) -> None:
        self._store = store
        self._run_agent = run_agent
        self.workers = workers
        self._grace_s = shutdown_grace_s
        self._backoff_s = retry_backoff_s
        self._poll_interval_s = poll_interval_s
        self.max_pending = max_pending
        self._max_result_bytes = max_result_bytes
        self.lease_s = lease_s
        # Tasks waiting to run, kept without a count(*) per webhook: counted at start and
        # on every safety poll, moved by the store's events in between (every node's).
        self.queue_depth = 0
        # Webhooks past the HOOKD_MAX_PENDING check whose task is not yet committed: they count
        # against the limit too, or a burst would all pass the check before any commit lands.
        self._reserved = 0
        self._counted_at = 0.0
        self._running: dict[str, asyncio.Task[None]] = {}
        # The claim each run holds, and when (loop time) it was made: a lease renewal sent
        # before a claim committed cannot say anything about it.
        self._claims: dict[str, tuple[Task, float]] = {}
        # Runs still waiting for their model: these hold the `workers` slots. A run whose
        # outcome is known gives its slot back before its final write commits, so the claim
        # of the next task can share that commit instead of waiting for it.
        # Keyed by task id, valued by the run (asyncio task): a run touches an entry only while it
        # is its own, since a task retried at once can be claimed again, in the very commit that
        # recorded its retry, while its previous run is still finishing.
        self._at_model: dict[str, asyncio.Task[None]] = {}
        self._finishing: set[asyncio.Task[Any]] = set()
        self._cancelled: set[str] = set()  # runs stopped because their task is no longer theirs
        self._wakeup = asyncio.Event()
        self._check_leases = asyncio.Event()
        self._stopping = False
        self._dispatcher: asyncio.Task[None] | None = None
        self._leases: asyncio.Task[None] | None = None
        self._unsubscribe: list[Callable[[], None]] = []

    @property
    def busy(self) -> int:
        return len(self._running)

    def notify(self) -> None:
        """Work may have become runnable (e.g. an agent was resumed): wake the dispatcher."""
        self._wakeup.set()

    def _on_event(self, event: TaskEvent) -> None:
        """A committed change of a task, made here or by another process."""
        if event.status in ("PENDING", "RETRY"):
            self.queue_depth += 1
            self._wakeup.set()
        elif event.status == "STARTED":
            self.queue_depth = max(0, self.queue_depth - 1)
        # A run here whose task has been ended (a cancel), or changed by someone else (taken
        # over), no longer holds it. (A run's own outcome is written after it leaves _at_model.)
        if event.task_id in self._at_model and (event.final or not event.local):
            if event.final:  # the task's own line (FAILURE type=cancelled) says it
                self._stop_run(event.task_id, "cancelled", logging.DEBUG)
            else:
                self._stop_run(event.task_id, "taken over by another node", logging.WARNING)

    def _on_resync(self) -> None:
        """Another process changed the database in ways no event said: look again now."""
        self._counted_at = 0.0  # recount the queue on the dispatcher's next pass
        self._wakeup.set()
        self._check_leases.set()

    def _stop_run(self, task_id: str, why: str, level: int = logging.INFO) -> None:
        run = self._at_model.get(task_id)
        if run is None or task_id in self._cancelled:
            return
        log.log(level, "task %s: no longer this node's (%s); its run stops", task_id, why)
        self._cancelled.add(task_id)
        run.cancel()

    def queue_full(self) -> bool:
        return self.queue_depth + self._reserved >= self.max_pending

    def reserve(self) -> bool:
        """Hold a place in the queue for a webhook about to commit its task; False when the
        queue, with the places already held, is at HOOKD_MAX_PENDING. Give it back with
        `release` once the task is committed (and counted by `accepted`) or refused."""
        if self.queue_full():
            return False
        self._reserved += 1
        return True

    def release(self) -> None:
        self._reserved -= 1

    async def start(self) -> None:
        events = self._store.events
        self._unsubscribe = [events.subscribe(self._on_event), events.subscribe_resync(self._on_resync)]
        recovery = await self._store.take_over_expired()
        self._log_takeover(recovery)
        await self._recount_queue()
        self._dispatcher = asyncio.create_task(self._dispatch(), name="hookd-dispatcher")
        self._leases = asyncio.create_task(self._keep_leases(), name="hookd-leases")

    async def stop(self) -> None:
        """Stop claiming; give running runs the grace period, then send the rest back to the queue."""
        self._stopping = True
        self._wakeup.set()
        if self._dispatcher is not None:
            await self._dispatcher
        if self._running and self._grace_s > 0:
            log.info("waiting up to %g s for %d running tasks", self._grace_s, len(self._running))
            await asyncio.wait(list(self._running.values()), timeout=self._grace_s)
        leftover = list(self._running.values())
        if leftover:
            log.warning("grace period over: %d runs go back to the queue for the next start", len(leftover))
            for run in leftover:
                run.cancel()
            await asyncio.gather(*leftover, return_exceptions=True)
        if self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
        if self._leases is not None:  # renewed until the last run's final write
            self._leases.cancel()
            await asyncio.gather(self._leases, return_exceptions=True)
        for unsubscribe in self._unsubscribe:
            unsubscribe()

    # -- leases ------------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        """Renew this node's leases every third of a lease (at once after a resync), and take
        over the tasks of servers that are gone every TAKE_OVER_CHECK_S."""
        loop = asyncio.get_running_loop()
        renew_every_s = self.lease_s / LEASE_RENEWALS_PER_LEASE
        renewed_at = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(TAKE_OVER_CHECK_S, renew_every_s)):
                    await self._check_leases.wait()
            if self._check_leases.is_set() or loop.time() - renewed_at >= renew_every_s:
                self._check_leases.clear()
                renewed_at = loop.time()
                await self._renew(renewed_at)
            try:
                self._log_takeover(await self._store.take_over_expired())
            except Exception:
                log.exception(
                    "looking for tasks of stopped servers failed; trying again in %g s", TAKE_OVER_CHECK_S
                )

    async def _renew(self, sent_at: float) -> None:
        try:
            held = await self._store.renew_leases(self.lease_s)
        except Exception:
            log.exception("renewing this node's leases failed; trying again soon")
            return
        for task_id, (task, claimed_at) in list(self._claims.items()):
            if claimed_at < sent_at and (task_id, task.attempts) not in held:
                self._stop_run(task_id, "cancelled, or its lease expired and another node took it over")

    def _log_takeover(self, recovery: Recovery) -> None:
        if recovery.tasks:
            log.warning(
                "took over tasks of a hookd that stopped: %d queued again, %d failed (no attempts left)",
                recovery.requeued,
                recovery.failed,
            )

    # -- dispatching -------------------------------------------------------------------

    async def _dispatch(self) -> None:
        while not self._stopping:
            # Clear before looking: a notify() or a finished run that lands after this
            # point leads to one more pass instead of being lost.
            self._wakeup.clear()
            free = self.workers - len(self._at_model)
            if free > 0:
                try:
                    claimed = await self._store.claim_batch(free, self.lease_s)
                except Exception:
                    log.exception("claiming tasks failed; trying again in %g s", self._poll_interval_s)
                    claimed = []
                claimed_at = asyncio.get_running_loop().time()
                for claim in claimed:
                    task = claim.task
                    self._claims[task.id] = (task, claimed_at)
                    run = asyncio.create_task(self._run(claim), name=f"hookd-run-{task.id}")
                    # The bookkeeping ends in a callback: also for a run cancelled before its
                    # first step, whose own code never runs.
                    run.add_done_callback(partial(self._run_done, task.id))
                    self._at_model[task.id] = self._running[task.id] = run
                if claimed and len(claimed) == free:
                    continue  # the queue may hold more; claim again once a slot frees
            if time.monotonic() - self._counted_at > QUEUE_RECOUNT_S:
                await self._recount_queue()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval_s):
                    await self._wakeup.wait()

    async def _recount_queue(self) -> None:
        """Correct the queue depth against the database (cancels, retries, the CLI)."""
        self._counted_at = time.monotonic()
        try:
            self.queue_depth = await self._store.queue_depth()
        except Exception:
            log.exception("counting the queue failed")

    async def _run(self, claim: Claim) -> None:
        task = claim.task
        this_run = asyncio.current_task()
        try:
            outcome = await self._execute(claim)
        except asyncio.CancelledError:
            self._release_slot(task.id, this_run)
            if task.id not in self._cancelled:  # shutdown: this attempt does not count
                await self._final_write(task, lambda: self._requeue(task))
            raise
        self._release_slot(task.id, this_run)
        await self._final_write(task, lambda: self._record(task, outcome))

    def _release_slot(self, task_id: str, run: asyncio.Future[Any] | None) -> None:
        if self._at_model.get(task_id) is run:
            del self._at_model[task_id]
            self._wakeup.set()  # claim the next task now: its claim joins this run's final write

    def _run_done(self, task_id: str, run: asyncio.Future[Any]) -> None:
        self._release_slot(task_id, run)
        if self._running.get(task_id) is run:
            del self._running[task_id]
            self._claims.pop(task_id, None)
            self._cancelled.discard(task_id)
        self._wakeup.set()  # the task is final: its agent's max_concurrency has room again

    async def _final_write(self, task: Task, write: Callable[[], Awaitable[Any]]) -> None:
        """Write a run's final state, even if the run is cancelled meanwhile (shielded), and
        even if the database refuses writes for a while (retried; the run stays in `busy`)."""
        future = asyncio.ensure_future(self._write_until_stored(task, write))
        self._finishing.add(future)
        future.add_done_callback(self._finishing.discard)
        await asyncio.shield(future)

    async def _write_until_stored(self, task: Task, write: Callable[[], Awaitable[Any]]) -> None:
        delay_s = FINAL_WRITE_RETRY_S
        fell_back = False
        while True:
            try:
                await write()
                return
            except StorageUnavailable:
                if self._stopping:  # left STARTED: the next start recovers it
                    log.error("task %s: its final state could not be written before shutdown", task.id)
                    return
                log.warning(
                    "task %s: database refuses writes; recording its state again in %g s", task.id, delay_s
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_FINAL_WRITE_RETRY_S)
            except Exception:
                # Not the database being unavailable: this write will never work. End the task
                # FAILURE rather than leave it STARTED (its agent's slot taken) until a restart.
                log.exception("task %s: recording its state failed", task.id)
                if fell_back:
                    return
                fell_back = True
                failure = {
                    "error": "hookd could not record the run's outcome; see its log.",
                    "type": "internal_error",
                }
                write = partial(self._finish, task, "FAILURE", failure)

    async def _execute(self, claim: Claim) -> _Outcome:
        task, agent = claim.task, claim.agent
        run = RunContext(task.id, task.payload, task.attempts, has_sources=claim.agent_has_sources)
        try:
            async with asyncio.timeout(agent.timeout_s):
                success = await self._run_agent(agent, run)
            why = await self._unstorable(success)
            if why is None:
                return _Outcome("SUCCESS", success)
            message = f"The run finished, but its result is {why}; it was not stored."
            failure: dict[str, Any] = {"error": message, "type": "result_too_large"}
            if run.tool_calls:
                failure["tool_calls_dropped"] = len(run.tool_calls)
            return _Outcome("FAILURE", failure)
        except TimeoutError:
            error = ModelError(
                "timeout",
                f"The run took longer than the agent's timeout_s ({agent.timeout_s:g} s).",
                transient=True,
            )
        except ModelError as exc:
            error = exc
        except Exception:
            log.exception("task %s: unexpected error in the agent run", task.id)
            error = ModelError(
                "internal_error",
                "hookd hit an unexpected error running the agent; see its log.",
                transient=False,
            )
        result: dict[str, Any] = {"error": str(error), "type": error.type}
        if error.transient and task.attempts < task.max_attempts:
            delay_s = (
                error.retry_after_s
                if error.retry_after_s is not None
                else backoff_s(task.attempts, self._backoff_s)
            )
            return _Outcome("RETRY", result, retry_after_s=delay_s)
        if task.attempts > 1:
            result["error"] += f" (attempt {task.attempts} of {task.max_attempts})"
        if run.tool_calls:  # what the failed attempt did before it failed
            result["tool_calls"] = run.tool_calls
            if await self._unstorable(result) is not None:
                del result["tool_calls"]
                result["tool_calls_dropped"] = len(run.tool_calls)
        return _Outcome("FAILURE", result)

    async def _unstorable(self, result: dict[str, Any]) -> str | None:
        """Why a result may not be stored (over HOOKD_MAX_RESULT_BYTES as JSON, or nested more
        than MAX_RESULT_DEPTH levels); None if it may."""
        try:
            text = json_text(result)
        except RecursionError:
            return f"nested deeper than {MAX_RESULT_DEPTH} levels"
        size = len(text) if text.isascii() else len(text.encode("utf-8"))
        if size > self._max_result_bytes:
            return f"over {self._max_result_bytes} bytes as JSON, the limit of HOOKD_MAX_RESULT_BYTES"
        if not may_nest_deeper_than(text, MAX_RESULT_DEPTH):
            return None
        if size <= INLINE_DEPTH_CHECK_BYTES:
            deep = nested_deeper_than(result, MAX_RESULT_DEPTH)
        else:  # a walk of a large result is Python code: off the event loop
            deep = await asyncio.to_thread(nested_deeper_than, result, MAX_RESULT_DEPTH)
        return f"nested deeper than {MAX_RESULT_DEPTH} levels" if deep else None

    async def _requeue(self, task: Task) -> None:
        await self._store.requeue(task)

    async def _finish(self, task: Task, status: str, result: dict[str, Any]) -> bool:
        """Store a final result; False if the task is no longer this run's (e.g. cancelled)."""
        return await self._store.finish(task, status, result) is not None

    async def _record(self, task: Task, outcome: _Outcome) -> None:
        if outcome.status == "RETRY":
            stored = await self._store.retry_later(task, time.time() + outcome.retry_after_s, outcome.result)
            if stored:
                asyncio.get_running_loop().call_later(outcome.retry_after_s, self._wakeup.set)
        else:
            stored = await self._finish(task, outcome.status, outcome.result)
        if not stored:
            log.info(
                "task %s: result of attempt %d discarded; the task was ended, or taken over by"
                " another node, meanwhile",
                task.id,
                task.attempts,
            )
