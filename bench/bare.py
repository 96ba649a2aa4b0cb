"""The ceiling for hookd's webhook: a bare aiohttp handler doing the least the same answer needs.

It reads the body, parses it as JSON, checks it is an object and answers
`{"success": true, "task_id": "<uuid4>"}`: the same request and response as hookd's webhook,
without the token lookup, the SQLite commit or the worker wake-up.

Served like hookd (server.py): the same aiohttp, `web.run_app`, logging configured at
the same level through `logging.basicConfig`, and the access log on the same
"aiohttp.access" logger at INFO, so at `warning` neither server writes access lines.

    python bench/bare.py PORT [LOG_LEVEL]
"""

from __future__ import annotations

import json
import logging
import sys
import uuid

from aiohttp import web


async def accept(request: web.Request) -> web.Response:
    payload = json.loads(await request.read())
    if not isinstance(payload, dict):
        return web.json_response({"success": False, "message": "not a JSON object"}, status=400)
    return web.json_response({"success": True, "task_id": str(uuid.uuid4())})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/webhooks/agents/{token}", accept)
    return app


def main(argv: list[str]) -> None:
    port = int(argv[1])
    level = argv[2] if len(argv) > 2 else "warning"
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(create_app(), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(sys.argv)
