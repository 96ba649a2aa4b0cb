"""The store: every operation hookd performs on its database, as one small interface.

SQLite (tasks/sqlite_store.py) is the embedded default. Nothing outside the store knows
which database it talks to, so a PostgreSQL store (claims with FOR UPDATE SKIP LOCKED,
wake-ups with LISTEN/NOTIFY) can implement the same methods later.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agents.agent import Agent, iso_time

STATUSES = ("PENDING", "STARTED", "RETRY", "SUCCESS", "FAILURE")


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
        if with_payload:
            body["payload"] = json.loads(self.payload)
        return body


@dataclass(frozen=True)
class Claim:
    """A task just moved to STARTED, with its agent as it was in the same transaction."""

    task: Task
    agent: Agent


@dataclass(frozen=True)
class Recovery:
    requeued: int  # STARTED tasks with attempts left, queued again
    failed: int  # STARTED tasks on their last attempt, now FAILURE "interrupted"


class Store(ABC):
    """Agents and tasks, durably. Every write is committed before its method returns."""

    # -- lifecycle ---------------------------------------------------------------------

    @abstractmethod
    async def open(self) -> None:
        """Connect, and create the schema if the database is new."""

    @abstractmethod
    async def close(self) -> None:
        """Finish the writes already submitted, then disconnect."""

    # -- agents ------------------------------------------------------------------------

    @abstractmethod
    async def create_agent(self, fields: dict[str, Any], token_sha256: bytes) -> Agent:
        """Insert an agent from validated fields. Conflict if the name is taken."""

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
    async def set_agent_token(self, agent_id: str, token_sha256: bytes) -> Agent:
        """Replace the webhook token; the old one stops working with this commit."""

    @abstractmethod
    async def delete_agent(self, agent_id: str) -> list[str]:
        """Delete an agent; its unfinished tasks end FAILURE "cancelled". Returns their ids."""

    # -- tasks -------------------------------------------------------------------------

    @abstractmethod
    async def enqueue(self, token_sha256: bytes, payload_json: str) -> str | None:
        """Commit a new PENDING task for the *active* agent holding this webhook token and
        return its id; None (and nothing stored) when no active agent holds it."""

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
        """Tasks newest first, optionally for one agent, some statuses, or older than an id."""

    @abstractmethod
    async def queue_depth(self) -> int:
        """How many tasks are PENDING or RETRY."""

    @abstractmethod
    async def claim_batch(self, limit: int) -> list[Claim]:
        """Atomically move up to `limit` runnable tasks to STARTED (counting an attempt), each
        returned with its agent (so a run needs no read of its own before it starts).

        Runnable: PENDING or RETRY, due, of an active agent, and within the agent's
        max_concurrency counting the tasks already running.
        """

    @abstractmethod
    async def finish(self, task_id: str, status: str, result: dict[str, Any]) -> bool:
        """STARTED → SUCCESS or FAILURE. False (and no change) if the task is no longer
        STARTED, e.g. it was cancelled meanwhile."""

    @abstractmethod
    async def retry_later(self, task_id: str, run_after: float, error: dict[str, Any]) -> bool:
        """STARTED → RETRY until `run_after`. False if the task is no longer STARTED."""

    @abstractmethod
    async def requeue(self, task_id: str) -> bool:
        """STARTED → PENDING without spending the attempt (a run cut off by shutdown)."""

    @abstractmethod
    async def cancel(self, task_id: str) -> Task:
        """End an unfinished task FAILURE "cancelled". NotFound, or Conflict if final."""

    @abstractmethod
    async def purge_finished(self, finished_before: float, limit: int) -> int:
        """Delete up to `limit` SUCCESS/FAILURE tasks finished before this epoch time, oldest
        first; return how many."""

    @abstractmethod
    async def recover_interrupted(self) -> Recovery:
        """At start-up: STARTED tasks (their process died) are queued again while attempts
        remain, else end FAILURE "interrupted"."""


def cancelled_result() -> dict[str, Any]:
    return {"error": "The task was cancelled.", "type": "cancelled"}


def interrupted_result() -> dict[str, Any]:
    return {
        "error": "hookd stopped while the task was running on its last attempt.",
        "type": "interrupted",
    }
