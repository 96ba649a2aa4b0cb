"""Monitoring over HTTP: GET /metrics.

The metrics themselves are defined in api/metrics.py; api/edge.py's route wrapper times each
request into them.
"""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from api.app_keys import admin_key_key, metrics_key, pool_key, settings_key, store_key
from api.edge import bearer_matches
from errors import Unauthorized

routes = web.RouteTableDef()


@routes.get("/metrics")
async def scrape(request: web.Request) -> web.Response:
    """The Prometheus scrape, behind HOOKD_METRICS_KEY or the admin key.

    The metrics key exists so that Prometheus need not hold the admin key, which can create
    agents whose MCP servers run commands as hookd's user.
    """
    settings = request.app[settings_key]
    if not bearer_matches(request, settings.metrics_key, request.app[admin_key_key]):
        raise Unauthorized(
            "GET /metrics needs 'Authorization: Bearer <key>': the key is HOOKD_METRICS_KEY (give"
            " Prometheus that one), or the admin key."
        )
    metrics, pool = request.app[metrics_key], request.app[pool_key]
    counts = await request.app[store_key].count_by_status()
    metrics.set_state(counts, busy=pool.busy, workers=pool.workers)
    return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
