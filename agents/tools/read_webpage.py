"""The read_webpage tool: fetch a page and return its readable text."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from agents.tools.addresses import check_allow_hosts
from agents.tools.base import ConfigReader, Tool, ToolError
from agents.tools.html_text import readable_text
from agents.tools.web import GuardedClient

NAME = "read_webpage"
KEYS = ("allow_hosts", "allow_private", "timeout_s", "max_chars")
DEFAULT_TIMEOUT_S = 20.0
MAX_TIMEOUT_S = 300.0
DEFAULT_MAX_CHARS = 20_000
MAX_CHARS = 1_000_000
TEXT_TYPES = ("application/json", "application/xml", "application/rss+xml", "application/atom+xml")
MAX_PAGE_BYTES = 2_000_000  # read at most this much of a page; its text is cut at max_chars

PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"url": {"type": "string", "description": "The page's http:// or https:// URL."}},
    "required": ["url"],
    "additionalProperties": False,
}


def check_config(config: dict[str, Any], where: str) -> dict[str, Any]:
    reader = ConfigReader(config, where, KEYS)
    hosts = config.get("allow_hosts")
    return {
        "type": NAME,
        # Reading the web is the point: without a list, any host (public addresses only).
        "allow_hosts": None if hosts is None else check_allow_hosts(hosts, f"{where}.allow_hosts"),
        "allow_private": reader.flag("allow_private", False),
        "timeout_s": reader.number("timeout_s", DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S),
        "max_chars": reader.whole("max_chars", DEFAULT_MAX_CHARS, 1, MAX_CHARS),
    }


class ReadWebpage:
    name = NAME
    parameters = PARAMETERS

    def __init__(self, config: dict[str, Any], client: GuardedClient) -> None:
        self._client = client
        self._max_chars: int = config["max_chars"]
        self.description = (
            "Read a web page: returns its title and readable text (headings, paragraphs, lists),"
            f" at most {self._max_chars} characters."
        )

    async def call(self, arguments: dict[str, Any]) -> str:
        fetched = await self._client.fetch("GET", arguments["url"], {"Accept": "text/html, text/*;q=0.9"})
        if fetched.status >= 400:
            raise ToolError(f"the page answered HTTP {fetched.status} {fetched.reason}.")
        kind = fetched.content_type
        # aiohttp calls a page without a Content-Type application/octet-stream.
        html = kind in ("text/html", "application/xhtml+xml") or (
            kind == "application/octet-stream" and fetched.body.lstrip()[:1] == b"<"
        )
        if not (html or kind.startswith("text/") or kind in TEXT_TYPES):
            raise ToolError(f"the page is {kind}, not text.")
        text = readable_text(fetched.text()) if html else fetched.text().strip()
        if len(text) > self._max_chars:
            text = text[: self._max_chars] + f"\n…[cut at {self._max_chars} characters]"
        return text


async def open_tool(config: dict[str, Any], stack: AsyncExitStack) -> list[Tool]:
    client = GuardedClient(
        allow_hosts=config["allow_hosts"],
        allow_private=config["allow_private"],
        timeout_s=config["timeout_s"],
        max_bytes=MAX_PAGE_BYTES,
    )
    return [ReadWebpage(config, await stack.enter_async_context(client))]
