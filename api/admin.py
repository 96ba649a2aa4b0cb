"""The admin API: agents and tasks, behind `Authorization: Bearer <admin key>`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agents.agent import Agent, SavePolicy, validate_agent_fields
from agents.tokens import new_signing_secret, new_token, webhook_url
from api.app_keys import pool_key, settings_key, store_key
from api.edge import read_json_object, require_admin
from errors import InvalidInput, NotFound
from tasks.ids import is_uuid
from tasks.store import STATUSES

routes = web.RouteTableDef()

DEFAULT_LIST_LIMIT = 50
MAX_LIST_LIMIT = 500


def _base_url(request: web.Request) -> str:
    return request.app[settings_key].public_url or f"{request.scheme}://{request.host}"


def _with_webhook(request: web.Request, agent: Agent, token: str) -> dict[str, Any]:
    """The agent plus its webhook URL: the only time the token is ever shown."""
    return agent.to_json() | {"webhook_url": webhook_url(_base_url(request), token)}


def _agent_fields(request: web.Request, data: Any, *, creating: bool) -> dict[str, Any]:
    return validate_agent_fields(data, creating=creating, policy=SavePolicy.of(request.app[settings_key]))


def _agent_id(request: web.Request) -> str:
    agent_id = request.match_info["agent_id"]
    if not is_uuid(agent_id):
        raise NotFound("No agent has this id.")
    return agent_id.lower()


def _task_id(request: web.Request) -> str:
    task_id = request.match_info["task_id"]
    if not is_uuid(task_id):
        raise NotFound("No task has this id.")
    return task_id.lower()


@routes.post("/api/agents")
@require_admin
async def create_agent(request: web.Request) -> web.Response:
    fields = _agent_fields(request, await read_json_object(request), creating=True)
    token, token_hash = new_token()
    agent = await request.app[store_key].create_agent(fields, token_hash)
    return web.json_response(_with_webhook(request, agent, token), status=201)


@routes.get("/api/agents")
@require_admin
async def list_agents(request: web.Request) -> web.Response:
    agents = await request.app[store_key].list_agents()
    return web.json_response({"agents": [a.to_json() for a in agents]})


@routes.get("/api/agents/{agent_id}")
@require_admin
async def get_agent(request: web.Request) -> web.Response:
    agent = await request.app[store_key].get_agent(_agent_id(request))
    return web.json_response(agent.to_json())


@routes.patch("/api/agents/{agent_id}")
@require_admin
async def update_agent(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    fields = _agent_fields(request, await read_json_object(request), creating=False)
    store = request.app[store_key]
    agent = await store.update_agent(agent_id, fields) if fields else await store.get_agent(agent_id)
    request.app[pool_key].notify()  # resumed agents and raised limits may free queued tasks
    return web.json_response(agent.to_json())


@routes.delete("/api/agents/{agent_id}")
@require_admin
async def delete_agent(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    cancelled = await request.app[store_key].delete_agent(agent_id)  # their runs stop (the pool hears it)
    return web.json_response({"deleted": True, "id": agent_id, "cancelled_tasks": len(cancelled)})


@routes.post("/api/agents/{agent_id}/webhook")
@require_admin
async def rotate_webhook(request: web.Request) -> web.Response:
    token, token_hash = new_token()
    agent = await request.app[store_key].set_agent_token(_agent_id(request), token_hash)
    return web.json_response(_with_webhook(request, agent, token))


@routes.post("/api/agents/{agent_id}/callback-secret")
@require_admin
async def rotate_callback_secret(request: web.Request) -> web.Response:
    agent = await request.app[store_key].set_callback_secret(_agent_id(request), new_signing_secret())
    return web.json_response(agent.to_json())


def _list_limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIST_LIMIT
    if not (text.isascii() and text.isdigit() and len(text) <= 4) or not 1 <= int(text) <= MAX_LIST_LIMIT:
        raise InvalidInput(f"'limit' must be a whole number from 1 to {MAX_LIST_LIMIT}.")
    return int(text)


def parse_statuses(text: str) -> list[str]:
    statuses = [s.strip().upper() for s in text.split(",") if s.strip()]
    for status in statuses:
        if status not in STATUSES:
            raise InvalidInput(f"'status' must be one or more of {', '.join(STATUSES)}, comma-separated.")
    return statuses


@routes.get("/api/tasks")
@require_admin
async def list_tasks(request: web.Request) -> web.Response:
    query = request.query
    agent_id = query.get("agent_id") or None
    if agent_id is not None and not is_uuid(agent_id):
        raise InvalidInput("'agent_id' must be an agent's id.")
    before = query.get("before") or None
    if before is not None and not is_uuid(before):
        raise InvalidInput("'before' must be a task id (from the previous page).")
    tasks = await request.app[store_key].list_tasks(
        agent_id=agent_id and agent_id.lower(),
        statuses=parse_statuses(query.get("status", "")),
        limit=_list_limit(query.get("limit")),
        before_id=before and before.lower(),
    )
    return web.json_response({"tasks": [t.admin_json(with_payload=False) for t in tasks]})


@routes.get("/api/tasks/{task_id}")
@require_admin
async def get_task(request: web.Request) -> web.Response:
    store = request.app[store_key]
    task = await store.get_task(_task_id(request))
    if task is None:
        raise NotFound("No task has this id.")
    deliveries = await store.list_deliveries(task.id)
    return web.json_response(
        task.admin_json(with_payload=True) | {"deliveries": [d.to_json() for d in deliveries]}
    )


@routes.get("/api/tasks/{task_id}/deliveries")
@require_admin
async def list_deliveries(request: web.Request) -> web.Response:
    store = request.app[store_key]
    task_id = _task_id(request)
    deliveries = await store.list_deliveries(task_id)
    if not deliveries and await store.get_task(task_id) is None:
        raise NotFound("No task has this id.")
    return web.json_response({"deliveries": [d.to_json() for d in deliveries]})


@routes.post("/api/tasks/{task_id}/cancel")
@require_admin
async def cancel_task(request: web.Request) -> web.Response:
    task = await request.app[store_key].cancel(_task_id(request))  # a run, on any node, stops
    return web.json_response(task.admin_json(with_payload=False))
