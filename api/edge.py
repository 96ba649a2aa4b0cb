"""The HTTP edge: the one error body, request timing, admin auth, request bodies, and a
token-free access log.

Domain errors (errors.py) and aiohttp's own HTTP errors become
`{"success": false, "message": "…"}` here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError

from api.app_keys import admin_key_key, metrics_key, settings_key
from api.metrics import UNMATCHED_ROUTE
from errors import HookdError, InvalidInput, PayloadTooLarge, RequestTimeout, TooManyRequests, Unauthorized
from logs import fields, redact
from tasks.json_text import MAX_JSON_DEPTH, nested_deeper_than

log = logging.getLogger("hookd.http")

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# nginx's "client closed request": a client that left before its answer (halfway through its
# body, say) is logged and counted with this 4xx, not as hookd's 5xx. Nobody receives it.
CLIENT_CLOSED_REQUEST = 499


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"success": False, "message": message}, status=status, headers=headers)


def _http_error_message(request: web.Request, exc: web.HTTPException) -> str:
    if isinstance(exc, web.HTTPNotFound):
        return "No such endpoint. The API is described in hookd's README."
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return f"{request.method} is not allowed here; use {allowed}."
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[settings_key].max_body_bytes
        return f"The body is larger than this server's limit of {limit} bytes (HOOKD_MAX_BODY_BYTES)."
    return exc.reason


def edged(handler: Handler, route: str, method: str | None = None) -> Handler:
    """`handler` at the edge: errors become the JSON error body, and each request is timed
    into hookd_http_request_duration_seconds, labelled with `route` (a template, never the
    path: a webhook's path holds its token) and `method` (None: the request's own).

    A wrapper per route rather than a middleware: aiohttp's middleware chain costs every
    request a few more frames, which the webhook's hot path can feel.
    """

    async def at_the_edge(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:  # redirects and the like pass through
                _observe(request, route, method, exc.status, started)
                raise
            headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
            response = error_response(exc.status, _http_error_message(request, exc), headers)
        except HookdError as exc:
            response = _domain_error_response(exc)
            if request.content.exception() is not None:
                _end_broken_body(request, response)
        except Exception as exc:
            if isinstance(exc, ConnectionError) and request.transport is None:  # the client left
                response = error_response(CLIENT_CLOSED_REQUEST, "The client closed the connection first.")
            else:
                log.exception("unexpected error handling %s %s", request.method, redact(request.raw_path))
                response = error_response(500, "hookd hit an unexpected error; the details are in its log.")
        _observe(request, route, method, response.status, started)
        return response

    return at_the_edge


def _end_broken_body(request: web.Request, response: web.StreamResponse) -> None:
    """After a body that could not be read (bytes its Content-Encoding does not decode), the
    connection cannot carry another request: aiohttp's parser stopped there, and would never
    answer the next one. Close it after this answer; and mark the body as read, because
    aiohttp reads out an unread body before it closes and would raise the body's error again
    there, logging it as an "Unhandled exception"."""
    response.force_close()
    request.content.feed_eof()


async def unrouted(request: web.Request) -> web.StreamResponse:
    """The last route, matching every path and method no other route took: 404, or 405 with
    the methods the path does take (aiohttp would answer those in plain text)."""
    allowed: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not request.match_info.route.resource:
            allowed |= (await resource.resolve(request))[1]
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()


def add_edged_routes(app: web.Application, tables: Iterable[web.RouteTableDef]) -> None:
    """Register each route of `tables` through `edged`, then the catch-all for the rest."""
    for table in tables:
        for definition in table:
            assert isinstance(definition, web.RouteDef), definition
            handler = edged(definition.handler, _template(definition.path))
            web.RouteDef(definition.method, definition.path, handler, definition.kwargs).register(app.router)
    app.router.add_route("*", "/{path:.*}", edged(unrouted, UNMATCHED_ROUTE, "other"))


def _template(path: str) -> str:
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)  # /a/{name:regex} -> /a/{name}


def _domain_error_response(exc: HookdError) -> web.Response:
    headers = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    return error_response(exc.status, str(exc), headers)


def _observe(request: web.Request, route: str, method: str | None, status: int, started: float) -> None:
    request.app[metrics_key].observe_request(
        method or request.method, route, status, time.perf_counter() - started
    )


def bearer_matches(request: web.Request, *keys: str) -> bool:
    """Whether `Authorization: Bearer <key>` names one of `keys` (an empty one never matches).

    Each key is compared in constant time, and all of them, so the time taken does not say
    which one came closest.
    """
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return False
    token = given.strip().encode("utf-8", "surrogateescape")
    matched = False
    for key in keys:
        matched |= bool(key) and hmac.compare_digest(token, key.encode())
    return matched


def require_admin(handler: Handler) -> Handler:
    """Guard an admin handler with `Authorization: Bearer <admin key>`, compared in constant time."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        if not bearer_matches(request, request.app[admin_key_key]):
            raise Unauthorized(
                "The admin API needs 'Authorization: Bearer <admin key>': the key is HOOKD_ADMIN_KEY,"
                " or the .admin-key file beside the database when that is unset."
            )
        return await handler(request)

    return guarded


# -- request bodies --------------------------------------------------------------------


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object hook: a repeated key is refused, not silently resolved to its last value."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicate = next(key for i, key in enumerate(keys) if key in keys[:i])
        raise InvalidInput(f"The JSON object has the key '{duplicate[:100]}' twice; send each key once.")
    return obj


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"The JSON contains {name}, which is not valid JSON; send a number or a string.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: valid JSON, but no float holds it
        raise InvalidInput(f"The JSON number {text[:40]} is too large; send it as a string.")
    return value


# Made once: json.loads and json.dumps with options build a new decoder or encoder per call.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant, parse_float=_finite_float
)
_PAYLOAD_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """A JSON object from a body, or InvalidInput saying exactly what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"The body is not valid UTF-8 (bad byte at offset {exc.start}).") from None
    text = text.removeprefix("\ufeff")
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"The body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}."
        ) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise InvalidInput(f"The JSON has a value hookd cannot read: {exc}.") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"The body must be a JSON object ({{…}}), not {type(value).__name__}.")
    if nested_deeper_than(value, MAX_JSON_DEPTH):
        raise _too_deep()
    return value


def _too_deep() -> InvalidInput:
    return InvalidInput(
        f"The JSON nests objects and arrays more than {MAX_JSON_DEPTH} levels deep, hookd's limit;"
        " nothing was stored. Flatten it, or send the deep part as a string."
    )


def dump_payload(payload: dict[str, Any]) -> str:
    """Payload as stored: compact UTF-8 JSON. Refuses text SQLite cannot store as UTF-8."""
    try:
        text = _PAYLOAD_ENCODER.encode(payload)
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "The body contains an unpaired UTF-16 surrogate (e.g. \\ud800); send valid Unicode."
        ) from None
    except RecursionError:
        raise _too_deep() from None
    return text


@contextlib.asynccontextmanager
async def body_deadline(request: web.Request) -> AsyncIterator[None]:
    """A body that stalls midway would hold its handler forever: bound the whole read."""
    timeout_s = request.app[settings_key].body_timeout_s
    try:
        async with asyncio.timeout(timeout_s or None):
            yield
    except TimeoutError:
        raise RequestTimeout(
            f"The body did not arrive within {timeout_s:g} s (HOOKD_BODY_TIMEOUT_S); nothing was stored."
        ) from None


async def read_body(request: web.Request) -> bytes:
    """The whole body, refusing one over HOOKD_MAX_BODY_BYTES before reading it when possible."""
    limit = request.app[settings_key].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(
            f"The body is {request.content_length} bytes; this server takes at most {limit}"
            " (HOOKD_MAX_BODY_BYTES)."
        )
    try:
        if request.content.is_eof():  # all of it arrived with the headers: nothing to wait for
            return await request.read()
        async with body_deadline(request):
            return await request.read()  # the app's client_max_size stops a longer chunked body
    except web.RequestPayloadError:  # e.g. Content-Encoding: gzip on a body that is not gzip
        raise InvalidInput("The body could not be decoded; check its Content-Encoding.") from None


def _form_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Form fields as strings; a field sent several times becomes a list of strings."""
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[key] = value
    return fields


def _strict_query(raw: str) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw, keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidInput("The query string is not valid UTF-8 URL-encoded text.") from None


async def read_webhook_payload(request: web.Request) -> str:
    """A webhook's payload as stored (compact JSON text): query parameters for GET; a JSON
    object or form fields for POST."""
    if request.method == "GET":
        return dump_payload(_form_fields(_strict_query(request.rel_url.raw_query_string)))
    if request.content_type == "multipart/form-data":
        try:
            async with body_deadline(request):
                form = await request.post()
        except (ValueError, LookupError, HttpProcessingError, web.RequestPayloadError) as exc:
            raise InvalidInput(f"The multipart form could not be read: {exc}.") from None
        if any(not isinstance(v, str) for v in form.values()):
            raise InvalidInput("File uploads are not supported; send text fields or a JSON body.")
        return dump_payload(_form_fields([(k, str(v)) for k, v in form.items()]))
    raw = await read_body(request)
    if not raw.strip():
        return "{}"
    # `curl -d '{"question": …}'` sends JSON labelled as a form: read it as the JSON it is.
    if request.content_type == "application/x-www-form-urlencoded" and not raw.lstrip().startswith(b"{"):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("The form body is not valid UTF-8 URL-encoded text.") from None
        return dump_payload(_form_fields(_strict_query(text)))
    return await _off_loop_if_large(raw, _json_payload)


def _json_payload(raw: bytes) -> str:
    return dump_payload(parse_json_object(raw))


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """An admin request's JSON object body (an empty body is {})."""
    raw = await read_body(request)
    return await _off_loop_if_large(raw, parse_json_object) if raw.strip() else {}


# A body this small parses in well under a millisecond, less than the hop to a thread. A larger
# one (up to HOOKD_MAX_BODY_BYTES) is read in a thread: the depth check is Python code, which
# gives the event loop its turn every few ms; json's own C code does not (about 12 ms at 1 MiB).
INLINE_PARSE_BYTES = 16_384


async def _off_loop_if_large(raw: bytes, parse: Callable[[bytes], T]) -> T:
    if len(raw) <= INLINE_PARSE_BYTES:
        return parse(raw)
    return await asyncio.to_thread(parse, raw)


class AccessLogger(AbstractAccessLogger):
    """aiohttp's access log without credentials: a webhook's token and query string, and
    query parameters named like keys, are replaced."""

    @property
    def enabled(self) -> bool:  # spares the formatting when INFO is off
        return self.logger.isEnabledFor(logging.INFO)

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        # The path and query as sent: one word (the decoded path may hold spaces and newlines),
        # with a token however it is percent-encoded. A webhook's query string is a GET's
        # payload, which may carry a sender's keys: redact() drops it.
        path = redact(request.raw_path)
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %d %.1fms',
            request.remote,
            request.method,
            path,
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time * 1000,
            extra=fields(
                remote=request.remote,
                method=request.method,
                path=path,
                status=response.status,
                bytes=response.body_length,
                duration_ms=round(time * 1000, 1),
            ),
        )
