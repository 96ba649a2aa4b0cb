"""The agent in the OpenAPI document: the fields it is created or changed with, and its stored shape.

Its parts are here too: the model settings (llm), the signature its webhooks must carry, its
answer's JSON Schema and its knowledge; its tools and MCP servers are in
api/openapi_tool_schemas.py. The bounds come from agents/, so the document says what hookd checks.
"""

from __future__ import annotations

from agents import urls
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
from agents.env_names import HOOKDS_OWN
from agents.signatures import (
    GITHUB,
    MAX_SECRET_CHARS,
    SECRET_PATTERN,
    SIGNATURE_TYPES,
    STANDARD_WEBHOOKS,
    WHSEC_PATTERN,
)
from agents.structured import MAX_SCHEMA_CHARS
from api.openapi_schemas import NOT_BLANK, TIME, UUID, WHITESPACE, Schema, closed_object
from api.openapi_tool_schemas import NOT_HOOKDS_OWN, mcp_servers, tools

# The units of a rate_limit, as settings.py _RATE reads them, and the whitespace around its parts.
RATE_UNITS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")
_SPACES = f"[{WHITESPACE}]*"


def _or_empty(pattern: str) -> str:
    """`pattern` (^…$), or the empty string. (One pattern rather than an anyOf with maxLength 0:
    the same, and Schemathesis generates for it far faster.)"""
    return f"^({pattern.removeprefix('^').removesuffix('$')})?$"


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
            "pattern": _or_empty(urls.URL),
        },
        "api_key_env": {
            "type": ["string", "null"],
            "description": "The name of the environment variable holding the key; not one of"
            f" hookd's own ({HOOKDS_OWN}…).",
            "pattern": "^([A-Za-z_][A-Za-z0-9_]*)?$",
            "not": NOT_HOOKDS_OWN,
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
        closed_object(
            {
                "type": {"const": STANDARD_WEBHOOKS},
                "secret": {"type": "string", "pattern": WHSEC_PATTERN},
            }
        ),
        closed_object(
            {
                "type": {"const": GITHUB},
                "secret": {
                    "type": "string",
                    "pattern": SECRET_PATTERN,
                    "description": f"1 to {MAX_SECRET_CHARS} printable ASCII characters, without"
                    " surrounding spaces.",
                },
            }
        ),
    ],
}


JSON_SCHEMA: Schema = {
    "type": ["object", "null"],
    "required": ["type"],
    "properties": {"type": {"const": "object"}},
    "description": 'A JSON Schema (2020-12) with "type": "object" at its root: the model answers in'
    " that shape and result.structured holds the answer. $ref only to its own parts (#/…); at"
    f" most {MAX_SCHEMA_CHARS:,} characters as JSON. One that is not a valid JSON Schema is a 400.",
}
KNOWLEDGE_TOP_K: Schema = {
    "type": "integer",
    "minimum": 0,
    "maximum": MAX_KNOWLEDGE_TOP_K,
    "description": "How many chunks of the agent's sources go into each run's prompt; 0: none.",
}


def agent_fields() -> dict[str, Schema]:
    """The fields an agent is created or changed with (agents/agent.py validate_agent_fields)."""
    return {
        "name": {
            "type": "string",
            "maxLength": MAX_NAME_CHARS,
            "pattern": NOT_BLANK,
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
            "pattern": f"^{_SPACES}(0*[1-9][0-9]{{0,8}}{_SPACES}/{_SPACES}({'|'.join(RATE_UNITS)}){_SPACES})?$",
        },
        "status": {"enum": list(AGENT_STATUSES)},
        "signature": SIGNATURE_IN,
        "tools": tools(stored=False),
        "max_steps": {"type": "integer", "minimum": 1, "maximum": MAX_STEPS, "default": DEFAULT_MAX_STEPS}
        | {
            "description": "Model turns per run; a run still calling tools after them fails max_steps_exceeded."
        },
        "json_schema": JSON_SCHEMA,
        "mcp_servers": mcp_servers(stored=False),
        "callback_url": {
            "type": ["string", "null"],
            "maxLength": MAX_URL_CHARS,
            "description": "Each final result is POSTed here, signed (Standard Webhooks). Loopback,"
            " link-local and private addresses are refused (400) unless the server's"
            " HOOKD_CALLBACK_ALLOW_PRIVATE is true. null or empty: no callbacks.",
            "pattern": _or_empty(urls.URL),
        },
        "knowledge_top_k": KNOWLEDGE_TOP_K,
    }


AGENT: Schema = closed_object(
    {
        "id": UUID,
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS},
        "description": _text(MAX_TEXT_CHARS),
        "prompt": _text(MAX_TEXT_CHARS),
        "input_template": {"type": ["string", "null"], "minLength": 1, "maxLength": MAX_TEXT_CHARS},
        "llm": closed_object(
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
        "mcp_servers": mcp_servers(stored=True),
        "updated_at": TIME,
        "signature": {
            "description": "The signature its webhooks must carry; the secret is never shown.",
            "oneOf": [{"type": "null"}, closed_object({"type": {"enum": list(SIGNATURE_TYPES)}})],
        },
        "tools": tools(stored=True),
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
