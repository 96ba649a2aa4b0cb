"""The HTTP API: the public webhook and task status, the admin API, the metrics, and the admin web page."""

from __future__ import annotations

from aiohttp import web

from api import admin, monitoring, openapi, public, sources
from api import web as web_page


def add_routes(app: web.Application) -> None:
    app.router.add_routes(public.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(sources.routes)
    app.router.add_routes(openapi.routes)
    app.router.add_routes(monitoring.routes)
    app.router.add_routes(web_page.routes)
