"""The http_request tool: one HTTP request to a host on the agent's allow-list."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from agents.tools.addresses import check_allow_hosts
from agents.tools.base import ConfigReader, Tool
from agents.tools.web import GuardedClient
from errors import InvalidInput

NAME = "http_request"
KEYS = ("allow_hosts", "allow_private", "timeout_s", "max_response_bytes")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
DEFAULT_TIMEOUT_S = 20.0
MAX_TIMEOUT_S = 300.0
DEFAULT_MAX_RESPONSE_BYTES = 100_000
MAX_RESPONSE_BYTES = 10_000_000

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "method": {"type": "string", "enum": list(METHODS), "description": "GET when left out."},
        "url": {"type": "string", "description": "An http:// or https:// URL."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": "string", "description": "The request body, e.g. JSON text."},
    },
    "required": ["url"],
    "additionalProperties": False,
}


def check_config(config: dict[str, Any], where: str) -> dict[str, Any]:
    reader = ConfigReader(config, where, KEYS)
    if "allow_hosts" not in config:
        raise InvalidInput(
            f"'{where}.allow_hosts' is required: the hosts http_request may call, like"
            ' ["api.example.com"], or ["*"] for any host.'
        )
    return {
        "type": NAME,
        "allow_hosts": check_allow_hosts(config["allow_hosts"], f"{where}.allow_hosts"),
        "allow_private": reader.flag("allow_private", False),
        "timeout_s": reader.number("timeout_s", DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S),
        "max_response_bytes": reader.whole(
            "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, 1, MAX_RESPONSE_BYTES
        ),
    }


class HttpRequest:
    name = NAME
    parameters = PARAMETERS

    def __init__(self, config: dict[str, Any], client: GuardedClient) -> None:
        self._client = client
        self._max_bytes: int = config["max_response_bytes"]
        self.description = (
            "Send an HTTP request; returns the status, the content type and the body (its first"
            f" {self._max_bytes} bytes). Hosts it may call: {', '.join(config['allow_hosts'])}."
        )

    async def call(self, arguments: dict[str, Any]) -> str:
        body = arguments.get("body")
        fetched = await self._client.fetch(
            arguments.get("method", "GET"),
            arguments["url"],
            arguments.get("headers"),
            body.encode() if isinstance(body, str) else None,
        )
        output = f"HTTP {fetched.status} {fetched.reason}\nContent-Type: {fetched.content_type}\n\n{fetched.text()}"
        if fetched.truncated:
            output += f"\n…[cut: the response is longer than {self._max_bytes} bytes]"
        return output


async def open_tool(config: dict[str, Any], stack: AsyncExitStack) -> list[Tool]:
    client = GuardedClient(
        allow_hosts=config["allow_hosts"],
        allow_private=config["allow_private"],
        timeout_s=config["timeout_s"],
        max_bytes=config["max_response_bytes"],
    )
    return [HttpRequest(config, await stack.enter_async_context(client))]
