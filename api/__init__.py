"""The HTTP API: the public webhook and task status, and the admin API."""

from __future__ import annotations

from aiohttp import web

from api import admin, openapi, public, sources


def add_routes(app: web.Application) -> None:
    app.router.add_routes(public.routes)
    app.router.add_routes(admin.routes)
    app.router.add_routes(sources.routes)
    app.router.add_routes(openapi.routes)
