"""The agent's tools and MCP servers in the OpenAPI document, each as given and as stored.

The bounds and patterns come from agents/tools and agents/mcp_config.py, so the document says
what hookd checks; api/openapi_agent_schemas.py puts them in the agent.
"""

from __future__ import annotations

from collections.abc import Iterable

from agents import mcp_config, urls
from agents.env_names import HOOKDS_OWN
from agents.tools import http_request, notify, read_webpage
from agents.tools.addresses import ALLOW_HOST
from agents.tools.registry import MAX_TOOLS
from api.openapi_schemas import Schema, closed_object


def _any_case(words: Iterable[str]) -> str:
    """An alternation of `words` in any case: ECMAScript patterns carry no flags."""
    return "|".join(
        "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word) for word in sorted(words)
    )


# An agent may never name one of hookd's own settings as the variable a secret comes from.
NOT_HOOKDS_OWN: Schema = {"type": "string", "pattern": f"^({_any_case([HOOKDS_OWN])})"}


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


def tools(*, stored: bool) -> Schema:
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


def mcp_servers(*, stored: bool) -> Schema:
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
