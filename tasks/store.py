"""The store: every operation hookd performs on its database, as one small interface.

SQLite (tasks/sqlite/store.py) is the embedded default; PostgreSQL (tasks/postgres/) is for
several nodes on one database. tasks/backends.py is the one place a backend is chosen, and
tests/test_store_contract.py proves both against these contracts. Nothing outside the store
knows which database it talks to.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from agents.agent import Agent, iso_time
from agents.knowledge import Passage, PreparedSource, Source
from tasks.dump import Batch
from tasks.events import TaskEvent, TaskEvents
from tasks.json_text import MAX_JSON_DEPTH, MAX_RESULT_DEPTH, json_text, loads_within

STATUSES = ("PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE")
# How long a webhook's idempotency key is remembered: a request repeating it within this window
# gets the first request's task instead of a new one.
IDEMPOTENCY_WINDOW_S = 24 * 3600.0
DELIVERY_STATUSES = ("pending", "delivered", "failed")
# A task in a list (list_tasks) carries its result whole only up to this many bytes of JSON;
# a larger one comes as a preview (its type and model, the start of its error or answer, made
# by `list_preview` when the result is stored), so that a page of tasks stays small and cheap
# whatever the runs returned. Payloads are never listed.
LIST_RESULT_MAX_BYTES = 2048
LIST_PREVIEW_CHARS = 500


@dataclass(frozen=True)
class Task:
    id: str
    agent_id: str | None
    status: str
    payload: str  # JSON text, as accepted
    result: dict[str, Any] | None
    last_error: dict[str, Any] | None
    attempts: int
    max_attempts: int
    run_after: float
    created_at: float
    started_at: float | None
    finished_at: float | None
    # Set by list_tasks: `result` is a preview of a result over LIST_RESULT_MAX_BYTES.
    result_truncated: bool = False

    def status_json(self) -> dict[str, Any]:
        """The public shape served by GET /api/task_status (DocsGPT's, plus timings)."""
        body: dict[str, Any] = {
            "status": self.status,
            "result": self.result,
            "task_id": self.id,
            "agent_id": self.agent_id,
            "attempts": self.attempts,
            "max_attempts": self.max_attempts,
            "created_at": iso_time(self.created_at),
            "started_at": iso_time(self.started_at),
            "finished_at": iso_time(self.finished_at),
        }
        if self.status == "RETRY":
            body["last_error"] = self.last_error
            body["next_attempt_at"] = iso_time(self.run_after)
        return body

    def admin_json(self, *, with_payload: bool) -> dict[str, Any]:
        body = self.status_json()
        body["id"] = self.id
        body["last_error"] = self.last_error
        body["result_truncated"] = self.result_truncated
        if with_payload:
            body["payload"] = self.payload_value()
        return body

    def payload_value(self) -> Any:
        """The payload as a JSON value; one an older hookd stored nested deeper than
        MAX_JSON_DEPTH (it had no nesting limit), which no view could serve, as its JSON text."""
        readable, value = loads_within(self.payload, MAX_JSON_DEPTH)
        return value if readable else self.payload


def stored_result(text: str | None) -> dict[str, Any] | None:
    """A stored result as a value. One nested deeper than MAX_RESULT_DEPTH (only an older hookd
    stored such results) could not be served, so it reads as a failure saying so."""
    if text is None:
        return None
    readable, value = loads_within(text, MAX_RESULT_DEPTH)
    return value if readable else _unreadable_result()


def _unreadable_result() -> dict[str, Any]:
    return {
        "error": f"An older hookd stored this result nested deeper than {MAX_RESULT_DEPTH} levels;"
        " it cannot be shown.",
        "type": "result_too_large",
    }


@dataclass(frozen=True)
class Claim:
    """A task just moved to STARTED, with its agent as it was in the same transaction."""

    task: Task
    agent: Agent
    agent_has_sources: bool  # knowledge to search before the run (else the run skips the search)


@dataclass(frozen=True)
class Finished:
    """A final result just stored."""

    delivery_queued: bool  # its agent has a callback_url: a Delivery was queued with it


@dataclass(frozen=True)
class Enqueued:
    """The task an idempotent webhook request answers with."""

    task_id: str
    replayed: bool  # an earlier request with the same key made this task; nothing new was stored
    same_body: bool = True  # False: that earlier request had another body (so this one is refused)


@dataclass(frozen=True)
class Delivery:
    """One final result to POST to an agent's callback_url, and how its attempts went."""

    id: str  # sent as webhook-id, the same on every attempt
    task_id: str
    agent_id: str | None  # None once the agent is deleted
    url: str
    status: str  # pending, delivered or failed
    attempts: int
    next_attempt_at: float | None  # set while pending
    last_attempt_at: float | None
    last_status_code: int | None
    last_error: str | None
    created_at: float
    delivered_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "task_id": self.task_id,
            "url": self.url,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": iso_time(self.next_attempt_at),
            "last_attempt_at": iso_time(self.last_attempt_at),
            "last_status_code": self.last_status_code,
            "last_error": self.last_error,
            "created_at": iso_time(self.created_at),
            "delivered_at": iso_time(self.delivered_at),
        }


@dataclass(frozen=True)
class Recovered:
    """A task taken over from a server that is gone (its lease expired), as the take-over left it."""

    task_id: str
    agent_id: str | None
    status: str  # PENDING: queued again, attempts left; FAILURE: "interrupted" on its last attempt
    attempts: int


@dataclass(frozen=True)
class Recovery:
    tasks: list[Recovered]

    @property
    def requeued(self) -> int:
        return sum(1 for task in self.tasks if task.status == "PENDING")

    @property
    def failed(self) -> int:
        return sum(1 for task in self.tasks if task.status == "FAILURE")


def new_node_id() -> str:
    """This process's name as the owner of the runs it holds: host, pid and a random part (a
    restarted process may get its predecessor's pid)."""
    return f"{socket.gethostname()[:40]}/{os.getpid()}/{secrets.token_hex(3)}"


class Store(ABC):
    """Agents and tasks, durably. Every write is committed before its method returns.

    **Events.** Every change of a task's status this process commits is published on
    `events` right after its commit (commit, then event, then whatever wakes on it), by the
    public methods below: the backends implement the underscored ones. A backend that serves
    several processes also publishes the changes the others commit (`serving`).

    **Leases.** A claimed task is its claimer's (`node_id`) until its lease expires; the
    claimer renews it while the run goes on (`renew_leases`). Every write of a run's outcome
    names the task as claimed, and is refused once the task is no longer that claim's: a
    server that lost its lease (paused, cut off) cannot overwrite its successor's result.
    """

    def __init__(self) -> None:
        self.events = TaskEvents()
        self.node_id = new_node_id()

    # -- lifecycle ---------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create the schema if the database is new."""

    @abstractmethod
    async def close(self) -> None:
        """Finish the writes already submitted, then disconnect."""

    @property
    @abstractmethod
    def where(self) -> str:
        """The database, for log lines and messages: a file's path, or a URL without its password."""

    @abstractmethod
    def serving(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held for as long as a server serves this database (entered before `open`). While it
        is held, changes other processes commit reach `events` (with `local` False), or, where
        the backend cannot tell what changed, `events.resync()` says that something did.
        SQLite: one server per file (StorageUnavailable if another holds it). PostgreSQL: any
        number of nodes. The CLI's commands need no such hold: they are ordinary transactions."""

    @abstractmethod
    async def leads_background_work(self) -> bool:
        """Whether this server is, now, the one that does the work one server at a time must
        do (callback deliveries, retention). Asked before each round of such work: another
        server takes over within a few seconds of this one's end."""

    # -- agents ------------------------------------------------------------------------

    @abstractmethod
    async def create_agent(self, fields: dict[str, Any], token_sha256: bytes) -> Agent:
        """Insert an agent from validated fields, with a new callback signing secret.
        Conflict if the name is taken."""

    @abstractmethod
    async def get_agent(self, agent_id: str) -> Agent:
        """NotFound if there is none."""

    @abstractmethod
    async def get_agent_by_name(self, name: str) -> Agent:
        """NotFound if there is none."""

    @abstractmethod
    async def agent_for_token(self, token_sha256: bytes) -> Agent | None:
        """The agent whose current webhook token hashes to this, if any."""

    @abstractmethod
    async def list_agents(self) -> list[Agent]:
        """All agents, by name."""

    @abstractmethod
    async def update_agent(self, agent_id: str, fields: dict[str, Any]) -> Agent:
        """Change validated fields. NotFound, or Conflict if a new name is taken."""

    @abstractmethod
    async def save_agents(
        self, creates: Sequence[tuple[dict[str, Any], bytes]], updates: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[Agent]:
        """Create agents (validated fields, token hash) and change others (id, validated
        fields) in one transaction: all or nothing. The agents as saved, creates first.
        Conflict if a name is taken, NotFound if an agent to change is gone."""

    @abstractmethod
    async def set_agent_token(self, agent_id: str, token_sha256: bytes) -> Agent:
        """Replace the webhook token; the old one stops working with this commit."""

    @abstractmethod
    async def set_callback_secret(self, agent_id: str, secret: str) -> Agent:
        """Replace the agent's callback signing secret; callbacks sent from now on use the new one."""

    async def delete_agent(self, agent_id: str) -> list[str]:
        """Delete an agent; its unfinished tasks end FAILURE "cancelled" (with no callback).
        Returns their ids."""
        cancelled = await self._delete_agent(agent_id)
        for task_id in cancelled:
            self.events.publish(TaskEvent(task_id, agent_id, "FAILURE", 0, error_type="cancelled"))
        return cancelled

    @abstractmethod
    async def _delete_agent(self, agent_id: str) -> list[str]: ...

    # -- tasks -------------------------------------------------------------------------

    async def enqueue(
        self, token_sha256: bytes, payload_json: str, *, signature_secret: str | None = None
    ) -> str | None:
        """Commit a new PENDING task for the *active* agent holding this webhook token and
        return its id; None (and nothing stored) when no active agent holds it.

        `signature_secret` is the secret the request's signature was checked with (None: it was
        not checked): an agent whose secret is no longer that one gets no task either.
        """
        task_id = await self._enqueue(token_sha256, payload_json, signature_secret)
        if task_id is not None:
            self.events.publish(TaskEvent(task_id, None, "PENDING", 0))
        return task_id

    async def enqueue_once(
        self,
        token_sha256: bytes,
        payload_json: str,
        *,
        key: str,
        body_sha256: bytes,
        signature_secret: str | None = None,
    ) -> Enqueued | None:
        """`enqueue`, unless the agent saw this idempotency key within IDEMPOTENCY_WINDOW_S:
        then nothing is stored and the answer is that earlier task, with whether its request
        had the same body (compared by SHA-256). The check and the insert are one atomic
        write, so concurrent requests with one key make one task. None as for `enqueue`."""
        enqueued = await self._enqueue_once(token_sha256, payload_json, key, body_sha256, signature_secret)
        if enqueued is not None and not enqueued.replayed:
            self.events.publish(TaskEvent(enqueued.task_id, None, "PENDING", 0))
        return enqueued

    @abstractmethod
    async def _enqueue(
        self, token_sha256: bytes, payload_json: str, signature_secret: str | None
    ) -> str | None: ...

    @abstractmethod
    async def _enqueue_once(
        self,
        token_sha256: bytes,
        payload_json: str,
        key: str,
        body_sha256: bytes,
        signature_secret: str | None,
    ) -> Enqueued | None: ...

    @abstractmethod
    async def get_task(self, task_id: str) -> Task | None:
        """The task, or None when the id is unknown."""

    @abstractmethod
    async def list_tasks(
        self,
        *,
        agent_id: str | None = None,
        statuses: Sequence[str] = (),
        limit: int = 50,
        before_id: str | None = None,
    ) -> list[Task]:
        """Tasks newest first, optionally for one agent, some statuses, or older than an id.
        Without their payloads (`payload` is ""), and with a result over LIST_RESULT_MAX_BYTES
        as a preview (`result_truncated`), so that a list's size never depends on the runs'."""

    @abstractmethod
    async def queue_depth(self) -> int:
        """How many tasks are PENDING or RETRY."""

    @abstractmethod
    async def count_by_status(self) -> dict[str, int]:
        """How many tasks are in each status, every status present (0 when none). Read on
        every metrics scrape, so it must come from an index, without reading the rows."""

    async def claim_batch(self, limit: int, lease_s: float) -> list[Claim]:
        """Atomically move up to `limit` runnable tasks to STARTED (counting an attempt), each
        this process's (`node_id`) for `lease_s` unless renewed, and returned with its agent and
        whether that agent has knowledge sources (so a run needs no read of its own first).

        Runnable: PENDING or RETRY, due, of an active agent, and within the agent's
        max_concurrency counting the tasks already running (on every node).
        """
        claims = await self._claim_batch(limit, lease_s)
        for claim in claims:
            task = claim.task
            self.events.publish(TaskEvent(task.id, task.agent_id, "STARTED", task.attempts))
        return claims

    async def finish(self, task: Task, status: str, result: dict[str, Any]) -> Finished | None:
        """A claimed task (`task` as `claim_batch` returned it) STARTED → SUCCESS or FAILURE.
        None, and no change, if the task is no longer that claim's: cancelled meanwhile, or
        taken over after its lease expired (fenced by owner and attempt).

        Every write that makes a task final (this, `cancel`, `take_over_expired`) also queues
        a pending Delivery, in the same transaction, when the task's agent has a callback_url."""
        assert status in ("SUCCESS", "FAILURE")
        finished = await self._finish(task, status, result)
        if finished is not None:
            error_type = result.get("type") if status == "FAILURE" else None
            event = TaskEvent(
                task.id,
                task.agent_id,
                status,
                task.attempts,
                _run_time_s(task),
                error_type,
                delivery_queued=finished.delivery_queued,
            )
            self.events.publish(event)
        return finished

    async def retry_later(self, task: Task, run_after: float, error: dict[str, Any]) -> bool:
        """A claimed task STARTED → RETRY until `run_after`. False, as for `finish`, if it is
        no longer that claim's."""
        stored = await self._retry_later(task, run_after, error)
        if stored:
            event = TaskEvent(
                task.id, task.agent_id, "RETRY", task.attempts, _run_time_s(task), error["type"]
            )
            self.events.publish(event)
        return stored

    async def requeue(self, task: Task) -> bool:
        """A claimed task STARTED → PENDING without spending the attempt (a run cut off by
        shutdown). False, as for `finish`, if it is no longer that claim's."""
        stored = await self._requeue(task)
        if stored:
            self.events.publish(TaskEvent(task.id, task.agent_id, "PENDING", task.attempts - 1))
        return stored

    async def cancel(self, task_id: str) -> Task:
        """End an unfinished task FAILURE "cancelled". NotFound, or Conflict if final. A run
        of it, on whichever server, stops when that server hears of it (its `events`)."""
        task = await self._cancel(task_id)
        self.events.publish(
            TaskEvent(task.id, task.agent_id, "FAILURE", task.attempts, error_type="cancelled")
        )
        return task

    async def take_over_expired(self) -> Recovery:
        """Take the STARTED tasks whose server is gone: their lease expired (a node killed,
        powered off, or paused past its lease), or, on SQLite, whose owner is not the server
        holding the file. Each is queued again while attempts remain (the journal replays its
        tool calls), else ends FAILURE "interrupted"."""
        recovery = await self._take_over_expired()
        for task in recovery.tasks:
            error_type = "interrupted" if task.status == "FAILURE" else None
            self.events.publish(
                TaskEvent(task.task_id, task.agent_id, task.status, task.attempts, error_type=error_type)
            )
        return recovery

    @abstractmethod
    async def renew_leases(self, lease_s: float) -> set[tuple[str, int]]:
        """Extend the lease of every task this process holds by `lease_s` from now; return
        them as (task id, attempt). A run of this process whose task is not among them is no
        longer its own (cancelled, or taken over) and must stop without writing."""

    @abstractmethod
    async def _claim_batch(self, limit: int, lease_s: float) -> list[Claim]: ...

    @abstractmethod
    async def _finish(self, task: Task, status: str, result: dict[str, Any]) -> Finished | None: ...

    @abstractmethod
    async def _retry_later(self, task: Task, run_after: float, error: dict[str, Any]) -> bool: ...

    @abstractmethod
    async def _requeue(self, task: Task) -> bool: ...

    @abstractmethod
    async def _cancel(self, task_id: str) -> Task: ...

    @abstractmethod
    async def _take_over_expired(self) -> Recovery: ...

    @abstractmethod
    async def purge_finished(self, finished_before: float, limit: int) -> int:
        """Delete up to `limit` SUCCESS/FAILURE tasks finished before this epoch time, oldest
        first; return how many."""

    # -- the tool-call journal ---------------------------------------------------------

    @abstractmethod
    async def tool_journal(self, task_id: str) -> dict[tuple[int, str, str], str]:
        """The outputs of the task's successful tool calls, by (step, tool, canonical JSON
        arguments), so a later attempt replays them instead of calling the tools again."""

    @abstractmethod
    async def journal_tool_call(
        self, task_id: str, attempt: int, key: tuple[int, str, str], output: str
    ) -> bool:
        """Commit one successful tool call of the run of this task's `attempt`. Nothing if the
        key is already journalled, or the task is gone or no longer this process's run of
        that attempt (False then: the run lost its task); the journal goes with its task."""

    @abstractmethod
    async def purge_idempotency_keys(self, created_before: float, limit: int) -> int:
        """Forget up to `limit` idempotency keys first seen before this epoch time, oldest
        first; return how many."""

    # -- callback deliveries -------------------------------------------------------------

    @abstractmethod
    async def due_deliveries(self, now: float, limit: int, exclude: Sequence[str] = ()) -> list[Delivery]:
        """Up to `limit` pending deliveries due by `now`, the longest-waiting first, leaving
        out the ids in `exclude` (the ones being sent)."""

    @abstractmethod
    async def next_delivery_at(self, exclude: Sequence[str] = ()) -> float | None:
        """When the next pending delivery (not in `exclude`) is due; None if there is none."""

    @abstractmethod
    async def record_delivery_attempt(
        self,
        delivery_id: str,
        *,
        status: str,
        status_code: int | None,
        error: str | None,
        next_attempt_at: float | None,
    ) -> None:
        """Count one attempt of a pending delivery and its outcome: `status` pending (with
        `next_attempt_at`), delivered or failed."""

    @abstractmethod
    async def list_deliveries(self, task_id: str) -> list[Delivery]:
        """A task's deliveries, oldest first."""

    # -- knowledge ---------------------------------------------------------------------

    @abstractmethod
    async def add_source(self, agent_id: str, source: PreparedSource) -> Source:
        """Store a source and its chunks, indexed for search_chunks, in one commit.
        NotFound if the agent does not exist."""

    @abstractmethod
    async def list_sources(self, agent_id: str) -> list[Source]:
        """The agent's sources, oldest first (none for an unknown agent)."""

    @abstractmethod
    async def delete_source(self, agent_id: str, source_id: str) -> None:
        """Delete one of the agent's sources with its chunks and their index entries.
        NotFound if the agent has no such source."""

    @abstractmethod
    async def search_chunks(self, agent_id: str, terms: Sequence[str], limit: int) -> list[Passage] | None:
        """The agent's `limit` chunks that best match any of the terms, best first (SQLite
        ranks by BM25, PostgreSQL by ts_rank: tasks/postgres/knowledge.py says how they differ).

        The terms are plain words, never query syntax. None, after one cheap lookup, when
        the agent has no sources: nothing was searched.
        """

    # -- moving a database (tasks/copy.py; tasks/dump.py describes the rows) ------------

    @abstractmethod
    async def row_counts(self) -> dict[str, int]:
        """How many rows each of hookd's tables (tasks/dump.py TABLES) holds, read at one instant."""

    @abstractmethod
    def dump(self) -> AsyncGenerator[Batch, None]:
        """Every row of every table in TABLES, table by table in that order, as batches of rows by
        column name, all read in one snapshot. A generator, so that a caller that stops early can
        close it, and the snapshot with it, at once (contextlib.aclosing)."""

    @abstractmethod
    async def load(self, batches: AsyncIterable[Batch], expected: Mapping[str, int]) -> dict[str, int]:
        """Insert another store's `dump` in one transaction, every row keeping its ids, times and
        hashes, and the chunks indexed for search_chunks; the row counts the store then holds.

        All or nothing: Conflict, before a batch is read, if the store already holds an agent or a
        task, and Conflict unless the counts are then `expected` (the source's row_counts)."""


def list_preview(result: dict[str, Any], result_json: str) -> str | None:
    """What a list shows of a result (JSON text), made when the result is stored: None for one
    within LIST_RESULT_MAX_BYTES, shown whole; else its type and model, and the start of its
    error or answer."""
    if len(result_json) <= LIST_RESULT_MAX_BYTES and len(result_json.encode()) <= LIST_RESULT_MAX_BYTES:
        return None
    preview: dict[str, str] = {}
    for key in ("type", "model", "error", "answer"):
        value = result.get(key)
        if isinstance(value, str):
            cut = len(value) > LIST_PREVIEW_CHARS
            preview[key] = value[:LIST_PREVIEW_CHARS] + ("…" if cut else "")
    return json_text(preview)


def _run_time_s(task: Task) -> float | None:
    return None if task.started_at is None else max(0.0, time.time() - task.started_at)


def cancelled_result() -> dict[str, Any]:
    return {"error": "The task was cancelled.", "type": "cancelled"}


def interrupted_result() -> dict[str, Any]:
    return {
        "error": "The hookd running this task stopped (or lost touch with the database) on its last attempt.",
        "type": "interrupted",
    }
