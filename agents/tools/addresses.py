"""Where a tool may connect: hosts on its allow-list, and public addresses only unless allowed.

The address is checked after resolution, and the connection goes to exactly the address that
was checked: `GuardedResolver` is the resolver of the tool's own connector, so a name that
resolves to a public address for the check and to 127.0.0.1 for the connection (DNS
rebinding) cannot happen. aiohttp skips the resolver for IP literals, so `check_url` checks
those itself; redirects are followed by hand (agents/tools/web.py), each target checked again.
localhost and *.localhost are refused by name, before any lookup, and a trailing dot
("localhost.", "127.0.0.1.") changes nothing. Callbacks (tasks/callbacks.py) use the same rule.

IPv6 has forms that carry an IPv4 address, and behind the right gateway a connection to one
reaches that IPv4 address. Two are how a host reaches IPv4 today, so they are judged by the
IPv4 address they carry, by the rule for IPv4: IPv4-mapped (::ffff:a.b.c.d, what a dual-stack
socket connects to) and NAT64's well-known prefix (64:ff9b::a.b.c.d, what DNS64 answers on an
IPv6-only network). The others are refused outright, whatever they carry: IPv4-compatible
(::a.b.c.d, deprecated), SIIT's IPv4-translated (::ffff:0:a.b.c.d, obsolete), NAT64's
local-use prefix (64:ff9b:1::/48, non-public by definition, its IPv4 at a position each network
chooses), 6to4 (2002::/16) and Teredo (2001::/32) — transition tunnels no service a tool calls
should need — and the deprecated site-local fec0::/10. A network's own NAT64 prefix cannot be
recognised; its operator should not route it from hookd's host to private IPv4.
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


# Judged by the IPv4 address they carry (see the module docstring).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052, the IPv4 address in the last 32 bits
# Refused whatever they carry; :: and ::1, inside ::/96, are judged before these.
_REFUSED_IPV6 = (
    (ipaddress.IPv6Network("::/96"), "deprecated IPv4-compatible"),  # RFC 4291 2.5.5.1
    (ipaddress.IPv6Network("::ffff:0:0:0/96"), "SIIT IPv4-translated"),  # RFC 2765, obsoleted
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "local-use NAT64"),  # RFC 8215
    (ipaddress.IPv6Network("2002::/16"), "6to4"),  # RFC 3056
    (ipaddress.IPv6Network("2001::/32"), "Teredo"),  # RFC 4380
    (ipaddress.IPv6Network("fec0::/10"), "site-local"),  # RFC 3879 deprecated them
)


def _carried_ipv4(ip: IPAddress) -> tuple[str, ipaddress.IPv4Address] | None:
    """The form's name and the IPv4 address it carries, for the forms judged by that address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return "IPv4-mapped", ip.ipv4_mapped
    if ip in _NAT64:
        return "NAT64", ipaddress.IPv4Address(ip.packed[-4:])
    return None


def address_kind(ip: IPAddress) -> str | None:
    """Why the address is not a public one ("loopback", "private", …), or None if it is."""
    carried = _carried_ipv4(ip)
    if carried is not None:
        ip = carried[1]  # 64:ff9b::7f00:1 is 127.0.0.1, behind a NAT64 gateway
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv6Address):
        for network, kind in _REFUSED_IPV6:
            if ip in network:
                return kind
    if ip.is_private:
        return "private"
    if not ip.is_global:  # shared (100.64/10), reserved, documentation, …
        return "non-public"
    return None


def address_refusal(ip: IPAddress) -> str | None:
    """Why `ip` is refused unless private addresses are allowed, for a message ("a loopback
    address", "the NAT64 form of 127.0.0.1, a loopback address"); None if it is public."""
    kind = address_kind(ip)
    if kind is None:
        return None
    carried = _carried_ipv4(ip)
    said = f"a {kind} address"
    return said if carried is None else f"the {carried[0]} form of {carried[1]}, {said}"


def _refusal(host: str, address: str, reason: str) -> str:
    said = address if host == address else f"{host} ({address})"
    return f"refused to connect to {said}: it is {reason}; {ALLOW_PRIVATE_HINT}"


def normalize_host(host: str) -> str:
    """A host as allow-lists compare it: lower case, IDNA, no trailing dot, IPv6 without brackets."""
    host = host.strip().lower().rstrip(".").removeprefix("[").removesuffix("]")
    try:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return host


def host_refusal(host: str) -> str | None:
    """Why a URL's host is refused before any lookup, for a message: an IP literal that is not
    public, or a loopback name (localhost, *.localhost), also with a trailing dot ("127.0.0.1.",
    "localhost."); None for a public address, or a name to be checked once resolved."""
    host = normalize_host(host)
    try:
        return address_refusal(ipaddress.ip_address(host))
    except ValueError:
        pass
    # RFC 6761: these are loopback wherever they resolve, and "localhost." may not resolve at all.
    return "a loopback name" if host == "localhost" or host.endswith(".localhost") else None


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
    """ToolError unless the URL is http(s) to an allowed host; an IP literal must be public and
    a name not a loopback one unless allow_private (names are checked once resolved, by
    GuardedResolver)."""
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
    reason = None if allow_private else host_refusal(host)
    if reason is not None:
        raise ToolError(_refusal(host, host, reason))


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
                reason = address_refusal(ipaddress.ip_address(result["host"]))
            except ValueError:
                reason = "an unrecognised address"
            if reason is not None:
                # All or nothing: a name with one private address among public ones is refused.
                raise AddressRefused(_refusal(host, result["host"], reason))
        return results
