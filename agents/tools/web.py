"""HTTP for tools: allowed hosts and addresses only, redirects checked hop by hop, the answer
cut at a size and the whole exchange at a time.

Each tool gets its own client (own connector, own resolver) for one run: what one agent may
reach never depends on what another agent's tool was allowed.
"""

from __future__ import annotations

import asyncio
import codecs
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp

from agents.tools.addresses import AddressRefused, GuardedResolver, check_url, safe_url
from agents.tools.base import ToolError

MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)
# Not the model's to set: they describe the connection, which hookd owns.
_HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te"}
# Not carried to another host on a redirect.
_CREDENTIAL_HEADERS = {"authorization", "cookie", "proxy-authorization"}
USER_AGENT = "hookd (+https://github.com/hookd)"


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    reason: str
    content_type: str
    charset: str
    body: bytes
    truncated: bool  # the answer was longer than the cap; body holds its start

    def text(self) -> str:
        return self.body.decode(self.charset, "replace")


def _charset(response: aiohttp.ClientResponse) -> str:
    try:
        return codecs.lookup(response.charset or "utf-8").name
    except LookupError:
        return "utf-8"


async def _read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(65536):
        room = max_bytes - size
        if len(chunk) > room:
            chunks.append(chunk[:room])
            return b"".join(chunks), True  # the rest is never read; the connection is dropped
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), False


class GuardedClient:
    """`async with GuardedClient(…) as client: await client.fetch(…)`."""

    def __init__(
        self, *, allow_hosts: list[str] | None, allow_private: bool, timeout_s: float, max_bytes: int
    ) -> None:
        self.allow_hosts = allow_hosts
        self.allow_private = allow_private
        self.timeout_s = timeout_s
        self.max_bytes = max_bytes
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> GuardedClient:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(allow_private=self.allow_private), use_dns_cache=False, limit=4
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=None),  # fetch() times the whole
            trust_env=False,  # a proxy from the environment would connect for us, unchecked
            cookie_jar=aiohttp.DummyCookieJar(),
            headers={"User-Agent": USER_AGENT},
        )
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._session is not None:
            await self._session.close()

    async def fetch(
        self, method: str, url: str, headers: dict[str, str] | None = None, body: str | bytes | None = None
    ) -> Fetched:
        """One request, redirects followed; ToolError for anything that kept it from an answer."""
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._follow(method, url, dict(headers or {}), body)
        except TimeoutError:
            raise ToolError(f"{safe_url(url)} did not answer within {self.timeout_s:g} s.") from None

    async def _follow(self, method: str, url: str, headers: dict[str, str], body: Any) -> Fetched:
        assert self._session is not None, "use GuardedClient with async with"
        headers = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, self.allow_hosts, self.allow_private)
            try:
                async with self._session.request(
                    method, url, headers=headers, data=body, allow_redirects=False
                ) as response:
                    location = response.headers.get("Location")
                    if response.status in _REDIRECTS and location:
                        next_url = urljoin(url, location)
                        if urlsplit(url).scheme == "https" and urlsplit(next_url).scheme == "http":
                            # The request (its body, and a token the tool adds) would go out
                            # unencrypted, to a host that may be the same name on port 80.
                            raise ToolError(
                                f"{safe_url(url)} redirects to {safe_url(next_url)}: hookd does not"
                                " follow a redirect from https to http, which would send the request"
                                " unencrypted."
                            )
                        if urlsplit(next_url).netloc != urlsplit(url).netloc:
                            headers = {
                                k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS
                            }
                        if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                            method, body = "GET", None
                        url = next_url
                        continue
                    raw, truncated = await _read_capped(response, self.max_bytes)
                    return Fetched(
                        url=str(response.url),
                        status=response.status,
                        reason=response.reason or "",
                        content_type=response.content_type,
                        charset=_charset(response),
                        body=raw,
                        truncated=truncated,
                    )
            except AddressRefused as exc:
                raise ToolError(str(exc)) from None
            except aiohttp.ClientConnectorDNSError as exc:
                if isinstance(exc.os_error, AddressRefused):
                    raise ToolError(str(exc.os_error)) from None
                raise ToolError(f"could not resolve the host of {safe_url(url)}.") from None
            except aiohttp.ClientConnectorError as exc:
                reason = exc.os_error.strerror or type(exc.os_error).__name__
                raise ToolError(f"could not connect to {safe_url(url)}: {reason}.") from None
            except (aiohttp.ClientError, ValueError) as exc:
                raise ToolError(f"the request to {safe_url(url)} failed: {type(exc).__name__}.") from None
            except OSError as exc:
                raise ToolError(f"could not reach {safe_url(url)}: {exc.strerror or exc}.") from None
        raise ToolError(f"{safe_url(url)}: more than {MAX_REDIRECTS} redirects.")
