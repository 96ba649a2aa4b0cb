"""The tool types an agent's `tools` may list: how each is checked on save and opened for a run.

A type opens to a list of tools, so a type that offers several (an MCP server's) fits the
same table as the built-in ones.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from agents.providers import ModelError
from agents.tools import http_request, notify, read_webpage
from agents.tools.base import Tool
from errors import InvalidInput

MAX_TOOLS = 20


@dataclass(frozen=True)
class ToolType:
    check: Callable[[dict[str, Any], str], dict[str, Any]]  # (config, where) → normalized, or 400
    open: Callable[[dict[str, Any], AsyncExitStack], Awaitable[list[Tool]]]  # closed with the stack


TOOL_TYPES: dict[str, ToolType] = {
    http_request.NAME: ToolType(http_request.check_config, http_request.open_tool),
    read_webpage.NAME: ToolType(read_webpage.check_config, read_webpage.open_tool),
    notify.NAME: ToolType(notify.check_config, notify.open_tool),
}


def check_tools(value: Any) -> list[dict[str, Any]]:
    """An agent's `tools` as given to the API: each entry checked, defaults filled in."""
    if value is None:
        return []
    example = '[{"type": "http_request", "allow_hosts": ["api.example.com"]}]'
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise InvalidInput(f"'tools' must be a list of at most {MAX_TOOLS} tool objects, like {example}.")
    checked: list[dict[str, Any]] = []
    for n, config in enumerate(value):
        where = f"tools[{n}]"
        kind = config.get("type") if isinstance(config, dict) else None
        if not isinstance(kind, str) or kind not in TOOL_TYPES:  # a list or object is unhashable
            raise InvalidInput(f"'{where}.type' must be one of {', '.join(TOOL_TYPES)}, like {example}.")
        if any(c["type"] == kind for c in checked):
            raise InvalidInput(f"'{where}': the agent already has a {kind} tool; list each type once.")
        checked.append(TOOL_TYPES[kind].check(config, where))
    return checked


async def open_tools(configs: list[dict[str, Any]], stack: AsyncExitStack) -> list[Tool]:
    """The tools of one run; whatever they hold open closes with `stack`."""
    tools: list[Tool] = []
    for config in configs:
        kind = TOOL_TYPES.get(config.get("type", ""))
        if kind is None:
            raise ModelError(
                "config_error",
                f"The agent lists a tool of unknown type {config.get('type')!r}.",
                transient=False,
            )
        tools += await kind.open(config, stack)
    return tools
