"""The admin web page: GET / and its few static files from api/static, no build step: the
script is plain ES modules (app.js imports the others by relative name), served as they are.

The page signs in with the admin key and talks to the admin API like any other client. The
files are read once, when this module is imported, and looked up by name: a request can
only ever get one of them, so no path reaches the filesystem.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from errors import NotFound

routes = web.RouteTableDef()

# Served under /static/ by suffix; index.html is the page itself, at /.
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

# The page loads only its own files and sends requests only to its own origin: no inline
# script or style, no other host, no framing (the admin key is typed into it).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so a new hookd version's page is used at once
}


def _read_static() -> tuple[bytes, dict[str, tuple[bytes, str]]]:
    folder = resources.files("api") / "static"
    index = (folder / "index.html").read_bytes()
    assets = {
        entry.name: (entry.read_bytes(), ASSET_TYPES[suffix])
        for entry in folder.iterdir()
        if entry.is_file() and (suffix := "." + entry.name.rpartition(".")[2]) in ASSET_TYPES
    }
    return index, assets


_INDEX, _ASSETS = _read_static()
ASSET_NAMES = tuple(sorted(_ASSETS))


def _file_response(body: bytes, content_type: str) -> web.Response:
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=SECURITY_HEADERS)


@routes.get("/")
async def index(request: web.Request) -> web.Response:
    return _file_response(_INDEX, "text/html")


@routes.get("/static/{name}")
async def static_file(request: web.Request) -> web.Response:
    asset = _ASSETS.get(request.match_info["name"])
    if asset is None:
        raise NotFound(f"No such file; the page's files are {', '.join(ASSET_NAMES)}.")
    return _file_response(*asset)
