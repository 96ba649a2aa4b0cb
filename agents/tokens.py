"""Webhook tokens: random, shown once, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import re
import secrets

WEBHOOK_PATH = "/api/webhooks/agents/"
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


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
