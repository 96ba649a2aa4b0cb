"""Per-agent webhook rate limits: a token bucket per agent, in memory.

Checked before a task is stored, and the first word on a webhook's token. The agent's limit (its own, else HOOKD_RATE_LIMIT) is looked
up by token hash and remembered for a second, so a busy webhook costs one read per second,
not one per request; the insert that follows stays the authority on whether the token works.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from errors import TooManyRequests
from settings import RateLimit, parse_rate_limit
from tasks.store import Store

LOOKUP_TTL_S = 1.0


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class RateLimiter:
    def __init__(self, store: Store, default: RateLimit | None) -> None:
        self._store = store
        self._default = default
        self._limits: dict[bytes, tuple[float, str | None, RateLimit | None]] = {}
        self._buckets: dict[str, _Bucket] = {}

    async def check(self, token_sha256: bytes) -> bool:
        """Take one request from the token's agent's bucket, or raise TooManyRequests.

        False when no agent holds the token (as of the last second): the caller can refuse
        it without reading the body or taking a turn at the writer.
        """
        agent_id, limit = await self._limit_for(token_sha256)
        if agent_id is None:
            return False
        if limit is None:
            return True
        now = time.monotonic()
        bucket = self._buckets.setdefault(agent_id, _Bucket(float(limit.count), now))
        rate_per_s = limit.count / limit.period_s
        bucket.tokens = min(float(limit.count), bucket.tokens + (now - bucket.updated_at) * rate_per_s)
        bucket.updated_at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return True
        raise TooManyRequests(
            f"This agent takes at most {limit} webhooks; nothing was stored. Send it again later.",
            retry_after_s=(1 - bucket.tokens) / rate_per_s,
        )

    async def _limit_for(self, token_sha256: bytes) -> tuple[str | None, RateLimit | None]:
        now = time.monotonic()
        cached = self._limits.get(token_sha256)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2]
        if len(self._limits) > 10_000:  # tokens that no longer exist pile up: start afresh
            self._limits.clear()
        agent = await self._store.agent_for_token(token_sha256)
        agent_id = agent.id if agent else None
        limit = self._default
        if agent is not None and agent.rate_limit:
            limit = parse_rate_limit(agent.rate_limit)
        self._limits[token_sha256] = (now + LOOKUP_TTL_S, agent_id, limit)
        return agent_id, limit
