"""The ceilings for hookd's webhook and task status: bare aiohttp handlers doing the least
the same answers need.

`POST /api/webhooks/agents/{token}` reads the body, parses it as JSON, checks it is an object
and answers `{"success": true, "task_id": "<uuid4>"}`: the same request and response as
hookd's webhook, without the token lookup, the SQLite commit or the worker wake-up.

`GET /api/task_status?task_id=…` answers a finished task's status, in the same shape and
size as hookd's, made up from the id instead of read from a database.

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


async def task_status(request: web.Request) -> web.Response:
    task_id = request.query.get("task_id", "")
    if not task_id:
        return web.json_response({"success": False, "message": "no task_id"}, status=400)
    return web.json_response(
        {
            "status": "SUCCESS",
            "result": {"answer": "You said: benchmark", "model": "ok", "usage": {"total_tokens": 10}},
            "task_id": task_id,
            "agent_id": "01900000-0000-7000-8000-000000000001",
            "attempts": 1,
            "max_attempts": 3,
            "created_at": "2026-11-27T10:00:00.000Z",
            "started_at": "2026-11-27T10:00:00.010Z",
            "finished_at": "2026-11-27T10:00:00.020Z",
        }
    )


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/api/webhooks/agents/{token}", accept)
    app.router.add_get("/api/task_status", task_status)
    return app


def main(argv: list[str]) -> None:
    port = int(argv[1])
    level = argv[2] if len(argv) > 2 else "warning"
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(create_app(), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(sys.argv)
