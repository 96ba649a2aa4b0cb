"""The API described as an OpenAPI 3.1 document, served at GET /api/openapi.json.

Written by hand from the handlers, so it says what hookd really answers: tests/test_openapi.py
checks that it lists exactly the app's routes, and runs Schemathesis against it.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agents import mcp_config
from agents.agent import (
    AGENT_STATUSES,
    DEFAULT_MAX_STEPS,
    LLM_FIELDS,
    MAX_ATTEMPTS,
    MAX_KNOWLEDGE_TOP_K,
    MAX_NAME_CHARS,
    MAX_STEPS,
    MAX_TEXT_CHARS,
    MAX_TIMEOUT_S,
    MAX_URL_CHARS,
    PROVIDERS,
)
from agents.knowledge import FORMATS, MAX_SOURCE_BYTES, MAX_SOURCE_NAME_CHARS
from agents.signatures import (
    GITHUB,
    GITHUB_HEADER,
    MAX_SECRET_CHARS,
    SIGNATURE_TYPES,
    STANDARD_WEBHOOKS,
    TIMESTAMP_TOLERANCE_S,
)
from agents.tokens import WEBHOOK_PATH
from agents.tools import http_request, notify, read_webpage
from agents.tools.calls import OUTPUT_EXCERPT_CHARS
from agents.tools.registry import MAX_TOOLS
from api.ingress import IDEMPOTENCY_HEADERS, MAX_KEY_CHARS
from api.public import MAX_WAIT_S
from api.web import ASSET_NAMES, ASSET_TYPES
from tasks.store import DELIVERY_STATUSES, STATUSES

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


SIGNATURE_IN: Schema = {
    "description": "Require every webhook to be signed with this secret (null: no signature needed)."
    " standard-webhooks: webhook-id, webhook-timestamp and webhook-signature headers, secret"
    " 'whsec_<base64 of 24 to 64 bytes>'. github: X-Hub-Signature-256, the secret set on the GitHub"
    " webhook. The secret is never shown again.",
    "oneOf": [
        {"type": "null"},
        _object(
            {
                "type": {"const": STANDARD_WEBHOOKS},
                "secret": {"type": "string", "pattern": "^whsec_[A-Za-z0-9+/]{32,88}={0,2}$"},
            }
        ),
        _object(
            {
                "type": {"const": GITHUB},
                "secret": {"type": "string", "minLength": 1, "maxLength": MAX_SECRET_CHARS},
            }
        ),
    ],
}


# -- tools -------------------------------------------------------------------------------

_HOSTS: Schema = {
    "type": "array",
    "minItems": 1,
    "maxItems": 100,
    "items": {"type": "string"},
    "description": "Host names (api.example.com), *.example.org for its subdomains, IP addresses,"
    " or * for any host.",
}
_ALLOW_PRIVATE: Schema = {
    "type": "boolean",
    "default": False,
    "description": "Allow loopback, private and link-local addresses (checked after DNS resolution).",
}


def _seconds(default: float, high: float) -> Schema:
    return {"type": "number", "exclusiveMinimum": 0, "maximum": high, "default": default}


def _whole(default: int, high: int) -> Schema:
    return {"type": "integer", "minimum": 1, "maximum": high, "default": default}


_TOOL_KEYS: dict[str, dict[str, Schema]] = {
    http_request.NAME: {
        "allow_hosts": _HOSTS,
        "allow_private": _ALLOW_PRIVATE,
        "timeout_s": _seconds(http_request.DEFAULT_TIMEOUT_S, http_request.MAX_TIMEOUT_S),
        "max_response_bytes": _whole(
            http_request.DEFAULT_MAX_RESPONSE_BYTES, http_request.MAX_RESPONSE_BYTES
        ),
    },
    read_webpage.NAME: {
        "allow_hosts": {
            "type": ["array", "null"],
            "items": {"type": "string"},
            "minItems": 1,
            "maxItems": 100,
        }
        | {"description": "As for http_request; null or left out: any host."},
        "allow_private": _ALLOW_PRIVATE,
        "timeout_s": _seconds(read_webpage.DEFAULT_TIMEOUT_S, read_webpage.MAX_TIMEOUT_S),
        "max_chars": _whole(read_webpage.DEFAULT_MAX_CHARS, read_webpage.MAX_CHARS),
    },
    notify.NAME: {
        "server": {"type": "string", "default": notify.DEFAULT_SERVER, "description": "The ntfy server."},
        "topic": {"type": "string", "pattern": "^[-_A-Za-z0-9]{1,64}$"},
        "api_key_env": {
            "type": ["string", "null"],
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "description": "The environment variable holding an ntfy access token, if the topic needs one.",
        },
        "allow_private": _ALLOW_PRIVATE,
        "timeout_s": _seconds(notify.DEFAULT_TIMEOUT_S, notify.MAX_TIMEOUT_S),
    },
}
_TOOL_REQUIRED = {http_request.NAME: ("allow_hosts",), read_webpage.NAME: (), notify.NAME: ("topic",)}


def _tool(kind: str, *, stored: bool) -> Schema:
    """One entry of `tools`: as given (only the required keys), or as stored (every key)."""
    properties = {"type": {"const": kind}} | _TOOL_KEYS[kind]
    return _object(properties, required=None if stored else ("type", *_TOOL_REQUIRED[kind]))


def _tools(*, stored: bool) -> Schema:
    return {
        "type": "array" if stored else ["array", "null"],
        "maxItems": MAX_TOOLS,
        "items": {"oneOf": [_tool(kind, stored=stored) for kind in _TOOL_KEYS]},
        "description": "The tools the model may call, each type at most once. Keys are never stored:"
        " api_key_env names an environment variable of hookd's.",
    }


# -- MCP servers ---------------------------------------------------------------------------

_ENV_NAME: Schema = {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
_MCP_COMMON: dict[str, Schema] = {
    "name": {
        "type": "string",
        "pattern": "^[A-Za-z0-9_-]{1,30}$",
        "description": "Prefixes its tools: files__read_file.",
    },
    "tools": {
        "type": ["array", "null"],
        "minItems": 1,
        "items": {"type": "string", "minLength": 1},
        "description": "Only these of the server's tools are offered; null: all.",
    },
    "connect_timeout_s": _seconds(mcp_config.DEFAULT_CONNECT_TIMEOUT_S, mcp_config.MAX_TIMEOUT_S),
    "timeout_s": _seconds(mcp_config.DEFAULT_TIMEOUT_S, mcp_config.MAX_TIMEOUT_S),
    "max_output_chars": _whole(mcp_config.DEFAULT_MAX_OUTPUT_CHARS, mcp_config.MAX_OUTPUT_CHARS),
}
_MCP_STDIO: dict[str, Schema] = {
    "command": {
        "type": "array",
        "minItems": 1,
        "maxItems": mcp_config.MAX_COMMAND_ARGS,
        "items": {"type": "string", "minLength": 1},
        "description": "The program and its arguments; no shell.",
    },
    "env": {
        "type": ["object", "null"],
        "additionalProperties": {"type": "string"},
        "description": "Plain values; a secret-looking name is refused: use env_from.",
    },
    "env_from": {
        "type": ["object", "null"],
        "additionalProperties": _ENV_NAME,
        "description": "The server's variable → the hookd environment variable its value comes from.",
    },
    "cwd": {"type": ["string", "null"], "description": "An absolute path."},
}
_MCP_HTTP: dict[str, Schema] = {
    "url": {"type": "string", "description": "The streamable-HTTP endpoint, http:// or https://."},
    "headers_env": {
        "type": ["object", "null"],
        "additionalProperties": _ENV_NAME,
        "description": "A header's name → the hookd environment variable its value comes from.",
    },
}


def _mcp_servers(*, stored: bool) -> Schema:
    def server(keys: dict[str, Schema], first: str) -> Schema:
        properties = _MCP_COMMON | keys
        return _object(properties, required=None if stored else ("name", first))

    return {
        "type": "array" if stored else ["array", "null"],
        "maxItems": mcp_config.MAX_SERVERS,
        "items": {"oneOf": [server(_MCP_STDIO, "command"), server(_MCP_HTTP, "url")]},
        "description": "MCP servers whose tools the model may call (needs pip install 'hookd[mcp]')."
        " Secrets are never stored: env_from and headers_env name hookd's environment variables.",
    }


JSON_SCHEMA: Schema = {
    "type": ["object", "null"],
    "description": 'A JSON Schema (2020-12) with "type": "object" at its root: the model answers in'
    " that shape and result.structured holds the answer. $ref only to its own parts (#/…).",
}
TOOL_CALL: Schema = _object(
    {
        "step": {"type": "integer", "minimum": 1, "description": "The model turn that asked for it."},
        "tool": {"type": "string"},
        "arguments": {"type": "object"},
        "output": {
            "type": ["string", "null"],
            "description": f"Its first {OUTPUT_EXCERPT_CHARS} characters; null if the call failed.",
        },
        "error": {"type": ["string", "null"], "description": "What went wrong; the model was told."},
        "duration_s": {"type": "number", "minimum": 0},
        "replayed": {
            "type": "boolean",
            "description": "The output came from an earlier attempt's journal; the tool was not called again.",
        },
    }
)


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
        "signature": SIGNATURE_IN,
        "tools": _tools(stored=False),
        "max_steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS, "default": DEFAULT_MAX_STEPS}
        | {
            "description": "Model turns per run; a run still calling tools after them fails max_steps_exceeded."
        },
        "json_schema": JSON_SCHEMA,
        "mcp_servers": _mcp_servers(stored=False),
        "callback_url": {
            "type": ["string", "null"],
            "maxLength": MAX_URL_CHARS,
            "description": "Each final result is POSTed here, signed (Standard Webhooks). Loopback,"
            " link-local and private addresses are refused (400) unless the server's"
            " HOOKD_CALLBACK_ALLOW_PRIVATE is true. null or empty: no callbacks.",
            "anyOf": [{"maxLength": 0}, {"pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#\\s]"}],
        },
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
        "mcp_servers": _mcp_servers(stored=True),
        "updated_at": TIME,
        "signature": {
            "description": "The signature its webhooks must carry; the secret is never shown.",
            "oneOf": [{"type": "null"}, _object({"type": {"enum": list(SIGNATURE_TYPES)}})],
        },
        "tools": _tools(stored=True),
        "max_steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS},
        "json_schema": JSON_SCHEMA,
        "callback_url": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_URL_CHARS},
        "callback_secret": {
            "type": "string",
            "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$",
            "description": "Signs the agent's callbacks: the key is the base64 after whsec_."
            " POST /api/agents/{agent_id}/callback-secret replaces it.",
        },
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
                "answer": {"type": "string", "description": "With a json_schema: the answer as JSON text."},
                "model": {"type": "string"},
                "usage": {"type": "object", "description": "The provider's token counts, summed over turns."},
                "tool_calls": {
                    "type": "array",
                    "items": TOOL_CALL,
                    "description": "Only for an agent with tools: every call, in order.",
                },
                "structured": {"type": "object", "description": "Only for an agent with a json_schema."},
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
                    " max_steps_exceeded, schema_mismatch, config_error, mcp_unavailable, cancelled, interrupted"
                    " or internal_error.",
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
DELIVERY: Schema = _object(
    {
        "id": UUID | {"description": "Sent as webhook-id, the same on every attempt."},
        "task_id": UUID,
        "url": {"type": "string"},
        "status": {"enum": list(DELIVERY_STATUSES)},
        "attempts": {"type": "integer", "minimum": 0},
        "next_attempt_at": TIME_OR_NULL | {"description": "Set while pending."},
        "last_attempt_at": TIME_OR_NULL,
        "last_status_code": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "created_at": TIME,
        "delivered_at": TIME_OR_NULL,
    }
)
DELIVERIES: Schema = {"type": "array", "items": _ref("Delivery")}
TASK_WITH_PAYLOAD: Schema = TASK | {
    "properties": TASK["properties"]
    | {
        "payload": {"type": "object", "description": "The webhook's payload, as accepted."},
        "deliveries": DELIVERIES | {"description": "Its callbacks, oldest first."},
    },
    "required": [*TASK["required"], "payload", "deliveries"],
}

ERROR: Schema = _object({"success": {"const": False}, "message": {"type": "string", "minLength": 1}})

# -- operations --------------------------------------------------------------------------


def _json(schema: Schema, description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR_MEANING = {
    "400": "The request is malformed; the message says how. (A request line or header over 8 KB is"
    " refused as plain text by the HTTP parser.)",
    "401": "No valid `Authorization: Bearer <admin key>`.",
    "404": "Nothing has this id or token.",
    "409": "The request clashes with the current state.",
    "408": "The body did not arrive within HOOKD_BODY_TIMEOUT_S; nothing was stored.",
    "413": "The body is larger than HOOKD_MAX_BODY_BYTES.",
    "422": "The idempotency key was used with a different body in the last 24 hours; nothing was stored.",
    "429": "Too many webhooks; nothing was stored. Send it again after Retry-After seconds.",
    "503": "The database cannot take writes (disk full, a read-only file, busy past its timeout, or"
    " hookd is stopping); nothing was stored. Send it again later.",
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
        if status == "400":
            # aiohttp's HTTP parser refuses a request line or header over 8 KB before any
            # handler runs, in plain text.
            answer["content"]["text/plain"] = {"schema": {"type": "string"}}
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
    {
        "anyOf": [
            _object({"success": {"const": True}, "task_id": UUID}),
            _object(
                _TASK_STATUS_FIELDS | {"success": {"const": True}, "status": {"enum": ["SUCCESS", "FAILURE"]}}
            ),
        ]
    },
    "The task is committed; poll GET /api/task_status?task_id=…. Sent with Prefer: wait=N and"
    " the run ended within N seconds: its final status instead, as task_status gives it. With"
    " Idempotent-Replayed: the task an earlier request with the same idempotency key made;"
    " nothing new was stored.",
)
WEBHOOK_ACCEPTED["headers"] = {
    "Preference-Applied": {
        "description": "wait=N when the request's Prefer: wait=N was honoured.",
        "schema": {"type": "string", "pattern": "^wait=[0-9]+$"},
    },
    "Idempotent-Replayed": {
        "description": "Present on a repeat of an earlier request's idempotency key.",
        "schema": {"const": "true"},
    },
}
PREFER: Schema = {
    "name": "Prefer",
    "in": "header",
    "description": "RFC 7240. wait=N (0 to 60; bare wait is 60): answer with the final status if the"
    " run ends within N seconds. Other preferences are ignored.",
    "schema": {"type": "string"},
}
WEBHOOK_REFUSALS = {
    "e400": "The body or query is malformed, an idempotency header is unusable, or Prefer: wait=N is"
    " not 0 to 60; the message says how, and nothing was stored.",
    "e401": "The agent requires a signature, and this one is missing, wrong or too old (the"
    " message names the header). Nothing was stored.",
    "e404": "No agent has this token (unknown, or rotated away).",
    "e409": "The agent is paused.",
}


def _header(name: str, description: str, schema: Schema | None = None) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


_KEY_SCHEMA: Schema = {"type": "string", "pattern": f"^[\\x20-\\x7e]{{1,{MAX_KEY_CHARS}}}$"}
_KEY_RULES = (
    "Repeated for the same agent within 24 hours, the answer is the first request's task_id with"
    " Idempotent-Replayed: true, and nothing is stored; with another body (compared by the SHA-256"
    " of the raw body; of a GET, of its query string) it is refused with 422."
    f" 1 to {MAX_KEY_CHARS} printable ASCII characters, else 400."
)
IDEMPOTENCY_PARAMETERS = [
    _header(IDEMPOTENCY_HEADERS[0], f"The request's idempotency key. {_KEY_RULES}", _KEY_SCHEMA),
    _header(
        IDEMPOTENCY_HEADERS[1],
        "Standard Webhooks' message id (covered by its signature): the idempotency key when there"
        f" is no {IDEMPOTENCY_HEADERS[0]}.",
        _KEY_SCHEMA,
    ),
    _header(
        IDEMPOTENCY_HEADERS[2],
        "GitHub's delivery id (a redelivery keeps it): the idempotency key when neither header"
        " above is present.",
        _KEY_SCHEMA,
    ),
]
SIGNATURE_PARAMETERS = [
    _header(
        "webhook-timestamp",
        "Standard Webhooks (for an agent that requires them): Unix seconds, at most"
        f" {TIMESTAMP_TOLERANCE_S} s from the server's clock either way.",
    ),
    _header(
        "webhook-signature",
        "Standard Webhooks: space-separated 'v1,<base64 HMAC-SHA256>' signatures of"
        " '{webhook-id}.{webhook-timestamp}.{raw body}'; any one valid signature is enough.",
    ),
    _header(
        GITHUB_HEADER, "GitHub (for an agent that requires it): 'sha256=<hex HMAC-SHA256 of the raw body>'."
    ),
]
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
                        "schema": {"type": "object", "additionalProperties": {"type": "string"}}
                    },
                },
            },
            "responses": _responses(
                "200",
                WEBHOOK_ACCEPTED,
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
            "responses": _responses(
                "200", WEBHOOK_ACCEPTED, "400", "401", "404", "409", "422", "429", "503", **WEBHOOK_REFUSALS
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
            "responses": _responses(
                "200",
                _json(_ref("TaskStatus"), "The task."),
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
            "responses": _responses(
                "200",
                {
                    "description": "The event stream.",
                    "content": {
                        "text/event-stream": {
                            "schema": _object(
                                {
                                    "event": {"enum": list(STATUSES)},
                                    "data": {
                                        "type": "string",
                                        "contentMediaType": "application/json",
                                        "contentSchema": _ref("TaskStatus"),
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
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics (text exposition format)",
            "security": ADMIN,
            "responses": _responses(
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
            "responses": _responses(
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
            "requestBody": _agent_body(creating=True),
            "responses": _responses(
                "201",
                _json(_ref("AgentWithWebhook"), "The agent and its webhook URL, shown this once."),
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
                "503",
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
            "responses": _responses(
                "200",
                _json(_ref("AgentWithWebhook"), "The agent and its new webhook URL."),
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
            "responses": _responses(
                "200", _json(_ref("Agent"), "The agent and its new secret."), "401", "404", "503"
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
    "/api/tasks/{task_id}/deliveries": {
        "parameters": [TASK_ID],
        "get": {
            "operationId": "listDeliveries",
            "summary": "The task's callbacks and how their attempts went, oldest first",
            "security": ADMIN,
            "responses": _responses(
                "200", _json(_object({"deliveries": DELIVERIES}), "The deliveries."), "401", "404"
            ),
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
                "503",
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
            "Delivery": DELIVERY,
            "Source": SOURCE,
            "SourceUsed": SOURCE_USED,
            "Error": ERROR,
            "ToolCall": TOOL_CALL,
        },
    },
}

_DOCUMENT_JSON = json.dumps(DOCUMENT, ensure_ascii=False, indent=1).encode()


@routes.get("/api/openapi.json")
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=_DOCUMENT_JSON, content_type="application/json", charset="utf-8")
