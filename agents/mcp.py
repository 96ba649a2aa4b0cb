"""MCP servers as tools: an agent's `mcp_servers` (agents/mcp_config.py) connected for a run.

Each server's tools are offered to the model as `<server>__<tool>` and their calls forwarded to
it; the servers are closed when the run ends, however it ends. The official `mcp` SDK is an
optional extra (`pip install 'hookd[mcp]'`), imported only when an agent has servers, so hookd
without it starts and runs every other agent.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import TYPE_CHECKING, Any, TextIO, cast
from urllib.parse import urlsplit, urlunsplit

from agents.env_names import secret_from_env
from agents.mcp_config import why_not_started
from agents.providers import ModelError
from agents.tools.base import ToolError

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult

log = logging.getLogger("hookd.mcp")

MAX_DESCRIPTION_CHARS = 2000
MAX_TOOL_PAGES = 20  # of tools/list: a server that pages forever cannot hang a run
STDERR_TAIL_BYTES = 600  # of a stdio server's stderr, quoted when it fails to start
NOT_IN_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")  # the providers' charset: ^[a-zA-Z0-9_-]{1,64}$
MAX_TOOL_NAME_CHARS = 64


class McpTool:
    """One tool of a connected MCP server, in the shape of the tool loop's `Tool`."""

    def __init__(
        self,
        name: str,
        description: str,
        parameters: dict[str, Any],
        *,
        client: Client,
        server: dict[str, Any],
        tool: str,
        secrets: list[str],
    ) -> None:
        self.name = name  # what the model calls it: <server>__<tool>, in the providers' charset
        self.description = description
        self.parameters = parameters
        self._client = client
        self._server = server
        self._tool = tool  # what the server calls it
        self._secrets = secrets

    async def call(self, arguments: dict[str, Any]) -> str:
        server, timeout_s = self._server["name"], self._server["timeout_s"]
        try:
            # Bounds the whole call, the write included; cancelling it sends the server a
            # courtesy cancel and leaves the session usable for the next call.
            async with asyncio.timeout(timeout_s):
                result = await self._client.call_tool(self._tool, arguments)
        except TimeoutError:
            raise ToolError(f"the MCP server '{server}' did not answer within {timeout_s:g} s.") from None
        except Exception as exc:  # the server refused the request, or the connection is gone
            error = f"the MCP server '{server}' failed: {_describe(exc)}"
            raise ToolError(_redact(error, self._secrets)) from None
        text = result_text(result, self._server["max_output_chars"])
        if result.is_error:
            error = text or f"the MCP server '{server}' reported an error without saying what."
            raise ToolError(_redact(error, self._secrets))
        return text


async def open_mcp_tools(
    configs: list[dict[str, Any]], stack: AsyncExitStack, commands: Sequence[str] = ()
) -> list[McpTool]:
    """Connect to the agent's MCP servers and return their tools; the servers close with `stack`.

    `commands` is HOOKD_MCP_COMMANDS: a stdio server whose program it does not list is not
    started (the agent may have been saved before the list changed): config_error.

    The servers are connected one after another in the caller's task: the SDK's task groups
    must be left by the task that entered them, which is the one that closes `stack`.
    """
    if not configs:
        return []
    for server in configs:
        problem = why_not_started(server, commands)
        if problem is not None:
            raise ModelError("config_error", problem, transient=False)
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ModelError(
            "config_error",
            "The agent lists MCP servers, but the mcp package is not installed: pip install 'hookd[mcp]'.",
            transient=False,
        ) from None
    servers = AsyncExitStack()
    stack.push_async_callback(_close, servers)
    taken: set[str] = set()
    tools: list[McpTool] = []
    for server in configs:
        tools += await _open_server(server, servers, taken)
    return tools


async def _close(servers: AsyncExitStack) -> None:
    """Close the run's servers as if the run had ended well, whatever it ended with.

    Given the run's own exception, the SDK's task groups would wrap it in an ExceptionGroup and
    the task would lose its error type; and a server that fails to close must not turn a
    finished run into a failure.
    """
    try:
        await servers.aclose()
    except Exception as exc:
        log.warning("closing an MCP connection failed: %s", _describe(exc))


async def _open_server(server: dict[str, Any], stack: AsyncExitStack, taken: set[str]) -> list[McpTool]:
    from mcp import Client

    name, connect_timeout_s = server["name"], server["connect_timeout_s"]
    secrets: list[str] = []  # values from hookd's environment, kept out of every message
    errlog = _stderr_file(stack) if "command" in server else None
    if errlog is not None:
        transport = _stdio_transport(server, errlog, secrets)
    else:
        transport = await _http_transport(server, stack, secrets)
    client = Client(transport, cache=None)
    try:
        async with asyncio.timeout(connect_timeout_s):
            await stack.enter_async_context(client)
            listed = await _list_tools(client)
    except TimeoutError:
        raise _unavailable(server, f"no answer within {connect_timeout_s:g} s", errlog, secrets) from None
    except OSError as exc:  # a command that cannot be started (no such file, not executable) stays so
        reason = exc.strerror or _describe(exc)
        raise _unavailable(server, reason, errlog, secrets, transient=errlog is None) from None
    except Exception as exc:
        raise _unavailable(server, _describe(exc), errlog, secrets) from None
    wanted = server["tools"]
    if wanted is not None:
        missing = sorted(set(wanted) - {tool.name for tool in listed})
        if missing:
            offered = ", ".join(sorted(tool.name for tool in listed)[:50]) or "none"
            raise ModelError(
                "config_error",
                f"The agent's MCP server '{name}' has no tool {missing[0]!r} (its tools: {offered}).",
                transient=False,
            )
        listed = [tool for tool in listed if tool.name in wanted]
    log.info("MCP server %s connected: %d tools", name, len(listed))
    return [
        McpTool(
            tool_name(name, tool.name, taken),
            (tool.description or tool.title or f"The {tool.name} tool of the MCP server {name}.")[
                :MAX_DESCRIPTION_CHARS
            ],
            {"type": "object", "properties": {}} | dict(tool.input_schema),
            client=client,
            server=server,
            tool=tool.name,
            secrets=secrets,
        )
        for tool in listed
    ]


async def _list_tools(client: Client) -> list[Any]:
    listed: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_TOOL_PAGES):
        page = await client.list_tools(cursor=cursor)
        listed += page.tools
        cursor = page.next_cursor
        if cursor is None:
            break
    return listed


def _stderr_file(stack: AsyncExitStack) -> TextIO:
    """Where a stdio server's stderr goes: kept for an error message, not mixed into hookd's log."""
    file = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
    return cast(TextIO, stack.enter_context(file))


def _stdio_transport(
    server: dict[str, Any], errlog: TextIO, secrets: list[str]
) -> AbstractAsyncContextManager[Any]:
    from mcp import StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = dict(server["env"])
    for child_name, var in server["env_from"].items():
        env[child_name] = _from_environment(server, f"the variable {child_name}", var, secrets)
    # The SDK starts the server with only HOME, PATH, SHELL, TERM, USER and LOGNAME of hookd's
    # environment (plus `env`), so hookd's own keys do not leak into it.
    # A bare program name is looked up on that PATH, hookd's own: `env` may not set PATH.
    command = server["command"]
    params = StdioServerParameters(command=command[0], args=command[1:], env=env or None, cwd=server["cwd"])
    return stdio_client(params, errlog=errlog)


async def _http_transport(
    server: dict[str, Any], stack: AsyncExitStack, secrets: list[str]
) -> AbstractAsyncContextManager[Any]:
    import httpx2  # the SDK's HTTP client, a dependency of mcp
    from mcp.client.streamable_http import streamable_http_client

    headers = {
        header: _from_environment(server, f"the {header} header", var, secrets)
        for header, var in server["headers_env"].items()
    }
    # No read timeout: the GET stream stays open for the whole run; each call has its own bound.
    timeout = httpx2.Timeout(server["connect_timeout_s"], read=None)
    http = await stack.enter_async_context(httpx2.AsyncClient(headers=headers, timeout=timeout))
    return streamable_http_client(server["url"], http_client=http)


def _from_environment(server: dict[str, Any], what: str, var: str, secrets: list[str]) -> str:
    value = secret_from_env(var)
    if not value:
        raise ModelError(
            "config_error",
            f"The agent's MCP server '{server['name']}' takes {what} from {var}, which is not set in"
            " hookd's environment.",
            transient=False,
        )
    secrets.append(value)
    return value


def _unavailable(
    server: dict[str, Any], reason: str, errlog: TextIO | None, secrets: list[str], *, transient: bool = True
) -> ModelError:
    """mcp_unavailable, naming the server and what went wrong (with a stdio server's last words)."""
    if "command" in server:
        where = f"the command {server['command'][0]!r}"
        said = _stderr_tail(errlog) if errlog is not None else ""
        if said:
            reason += f"; its stderr ended with: {said}"
    else:
        parts = urlsplit(server["url"])  # without query or fragment, which may carry a key
        where = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
    message = f"The agent's MCP server '{server['name']}' ({where}) is unavailable: {reason}"
    return ModelError("mcp_unavailable", _redact(message, secrets), transient=transient)


def _redact(text: str, secrets: list[str]) -> str:
    """`text` without the values hookd passed the server from its environment."""
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _stderr_tail(errlog: TextIO) -> str:
    # pread: the server may still hold the file and share its offset, so never seek it.
    fd = errlog.fileno()
    size = os.fstat(fd).st_size
    tail = os.pread(fd, STDERR_TAIL_BYTES, max(0, size - STDERR_TAIL_BYTES))
    return " ".join(tail.decode("utf-8", "replace").split())


def _describe(exc: BaseException) -> str:
    """The first real error inside the SDK's task-group exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def tool_name(server: str, tool: str, taken: set[str]) -> str:
    """`<server>__<tool>` in the providers' charset and length, unique among `taken` (which it joins)."""
    base = f"{server}__{NOT_IN_TOOL_NAME.sub('_', tool)}"[:MAX_TOOL_NAME_CHARS]
    name, n = base, 1
    while name in taken:
        n += 1
        name = base[: MAX_TOOL_NAME_CHARS - len(f"_{n}")] + f"_{n}"
    taken.add(name)
    return name


def result_text(result: CallToolResult, max_chars: int) -> str:
    """A tool result as the model reads it: text blocks joined, anything else summarized, capped."""
    from mcp import types

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent | types.AudioContent):
            parts.append(f"[{block.type}: {block.mime_type}, {_decoded_bytes(block.data)} bytes, not shown]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource link: {block.uri}" + (f" ({block.name})]" if block.name else "]"))
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(f"[resource: {resource.uri}]\n{resource.text}")
            else:
                mime = resource.mime_type or "binary"
                parts.append(
                    f"[resource: {resource.uri}, {mime}, {_decoded_bytes(resource.blob)} bytes, not shown]"
                )
        else:
            parts.append(f"[{getattr(block, 'type', 'unknown')} content, not shown]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    text = "\n".join(parts)
    if len(text) > max_chars:
        text = text[:max_chars] + f"…[{len(text) - max_chars} more characters cut]"
    return text


def _decoded_bytes(base64_text: str) -> int:
    return len(base64_text) * 3 // 4 - base64_text[-2:].count("=")
