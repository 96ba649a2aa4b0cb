"""Webhook signatures an agent can require: Standard Webhooks or GitHub's, both HMAC-SHA256.

The secret is needed to compute the HMAC, so it is stored as given; it is never shown after it
is set, never logged, and never part of an error message (nor is the expected signature).
Signatures are checked over the raw body, before it is parsed or anything is stored.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from errors import InvalidInput, Unauthorized

STANDARD_WEBHOOKS = "standard-webhooks"
GITHUB = "github"
SIGNATURE_TYPES = (STANDARD_WEBHOOKS, GITHUB)

# Standard Webhooks: a webhook-timestamp further than this from our clock, either way, is refused
# (the spec's and the reference libraries' tolerance), so a captured request cannot be replayed later.
TIMESTAMP_TOLERANCE_S = 300
# The spec's whsec_ secrets: base64 of 24 to 64 random bytes.
WHSEC_PREFIX = "whsec_"
MIN_WHSEC_BYTES, MAX_WHSEC_BYTES = 24, 64
MAX_SECRET_CHARS = 1024
GITHUB_HEADER = "X-Hub-Signature-256"
_GITHUB_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# What validate_signature takes, as patterns the OpenAPI document carries too. A whsec_ secret:
# the padded base64 of 24 to 64 bytes (32 to 88 characters). Any secret: printable ASCII without
# surrounding spaces, so what the sender shows is what hookd uses, with nothing invisible in it.
WHSEC_PATTERN = (
    "^whsec_(([A-Za-z0-9+/]{4}){8,21}([A-Za-z0-9+/]{2}==)?|([A-Za-z0-9+/]{4}){8,20}[A-Za-z0-9+/]{3}=)$"
)
SECRET_PATTERN = f"^[!-~]([ -~]{{0,{MAX_SECRET_CHARS - 2}}}[!-~])?$"
_SECRET = re.compile(SECRET_PATTERN)
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")

NOTHING_STORED = "nothing was stored"


@dataclass(frozen=True)
class Signature:
    """What an agent requires of its webhooks: a signature of this type, made with this secret."""

    type: str
    secret: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type}  # never the secret


def _whsec_key(secret: str) -> bytes | None:
    """The HMAC key inside a whsec_ secret, or None when it is not one."""
    encoded = secret.removeprefix(WHSEC_PREFIX)
    if encoded == secret or not _BASE64.fullmatch(encoded):
        return None
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if MIN_WHSEC_BYTES <= len(key) <= MAX_WHSEC_BYTES else None


def validate_signature(value: Any) -> tuple[str | None, str | None]:
    """An agent's `signature` field ({"type", "secret"} or null) as (type, secret) to store."""
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise InvalidInput(
            '\'signature\' must be null or {"type": "standard-webhooks" or "github", "secret": "…"}.'
        )
    unknown = sorted(set(value) - {"type", "secret"})
    if unknown:
        raise InvalidInput(f"Unknown field 'signature.{unknown[0]}'; 'signature' takes type and secret.")
    kind, secret = value.get("type"), value.get("secret")
    if kind not in SIGNATURE_TYPES:
        raise InvalidInput("'signature.type' must be 'standard-webhooks' or 'github'.")
    if not isinstance(secret, str) or not secret.strip():
        raise InvalidInput("'signature.secret' must be a non-empty string.")
    if kind == STANDARD_WEBHOOKS and _whsec_key(secret) is None:
        raise InvalidInput(
            "'signature.secret' must be a Standard Webhooks secret: 'whsec_' followed by the base64"
            f" of {MIN_WHSEC_BYTES} to {MAX_WHSEC_BYTES} random bytes, as the sender shows it."
        )
    if not _SECRET.fullmatch(secret):
        raise InvalidInput(
            f"'signature.secret' must be at most {MAX_SECRET_CHARS} printable ASCII characters,"
            " without surrounding spaces: hookd uses the secret exactly as given."
        )
    return kind, secret


def new_secret(kind: str) -> str:
    """A fresh random secret of the right shape, for a sender that lets us choose it."""
    if kind == STANDARD_WEBHOOKS:
        return WHSEC_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()
    return secrets.token_hex(32)


# -- signing (what a sender does; the tests and the verifiers use it) --------------------


def github_signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub sends for this body."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def standard_webhooks_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One `v1,<base64>` entry of webhook-signature: HMAC-SHA256 over `{id}.{timestamp}.{body}`."""
    key = _whsec_key(secret)
    assert key is not None, "not a whsec_ secret"
    signed = f"{msg_id}.{timestamp}.".encode("utf-8", "surrogateescape") + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


# -- verifying ---------------------------------------------------------------------------


def verify(signature: Signature, headers: Mapping[str, str], body: bytes, *, now: float) -> None:
    """Raise Unauthorized, naming the header at fault, unless the request is signed with the secret."""
    if signature.type == GITHUB:
        _verify_github(signature.secret, headers, body)
    else:
        _verify_standard_webhooks(signature.secret, headers, body, now)


def _verify_github(secret: str, headers: Mapping[str, str], body: bytes) -> None:
    given = headers.get(GITHUB_HEADER)
    if given is None:
        raise Unauthorized(
            f"This agent only takes webhooks signed by GitHub: the {GITHUB_HEADER} header is"
            f" missing ({NOTHING_STORED}). Set the GitHub webhook's secret to the agent's secret."
        )
    match = _GITHUB_SIGNATURE.fullmatch(given.strip())
    if match is None:
        raise Unauthorized(
            f"The {GITHUB_HEADER} header must be 'sha256=' followed by 64 hex digits ({NOTHING_STORED})."
        )
    expected = github_signature(secret, body)[len("sha256=") :]
    if not hmac.compare_digest(match[1].lower().encode(), expected.encode()):
        raise Unauthorized(
            f"The {GITHUB_HEADER} header does not match the body ({NOTHING_STORED}): check that the"
            " GitHub webhook's secret is the agent's secret, and that nothing between GitHub and"
            " hookd changes the body."
        )


def _verify_standard_webhooks(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    missing = [
        name for name in ("webhook-id", "webhook-timestamp", "webhook-signature") if name not in headers
    ]
    if missing:
        raise Unauthorized(
            "This agent only takes Standard Webhooks signed with its secret: the"
            f" {' and '.join(missing)} header{'s are' if len(missing) > 1 else ' is'} missing"
            f" ({NOTHING_STORED})."
        )
    msg_id, timestamp_text = headers["webhook-id"], headers["webhook-timestamp"].strip()
    if not _UNIX_SECONDS.fullmatch(timestamp_text):
        raise Unauthorized(
            f"The webhook-timestamp header must be Unix time in whole seconds ({NOTHING_STORED})."
        )
    timestamp = int(timestamp_text)
    if abs(now - timestamp) > TIMESTAMP_TOLERANCE_S:
        raise Unauthorized(
            f"The webhook-timestamp header is {abs(now - timestamp):.0f} s away from this server's"
            f" clock; at most {TIMESTAMP_TOLERANCE_S} s is allowed, so that an old request cannot be"
            f" replayed ({NOTHING_STORED}). Check the sender's and hookd's clocks."
        )
    expected = standard_webhooks_signature(secret, msg_id, timestamp, body).encode()
    # A space-separated list, so a sender can sign with an old and a new secret while rotating;
    # any one valid v1 signature is enough. Other versions (v1a: asymmetric) are skipped.
    for entry in headers["webhook-signature"].split():
        if entry.startswith("v1,") and hmac.compare_digest(
            entry.encode("utf-8", "surrogateescape"), expected
        ):
            return
    raise Unauthorized(
        f"No v1 signature in the webhook-signature header matches ({NOTHING_STORED}): check that the"
        " sender's secret is the agent's, and that the body and webhook-id reach hookd unchanged."
    )
