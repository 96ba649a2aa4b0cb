"""The notify tool: push a message to an ntfy topic (https://ntfy.sh or a self-hosted server).

The server and topic come from the agent's config, so the model chooses only what to say.
An access token comes from the environment variable named in api_key_env, never the database.
"""

from __future__ import annotations

import base64
import json
import re
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit

from agents.env_names import secret_from_env
from agents.providers import ModelError
from agents.tools.addresses import normalize_host
from agents.tools.base import ConfigReader, Tool, ToolError
from agents.tools.web import GuardedClient
from agents.urls import is_url_without_query

NAME = "notify"
KEYS = ("server", "topic", "api_key_env", "allow_private", "timeout_s")
DEFAULT_SERVER = "https://ntfy.sh"
DEFAULT_TIMEOUT_S = 20.0
MAX_TIMEOUT_S = 120.0
MAX_ANSWER_BYTES = 64_000
_TOPIC = re.compile(r"[-_A-Za-z0-9]{1,64}")  # ntfy's own rule for topic names

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "string", "maxLength": 4096, "description": "The notification's text."},
        "title": {"type": "string", "maxLength": 250},
        "priority": {
            "type": "integer",
            "minimum": 1,
            "maximum": 5,
            "description": "1 (min) to 5 (max); 3 is the default.",
        },
        "tags": {
            "type": "array",
            "items": {"type": "string", "maxLength": 100},
            "maxItems": 10,
            "description": "Tags or emoji short codes, e.g. warning, rotating_light.",
        },
    },
    "required": ["message"],
    "additionalProperties": False,
}


def _server_url(value: Any) -> str | None:
    """The server's URL without a trailing slash, or None if it is not an http(s) URL without a
    query or fragment."""
    if not isinstance(value, str) or not is_url_without_query(value):
        return None
    return value.rstrip("/")


def check_config(config: dict[str, Any], where: str) -> dict[str, Any]:
    reader = ConfigReader(config, where, KEYS)
    server = _server_url(config.get("server", DEFAULT_SERVER))
    if server is None:
        raise reader.fail("server", "must be an ntfy server's http:// or https:// URL, like https://ntfy.sh.")
    topic = reader.text(
        "topic", pattern=_TOPIC, example="alerts-7f3a (letters, digits, - and _)", required=True
    )
    return {
        "type": NAME,
        "server": server,
        "topic": topic,
        "api_key_env": reader.env_name("api_key_env", "NTFY_TOKEN"),
        "allow_private": reader.flag("allow_private", False),
        "timeout_s": reader.number("timeout_s", DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S),
    }


def _header_text(text: str) -> str:
    """One line, and RFC 2047 for anything outside ASCII (ntfy decodes it)."""
    text = " ".join(text.split())
    if text.isascii():
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode()).decode() + "?="


def _ntfy_error(text: str) -> str:
    try:
        error = json.loads(text).get("error")
    except (ValueError, AttributeError):
        error = None
    return error if isinstance(error, str) else text[:300]


class Notify:
    name = NAME
    parameters = PARAMETERS

    def __init__(self, config: dict[str, Any], client: GuardedClient, token: str | None) -> None:
        self._client = client
        self._url = f"{config['server']}/{config['topic']}"
        self._topic: str = config["topic"]
        self._token = token
        self.description = "Send a push notification (ntfy) to the people watching this agent."

    async def call(self, arguments: dict[str, Any]) -> str:
        headers = {}
        if "title" in arguments:
            headers["Title"] = _header_text(arguments["title"])
        if "priority" in arguments:
            headers["Priority"] = str(arguments["priority"])
        if arguments.get("tags"):
            headers["Tags"] = _header_text(",".join(t.replace(",", " ") for t in arguments["tags"]))
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        fetched = await self._client.fetch("POST", self._url, headers, arguments["message"].encode())
        if fetched.status != 200:
            raise ToolError(f"ntfy answered HTTP {fetched.status}: {_ntfy_error(fetched.text())}")
        try:
            message_id = json.loads(fetched.text()).get("id")
        except (ValueError, AttributeError):
            message_id = None
        return f"Sent to the ntfy topic {self._topic}" + (f" (message {message_id})." if message_id else ".")


async def open_tool(config: dict[str, Any], stack: AsyncExitStack) -> list[Tool]:
    token = None
    if config["api_key_env"]:
        token = secret_from_env(config["api_key_env"])
        if not token:
            raise ModelError(
                "config_error",
                f"The agent's notify tool names api_key_env {config['api_key_env']}, which is not set"
                " in hookd's environment.",
                transient=False,
            )
    client = GuardedClient(
        allow_hosts=[normalize_host(urlsplit(config["server"]).hostname or "")],
        allow_private=config["allow_private"],
        timeout_s=config["timeout_s"],
        max_bytes=MAX_ANSWER_BYTES,
    )
    return [Notify(config, await stack.enter_async_context(client), token)]
