"""Trusted ingress on the webhook: signature checks and idempotency keys, before anything is stored.

Both work on the raw request: a signature covers the raw body, and two requests with one
idempotency key are compared by the SHA-256 of their raw bodies (of a GET: its raw query
string; of a multipart form: its fields as stored, since its boundary is new each time it is
sent). The body is read once, here, and the payload parser that follows gets the same bytes.
A request without an idempotency header, to an agent without a signature, skips all of this.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from agents.signatures import STANDARD_WEBHOOKS, verify
from api.edge import read_body
from api.rate_limit import TokenLookup
from errors import InvalidInput, Unauthorized, Unprocessable
from tasks.store import IDEMPOTENCY_WINDOW_S, Enqueued, Store

# The first of these a request carries is its idempotency key: a client's own, a Standard
# Webhooks message id, a GitHub delivery id (GitHub's redeliveries keep it).
IDEMPOTENCY_HEADERS = ("Idempotency-Key", "webhook-id", "X-GitHub-Delivery")
SIGNED_KEY_HEADERS = ("webhook-id",)  # an agent that requires Standard Webhooks signatures
MAX_KEY_CHARS = 255
_KEY = re.compile(f"[\\x20-\\x7e]{{1,{MAX_KEY_CHARS}}}")  # printable ASCII
REPLAYED_HEADERS = {"Idempotent-Replayed": "true"}


@dataclass(frozen=True)
class Ingress:
    """What the checks established about one webhook request, for its enqueue."""

    signature_secret: str | None = field(default=None, repr=False)  # what its signature was checked with
    key_header: str | None = None
    key: str | None = None
    body_sha256: bytes | None = None  # None with a key: compare the payload as stored (a multipart form)

    async def enqueue(self, store: Store, token_sha256: bytes, payload_json: str) -> Enqueued | None:
        """Store the task, or find the one an earlier request with the same key made."""
        if self.key is None:
            task_id = await store.enqueue(token_sha256, payload_json, signature_secret=self.signature_secret)
            return None if task_id is None else Enqueued(task_id, replayed=False)
        body_sha256 = self.body_sha256 or hashlib.sha256(payload_json.encode()).digest()
        enqueued = await store.enqueue_once(
            token_sha256,
            payload_json,
            key=self.key,
            body_sha256=body_sha256,
            signature_secret=self.signature_secret,
        )
        if enqueued is not None and not enqueued.same_body:
            raise Unprocessable(
                f"This {self.key_header} was already used with a different body in the last"
                f" {IDEMPOTENCY_WINDOW_S / 3600:g} hours (bodies are compared by their SHA-256), for"
                f" task {enqueued.task_id}; nothing was stored. Send a new {self.key_header} for a new"
                " request, or the very same body to get that task's id again."
            )
        return enqueued


UNCHECKED = Ingress()


def idempotency_key(
    headers: Mapping[str, str], names: tuple[str, ...] = IDEMPOTENCY_HEADERS
) -> tuple[str, str] | None:
    """(header name, key) from the first of `names` present.

    InvalidInput if any idempotency header present is unusable, whether or not it is the one
    that counts: a sender's malformed key is a bug to be told about, never silently ignored.
    """
    found = None
    for name in IDEMPOTENCY_HEADERS:
        key = headers.get(name)
        if key is None:
            continue
        if not _KEY.fullmatch(key):
            raise InvalidInput(
                f"The {name} header must be 1 to {MAX_KEY_CHARS} printable ASCII characters;"
                " nothing was stored."
            )
        if found is None and name in names:
            found = name, key
    return found


async def _raw_request(request: web.Request) -> bytes:
    """What a signature covers: the raw body (of a GET, its raw query string)."""
    if request.method == "GET":
        return request.rel_url.raw_query_string.encode("utf-8", "surrogateescape")
    if request.content_type == "multipart/form-data":
        # aiohttp parses multipart from the stream, so the raw bytes would be read twice.
        raise InvalidInput(
            "Signature checks need the raw body, which hookd does not keep for multipart/form-data;"
            " send JSON or a URL-encoded form instead. Nothing was stored."
        )
    return await read_body(request)  # aiohttp keeps it: the payload parser reads it again for free


async def check_ingress(request: web.Request, lookup: TokenLookup) -> Ingress:
    """Check the request's signature and idempotency key before its body is parsed.

    401 for a signature that is missing, wrong or stale; 400 for an unusable key.
    """
    signature = lookup.signature
    raw = None
    if signature is not None:
        if request.method == "GET":
            raise Unauthorized(
                "This agent only takes signed webhooks, and a signature covers a body, which a GET"
                " has not: send the payload in a POST body. Nothing was stored."
            )
        raw = await _raw_request(request)
        verify(signature, request.headers, raw, now=time.time())
    secret = None if signature is None else signature.secret
    # A Standard Webhooks signature covers webhook-id and nothing else that could name the
    # request: it is the key. Were an unsigned Idempotency-Key to win, a captured request
    # could be sent again as new, with fresh keys, for as long as its timestamp is accepted.
    signed_id = signature is not None and signature.type == STANDARD_WEBHOOKS
    found = idempotency_key(request.headers, SIGNED_KEY_HEADERS if signed_id else IDEMPOTENCY_HEADERS)
    if found is None:
        return UNCHECKED if secret is None else Ingress(signature_secret=secret)  # the hot path
    key_header, key = found
    if raw is None:
        if request.method != "GET" and request.content_type == "multipart/form-data":
            # A form's boundary is new each time it is sent, so a retry's raw body differs:
            # compare its fields instead, as they are stored (Ingress.enqueue).
            return Ingress(secret, key_header, key)
        raw = await _raw_request(request)
    return Ingress(secret, key_header, key, hashlib.sha256(raw).digest())
