"""Monitoring over HTTP: the middleware that times every request, and GET /metrics.

The metrics themselves are defined in api/metrics.py.
"""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from api.app_keys import admin_key_key, metrics_key, pool_key, settings_key, store_key
from api.edge import Handler, bearer_matches
from api.metrics import UNMATCHED_ROUTE
from errors import Unauthorized

routes = web.RouteTableDef()


@web.middleware
async def timing_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Time each request into hookd_http_request_duration_seconds. It sits outside the error
    middleware, so it sees the status the client gets."""
    started = time.perf_counter()
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # what passes the error middleware: redirects and the like
        _observe(request, exc.status, started)
        raise
    _observe(request, response.status, started)
    return response


def _observe(request: web.Request, status: int, started: float) -> None:
    # The route's template, never the path: a webhook's path holds its token, and paths are
    # unbounded. Unrouted requests share one label, and their method too (clients pick it).
    resource = request.match_info.route.resource
    route, method = (
        (resource.canonical, request.method) if resource is not None else (UNMATCHED_ROUTE, "other")
    )
    request.app[metrics_key].observe_request(method, route, status, time.perf_counter() - started)


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
