"""The path items of the OpenAPI document: every route hookd serves, with its operations.

tests/test_openapi.py checks that they list exactly the app's routes. Their answers, parameters
and request bodies are built in api/openapi_operations.py; the schemas they refer to are in
api/openapi_schemas.py, api/openapi_agent_schemas.py and api/openapi_tool_schemas.py.
"""

from __future__ import annotations

from agents.tokens import WEBHOOK_PATH
from api.openapi_operations import (
    AGENT_ID,
    AGENT_OPERATIONS,
    IDEMPOTENCY_PARAMETERS,
    PREFER,
    SIGNATURE_PARAMETERS,
    SOURCE_ID,
    SOURCE_UPLOAD,
    STATUS_LIST,
    TASK_ID,
    TASK_OPERATIONS,
    TOKEN,
    UUID_OR_EMPTY,
    WEBHOOK_ACCEPTED,
    WEBHOOK_REFUSALS,
    agent_body,
    json_response,
    linked,
    responses,
)
from api.openapi_schemas import DELIVERIES, UUID, Schema, closed_object, ref
from api.public import MAX_WAIT_S
from api.web import ASSET_NAMES, ASSET_TYPES
from tasks.store import STATUSES

# Each operation's security: the admin key (bearerAuth, declared in api/openapi.py), or none.
ADMIN: list[Schema] = [{"bearerAuth": []}]
PUBLIC: list[Schema] = []

PATHS: dict[str, Schema] = {
    WEBHOOK_PATH + "{token}": {
        "parameters": [TOKEN, PREFER],
        "post": {
            "operationId": "triggerWebhook",
            "summary": "Run the agent on a payload",
            "security": PUBLIC,
            "parameters": [*IDEMPOTENCY_PARAMETERS, *SIGNATURE_PARAMETERS],
            "requestBody": {
                "required": False,
                "description": "A JSON object (an empty body counts as {}), or form fields.",
                "content": {
                    "application/json": {"schema": {"type": "object"}},
                    "application/x-www-form-urlencoded": {
                        "schema": {
                            "type": "object",
                            "additionalProperties": {
                                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
                            },
                        }
                    },
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            # A part's name is in its Content-Disposition header, which may not
                            # hold control characters.
                            "propertyNames": {"pattern": "^[^\\x00-\\x1f\\x7f]*$"},
                            "additionalProperties": {"type": "string"},
                        }
                    },
                },
            },
            "responses": responses(
                "200",
                linked(WEBHOOK_ACCEPTED, TASK_OPERATIONS, task_id="$response.body#/task_id"),
                *("400", "401", "404", "408", "409", "413", "422", "429", "503"),
                **WEBHOOK_REFUSALS,
            ),
        },
        "get": {
            "operationId": "triggerWebhookGet",
            "summary": "Run the agent on the query parameters (values are strings)",
            "security": PUBLIC,
            "parameters": [
                {
                    "name": "payload",
                    "in": "query",
                    "description": "Any query parameters: they become the payload.",
                    "style": "form",
                    "explode": True,
                    "schema": {"type": "object", "additionalProperties": {"type": "string"}},
                },
                *IDEMPOTENCY_PARAMETERS,
            ],
            "responses": responses(
                "200",
                linked(WEBHOOK_ACCEPTED, TASK_OPERATIONS, task_id="$response.body#/task_id"),
                *("400", "401", "404", "409", "422", "429", "503"),
                **WEBHOOK_REFUSALS,
            ),
        },
    },
    "/api/task_status": {
        "get": {
            "operationId": "taskStatus",
            "summary": "Poll a task for its result",
            "security": PUBLIC,
            "parameters": [
                {
                    "name": "task_id",
                    "in": "query",
                    "required": True,
                    "description": "The task_id the webhook returned.",
                    "schema": {"type": "string", "format": "uuid"},
                },
                {
                    "name": "wait",
                    "in": "query",
                    "description": "Long-poll: answer as soon as the task is final, or after this"
                    " many seconds with its status then. Empty or 0: at once.",
                    "schema": {
                        "anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_WAIT_S}, {"const": ""}]
                    },
                },
            ],
            "responses": responses(
                "200",
                json_response(ref("TaskStatus"), "The task."),
                "400",
                "404",
                e400="task_id is missing, or wait is not 0 to 60.",
            ),
        }
    },
    "/api/tasks/{task_id}/events": {
        "parameters": [TASK_ID],
        "get": {
            "operationId": "taskEvents",
            "summary": "The task's state changes as Server-Sent Events",
            "description": "One event per change, from the current state: `event:` the status,"
            " `data:` the task_status body, `id:` a sequence number; a `: heartbeat` comment every"
            " 15 s. The stream ends after the final state. Public, like task_status.",
            "security": PUBLIC,
            "responses": responses(
                "200",
                {
                    "description": "The event stream.",
                    "content": {
                        "text/event-stream": {
                            "schema": closed_object(
                                {
                                    "event": {"enum": list(STATUSES)},
                                    "data": {
                                        "type": "string",
                                        "contentMediaType": "application/json",
                                        "contentSchema": ref("TaskStatus"),
                                    },
                                    "id": {"type": "string", "pattern": "^[1-9][0-9]*$"},
                                }
                            )
                            | {"description": "One event (OpenAPI 3.1: the schema describes each)."}
                        }
                    },
                },
                "404",
            ),
        },
    },
    "/api/health": {
        "get": {
            "operationId": "health",
            "summary": "Liveness and load",
            "security": PUBLIC,
            "responses": {
                "200": json_response(
                    closed_object(
                        {
                            "status": {"const": "ok"},
                            "queue_depth": {"type": "integer", "minimum": 0},
                            "running": {"type": "integer", "minimum": 0},
                            "workers": {"type": "integer", "minimum": 1},
                        }
                    ),
                    "hookd is up.",
                )
            },
        }
    },
    "/api/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "security": PUBLIC,
            "responses": {"200": json_response({"type": "object"}, "The OpenAPI 3.1 document.")},
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics (text exposition format)",
            "security": ADMIN,
            "responses": responses(
                "200",
                {
                    "description": "The metrics; README.md lists them.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "401",
            ),
        }
    },
    "/": {
        "get": {
            "operationId": "webPage",
            "summary": "The admin web page: sign in with the admin key",
            "security": PUBLIC,
            "responses": {
                "200": {
                    "description": "The page (it calls the admin API with the key it is given).",
                    "content": {"text/html": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/static/{name}": {
        "parameters": [
            {
                "name": "name",
                "in": "path",
                "required": True,
                "description": "One of the page's files; anything else is 404.",
                "schema": {"enum": list(ASSET_NAMES)},
            }
        ],
        "get": {
            "operationId": "webPageFile",
            "summary": "A script, style sheet or icon of the admin web page",
            "security": PUBLIC,
            "responses": responses(
                "200",
                {
                    "description": "The file.",
                    "content": {
                        kind: {"schema": {"type": "string"}} for kind in sorted(set(ASSET_TYPES.values()))
                    },
                },
                "404",
                e404="The page has no file of this name.",
            ),
        },
    },
    "/api/agents": {
        "post": {
            "operationId": "createAgent",
            "summary": "Create an agent",
            "security": ADMIN,
            "requestBody": agent_body(creating=True),
            "responses": responses(
                "201",
                linked(
                    json_response(ref("AgentWithWebhook"), "The agent and its webhook URL, shown this once."),
                    AGENT_OPERATIONS,
                    agent_id="$response.body#/id",
                ),
                "400",
                "401",
                "408",
                "409",
                "413",
                "503",
                e409="An agent already has this name.",
            ),
        },
        "get": {
            "operationId": "listAgents",
            "summary": "All agents, by name",
            "security": ADMIN,
            "responses": responses(
                "200",
                json_response(
                    closed_object({"agents": {"type": "array", "items": ref("Agent")}}), "The agents."
                ),
                "401",
            ),
        },
    },
    "/api/agents/{agent_id}": {
        "parameters": [AGENT_ID],
        "get": {
            "operationId": "getAgent",
            "summary": "One agent",
            "security": ADMIN,
            "responses": responses("200", json_response(ref("Agent"), "The agent."), "401", "404"),
        },
        "patch": {
            "operationId": "updateAgent",
            "summary": "Change some of an agent's fields",
            "security": ADMIN,
            "requestBody": agent_body(creating=False),
            "responses": responses(
                "200",
                json_response(ref("Agent"), "The agent as changed."),
                "400",
                "401",
                "404",
                "408",
                "409",
                "413",
                "503",
                e409="Another agent has this name.",
            ),
        },
        "delete": {
            "operationId": "deleteAgent",
            "summary": "Delete an agent; its unfinished tasks end FAILURE cancelled",
            "security": ADMIN,
            "responses": responses(
                "200",
                linked(
                    json_response(
                        closed_object(
                            {
                                "deleted": {"const": True},
                                "id": UUID,
                                "cancelled_tasks": {"type": "integer", "minimum": 0},
                            }
                        ),
                        "Deleted.",
                    ),
                    ("getAgent",),  # it is gone: 404
                    agent_id="$response.body#/id",
                ),
                "401",
                "404",
                "503",
            ),
        },
    },
    "/api/agents/{agent_id}/webhook": {
        "parameters": [AGENT_ID],
        "post": {
            "operationId": "rotateWebhook",
            "summary": "Give the agent a new webhook token; the old one stops working at once",
            "security": ADMIN,
            "responses": responses(
                "200",
                json_response(ref("AgentWithWebhook"), "The agent and its new webhook URL."),
                "401",
                "404",
                "503",
            ),
        },
    },
    "/api/agents/{agent_id}/callback-secret": {
        "parameters": [AGENT_ID],
        "post": {
            "operationId": "rotateCallbackSecret",
            "summary": "Give the agent a new callback signing secret; callbacks from now on use it",
            "security": ADMIN,
            "responses": responses(
                "200", json_response(ref("Agent"), "The agent and its new secret."), "401", "404", "503"
            ),
        },
    },
    "/api/agents/{agent_id}/sources": {
        "parameters": [AGENT_ID],
        "post": {
            "operationId": "addSource",
            "summary": "Add a text, Markdown or HTML source to the agent's knowledge",
            "security": ADMIN,
            "requestBody": SOURCE_UPLOAD,
            "responses": responses(
                "201",
                linked(
                    json_response(ref("Source"), "The source, cut into chunks and indexed."),
                    ("deleteSource",),
                    agent_id="$request.path.agent_id",
                    source_id="$response.body#/id",
                ),
                "400",
                "401",
                "404",
                "408",
                "413",
                "503",
                e400="Not UTF-8 text, no text at all, an unknown format, or a field missing; the message"
                " says which.",
                e413="The upload is larger than a source may be.",
            ),
        },
        "get": {
            "operationId": "listSources",
            "summary": "The agent's sources, oldest first",
            "security": ADMIN,
            "responses": responses(
                "200",
                json_response(
                    closed_object({"sources": {"type": "array", "items": ref("Source")}}), "The sources."
                ),
                "401",
                "404",
            ),
        },
    },
    "/api/agents/{agent_id}/sources/{source_id}": {
        "parameters": [AGENT_ID, SOURCE_ID],
        "delete": {
            "operationId": "deleteSource",
            "summary": "Delete a source and its chunks; later runs no longer see them",
            "security": ADMIN,
            "responses": responses(
                "200",
                json_response(closed_object({"deleted": {"const": True}, "id": UUID}), "Deleted."),
                "401",
                "404",
                "503",
            ),
        },
    },
    "/api/tasks": {
        "get": {
            "operationId": "listTasks",
            "summary": "Tasks, newest first",
            "security": ADMIN,
            "parameters": [
                {
                    "name": "agent_id",
                    "in": "query",
                    "description": "Only this agent's tasks; empty means all.",
                    "schema": UUID_OR_EMPTY,
                },
                {
                    "name": "status",
                    "in": "query",
                    "description": "One status or several, comma-separated, in any case: PENDING,RETRY.",
                    "schema": {"type": "string", "pattern": STATUS_LIST},
                },
                {
                    "name": "limit",
                    "in": "query",
                    "description": "How many, newest first; empty means 50.",
                    "schema": {
                        "anyOf": [{"type": "integer", "minimum": 1, "maximum": 500}, {"const": ""}],
                        "default": 50,
                    },
                },
                {
                    "name": "before",
                    "in": "query",
                    "description": "The last id of the previous page; empty means from the newest.",
                    "schema": UUID_OR_EMPTY,
                },
            ],
            "responses": responses(
                "200",
                json_response(
                    closed_object({"tasks": {"type": "array", "items": ref("Task")}}), "The tasks."
                ),
                "400",
                "401",
            ),
        }
    },
    "/api/tasks/{task_id}": {
        "parameters": [TASK_ID],
        "get": {
            "operationId": "getTask",
            "summary": "One task, with its payload",
            "security": ADMIN,
            "responses": responses("200", json_response(ref("TaskWithPayload"), "The task."), "401", "404"),
        },
    },
    "/api/tasks/{task_id}/deliveries": {
        "parameters": [TASK_ID],
        "get": {
            "operationId": "listDeliveries",
            "summary": "The task's callbacks and how their attempts went, oldest first",
            "security": ADMIN,
            "responses": responses(
                "200",
                json_response(closed_object({"deliveries": DELIVERIES}), "The deliveries."),
                "401",
                "404",
            ),
        },
    },
    "/api/tasks/{task_id}/cancel": {
        "parameters": [TASK_ID],
        "post": {
            "operationId": "cancelTask",
            "summary": "End the task FAILURE cancelled; a running one is interrupted",
            "security": ADMIN,
            "responses": responses(
                "200",
                linked(
                    json_response(ref("Task"), "The task, now cancelled."),
                    ("getTask", "cancelTask"),  # a second cancel: 409
                    task_id="$response.body#/id",
                ),
                "401",
                "404",
                "409",
                "503",
                e409="The task already finished.",
            ),
        },
    },
}
