"""hookd's domain errors: one root, a handful of kinds.

The store and the agents raise these; only the HTTP edge (api/edge.py) turns them
into responses, each kind with its one status code.
"""

from __future__ import annotations


class HookdError(Exception):
    """Root of every error hookd raises on purpose. `str(error)` is for a human."""

    status = 500


class InvalidInput(HookdError):
    """The request itself is wrong: fix it and send it again."""

    status = 400


class Unauthorized(HookdError):
    status = 401


class NotFound(HookdError):
    status = 404


class RequestTimeout(HookdError):
    """The client took too long to send its request."""

    status = 408


class Conflict(HookdError):
    """The request is well-formed but clashes with the current state."""

    status = 409


class PayloadTooLarge(HookdError):
    status = 413


class Unprocessable(HookdError):
    """Well-formed, but it contradicts an earlier request (e.g. a reused idempotency key)."""

    status = 422


class TooManyRequests(HookdError):
    """Come back later: the answer carries Retry-After."""

    status = 429

    def __init__(self, message: str, *, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StorageUnavailable(HookdError):
    """The database cannot take writes (disk full, read-only file); nothing was stored."""

    status = 503


class AlreadyServed(StorageUnavailable):
    """Another hookd server holds the database (Store.serving): stop it first."""
