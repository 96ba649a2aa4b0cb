"""The http(s) URLs an agent may name: its MCP servers', its callback's and its model API's.

One pattern, as RFC 3986 spells such a URL (ASCII; anything else percent-encoded): a host name
or an address, an optional port from 0 to 65535, then a path, query or fragment of printable
ASCII. The OpenAPI document carries the same pattern, so it says exactly what hookd takes;
it is written with what Python's re and ECMAScript's regular expressions read alike.
"""

from __future__ import annotations

import re

_H16 = "[0-9A-Fa-f]{1,4}"
_OCTET = "(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_LS32 = f"({_H16}:{_H16}|{_OCTET}(\\.{_OCTET}){{3}})"


def _pieces(n: int) -> str:  # n of `h16:`
    return f"({_H16}:){{{n}}}"


def _before(n: int) -> str:  # what may stand before `::`: up to n+1 pieces
    return f"(({_H16}:){{0,{n}}}{_H16})?"


# RFC 3986's IPv6address, every form of it: urllib refuses the ones a looser pattern lets by.
IPV6 = "|".join(
    [f"{_pieces(6)}{_LS32}", f"::{_pieces(5)}{_LS32}", f"({_H16})?::{_pieces(4)}{_LS32}"]
    + [f"{_before(n)}::{_pieces(3 - n)}{_LS32}" for n in (1, 2)]
    + [f"{_before(3)}::{_H16}:{_LS32}", f"{_before(4)}::{_LS32}", f"{_before(5)}::{_H16}", f"{_before(6)}::"]
)
# A host name: RFC 3986's reg-name, with `%` as a plain character (a pattern that checks each
# %XX makes Schemathesis' generation of long URLs far slower, and no HTTP client minds).
_HOST = f"(\\[({IPV6})\\]|[-A-Za-z0-9._~!$&'()*+,;=%]+)"
_PORT = "0*([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_USER = "[-A-Za-z0-9._~!$&'()*+,;=:%]*@"


def url_pattern(*, credentials: bool = True, query: bool = True) -> str:
    """An http:// or https:// URL; with `credentials`, a user and password may come before the
    host; without `query`, neither a query nor a fragment may follow the path."""
    user = f"({_USER})?" if credentials else ""
    rest = "([/?#][!-~]*)?" if query else '(/[!-"$->@-~]*)?'
    return f"^[Hh][Tt][Tt][Pp][Ss]?://{user}{_HOST}(:{_PORT})?{rest}$"


URL = url_pattern()
URL_WITHOUT_CREDENTIALS = url_pattern(credentials=False)
URL_WITHOUT_QUERY = url_pattern(query=False)
_URL = re.compile(URL)
_URL_WITHOUT_CREDENTIALS = re.compile(URL_WITHOUT_CREDENTIALS)
_URL_WITHOUT_QUERY = re.compile(URL_WITHOUT_QUERY)
_WITH_CREDENTIALS = re.compile(r"[A-Za-z]+://[^/?#]*@")
# What a refusal says the rules are.
URL_RULES = (
    "a host name or address, a port up to 65535 if any, then printable ASCII only (no spaces;"
    " percent-encode anything else)."
)


def is_url(value: str, *, credentials: bool = True) -> bool:
    """Whether `value` is an http(s) URL hookd takes (without a user and password, if not `credentials`)."""
    return bool((_URL if credentials else _URL_WITHOUT_CREDENTIALS).fullmatch(value))


def is_url_without_query(value: str) -> bool:
    """Whether `value` is an http(s) URL hookd takes, with neither a query nor a fragment."""
    return bool(_URL_WITHOUT_QUERY.fullmatch(value))


def has_credentials(value: str) -> bool:
    """Whether a user or password comes before the host, as in https://user:pw@host/."""
    return bool(_WITH_CREDENTIALS.match(value))
