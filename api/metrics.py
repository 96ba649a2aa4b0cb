"""hookd's Prometheus metrics: what is measured, on a registry of the app's own.

Each app has its own `CollectorRegistry` (the tests build many apps in one process, and the
global one would mix them). Three feeds: api/edge.py's route wrapper times requests
(`observe_request`), the task transitions feed runs and errors (`observe_transition`), and
each scrape sets the gauges from the store and the pool (`set_state`) just before `render`.
Labels are bounded: route templates, never raw paths (a webhook path holds its token);
agent names, never task ids.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from tasks.store import STATUSES
from tasks.transitions import DELETED_AGENT, Transition

# Accepting a webhook takes milliseconds; an agent run takes seconds to minutes.
REQUEST_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
RUN_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
QUEUE_BUCKETS_S = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
UNMATCHED_ROUTE = "(unmatched)"
UNKNOWN_AGENT = "(unknown)"

# The text format would carry a `_created` series beside every counter and histogram, which
# Prometheus stores as series of their own: twice the series for a timestamp nobody graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]  # unannotated upstream


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        # Cheap: each reads /proc/self or the interpreter once per scrape. (ProcessCollector
        # also reads the boot time from /proc/stat here: create_app's only I/O, a tiny one.)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

        self._request_histograms: dict[tuple[str, str, int], Histogram] = {}
        self.http_request_duration = Histogram(
            "hookd_http_request_duration_seconds",
            "Time to answer an HTTP request (webhooks included), by route template and status class.",
            ("method", "route", "status_class"),
            buckets=REQUEST_BUCKETS_S,
            registry=registry,
        )
        self.run_duration = Histogram(
            "hookd_run_duration_seconds",
            "Time an agent run (one attempt) took, by agent name.",
            ("agent",),
            buckets=RUN_BUCKETS_S,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "hookd_queue_wait_seconds",
            "Time a task waited from being queued (or its last attempt failing) to its run starting.",
            buckets=QUEUE_BUCKETS_S,
            registry=registry,
        )
        self.run_errors = Counter(
            "hookd_run_errors",
            "Agent runs (attempts) that ended in an error, retried or final, by error type.",
            ("error_type",),
            registry=registry,
        )
        self.tasks_finished = Counter(
            "hookd_tasks_finished",
            "Tasks that reached a final status (SUCCESS or FAILURE, cancels included).",
            ("status",),
            registry=registry,
        )
        self.tasks = Gauge("hookd_tasks", "Tasks in the database, by status.", ("status",), registry=registry)
        self.queue_depth = Gauge(
            "hookd_queue_depth", "Tasks waiting to run (PENDING or RETRY).", registry=registry
        )
        self.workers_busy = Gauge("hookd_workers_busy", "Agent runs in flight.", registry=registry)
        self.workers = Gauge(
            "hookd_workers", "Agent runs that may be in flight at once (HOOKD_WORKERS).", registry=registry
        )
        for status in ("SUCCESS", "FAILURE"):  # present from the start, so rate() sees the first one
            self.tasks_finished.labels(status)

    def observe_request(self, method: str, route: str, status: int, duration_s: float) -> None:
        # Each request's labelled histogram is looked up once, then kept: labels() takes a
        # lock and formats its values, on every request. Routes are templates and statuses
        # classes, so there are few.
        key = (method, route, status // 100)
        histogram = self._request_histograms.get(key)
        if histogram is None:
            histogram = self.http_request_duration.labels(method, route, f"{status // 100}xx")
            self._request_histograms[key] = histogram
        histogram.observe(duration_s)

    def observe_transition(self, transition: Transition) -> None:
        event = transition.event
        if event.status == "STARTED" and transition.queued_s is not None:
            self.queue_wait.observe(transition.queued_s)
        if event.elapsed_s is not None:  # the end of an attempt that ran
            agent = transition.agent or (DELETED_AGENT if event.agent_id is None else UNKNOWN_AGENT)
            self.run_duration.labels(agent).observe(event.elapsed_s)
            if event.error_type is not None:
                self.run_errors.labels(event.error_type).inc()
        if event.final:
            self.tasks_finished.labels(event.status).inc()

    def set_state(self, counts: Mapping[str, int], *, busy: int, workers: int) -> None:
        """The gauges, from the store's counts and the pool, just before a scrape renders."""
        for status in STATUSES:
            self.tasks.labels(status).set(counts.get(status, 0))
        self.queue_depth.set(counts.get("PENDING", 0) + counts.get("RETRY", 0))
        self.workers_busy.set(busy)
        self.workers.set(workers)

    def render(self) -> bytes:
        """The Prometheus text exposition of everything above."""
        return generate_latest(self.registry)
