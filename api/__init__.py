"""The HTTP API: the public webhook and task status, the admin API, the metrics, and the admin web page."""

from __future__ import annotations

from aiohttp import web

from api import admin, monitoring, openapi, public, sources
from api import web as web_page
from api.edge import add_edged_routes


def add_routes(app: web.Application) -> None:
    """Every route, each behind api/edge.py's error body and request timing."""
    tables = (public.routes, admin.routes, sources.routes, openapi.routes, monitoring.routes, web_page.routes)
    add_edged_routes(app, tables)
