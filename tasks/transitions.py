"""Task transitions, named and timed, for the log and the metrics.

The pool's `TaskEvent`s carry an agent id; people and dashboards want the agent's name, and
how long the task waited in the queue. `TransitionFeed` adds both and hands each
`Transition` to its sinks (the transition log below, the metrics), in the order the events
were published. A name comes from a small cache; on a miss, that event and every later one
wait, in order, for the store to answer, so a log never shows a SUCCESS before its STARTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from errors import NotFound
from logs import fields
from tasks.events import TaskEvent
from tasks.store import Store

log = logging.getLogger("hookd.tasks")

DELETED_AGENT = "(deleted)"
NAME_TTL_S = 60.0  # a renamed agent shows its new name after at most this long
MAX_CACHED_NAMES = 10_000
MAX_WAITING_TASKS = 1_000_000  # queue-entry times kept; tasks ended by another process leave one
DRAIN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Transition:
    event: TaskEvent
    agent: str | None  # the agent's name; None when the event names no agent (a queued webhook)
    queued_s: float | None  # for STARTED: time since it was queued (or its last attempt failed)


Sink = Callable[[Transition], None]


class AgentNames:
    """Agent names by id, from the store, cached for NAME_TTL_S."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[str, tuple[str, float]] = {}  # id → (name, expires at, monotonic)

    def cached(self, agent_id: str) -> str | None:
        hit = self._cache.get(agent_id)
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    async def lookup(self, agent_id: str) -> str | None:
        """The name (DELETED_AGENT for an agent that is gone); None if the store cannot say."""
        name = self.cached(agent_id)
        if name is not None:
            return name
        try:
            name = (await self._store.get_agent(agent_id)).name
        except NotFound:
            name = DELETED_AGENT
        except Exception:
            log.warning("could not read the name of agent %s", agent_id, exc_info=True)
            return None
        if len(self._cache) >= MAX_CACHED_NAMES:
            self._cache.clear()
        self._cache[agent_id] = (name, time.monotonic() + NAME_TTL_S)
        return name


class TransitionFeed:
    """Subscribe `on_event` to the pool's events; call `drain` once the pool has stopped."""

    def __init__(self, store: Store, sinks: Sequence[Sink]) -> None:
        self._names = AgentNames(store)
        self._sinks = sinks
        self._waiting_since: dict[str, float] = {}  # task id → when it last entered the queue
        self._backlog: deque[TaskEvent] = deque()
        self._draining: asyncio.Task[None] | None = None

    def on_event(self, event: TaskEvent) -> None:
        if not event.local:  # another node's: it logs and counts its own
            return
        if not self._backlog:
            if event.agent_id is None:
                self._deliver(event, None)
                return
            name = self._names.cached(event.agent_id)
            if name is not None:
                self._deliver(event, name)
                return
        self._backlog.append(event)
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain_backlog(), name="hookd-transitions")

    async def drain(self) -> None:
        """Deliver the events still waiting for a name (bounded: a name is one read)."""
        if self._draining is not None:
            with contextlib.suppress(TimeoutError):  # the timeout cancels what is left
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await self._draining

    async def _drain_backlog(self) -> None:
        try:
            while self._backlog:
                agent_id = self._backlog[0].agent_id
                name = None if agent_id is None else await self._names.lookup(agent_id)
                self._deliver(self._backlog.popleft(), name)
        finally:
            self._draining = None

    def _deliver(self, event: TaskEvent, agent: str | None) -> None:
        queued_s = None
        if event.status in ("PENDING", "RETRY"):
            if len(self._waiting_since) >= MAX_WAITING_TASKS:
                del self._waiting_since[next(iter(self._waiting_since))]
            self._waiting_since[event.task_id] = event.at
        else:
            since = self._waiting_since.pop(event.task_id, None)
            if event.status == "STARTED" and since is not None:
                queued_s = max(0.0, event.at - since)
        transition = Transition(event, agent, queued_s)
        for sink in self._sinks:
            try:
                sink(transition)
            except Exception:  # one broken sink must not stop the others
                log.exception("a transition sink failed on %s %s", event.task_id, event.status)


_PLAIN = re.compile(r"[\w.@:/+-]+")


def _shown(name: str) -> str:
    # Agent names are free text: quoted unless plain, so a name cannot forge a text log line.
    return name if _PLAIN.fullmatch(name) else repr(name)


def log_transition(transition: Transition) -> None:
    """One log line per state change: `task <id> <STATUS> agent=… attempt=… …`."""
    if not log.isEnabledFor(logging.INFO):  # spares the formatting (e.g. in the benchmark)
        return
    event = transition.event
    values = {
        "task_id": event.task_id,
        "agent": transition.agent,
        "agent_id": event.agent_id,
        "status": event.status,
        "attempt": event.attempt,
        "queued_s": None if transition.queued_s is None else round(transition.queued_s, 4),
        "elapsed_s": None if event.elapsed_s is None else round(event.elapsed_s, 4),
        "error_type": event.error_type,
    }
    parts = [f"task {event.task_id} {event.status}"]
    if transition.agent is not None:
        parts.append(f"agent={_shown(transition.agent)}")
    parts.append(f"attempt={event.attempt}")
    parts += [
        f"{key}={values[key]}" for key in ("queued_s", "elapsed_s", "error_type") if values[key] is not None
    ]
    log.info("%s", " ".join(parts), extra=fields(**values))
