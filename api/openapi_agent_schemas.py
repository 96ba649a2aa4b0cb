"""The agent in the OpenAPI document: the fields it is created or changed with, and its stored shape.

Its parts are here too: the model settings (llm), the signature its webhooks must carry, its
tools and MCP servers (each as given and as stored), its answer's JSON Schema and its knowledge.
The bounds come from agents/, so the document says what hookd checks.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents import mcp_config, urls
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
from agents.tools import http_request, notify, read_webpage
from agents.tools.addresses import ALLOW_HOST
from agents.tools.registry import MAX_TOOLS
from api.openapi_schemas import NOT_BLANK, TIME, UUID, WHITESPACE, Schema, closed_object

# The units of a rate_limit, as settings.py _RATE reads them, and the whitespace around its parts.
RATE_UNITS = ("s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day")
_SPACES = f"[{WHITESPACE}]*"


def _any_case(words: Iterable[str]) -> str:
    """An alternation of `words` in any case: ECMAScript patterns carry no flags."""
    return "|".join(
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word) for word in sorted(words)
    )


# An agent may never name one of hookd's own settings as the variable a secret comes from.
NOT_HOOKDS_OWN: Schema = {"type": "string", "pattern": f"^({_any_case([HOOKDS_OWN])})"}


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


# -- tools -------------------------------------------------------------------------------

_HOSTS: Schema = {
    "type": "array",
    "minItems": 1,
    "maxItems": 100,
    "items": {"type": "string", "pattern": ALLOW_HOST},
    "description": "Host names (api.example.com; an IDN as its xn-- form), *.example.org for its"
    " subdomains, IP addresses, or * for any host.",
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
            "items": {"type": "string", "pattern": ALLOW_HOST},
            "minItems": 1,
            "maxItems": 100,
        }
        | {"description": "As for http_request; null or left out: any host."},
        "allow_private": _ALLOW_PRIVATE,
        "timeout_s": _seconds(read_webpage.DEFAULT_TIMEOUT_S, read_webpage.MAX_TIMEOUT_S),
        "max_chars": _whole(read_webpage.DEFAULT_MAX_CHARS, read_webpage.MAX_CHARS),
    },
    notify.NAME: {
        "server": {
            "type": "string",
            "pattern": urls.URL_WITHOUT_QUERY,
            "default": notify.DEFAULT_SERVER,
            "description": "The ntfy server: an http:// or https:// URL without a query or fragment.",
        },
        "topic": {"type": "string", "pattern": "^[-_A-Za-z0-9]{1,64}$"},
        "api_key_env": {
            "type": ["string", "null"],
            "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
            "not": NOT_HOOKDS_OWN,
            "description": "The environment variable holding an ntfy access token, if the topic needs"
            f" one; not one of hookd's own ({HOOKDS_OWN}…).",
        },
        "allow_private": _ALLOW_PRIVATE,
        "timeout_s": _seconds(notify.DEFAULT_TIMEOUT_S, notify.MAX_TIMEOUT_S),
    },
}
_TOOL_REQUIRED = {http_request.NAME: ("allow_hosts",), read_webpage.NAME: (), notify.NAME: ("topic",)}


def _tool(kind: str, *, stored: bool) -> Schema:
    """One entry of `tools`: as given (only the required keys), or as stored (every key)."""
    properties = {"type": {"const": kind}} | _TOOL_KEYS[kind]
    return closed_object(properties, required=None if stored else ("type", *_TOOL_REQUIRED[kind]))


def _tools(*, stored: bool) -> Schema:
    return {
        "type": "array" if stored else ["array", "null"],
        "maxItems": MAX_TOOLS,
        "items": {"oneOf": [_tool(kind, stored=stored) for kind in _TOOL_KEYS]},
        "allOf": [  # each type at most once
            {"contains": {"properties": {"type": {"const": kind}}}, "minContains": 0, "maxContains": 1}
            for kind in _TOOL_KEYS
        ],
        "description": "The tools the model may call, each type at most once. Keys are never stored:"
        " api_key_env names an environment variable of hookd's.",
    }


# -- MCP servers ---------------------------------------------------------------------------

_VARIABLE = "^[A-Za-z_][A-Za-z0-9_]*$"
# Names an agent may use for the hookd variables its secrets come from: never hookd's own.
_ENV_NAME: Schema = {
    "type": "string",
    "pattern": _VARIABLE,
    "not": NOT_HOOKDS_OWN,
    "description": f"Not one of hookd's own settings ({HOOKDS_OWN}…).",
}
# Variables a server may not be given: they choose or load the code it runs (mcp_config.py).
_LOADS_CODE = (
    f"^(({_any_case(mcp_config.CODE_LOADING_NAMES)})$|{_any_case(mcp_config.CODE_LOADING_PREFIXES)})"
)
_SERVER_VARIABLE: Schema = {"pattern": _VARIABLE, "not": {"pattern": _LOADS_CODE}}
_SECRET_LOOKING = f"(^|_)({_any_case(mcp_config.SECRET_WORDS)})(_|$)"  # must come through env_from
# One string of a server's config: a process argument, so no NUL.
_ARGUMENT: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": mcp_config.MAX_TEXT_CHARS,
    "pattern": "^[^\\x00]*$",
}
_MCP_COMMON: dict[str, Schema] = {
    "name": {
        "type": "string",
        "pattern": "^[A-Za-z0-9_-]{1,30}$",
        "description": "Prefixes its tools: files__read_file.",
    },
    "tools": {
        "type": ["array", "null"],
        "minItems": 1,
        "items": _ARGUMENT,
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
        "items": _ARGUMENT,
        "description": "The program and its arguments; no shell. The program must be one the"
        " server's HOOKD_MCP_COMMANDS lists, else 400.",
    },
    "env": {
        "type": ["object", "null"],
        "propertyNames": _SERVER_VARIABLE
        | {"not": {"anyOf": [_SERVER_VARIABLE["not"], {"pattern": _SECRET_LOOKING}]}},
        "additionalProperties": _ARGUMENT,
        "description": "Plain values; a secret-looking name (…_TOKEN, API_KEY, …) is refused: use"
        " env_from. Nor PATH or variables that load other code (LD_*, PYTHON*, NODE_OPTIONS, …).",
    },
    "env_from": {
        "type": ["object", "null"],
        "propertyNames": _SERVER_VARIABLE,
        "additionalProperties": _ENV_NAME,
        "description": "The server's variable → the hookd environment variable its value comes from.",
    },
    "cwd": {
        "type": ["string", "null"],
        "maxLength": mcp_config.MAX_TEXT_CHARS,
        "pattern": "^/[^\\x00]*$",
        "description": "An absolute path.",
    },
}
_MCP_HTTP: dict[str, Schema] = {
    "url": {
        "type": "string",
        "maxLength": mcp_config.MAX_TEXT_CHARS,
        "pattern": urls.URL_WITHOUT_CREDENTIALS,
        "description": "The streamable-HTTP endpoint: an http:// or https:// URL in ASCII (percent-encode"
        " anything else), without credentials: send those in a header named in headers_env.",
    },
    "headers_env": {
        "type": ["object", "null"],
        "propertyNames": {"pattern": f"^{mcp_config.HEADER_NAME.pattern}$"},
        "additionalProperties": _ENV_NAME,
        "description": "A header's name → the hookd environment variable its value comes from.",
    },
}


def _mcp_servers(*, stored: bool) -> Schema:
    def server(keys: dict[str, Schema], first: str) -> Schema:
        properties = _MCP_COMMON | keys
        return closed_object(properties, required=None if stored else ("name", first))

    return {
        "type": "array" if stored else ["array", "null"],
        "maxItems": mcp_config.MAX_SERVERS,
        "uniqueItems": True,
        "items": {"oneOf": [server(_MCP_STDIO, "command"), server(_MCP_HTTP, "url")]},
        "description": "MCP servers whose tools the model may call (needs pip install 'hookd[mcp]'),"
        " each with a name of its own (two servers of one name are a 400). Secrets are never stored:"
        " env_from and headers_env name hookd's environment variables.",
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
        "mcp_servers": _mcp_servers(stored=True),
        "updated_at": TIME,
        "signature": {
            "description": "The signature its webhooks must carry; the secret is never shown.",
            "oneOf": [{"type": "null"}, closed_object({"type": {"enum": list(SIGNATURE_TYPES)}})],
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
