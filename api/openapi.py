"""The API described as an OpenAPI 3.1 document, served at GET /api/openapi.json.

Written by hand from the handlers, so it says what hookd really answers: tests/test_openapi.py
checks that it lists exactly the app's routes, and runs Schemathesis against it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agents.agent import (
    AGENT_STATUSES,
    LLM_FIELDS,
    MAX_ATTEMPTS,
    MAX_KNOWLEDGE_TOP_K,
    MAX_NAME_CHARS,
    MAX_TEXT_CHARS,
    MAX_TIMEOUT_S,
    PROVIDERS,
)
from agents.knowledge import FORMATS, MAX_SOURCE_BYTES, MAX_SOURCE_NAME_CHARS
from agents.tokens import WEBHOOK_PATH
from tasks.store import STATUSES

routes = web.RouteTableDef()

Schema = dict[str, Any]

# Ids are UUIDv7, always written in lower case.
UUID: Schema = {
    "type": "string",
    "format": "uuid",
    "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
}
TIME: Schema = {"type": "string", "format": "date-time", "description": "UTC, to the millisecond."}
TIME_OR_NULL: Schema = {"type": ["string", "null"], "format": "date-time"}
RATE_UNITS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")  # settings.py _RATE

# A name must hold something other than whitespace: the characters Python's str.strip() removes.
_NOT_BLANK = (
    "[^\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(properties: dict[str, Schema], required: tuple[str, ...] | None = None) -> Schema:
    """A closed object: these properties, all required unless `required` says otherwise."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
        "additionalProperties": False,
    }


def _text(max_chars: int, *, nullable: bool = False) -> Schema:
    return {"type": ["string", "null"] if nullable else "string", "maxLength": max_chars}


# -- agents ------------------------------------------------------------------------------

LLM_IN: Schema = {
    "type": ["object", "null"],
    "description": "Each key left out, null or empty comes from the server's HOOKD_LLM_* settings."
    " There is no api_key: keys stay in the server's environment.",
    "properties": {
        "provider": {"enum": [*PROVIDERS, "", None]},
        "model": {"type": ["string", "null"]},
        "base_url": {
            "type": ["string", "null"],
            "description": "The API root, e.g. http://127.0.0.1:11434/v1; hookd appends the endpoint.",
            "anyOf": [
                {"maxLength": 0},
                {"pattern": "^[\\x00-\\x20]*[Hh][Tt][Tt][Pp][Ss]?://[^/?#]"},
            ],
        },
        "api_key_env": {
            "type": ["string", "null"],
            "description": "The name of the environment variable holding the key.",
            "pattern": "^([A-Za-z_][A-Za-z0-9_]*)?$",
        },
    },
    "additionalProperties": False,
}


KNOWLEDGE_TOP_K: Schema = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_KNOWLEDGE_TOP_K,
    "description": "How many chunks of the agent's sources go into each run's prompt; 0: none.",
}


def _agent_fields() -> dict[str, Schema]:
    """The fields an agent is created or changed with (agents/agent.py validate_agent_fields)."""
    return {
        "name": {
            "type": "string",
            "maxLength": MAX_NAME_CHARS,
            "pattern": _NOT_BLANK,
            "description": "Unique; surrounding whitespace is removed.",
        },
        "description": _text(MAX_TEXT_CHARS, nullable=True) | {"description": "null means empty."},
        "prompt": _text(MAX_TEXT_CHARS, nullable=True) | {"description": "The system message."},
        "input_template": _text(MAX_TEXT_CHARS, nullable=True)
        | {
            "description": "Plain substitution of {{question}}, {{payload}} and {{payload.a.b}};"
            " any other placeholder is refused (400). null or empty: the default rendering."
        },
        "llm": LLM_IN,
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S},
        "max_concurrency": {"type": ["integer", "null"], "minimum": 1, "maximum": 10_000},
        "rate_limit": {
            "type": ["string", "null"],
            "description": "Webhooks taken, like 60/min (per s, min, hour or day), in bursts up to the"
            " count; past it 429. null or empty: the server's HOOKD_RATE_LIMIT.",
            "pattern": f"^\\s*(0*[1-9][0-9]*\\s*/\\s*({'|'.join(RATE_UNITS)})\\s*)?$",
        },
        "status": {"enum": list(AGENT_STATUSES)},
        "knowledge_top_k": KNOWLEDGE_TOP_K,
    }


AGENT: Schema = _object(
    {
        "id": UUID,
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS},
        "description": _text(MAX_TEXT_CHARS),
        "prompt": _text(MAX_TEXT_CHARS),
        "input_template": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_TEXT_CHARS},
        "llm": _object(
            {
                key: {"enum": [*PROVIDERS, None]} if key == "provider" else {"type": ["string", "null"]}
                for key in LLM_FIELDS
            }
        ),
        "max_attempts": {"type": "integer", "minimum": 1, "maximum": MAX_ATTEMPTS},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT_S},
        "max_concurrency": {"type": ["integer", "null"], "minimum": 1, "maximum": 10_000},
        "rate_limit": {"type": ["string", "null"], "pattern": "^[0-9]+/(s|min|hour|day)$"},
        "status": {"enum": list(AGENT_STATUSES)},
        "created_at": TIME,
        "updated_at": TIME,
        "knowledge_top_k": KNOWLEDGE_TOP_K,
    }
)
AGENT_WITH_WEBHOOK: Schema = AGENT | {
    "properties": AGENT["properties"]
    | {
        "webhook_url": {
            "type": "string",
            "description": "The agent's secret webhook URL, shown only in this answer: HOOKD_PUBLIC_URL,"
            " or the scheme and Host of this request, then /api/webhooks/agents/<token>.",
        }
    },
    "required": [*AGENT["required"], "webhook_url"],
}

# -- knowledge ---------------------------------------------------------------------------

SOURCE_NAME: Schema = {
    "type": "string",
    "maxLength": MAX_SOURCE_NAME_CHARS,
    "pattern": _NOT_BLANK,
    "description": "What the model sees the source called; whitespace runs become one space.",
}
SOURCE: Schema = _object(
    {
        "id": UUID,
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_SOURCE_NAME_CHARS},
        "format": {"enum": list(FORMATS)},
        "chunks": {"type": "integer", "minimum": 1},
        "bytes": {"type": "integer", "minimum": 1, "description": "The uploaded text's size in UTF-8."},
        "created_at": TIME,
    }
)
SOURCE_USED: Schema = _object(
    {
        "source": _object({"id": UUID, "name": {"type": "string"}}),
        "chunk": {"type": "integer", "minimum": 0, "description": "The chunk's place in its source, from 0."},
        "score": {"type": "number", "description": "BM25 for the user message: higher fits better."},
    }
)

# -- tasks -------------------------------------------------------------------------------

RESULT: Schema = {
    "description": "null until the task is final.",
    "oneOf": [
        {"type": "null"},
        _object(
            {
                "answer": {"type": "string"},
                "model": {"type": "string"},
                "usage": {"type": "object"},
                "sources": {
                    "type": "array",
                    "items": _ref("SourceUsed"),
                    "description": "Only for an agent with sources: the chunks put in the prompt,"
                    " best first; the model cites them as [1], [2], ….",
                },
            },
            required=("answer", "model", "usage"),
        ),
        _object(
            {
                "error": {"type": "string", "description": "For a human."},
                "type": {
                    "type": "string",
                    "description": "llm_http_error, llm_unreachable, llm_bad_response, timeout,"
                    " config_error, cancelled, interrupted, agent_deleted or internal_error.",
                },
            }
        ),
    ],
}
LAST_ERROR: Schema = {
    "description": "The failed attempt behind a RETRY: the same shape as a failed result.",
    "oneOf": [{"type": "null"}, RESULT["oneOf"][2]],
}
_TASK_STATUS_FIELDS: dict[str, Schema] = {
    "status": {"enum": list(STATUSES)},
    "result": _ref("Result"),
    "task_id": UUID,
    "agent_id": {"oneOf": [UUID, {"type": "null"}], "description": "null once the agent is deleted."},
    "attempts": {"type": "integer", "minimum": 0},
    "max_attempts": {"type": "integer", "minimum": 1},
    "created_at": TIME,
    "started_at": TIME_OR_NULL,
    "finished_at": TIME_OR_NULL,
}
TASK_STATUS: Schema = _object(
    _TASK_STATUS_FIELDS
    | {
        "last_error": _ref("LastError") | {"description": "Only while the status is RETRY."},
        "next_attempt_at": TIME | {"description": "Only while the status is RETRY."},
    },
    required=tuple(_TASK_STATUS_FIELDS),
)
TASK: Schema = _object(
    _TASK_STATUS_FIELDS | {"id": UUID, "last_error": _ref("LastError"), "next_attempt_at": TIME},
    required=(*_TASK_STATUS_FIELDS, "id", "last_error"),
)
TASK_WITH_PAYLOAD: Schema = TASK | {
    "properties": TASK["properties"]
    | {"payload": {"type": "object", "description": "The webhook's payload, as accepted."}},
    "required": [*TASK["required"], "payload"],
}

ERROR: Schema = _object({"success": {"const": False}, "message": {"type": "string", "minLength": 1}})

# -- operations --------------------------------------------------------------------------


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_MEANING = {
    "400": "The request is malformed; the message says how.",
    "401": "No valid `Authorization: Bearer <admin key>`.",
    "404": "Nothing has this id or token.",
    "409": "The request clashes with the current state.",
    "408": "The body did not arrive within HOOKD_BODY_TIMEOUT_S; nothing was stored.",
    "413": "The body is larger than HOOKD_MAX_BODY_BYTES.",
    "429": "Too many webhooks; nothing was stored. Send it again after Retry-After seconds.",
}
_ERROR_HEADERS = {
    "401": {"WWW-Authenticate": {"schema": {"const": "Bearer"}, "required": True}},
    "429": {"Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": True}},
}


def _responses(ok_status: str, ok: Schema, *errors: str, **meanings: str) -> dict[str, Schema]:
    """The success answer and the error answers, every error with the one error body."""
    answers = {ok_status: ok}
    for status in errors:
        answer = _json(_ref("Error"), meanings.get(f"e{status}", _ERROR_MEANING[status]))
        if status in _ERROR_HEADERS:
            answer["headers"] = _ERROR_HEADERS[status]
        answers[status] = answer
    return answers


def _path_id(name: str, what: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"The {what}'s id; anything else is 404.",
        "schema": {"type": "string", "format": "uuid"},
    }


UUID_OR_EMPTY: Schema = {"type": "string", "anyOf": [{"format": "uuid"}, {"maxLength": 0}]}
_ANY_STATUS = "|".join("".join(f"[{c}{c.lower()}]" for c in status) for status in STATUSES)
STATUS_LIST = f"^\\s*({_ANY_STATUS})?\\s*(,\\s*({_ANY_STATUS})?\\s*)*$"

TOKEN: Schema = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The agent's webhook token: its secret.",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{43}$"},
}
ADMIN: list[Schema] = [{"bearerAuth": []}]
PUBLIC: list[Schema] = []
WEBHOOK_ACCEPTED = _json(
    _object({"success": {"const": True}, "task_id": UUID}),
    "The task is committed; poll GET /api/task_status?task_id=….",
)
WEBHOOK_REFUSALS = {
    "e404": "No agent has this token (unknown, or rotated away).",
    "e409": "The agent is paused.",
}
AGENT_ID = _path_id("agent_id", "agent")
TASK_ID = _path_id("task_id", "task")
SOURCE_ID = _path_id("source_id", "source")
SOURCE_FORMAT: Schema = {
    "enum": [*FORMATS, "", None],
    "description": "Left out, empty or null: from the extension (.txt, .md, .html, …) of the file's"
    " name or the source's name, else from the file's content type, else text.",
}
SOURCE_UPLOAD: Schema = {
    "required": True,
    "description": "A source as JSON, or a file as multipart/form-data; at most"
    f" {MAX_SOURCE_BYTES // 2**20} MiB of UTF-8 text.",
    "content": {
        "application/json": {
            "schema": _object(
                {"name": SOURCE_NAME, "content": {"type": "string"}, "format": SOURCE_FORMAT},
                required=("name", "content"),
            )
        },
        "multipart/form-data": {
            "schema": _object(
                {
                    "file": {"type": "string", "format": "binary", "description": "UTF-8 text."},
                    "name": SOURCE_NAME | {"description": "Left out: the file's name."},
                    "format": SOURCE_FORMAT | {"enum": [*FORMATS, ""]},
                },
                required=("file",),
            )
        },
    },
}


def _agent_body(*, creating: bool) -> Schema:
    body = _object(_agent_fields(), required=("name",) if creating else ())
    return {"required": creating, "content": {"application/json": {"schema": body}}}


PATHS: dict[str, Schema] = {
    WEBHOOK_PATH + "{token}": {
        "parameters": [TOKEN],
        "post": {
            "operationId": "triggerWebhook",
            "summary": "Run the agent on a payload",
            "security": PUBLIC,
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
                        "schema": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                },
            },
            "responses": _responses(
                "200", WEBHOOK_ACCEPTED, "400", "404", "408", "409", "413", "429", **WEBHOOK_REFUSALS
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
                }
            ],
            "responses": _responses("200", WEBHOOK_ACCEPTED, "404", "409", "429", **WEBHOOK_REFUSALS),
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
                }
            ],
            "responses": _responses(
                "200", _json(_ref("TaskStatus"), "The task."), "400", "404", e400="task_id is missing."
            ),
        }
    },
    "/api/health": {
        "get": {
            "operationId": "health",
            "summary": "Liveness and load",
            "security": PUBLIC,
            "responses": {
                "200": _json(
                    _object(
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
            "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
        }
    },
    "/api/agents": {
        "post": {
            "operationId": "createAgent",
            "summary": "Create an agent",
            "security": ADMIN,
            "requestBody": _agent_body(creating=True),
            "responses": _responses(
                "201",
                _json(_ref("AgentWithWebhook"), "The agent and its webhook URL, shown this once."),
                "400",
                "401",
                "408",
                "409",
                "413",
                e409="An agent already has this name.",
            ),
        },
        "get": {
            "operationId": "listAgents",
            "summary": "All agents, by name",
            "security": ADMIN,
            "responses": _responses(
                "200",
                _json(_object({"agents": {"type": "array", "items": _ref("Agent")}}), "The agents."),
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
            "responses": _responses("200", _json(_ref("Agent"), "The agent."), "401", "404"),
        },
        "patch": {
            "operationId": "updateAgent",
            "summary": "Change some of an agent's fields",
            "security": ADMIN,
            "requestBody": _agent_body(creating=False),
            "responses": _responses(
                "200",
                _json(_ref("Agent"), "The agent as changed."),
                "400",
                "401",
                "404",
                "408",
                "409",
                "413",
                e409="Another agent has this name.",
            ),
        },
        "delete": {
            "operationId": "deleteAgent",
            "summary": "Delete an agent; its unfinished tasks end FAILURE cancelled",
            "security": ADMIN,
            "responses": _responses(
                "200",
                _json(
                    _object(
                        {
                            "deleted": {"const": True},
                            "id": UUID,
                            "cancelled_tasks": {"type": "integer", "minimum": 0},
                        }
                    ),
                    "Deleted.",
                ),
                "401",
                "404",
            ),
        },
    },
    "/api/agents/{agent_id}/webhook": {
        "parameters": [AGENT_ID],
        "post": {
            "operationId": "rotateWebhook",
            "summary": "Give the agent a new webhook token; the old one stops working at once",
            "security": ADMIN,
            "responses": _responses(
                "200", _json(_ref("AgentWithWebhook"), "The agent and its new webhook URL."), "401", "404"
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
            "responses": _responses(
                "201",
                _json(_ref("Source"), "The source, cut into chunks and indexed."),
                "400",
                "401",
                "404",
                "408",
                "413",
                e400="Not UTF-8 text, no text at all, an unknown format, or a field missing; the message"
                " says which.",
                e413="The upload is larger than a source may be.",
            ),
        },
        "get": {
            "operationId": "listSources",
            "summary": "The agent's sources, oldest first",
            "security": ADMIN,
            "responses": _responses(
                "200",
                _json(_object({"sources": {"type": "array", "items": _ref("Source")}}), "The sources."),
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
            "responses": _responses(
                "200",
                _json(_object({"deleted": {"const": True}, "id": UUID}), "Deleted."),
                "401",
                "404",
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
            "responses": _responses(
                "200",
                _json(_object({"tasks": {"type": "array", "items": _ref("Task")}}), "The tasks."),
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
            "responses": _responses("200", _json(_ref("TaskWithPayload"), "The task."), "401", "404"),
        },
    },
    "/api/tasks/{task_id}/cancel": {
        "parameters": [TASK_ID],
        "post": {
            "operationId": "cancelTask",
            "summary": "End the task FAILURE cancelled; a running one is interrupted",
            "security": ADMIN,
            "responses": _responses(
                "200",
                _json(_ref("Task"), "The task, now cancelled."),
                "401",
                "404",
                "409",
                e409="The task already finished.",
            ),
        },
    },
}

DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "hookd",
        "version": "0.1.0",
        "description": "Trigger LLM agents from webhooks. Every refusal is"
        ' {"success": false, "message": "…"}; the admin API needs Authorization: Bearer <admin key>.',
    },
    "paths": PATHS,
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Agent": AGENT,
            "AgentWithWebhook": AGENT_WITH_WEBHOOK,
            "Result": RESULT,
            "LastError": LAST_ERROR,
            "TaskStatus": TASK_STATUS,
            "Task": TASK,
            "TaskWithPayload": TASK_WITH_PAYLOAD,
            "Source": SOURCE,
            "SourceUsed": SOURCE_USED,
            "Error": ERROR,
        },
    },
}

_DOCUMENT_JSON = json.dumps(DOCUMENT, ensure_ascii=False, indent=1).encode()


@routes.get("/api/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=_DOCUMENT_JSON, content_type="application/json", charset="utf-8")
