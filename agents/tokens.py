"""Webhook tokens (random, shown once, stored only as their SHA-256) and callback signing secrets."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets

WEBHOOK_PATH = "/api/webhooks/agents/"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
SIGNING_SECRET_PREFIX = "whsec_"
SIGNING_SECRET_BYTES = 32  # Standard Webhooks asks for 24 to 64 random bytes


def new_token() -> tuple[str, bytes]:
    """A new token and the hash to store for it."""
    token = secrets.token_urlsafe(32)
    return token, token_sha256(token)


def token_sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def looks_like_token(text: str) -> bool:
    """Cheap pre-check: anything else cannot be a token hookd issued."""
    return _TOKEN_SHAPE.fullmatch(text) is not None


def webhook_url(base_url: str, token: str) -> str:
    return base_url.rstrip("/") + WEBHOOK_PATH + token


def new_signing_secret() -> str:
    """A callback signing secret as Standard Webhooks writes it: whsec_<base64 of random bytes>.

    Unlike the webhook token it is stored as is: hookd needs the key itself to sign with.
    """
    return SIGNING_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SIGNING_SECRET_BYTES)).decode()
