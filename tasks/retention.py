"""Retention: finished tasks older than HOOKD_RESULT_TTL_DAYS are deleted, a batch at a time.

Small batches, each its own write among the webhooks' group commits, so a large purge never
holds the writer for long; the freed pages are reused by new tasks, so the file stops
growing under a steady load.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tasks.store import Store

log = logging.getLogger("hookd.retention")

PURGE_BATCH_ROWS = 500
PURGE_PAUSE_S = 0.05  # between batches of one sweep: let other writes through


async def purge_expired(store: Store, ttl_s: float) -> int:
    """Delete every finished task older than `ttl_s`, in batches; return how many."""
    cutoff = time.time() - ttl_s
    purged = 0
    while True:
        deleted = await store.purge_finished(cutoff, PURGE_BATCH_ROWS)
        purged += deleted
        if deleted < PURGE_BATCH_ROWS:
            return purged
        await asyncio.sleep(PURGE_PAUSE_S)


async def run_retention(store: Store, ttl_s: float, interval_s: float) -> None:
    """Sweep now and then every `interval_s`, until cancelled."""
    while True:
        try:
            purged = await purge_expired(store, ttl_s)
        except Exception:
            log.exception("deleting expired tasks failed; trying again in %g s", interval_s)
        else:
            if purged:
                log.info("deleted %d finished tasks older than %g days", purged, ttl_s / 86400)
        await asyncio.sleep(interval_s)
