"""The ceilings for hookd's webhook and task status: bare aiohttp handlers doing the least
the same answers need.

`POST /api/webhooks/agents/{token}` reads the body, parses it as JSON, checks it is an object
and answers `{"success": true, "task_id": "<uuid4>"}`: the same request and response as
hookd's webhook, without the token lookup, the SQLite commit or the worker wake-up.

`GET /api/task_status?task_id=…` answers a finished task's status, in the same shape and
size as hookd's, made up from the id instead of read from a database.

`--commit DB SYNC` adds the one thing a durable accept cannot skip: before answering, the
webhook inserts a row (id, payload, time) into a one-table SQLite file in WAL mode with
`synchronous=SYNC`, through hookd's own group-commit writer (tasks/sqlite/writer.py), and
answers with that row's id. The distance from the bare handler to this one is the price of
durability; from this one to hookd, the price of hookd's own request handling (token, rate
limit, signature and idempotency checks, validation, the worker wake-up, metrics).

`--read DB` does the same for task status: the answer's status and result come from the task's
row in DB (one primary-key read on the event loop's thread, through a memory map, as hookd
reads it), the rest as before. From the bare handler to this one is the price of reading a
row; from this one to hookd, of hookd's own handling.

Served like hookd (server.py): the same aiohttp, `web.run_app`, logging configured at
the same level through `logging.basicConfig`, and the access log on the same
"aiohttp.access" logger at INFO, so at `warning` neither server writes access lines.

    python bench/bare.py PORT [LOG_LEVEL] [--commit DB SYNC | --read DB]
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # hookd's writer, for --commit
from tasks.ids import uuid7
from tasks.sqlite.store import POINT_READ_MMAP_BYTES
from tasks.sqlite.writer import Writer

writer_key = web.AppKey("writer", Writer)
reader_key = web.AppKey("reader", sqlite3.Connection)


async def accept(request: web.Request) -> web.Response:
    payload = json.loads(await request.read())
    if not isinstance(payload, dict):
        return web.json_response({"success": False, "message": "not a JSON object"}, status=400)
    return web.json_response({"success": True, "task_id": str(uuid.uuid4())})


STATUS = "SUCCESS"
RESULT = {"answer": "You said: benchmark", "model": "ok", "usage": {"total_tokens": 10}}


async def task_status(request: web.Request) -> web.Response:
    task_id = request.query.get("task_id", "")
    if not task_id:
        return web.json_response({"success": False, "message": "no task_id"}, status=400)
    status, result = STATUS, RESULT
    if reader_key in request.app:
        rows = (
            request.app[reader_key]
            .execute("SELECT status, result FROM tasks WHERE id = ?", (task_id,))
            .fetchall()
        )
        if not rows:
            return web.json_response({"success": False, "message": "no such task"}, status=404)
        status, result = rows[0][0], json.loads(rows[0][1])
    return web.json_response(
        {
            "status": status,
            "result": result,
            "task_id": task_id,
            "agent_id": "01900000-0000-7000-8000-000000000001",
            "attempts": 1,
            "max_attempts": 3,
            "created_at": "2026-11-27T10:00:00.000Z",
            "started_at": "2026-11-27T10:00:00.010Z",
            "finished_at": "2026-11-27T10:00:00.020Z",
        }
    )


async def accept_and_commit(request: web.Request) -> web.Response:
    payload = json.loads(await request.read())
    if not isinstance(payload, dict):
        return web.json_response({"success": False, "message": "not a JSON object"}, status=400)
    row = (uuid7(), json.dumps(payload), time.time())

    def insert(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO accepted (id, payload, created_at) VALUES (?, ?, ?)", row)

    await request.app[writer_key].submit(insert)
    return web.json_response({"success": True, "task_id": row[0]})


def writer_ctx(db: str, sync: str) -> Callable[[web.Application], AsyncIterator[None]]:
    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if sync == 'full' else 'NORMAL'}")
        return conn

    def set_up(conn: sqlite3.Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS accepted (id TEXT PRIMARY KEY, payload TEXT NOT NULL, created_at REAL NOT NULL)"
        )

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        writer = Writer(connect)
        await writer.open(set_up)
        app[writer_key] = writer
        yield
        await writer.close()

    return ctx


def reader_ctx(db: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        conn = sqlite3.connect(db, timeout=0, isolation_level=None)
        conn.execute("PRAGMA query_only = ON")
        conn.execute(f"PRAGMA mmap_size = {POINT_READ_MMAP_BYTES}")  # hookd's
        app[reader_key] = conn
        yield
        conn.close()

    return ctx


def create_app(commit: tuple[str, str] | None = None, read: str | None = None) -> web.Application:
    app = web.Application()
    if read is not None:
        app.cleanup_ctx.append(reader_ctx(read))
    if commit is None:
        app.router.add_post("/api/webhooks/agents/{token}", accept)
    else:
        app.cleanup_ctx.append(writer_ctx(*commit))
        app.router.add_post("/api/webhooks/agents/{token}", accept_and_commit)
    app.router.add_get("/api/task_status", task_status)
    return app


def main(argv: list[str]) -> None:
    commit = read = None
    if "--commit" in argv:
        at = argv.index("--commit")
        commit = (argv[at + 1], argv[at + 2])
        argv = argv[:at] + argv[at + 3 :]
    if "--read" in argv:
        at = argv.index("--read")
        read = argv[at + 1]
        argv = argv[:at] + argv[at + 2 :]
    port = int(argv[1])
    level = argv[2] if len(argv) > 2 else "warning"
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(create_app(commit, read), host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main(sys.argv)
