"""The public API, DocsGPT-compatible: trigger an agent by its webhook, read a task's status.

The webhook token and the task id are the credentials here; there is no other auth.
"""

from __future__ import annotations

from aiohttp import web

from agents.tokens import WEBHOOK_PATH, looks_like_token, token_sha256
from api.app_keys import pool_key, rate_limiter_key, store_key
from api.edge import dump_payload, read_webhook_payload
from api.ingress import REPLAYED_HEADERS, check_ingress
from errors import Conflict, InvalidInput, NotFound, TooManyRequests
from tasks.ids import is_uuid

routes = web.RouteTableDef()

QUEUE_FULL_RETRY_AFTER_S = 5.0


def _unknown_token() -> NotFound:
    return NotFound(
        "No agent has this webhook token. It may have been rotated: ask the agent's owner"
        " for its current webhook URL."
    )


@routes.route("POST", WEBHOOK_PATH + "{token}")
@routes.route("GET", WEBHOOK_PATH + "{token}")
async def trigger_webhook(request: web.Request) -> web.Response:
    """Queue a run of the token's agent; answer only once the task is committed."""
    token = request.match_info["token"]
    token_hash = token_sha256(token) if looks_like_token(token) else None
    pool = request.app[pool_key]
    if pool.queue_full():
        raise TooManyRequests(
            f"hookd has {pool.queue_depth} tasks waiting, its limit (HOOKD_MAX_PENDING); nothing was"
            " stored. Send it again later.",
            retry_after_s=QUEUE_FULL_RETRY_AFTER_S,
        )
    lookup = None if token_hash is None else await request.app[rate_limiter_key].check(token_hash)
    if token_hash is None or lookup is None:
        raise _unknown_token()  # before reading the body or queueing at the writer
    ingress = await check_ingress(request, lookup)  # signature and idempotency key, before parsing
    payload_json = dump_payload(await read_webhook_payload(request))
    enqueued = await ingress.enqueue(request.app[store_key], token_hash, payload_json)
    if enqueued is None:
        await _refuse_unless_active(request, token_hash)
        # The agent was paused and resumed, its token rotated or its secret changed, in between.
        raise Conflict("The agent changed while this request was processed; send it again.")
    task_id = enqueued.task_id
    if not enqueued.replayed:  # a replay is the first request's answer again: nothing new was stored
        pool.accepted(task_id)
    headers = REPLAYED_HEADERS if enqueued.replayed else None
    return web.json_response({"success": True, "task_id": task_id}, headers=headers)


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
    task = await request.app[store_key].get_task(task_id.lower()) if is_uuid(task_id) else None
    if task is None:
        raise NotFound("No task has this id. Check it against the task_id the webhook returned.")
    return web.json_response(task.status_json())


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    store, pool = request.app[store_key], request.app[pool_key]
    return web.json_response(
        {
            "status": "ok",
            "queue_depth": await store.queue_depth(),
            "running": pool.busy,
            "workers": pool.workers,
        }
    )
