"""Retention: finished tasks older than HOOKD_RESULT_TTL_DAYS are deleted, a batch at a time, and
idempotency keys older than their 24-hour window are forgotten the same way.

Small batches, each its own write among the webhooks' group commits, so a large purge never
holds the writer for long; the freed pages are reused by new tasks, so the file stops
growing under a steady load.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from tasks.store import IDEMPOTENCY_WINDOW_S, Store

log = logging.getLogger("hookd.retention")

PURGE_BATCH_ROWS = 500
PURGE_PAUSE_S = 0.05  # between batches of one sweep: let other writes through
FOLLOWER_CHECK_S = 10.0  # how often a node that does not sweep asks to


async def _in_batches(purge: Callable[[float, int], Awaitable[int]], cutoff: float) -> int:
    purged = 0
    while True:
        deleted = await purge(cutoff, PURGE_BATCH_ROWS)
        purged += deleted
        if deleted < PURGE_BATCH_ROWS:
            return purged
        await asyncio.sleep(PURGE_PAUSE_S)


async def purge_expired(store: Store, ttl_s: float) -> int:
    """Delete every finished task older than `ttl_s`, in batches; return how many."""
    return await _in_batches(store.purge_finished, time.time() - ttl_s)


async def purge_idempotency_keys(store: Store) -> int:
    """Forget every idempotency key past its window, in batches; return how many."""
    return await _in_batches(store.purge_idempotency_keys, time.time() - IDEMPOTENCY_WINDOW_S)


def sweep_interval_s(ttl_s: float | None) -> float:
    """About a hundredth of the shorter of the two lifetimes, between a second and an hour."""
    shortest_s = IDEMPOTENCY_WINDOW_S if ttl_s is None else min(ttl_s, IDEMPOTENCY_WINDOW_S)
    return min(max(shortest_s / 100, 1.0), 3600.0)


async def run_retention(store: Store, ttl_s: float | None, interval_s: float) -> None:
    """Sweep now and then every `interval_s`, until cancelled. `ttl_s` None: keep finished tasks."""
    while True:
        try:
            if not await store.leads_background_work():  # another node sweeps
                await asyncio.sleep(min(interval_s, FOLLOWER_CHECK_S))
                continue
            if ttl_s is not None and (purged := await purge_expired(store, ttl_s)):
                log.info("deleted %d finished tasks older than %g days", purged, ttl_s / 86400)
            await purge_idempotency_keys(store)
        except Exception:
            log.exception(
                "deleting expired tasks or idempotency keys failed; trying again in %g s", interval_s
            )
        await asyncio.sleep(interval_s)
