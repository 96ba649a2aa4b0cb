"""Everything the handlers find on the application, as typed keys, each named like its value."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from api.metrics import Metrics
from api.rate_limit import RateLimiter
from settings import Settings
from tasks.pool import WorkerPool
from tasks.store import Store
from tasks.watch import TaskWatch

settings_key = web.AppKey("settings", Settings)
store_key = web.AppKey("store", Store)
admin_key_key = web.AppKey("admin_key", str)
http_session_key = web.AppKey("http_session", aiohttp.ClientSession)
pool_key = web.AppKey("pool", WorkerPool)
rate_limiter_key = web.AppKey("rate_limiter", RateLimiter)
metrics_key = web.AppKey("metrics", Metrics)
task_watch_key = web.AppKey("task_watch", TaskWatch)
