"""The public API, DocsGPT-compatible: trigger an agent by its webhook, read a task's status.

The webhook token and the task id are the credentials here; there is no other auth. Results
come without polling too: `Prefer: wait=N` on the webhook, `wait=N` on task_status (a
long-poll), and the task's changes as Server-Sent Events (tasks/watch.py does the waiting).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from aiohttp import web

from agents.tokens import WEBHOOK_PATH, looks_like_token, token_sha256
from api.app_keys import pool_key, rate_limiter_key, store_key, task_watch_key
from api.edge import read_webhook_payload
from api.ingress import REPLAYED_HEADERS, check_ingress
from errors import Conflict, InvalidInput, NotFound, TooManyRequests
from tasks.ids import is_uuid
from tasks.json_text import json_text
from tasks.pool import WorkerPool
from tasks.store import Enqueued, Task
from tasks.watch import follow, is_final, wait_for_final

log = logging.getLogger("hookd.http")

routes = web.RouteTableDef()

QUEUE_FULL_RETRY_AFTER_S = 5.0
MAX_WAIT_S = 60


def _unknown_token() -> NotFound:
    return NotFound(
        "No agent has this webhook token. It may have been rotated: ask the agent's owner"
        " for its current webhook URL."
    )


@routes.route("POST", WEBHOOK_PATH + "{token}")
# No HEAD twin: link previewers and uptime checkers send HEAD, and it would run the agent.
@routes.route("GET", WEBHOOK_PATH + "{token}", allow_head=False)
async def trigger_webhook(request: web.Request) -> web.Response:
    """Queue a run of the token's agent; answer only once the task is committed."""
    wait_s = prefer_wait_s(request)  # checked first: a bad one stores nothing
    token = request.match_info["token"]
    token_hash = token_sha256(token) if looks_like_token(token) else None
    pool = request.app[pool_key]
    if pool.queue_full():  # before any work: a flood past the limit costs next to nothing
        raise _queue_full(pool)
    enqueued = await _enqueue(request, token_hash)
    task_id = enqueued.task_id
    headers = dict(REPLAYED_HEADERS) if enqueued.replayed else {}
    if wait_s is not None:
        return await _accepted_after_wait(request, task_id, wait_s, headers)
    return web.json_response({"success": True, "task_id": task_id}, headers=headers)


def _queue_full(pool: WorkerPool) -> TooManyRequests:
    return TooManyRequests(
        f"hookd's queue is full: {pool.max_pending} tasks are waiting or being accepted, its limit"
        " (HOOKD_MAX_PENDING); nothing was stored. Send it again later.",
        retry_after_s=QUEUE_FULL_RETRY_AFTER_S,
    )


async def _enqueue(request: web.Request, token_hash: bytes | None) -> Enqueued:
    """Check the request and commit its task (or find the task it replays)."""
    limiter = request.app[rate_limiter_key]
    lookup = None if token_hash is None else await limiter.lookup(token_hash)
    if token_hash is None or lookup is None:
        raise _unknown_token()  # before reading the body or queueing at the writer
    if lookup.signature is None:
        limiter.take(lookup)  # nothing to verify: refuse one over the limit before reading its body
    ingress = await check_ingress(request, lookup)  # signature and idempotency key, before parsing
    if lookup.signature is not None:
        limiter.take(lookup)  # only once verified: junk must not use up the signed sender's limit
    payload_json = await read_webhook_payload(request)
    # A place in the queue is held from here to the commit (not while the body arrives, which
    # a slow sender could drag out), so that concurrent webhooks cannot all pass the limit.
    pool = request.app[pool_key]
    if not pool.reserve():
        limiter.give_back(lookup)
        raise _queue_full(pool)
    try:
        # Counted in the queue by the pool (the store's event) before the place is given back.
        enqueued = await ingress.enqueue(request.app[store_key], token_hash, payload_json)
    finally:
        pool.release()
    if enqueued is None:
        await _refuse_unless_active(request, token_hash)
        # The agent was paused and resumed, its token rotated or its secret changed, in between.
        raise Conflict("The agent changed while this request was processed; send it again.")
    if enqueued.replayed:  # the first request's answer again: nothing new was stored or charged
        limiter.give_back(lookup)
    return enqueued


async def _refuse_unless_active(request: web.Request, token_hash: bytes) -> None:
    """Raise the refusal for a token that has no active agent (the rare path: one more read)."""
    agent = await request.app[store_key].agent_for_token(token_hash)
    if agent is None:
        raise _unknown_token()
    if agent.status != "active":
        raise Conflict(f"Agent '{agent.name}' is paused and takes no webhooks until it is resumed.")


@routes.get("/api/task_status")
async def task_status(request: web.Request) -> web.Response:
    task_id = request.query.get("task_id", "").strip()
    if not task_id:
        raise InvalidInput("Add the task id: /api/task_status?task_id=<the id the webhook returned>.")
    wait_text = request.query.get("wait", "").strip()
    wait_s = _wait_s(wait_text, "'wait'") if wait_text else 0
    task: Task | None = None
    if is_uuid(task_id):
        store, watch = request.app[store_key], request.app[task_watch_key]
        task = await (
            wait_for_final(watch, store, task_id.lower(), wait_s, _connected(request))
            if wait_s
            else store.get_task(task_id.lower())
        )
    if task is None:
        raise NotFound("No task has this id. Check it against the task_id the webhook returned.")
    return web.json_response(task.status_json())


# -- waiting for results ---------------------------------------------------------------


def _wait_s(text: str, what: str, after: str = "") -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 4) or int(text) > MAX_WAIT_S:
        raise InvalidInput(
            f"{what} must be a whole number of seconds from 0 to {MAX_WAIT_S}, not '{text[:20]}'.{after}"
        )
    return int(text)


def prefer_wait_s(request: web.Request) -> int | None:
    """The `wait` preference of RFC 7240's Prefer header (e.g. `Prefer: respond-async, wait=10`),
    if any; bare `wait` is the longest. Other preferences are ignored, as the RFC asks."""
    for header in request.headers.getall("Prefer", ()):
        for preference in header.split(","):
            name, equals, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() == "wait" and not equals:
                return MAX_WAIT_S
            if name.strip().lower() == "wait":
                return _wait_s(value.strip().strip('"'), "Prefer: wait=N", " Nothing was stored.")
    return None


def _connected(request: web.Request) -> Callable[[], bool]:
    """Whether the client still listens (aiohttp does not cancel a handler whose client left)."""

    def connected() -> bool:
        transport = request.transport
        return transport is not None and not transport.is_closing()

    return connected


async def _accepted_after_wait(
    request: web.Request, task_id: str, wait_s: int, headers: dict[str, str]
) -> web.Response:
    """The webhook's answer under `Prefer: wait`: the final status if the run ends in time,
    else the usual acceptance (as Replicate does)."""
    store, watch = request.app[store_key], request.app[task_watch_key]
    task = await wait_for_final(watch, store, task_id, wait_s, _connected(request))
    headers = headers | {"Preference-Applied": f"wait={wait_s}"}
    if task is not None and is_final(task):
        return web.json_response({"success": True} | task.status_json(), headers=headers)
    return web.json_response({"success": True, "task_id": task_id}, headers=headers)


def _event(seq: int, task: Task) -> bytes:
    # As the callbacks send it: UTF-8, with an unpaired surrogate (which UTF-8 has no form for) escaped.
    data = json_text(task.status_json()).encode()
    return f"id: {seq}\nevent: {task.status}\ndata: ".encode() + data + b"\n\n"


HEARTBEAT = b": heartbeat\n\n"  # a comment: keeps proxies from closing an idle stream


@routes.get("/api/tasks/{task_id}/events")
async def task_events(request: web.Request) -> web.StreamResponse:
    """The task's state changes as Server-Sent Events, from its current state to its final one."""
    task_id = request.match_info["task_id"]
    if not is_uuid(task_id):
        raise NotFound("No task has this id. Check it against the task_id the webhook returned.")
    store, watch = request.app[store_key], request.app[task_watch_key]
    changes = follow(watch, store, task_id.lower(), _connected(request))
    async with contextlib.aclosing(changes):
        first = await anext(changes)  # NotFound (a JSON 404) before the stream starts
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            }
        )
        await response.prepare(request)
        seq = 0
        try:
            if first is not None:
                seq += 1
                await response.write(_event(seq, first))
            async for task in changes:
                if task is None:
                    await response.write(HEARTBEAT)
                else:
                    seq += 1
                    await response.write(_event(seq, task))
        except ConnectionResetError:  # the client left
            return response
        except Exception:  # the stream has started: no error body can follow, so end it
            log.exception("event stream of task %s failed", task_id)
            return response
    await response.write_eof()
    return response


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    """Needs no key, so it costs the same at any queue depth: it answers from the counts the
    pool keeps (its queue depth is recounted from the database about once a second)."""
    pool = request.app[pool_key]
    return web.json_response(
        {"status": "ok", "queue_depth": pool.queue_depth, "running": pool.busy, "workers": pool.workers}
    )
