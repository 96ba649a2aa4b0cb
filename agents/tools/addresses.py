"""Where a tool may connect: hosts on its allow-list, and public addresses only unless allowed.

The address is checked after resolution, and the connection goes to exactly the address that
was checked: `GuardedResolver` is the resolver of the tool's own connector, so a name that
resolves to a public address for the check and to 127.0.0.1 for the connection (DNS
rebinding) cannot happen. aiohttp skips the resolver for IP literals, so `check_url` checks
those itself; redirects are followed by hand (agents/tools/web.py), each target checked again.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit, urlunsplit

from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver

from agents.tools.base import ToolError
from agents.urls import IPV6
from errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_LABEL = "[A-Za-z0-9_]([-A-Za-z0-9_]*[A-Za-z0-9_])?"
# An allow-list entry: '*', a host name (ASCII: an IDN as its xn-- form) with '*.' for its
# subdomains and a trailing dot or not, an IPv4 address (a name, to this pattern) or an IPv6
# one, in brackets or not. The OpenAPI document carries the same pattern.
ALLOW_HOST = f"^(\\*|(\\*\\.)?{_LABEL}(\\.{_LABEL})*\\.?|\\[({IPV6})\\]|({IPV6}))$"
_ALLOW_HOST = re.compile(ALLOW_HOST)
ALLOW_PRIVATE_HINT = "set allow_private: true on the tool to allow loopback, private and link-local addresses"


class AddressRefused(OSError):
    """A name resolved to an address the tool may not connect to."""


def address_kind(ip: IPAddress) -> str | None:
    """Why the address is not a public one ("loopback", "private", …), or None if it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if not ip.is_global:  # shared (100.64/10), reserved, documentation, …
        return "non-public"
    return None


def _refusal(host: str, address: str, kind: str) -> str:
    said = address if host == address else f"{host} ({address})"
    return f"refused to connect to {said}: it is a {kind} address; {ALLOW_PRIVATE_HINT}"


def normalize_host(host: str) -> str:
    """A host as allow-lists compare it: lower case, IDNA, no trailing dot, IPv6 without brackets."""
    host = host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
    try:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return host


def check_allow_hosts(value: object, where: str) -> list[str]:
    """An allow-list from an agent's tool config: host names, IP addresses, *.domain or '*'."""
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value) or not 0 < len(value) <= 100:
        raise InvalidInput(
            f"'{where}' must be a list of 1 to 100 host names, like [\"api.example.com\","
            ' "*.example.org"], or ["*"] for any host.'
        )
    hosts = []
    for raw in value:
        if not _ALLOW_HOST.fullmatch(raw):
            raise InvalidInput(
                f"'{where}' has '{raw[:100]}', which is not a host name; use names like api.example.com"
                " (an IDN as its xn-- form), *.example.org (its subdomains), an IP address, or '*'"
                " for any host."
            )
        hosts.append(normalize_host(raw))
    return hosts


def host_allowed(host: str, allow_hosts: list[str]) -> bool:
    host = normalize_host(host)
    for entry in allow_hosts:
        if entry == "*" or entry == host:
            return True
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
    return False


def safe_url(url: str) -> str:
    """The URL without credentials, query or fragment: for messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(an invalid URL)"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_url(url: str, allow_hosts: list[str] | None, allow_private: bool) -> None:
    """ToolError unless the URL is http(s) to an allowed host; an IP literal must be public
    unless allow_private (names are checked once resolved, by GuardedResolver)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a port that is not a number
    except ValueError:
        raise ToolError(f"'{url[:200]}' is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not host:
        raise ToolError(f"'{safe_url(url)}' is not an http:// or https:// URL.")
    if allow_hosts is not None and not host_allowed(host, allow_hosts):
        raise ToolError(
            f"{normalize_host(host)} is not one of the hosts this tool may call ({', '.join(allow_hosts)})."
        )
    try:
        ip = ipaddress.ip_address(normalize_host(host))
    except ValueError:
        return
    kind = address_kind(ip)
    if kind is not None and not allow_private:
        raise ToolError(_refusal(str(ip), str(ip), kind))


class GuardedResolver(ThreadedResolver):
    """The loop's getaddrinfo, refusing a name if any of its addresses is not public."""

    def __init__(self, *, allow_private: bool) -> None:
        super().__init__()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await super().resolve(host, port, family)
        if self._allow_private:
            return results
        for result in results:
            try:
                kind = address_kind(ipaddress.ip_address(result["host"]))
            except ValueError:
                kind = "unrecognised"
            if kind is not None:
                # All or nothing: a name with one private address among public ones is refused.
                raise AddressRefused(_refusal(host, result["host"], kind))
        return results
