"""Per-agent webhook rate limits: a token bucket per agent, in memory.

What the webhook needs to know about the token's agent (its id, its limit: its own, else
HOOKD_RATE_LIMIT, and the signature it requires) is looked up by token hash and remembered for
a second, so a busy webhook costs one read per second, not one per request; the insert that
follows stays the authority on whether the token (and the secret a signature was checked with)
still works. A request is charged to its agent's bucket only once its signature, if the agent
requires one, is verified, and before its task is stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from agents.signatures import Signature
from errors import TooManyRequests
from settings import RateLimit, parse_rate_limit
from tasks.store import Store

LOOKUP_TTL_S = 1.0


@dataclass(frozen=True)
class TokenLookup:
    """The agent holding a webhook token, as of the last second."""

    agent_id: str
    limit: RateLimit | None
    signature: Signature | None


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class RateLimiter:
    def __init__(self, store: Store, default: RateLimit | None) -> None:
        self._store = store
        self._default = default
        self._lookups: dict[bytes, tuple[float, TokenLookup | None]] = {}
        self._buckets: dict[str, _Bucket] = {}

    def take(self, lookup: TokenLookup) -> None:
        """Take one request from the agent's bucket, or raise TooManyRequests.

        Only for a request the agent would take: one whose signature, if the agent requires
        one, is verified. Junk must not use up the limit of the sender the agent trusts.
        """
        limit = lookup.limit
        if limit is None:
            return
        bucket, rate_per_s = self._refilled(lookup.agent_id, limit)
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        raise TooManyRequests(
            f"This agent takes at most {limit} webhooks; nothing was stored. Send it again later.",
            retry_after_s=(1 - bucket.tokens) / rate_per_s,
        )

    def give_back(self, lookup: TokenLookup) -> None:
        """Return what `take` took, for a request that stored nothing (an idempotent replay)."""
        if lookup.limit is not None:
            bucket, _ = self._refilled(lookup.agent_id, lookup.limit)
            bucket.tokens = min(float(lookup.limit.count), bucket.tokens + 1)

    def _refilled(self, agent_id: str, limit: RateLimit) -> tuple[_Bucket, float]:
        now = time.monotonic()
        bucket = self._buckets.setdefault(agent_id, _Bucket(float(limit.count), now))
        rate_per_s = limit.count / limit.period_s
        bucket.tokens = min(float(limit.count), bucket.tokens + (now - bucket.updated_at) * rate_per_s)
        bucket.updated_at = now
        return bucket, rate_per_s

    async def lookup(self, token_sha256: bytes) -> TokenLookup | None:
        """What the webhook needs to know about the token's agent; None when no agent holds it
        (as of the last second), so the caller can refuse it without reading the body or taking
        a turn at the writer."""
        now = time.monotonic()
        cached = self._lookups.get(token_sha256)
        if cached is not None and cached[0] > now:
            return cached[1]
        if len(self._lookups) > 10_000:  # tokens that no longer exist pile up: start afresh
            self._lookups.clear()
        agent = await self._store.agent_for_token(token_sha256)
        lookup = None
        if agent is not None:
            limit = parse_rate_limit(agent.rate_limit) if agent.rate_limit else self._default
            lookup = TokenLookup(agent.id, limit, agent.signature)
        self._lookups[token_sha256] = (now + LOOKUP_TTL_S, lookup)
        return lookup
