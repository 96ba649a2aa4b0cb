"""What an agent's `mcp_servers` may say: each server checked when the agent is saved.

A server is a command hookd starts and talks to over stdio, or a streamable-HTTP URL. Secrets
are never stored: a stdio server's secret variables and an HTTP server's header values are
named as variables of hookd's environment (`env_from`, `headers_env`) and read at run time.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any, cast

from agents.env_names import ENV_NAME, check_env_name
from agents.numbers import whole_number
from agents.urls import URL_RULES, has_credentials, is_url
from errors import InvalidInput

MAX_SERVERS = 10
MAX_COMMAND_ARGS = 100
MAX_TEXT_CHARS = 4000  # any one string in a server's config
DEFAULT_CONNECT_TIMEOUT_S = 30.0  # start (or reach) the server and list its tools
DEFAULT_TIMEOUT_S = 60.0  # one tool call
MAX_TIMEOUT_S = 600.0
DEFAULT_MAX_OUTPUT_CHARS = 100_000  # of one call's output, as the model gets it
MAX_OUTPUT_CHARS = 1_000_000

# The prefix `<server>__` must leave room for the tool's own name within the providers' 64.
SERVER_NAME = re.compile(r"[A-Za-z0-9_-]{1,30}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP token (RFC 9110)
# Words in an `env` name that say its value is a secret, which must come through `env_from`.
SECRET_WORDS = frozenset({"TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "APIKEY", "PAT", "CREDENTIALS"})

# Variables a started server may not be given (in `env` or `env_from`): they choose which
# program runs (PATH) or make a program load or run other code (the dynamic loader's, the
# interpreters' and the shells' startup hooks), which would get around HOOKD_MCP_COMMANDS.
CODE_LOADING_NAMES = frozenset(
    {"PATH", "ENV", "BASH_ENV", "BROWSER", "IFS", "SHELLOPTS", "PS4", "PROMPT_COMMAND", "GCONV_PATH",
     "NODE_OPTIONS", "NODE_PATH", "PERL5OPT", "PERL5LIB", "PERLLIB", "RUBYOPT", "RUBYLIB",
     "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "GIT_SSH_COMMAND", "GIT_EXEC_PATH"}
)  # fmt: skip
CODE_LOADING_PREFIXES = ("LD_", "DYLD_", "PYTHON", "NPM_CONFIG_", "UV_", "PIP_")


def loads_code(name: str) -> bool:
    """Whether setting this variable for a server could make it run a program or code other
    than the one HOOKD_MCP_COMMANDS lets it start."""
    upper = name.upper()
    return upper in CODE_LOADING_NAMES or upper.startswith(CODE_LOADING_PREFIXES)


def refuse_code_loading_names(names: Any, where: str) -> None:
    for name in names:
        if loads_code(name):
            raise InvalidInput(
                f"'{where}.{name}' may not be set for an MCP server: it can make the server run another"
                " program or other code than the command HOOKD_MCP_COMMANDS allows."
            )


COMMON_KEYS = ("name", "tools", "connect_timeout_s", "timeout_s", "max_output_chars")
STDIO_KEYS = ("command", "env", "env_from", "cwd")
HTTP_KEYS = ("url", "headers_env")
EXAMPLES = (
    '{"name": "files", "command": ["python", "-m", "some_server"]} or'
    ' {"name": "search", "url": "https://example.com/mcp", "headers_env": {"Authorization": "SEARCH_AUTH"}}'
)


def check_mcp_servers(value: Any) -> list[dict[str, Any]]:
    """An agent's `mcp_servers` as given to the API: each server checked, defaults filled in."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_SERVERS:
        raise InvalidInput(
            f"'mcp_servers' must be a list of at most {MAX_SERVERS} servers, like [{EXAMPLES}]."
        )
    checked: list[dict[str, Any]] = []
    for n, config in enumerate(value):
        server = _check_server(config, f"mcp_servers[{n}]")
        if any(other["name"] == server["name"] for other in checked):
            raise InvalidInput(
                f"'mcp_servers[{n}].name': another server is already named {server['name']!r}."
            )
        checked.append(server)
    return checked


def unlisted_command(server: dict[str, Any], allowed: Sequence[str]) -> str | None:
    """The program a stdio server would start when HOOKD_MCP_COMMANDS does not list it, else None."""
    if "command" not in server or "*" in allowed:
        return None
    program: str = server["command"][0]
    return None if program in allowed else program


def refusal(server_name: str, program: str) -> str:
    """Why a server's program may not start, and what the operator can do about it."""
    return (
        f"The MCP server {server_name!r} would start {program!r}, which HOOKD_MCP_COMMANDS does not"
        " list: hookd starts only the programs its operator listed there (e.g."
        " HOOKD_MCP_COMMANDS=/usr/local/bin/github-mcp-server), because whoever can change agents"
        " could otherwise run any program as hookd's user. Use a listed program, or an MCP server"
        " over HTTP (a 'url')."
    )


def why_not_started(server: dict[str, Any], allowed: Sequence[str]) -> str | None:
    """At run time: why a saved server may not start under today's rules (it may have been saved
    before them, or before HOOKD_MCP_COMMANDS changed), or None when it may."""
    program = unlisted_command(server, allowed)
    if program is not None:
        return refusal(server["name"], program)
    if any(loads_code(name) for name in [*server.get("env", {}), *server.get("env_from", {})]):
        return (
            f"The MCP server {server['name']!r} sets a variable that can make it run other code"
            " (PATH, LD_*, PYTHON*, NODE_OPTIONS, …); edit the agent to remove it."
        )
    return None


def refuse_unlisted_commands(servers: list[dict[str, Any]], allowed: Sequence[str]) -> None:
    """At save time: InvalidInput for a stdio server whose program HOOKD_MCP_COMMANDS does not list."""
    for n, server in enumerate(servers):
        program = unlisted_command(server, allowed)
        if program is not None:
            raise InvalidInput(f"'mcp_servers[{n}].command': {refusal(server['name'], program)}")


def _check_server(config: Any, where: str) -> dict[str, Any]:
    if not isinstance(config, dict):
        raise InvalidInput(f"'{where}' must be an object, like {EXAMPLES}.")
    if "headers" in config:
        raise InvalidInput(
            f"hookd never stores secrets: put each header's value in an environment variable of the"
            f' hookd process and name it in \'{where}.headers_env\', like {{"Authorization": "SEARCH_AUTH"}}.'
        )
    if ("command" in config) == ("url" in config):
        raise InvalidInput(
            f"'{where}' needs either a 'command' (stdio) or a 'url' (streamable HTTP), like {EXAMPLES}."
        )
    stdio = "command" in config
    keys = COMMON_KEYS + (STDIO_KEYS if stdio else HTTP_KEYS)
    unknown = sorted(set(config) - set(keys))
    if unknown:
        raise InvalidInput(
            f"Unknown key '{where}.{unknown[0]}'; a server with a {'command' if stdio else 'url'} takes {', '.join(keys)}."
        )
    name = config.get("name")
    if not isinstance(name, str) or not SERVER_NAME.fullmatch(name):
        raise InvalidInput(
            f"'{where}.name' is required: 1 to 30 letters, digits, '_' or '-' (it prefixes the"
            " server's tools, as in files__read_file)."
        )
    server: dict[str, Any] = {"name": name}
    if stdio:
        server["command"] = _command(config["command"], f"{where}.command")
        server["env"] = _env(config.get("env"), f"{where}.env")
        server["env_from"] = _names(config.get("env_from"), f"{where}.env_from", ENV_NAME, "GITHUB_TOKEN")
        refuse_code_loading_names(server["env"], f"{where}.env")
        refuse_code_loading_names(server["env_from"], f"{where}.env_from")
        cwd = config.get("cwd")
        if cwd is not None and (not _text(cwd) or not os.path.isabs(cwd)):
            raise InvalidInput(f"'{where}.cwd' must be an absolute path, like /srv/mcp, or null.")
        server["cwd"] = cwd
    else:
        server["url"] = _url(config["url"], f"{where}.url")
        server["headers_env"] = _names(
            config.get("headers_env"), f"{where}.headers_env", HEADER_NAME, "Authorization"
        )
    tools = config.get("tools")
    if tools is not None and (not isinstance(tools, list) or not tools or not all(_text(t) for t in tools)):
        raise InvalidInput(
            f"'{where}.tools' must be a list of the server's tool names to offer (null: all of them)."
        )
    server["tools"] = tools
    server["connect_timeout_s"] = _seconds(config, "connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S, where)
    server["timeout_s"] = _seconds(config, "timeout_s", DEFAULT_TIMEOUT_S, where)
    chars = whole_number(config.get("max_output_chars", DEFAULT_MAX_OUTPUT_CHARS))
    if chars is None or not 1 <= chars <= MAX_OUTPUT_CHARS:
        raise InvalidInput(f"'{where}.max_output_chars' must be a whole number from 1 to {MAX_OUTPUT_CHARS}.")
    server["max_output_chars"] = chars
    return server


def _text(value: Any) -> bool:
    """A non-empty string that fits, is valid Unicode and can be a process argument."""
    if not isinstance(value, str) or not value or len(value) > MAX_TEXT_CHARS or "\0" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate
        return False
    return True


def _command(value: Any, where: str) -> list[str]:
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_COMMAND_ARGS
        or not all(_text(a) for a in value)
    ):
        raise InvalidInput(
            f"'{where}' must be the program and its arguments as a list of strings, like"
            ' ["python", "-m", "some_server"] (no shell: nothing is split or expanded).'
        )
    return value


def _env(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(ENV_NAME.fullmatch(k) and _text(v) for k, v in value.items()):
        raise InvalidInput(f'\'{where}\' must map variable names to values, like {{"LOG_LEVEL": "info"}}.')
    for key in value:
        if SECRET_WORDS & set(key.upper().split("_")):
            raise InvalidInput(
                f"'{where}.{key}' looks like a secret, and hookd never stores secrets: put it in an"
                f" environment variable of the hookd process and name that in 'env_from', like"
                f' {{"{key}": "MCP_{key.upper()}"}}.'
            )
    return value


def _names(value: Any, where: str, key_pattern: re.Pattern[str], example: str) -> dict[str, str]:
    """A map of names to environment variable names, whose values are read at run time."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and key_pattern.fullmatch(k) and isinstance(v, str) and ENV_NAME.fullmatch(v)
        for k, v in value.items()
    ):
        raise InvalidInput(
            f"'{where}' must map each name to the environment variable of the hookd process that holds"
            f' its value, like {{"{example}": "MCP_{example.upper()}"}}.'
        )
    for key, var in value.items():
        check_env_name(var, f"{where}.{key}", f"MCP_{example.upper()}")
    return value


def _url(value: Any, where: str) -> str:
    if isinstance(value, str) and has_credentials(value):
        raise InvalidInput(
            f"hookd never stores secrets: take the credentials out of '{where}' and send them in a"
            " header named in 'headers_env'."
        )
    if not (_text(value) and is_url(value, credentials=False)):
        raise InvalidInput(
            f"'{where}' must be an http:// or https:// URL, like https://example.com/mcp: {URL_RULES}"
        )
    return cast(str, value)


def _seconds(config: dict[str, Any], key: str, default: float, where: str) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_TIMEOUT_S:
        raise InvalidInput(
            f"'{where}.{key}' must be a number of seconds, more than 0 and at most {MAX_TIMEOUT_S:g}."
        )
    return float(value)
