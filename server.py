"""hookd's server: the app factory, its resources, and `serve`.

`create_app` does no I/O. The resources open in cleanup contexts, in order: the database,
the HTTP client, the worker pool, the task watch (requests waiting on a task), the callback
deliveries, the retention sweeper. They close in reverse, so workers stop (and write their
final states) before the HTTP client and then the database close. Requests still waiting on
a task are woken at shutdown's start (on_shutdown), before aiohttp waits for open requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import secrets
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agents.run import LLMDefaults, run_agent
from api import add_routes
from api.app_keys import (
    admin_key_key,
    http_session_key,
    metrics_key,
    pool_key,
    rate_limiter_key,
    settings_key,
    store_key,
    task_watch_key,
)
from api.edge import AccessLogger
from api.metrics import Metrics
from api.rate_limit import RateLimiter
from logs import configure_logging, keep_out_of_logs, open_files_limit
from settings import Settings, SettingsError
from tasks.backends import open_store
from tasks.callbacks import CallbackSender
from tasks.pool import WorkerPool
from tasks.retention import run_retention, sweep_interval_s
from tasks.transitions import TransitionFeed, log_transition
from tasks.watch import TaskWatch

log = logging.getLogger("hookd")

CONNECT_TIMEOUT_S = 30.0
LISTEN_BACKLOG = 1024


def admin_key_path(settings: Settings) -> Path:
    return Path(settings.db).expanduser().with_name(Path(settings.db).name + ".admin-key")


MIN_ADMIN_KEY_CHARS = 16


def _shared_database_needs_a_key() -> SettingsError:
    # The generated key lives in a file beside a SQLite database; the nodes of a shared
    # database have no such place, and each would make a key of its own.
    return SettingsError(
        "HOOKD_DATABASE_URL needs HOOKD_ADMIN_KEY: set the same admin key (16 or more characters)"
        " on every hookd that uses this database."
    )


def load_admin_key(settings: Settings) -> str:
    """HOOKD_ADMIN_KEY, else the generated key kept beside the database (made on first start)."""
    if settings.admin_key:
        return settings.admin_key  # its length is checked with the other settings
    if settings.database_url:
        raise _shared_database_needs_a_key()
    path = admin_key_path(settings)
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        key = ""
    if len(key) >= MIN_ADMIN_KEY_CHARS:
        return key
    # Missing, or cut short by a crash while it was first written: (re)generate it.
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(key + "\n")
        file.flush()
        os.fsync(file.fileno())
    # Said once, at generation; the key itself is never logged.
    log.warning(
        "HOOKD_ADMIN_KEY is not set, so hookd generated an admin key and saved it to %s"
        " (readable by this user only). Send it as 'Authorization: Bearer <key>'.",
        path.resolve(),
    )
    return key


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    store = open_store(settings.database_url, settings.db, settings.sync)
    async with store.serving():
        await store.open()
        try:
            app[store_key] = store
            app[admin_key_key] = load_admin_key(settings)
            keep_out_of_logs(app[admin_key_key])  # a generated one is known only now
            app[rate_limiter_key] = RateLimiter(store, settings.rate_limit)
            yield
        finally:
            await store.close()


async def http_client_ctx(app: web.Application) -> AsyncIterator[None]:
    # One connection per worker at most: enough for every run to be in flight at once.
    connector = aiohttp.TCPConnector(limit=max(app[settings_key].workers, 1))  # 0 is no limit to aiohttp
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_S)  # runs have their own
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        app[http_session_key] = session
        yield


async def worker_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    defaults = LLMDefaults(
        provider=settings.llm_provider,
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key,
    )
    pool = WorkerPool(
        app[store_key],
        partial(
            run_agent,
            session=app[http_session_key],
            defaults=defaults,
            journal=app[store_key],
            search=app[store_key].search_chunks,
            mcp_commands=settings.mcp_commands,
            max_prompt_bytes=settings.max_prompt_bytes,
        ),
        workers=settings.workers,
        shutdown_grace_s=settings.shutdown_grace_s,
        retry_backoff_s=settings.retry_backoff_s,
        max_pending=settings.max_pending,
        max_result_bytes=settings.max_result_bytes,
        lease_s=settings.lease_s,
    )
    # Subscribed before the first claim, and drained after the last final write, so the log
    # and the metrics see every state change, shutdown's included.
    transitions = TransitionFeed(app[store_key], sinks=(log_transition, app[metrics_key].observe_transition))
    app[store_key].events.subscribe(transitions.on_event)
    await pool.start()
    app[pool_key] = pool
    try:
        yield
    finally:
        await pool.stop()
        await transitions.drain()


async def task_watch_ctx(app: web.Application) -> AsyncIterator[None]:
    watch = TaskWatch(app[store_key].events)
    app[task_watch_key] = watch
    try:
        yield
    finally:
        watch.close()


async def stop_waiting(app: web.Application) -> None:
    """on_shutdown: long-polls and event streams end now, instead of holding up aiohttp's
    wait for open requests (shutdown_timeout) and then being cut off."""
    if task_watch_key in app:
        app[task_watch_key].close()


async def callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[settings_key]
    sender = CallbackSender(
        app[store_key],
        app[http_session_key],
        allow_private=settings.callback_allow_private,
        backoff_s=settings.retry_backoff_s,
    )
    events = app[store_key].events
    unsubscribes = (events.subscribe(sender.on_event), events.subscribe_resync(sender.wake))
    # Deliveries left pending by the last run (or a crash) are due: the loop's first look sends them.
    loop = asyncio.create_task(sender.run(), name="hookd-callbacks")
    try:
        yield
    finally:
        for unsubscribe in unsubscribes:
            unsubscribe()
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop


def runner_kwargs(settings: Settings) -> dict[str, Any]:
    """How the app is served, shared by `serve` and the tests: the access log never shows a
    token, and an idle connection is closed after HOOKD_KEEPALIVE_TIMEOUT_S (aiohttp's
    run_app keeps one 75 s, and each holds a file descriptor)."""
    return {"access_log_class": AccessLogger, "keepalive_timeout": settings.keepalive_timeout_s}


async def retention_ctx(app: web.Application) -> AsyncIterator[None]:
    days = app[settings_key].result_ttl_days
    ttl_s = days * 86400 if days else None  # 0 keeps tasks; idempotency keys still expire
    sweeper = asyncio.create_task(
        run_retention(app[store_key], ttl_s, sweep_interval_s(ttl_s)), name="hookd-retention"
    )
    try:
        yield
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[settings_key] = settings
    app[metrics_key] = Metrics()
    app.cleanup_ctx.extend(
        [database_ctx, http_client_ctx, worker_pool_ctx, task_watch_ctx, callbacks_ctx, retention_ctx]
    )
    app.on_shutdown.append(stop_waiting)
    add_routes(app)
    return app


def raise_open_files_limit() -> None:
    """Raise the soft limit on open files to the hard one, as far as allowed.

    Every connection, and each database file and model call, holds a file descriptor. The
    soft limit is often 1,024 (systemd's default), which a burst of idle connections uses up;
    the hard limit (systemd: 524,288) is what the system allows. Go's runtime does the same.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard and hard != resource.RLIM_INFINITY:
        with contextlib.suppress(ValueError, OSError):  # e.g. a sandbox that refuses it
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    raised = resource.getrlimit(resource.RLIMIT_NOFILE)[0] != soft
    log.info("open files: at most %s%s", open_files_limit(), f", raised from {soft}" if raised else "")


def serve(settings: Settings) -> None:
    """Run hookd until SIGTERM or SIGINT, then shut down gracefully."""
    if settings.database_url and not settings.admin_key:
        raise _shared_database_needs_a_key()
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secret_values())
    log.info(
        "hookd on http://%s:%d, database %s, %d workers",
        settings.host,
        settings.port,
        open_store(settings.database_url, settings.db, settings.sync).where,
        settings.workers,
    )
    if settings.workers == 0 and not settings.database_url:
        log.warning("HOOKD_WORKERS is 0: this hookd runs no tasks, and on SQLite no other hookd can")
    raise_open_files_limit()
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        print=None,
        # Open HTTP requests get a short grace; agent runs get HOOKD_SHUTDOWN_GRACE_S in the pool.
        shutdown_timeout=5.0,
        # A burst of webhooks opens many connections at once; aiohttp's default of 128
        # pending connections drops the rest, and their clients retry only a second later.
        backlog=LISTEN_BACKLOG,
        **runner_kwargs(settings),
    )


def main(argv: list[str] | None = None) -> None:
    """`python server.py [flags]`: the same as `hookd serve [flags]`."""
    from cli import main as cli_main

    cli_main(["serve", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
