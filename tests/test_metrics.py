"""GET /metrics: Prometheus text, behind the admin key, with values that match what ran.

Scrapes are parsed with prometheus_client's own parser, and the values checked, not just
the names. Transitions reach the metrics just after they are committed, so a test awaits
the values it expects (bounded) rather than assuming the first scrape has them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_KEY, Hookd
from tests.remote import poll

WEBHOOK_ROUTE = "/api/webhooks/agents/{token}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(hookd: Hookd) -> Samples:
    response = await hookd.client.get("/metrics", headers=hookd.admin)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def scrape_until(hookd: Hookd, done: Callable[[Samples], bool], what: str) -> Samples:
    return await poll(lambda: scrape(hookd), done, what)


async def test_a_scrape_counts_a_success_a_failure_and_a_refused_webhook(hookd: Hookd) -> None:
    ok = await hookd.create_agent(name="summarise")
    failing = await hookd.create_agent(name="flaky one", llm={"model": "fail=9"}, max_attempts=1)
    assert (await hookd.wait_for(await hookd.trigger(ok)))["status"] == "SUCCESS"
    failure = await hookd.wait_for(await hookd.trigger(failing))
    assert failure["status"] == "FAILURE" and failure["result"]["type"] == "llm_http_error"
    unknown_token = "A" * 43
    response = await hookd.client.post(f"/api/webhooks/agents/{unknown_token}", json={})
    assert response.status == 404
    assert (await hookd.client.get("/no/such/page")).status == 404

    samples = await scrape_until(
        hookd,
        lambda s: value(s, "hookd_tasks_finished_total", status="FAILURE") == 1,
        "the failure counted",
    )
    # Tasks by status, from the database.
    assert {status: value(samples, "hookd_tasks", status=status) for status in ("SUCCESS", "FAILURE")} == {
        "SUCCESS": 1,
        "FAILURE": 1,
    }
    for status in ("PENDING", "STARTED", "RETRY"):
        assert value(samples, "hookd_tasks", status=status) == 0
    assert value(samples, "hookd_tasks_finished_total", status="SUCCESS") == 1

    # One run per agent, labelled by name; every histogram's +Inf bucket equals its count.
    for name in ("summarise", "flaky one"):
        assert value(samples, "hookd_run_duration_seconds_count", agent=name) == 1
        assert value(samples, "hookd_run_duration_seconds_bucket", agent=name, le="+Inf") == 1
        run_s = value(samples, "hookd_run_duration_seconds_sum", agent=name)
        assert run_s is not None and 0 <= run_s < 10
    assert value(samples, "hookd_run_errors_total", error_type="llm_http_error") == 1
    assert not any(name == "hookd_run_errors_total" and ("error_type", "llm_http_error") not in labels
                   for name, labels in samples)  # fmt: skip
    assert value(samples, "hookd_queue_wait_seconds_count") == 2

    # Requests by route template and status class: two accepted webhooks, one refused.
    webhook = {"method": "POST", "route": WEBHOOK_ROUTE}
    assert value(samples, "hookd_http_request_duration_seconds_count", **webhook, status_class="2xx") == 2
    assert value(samples, "hookd_http_request_duration_seconds_count", **webhook, status_class="4xx") == 1
    assert (
        value(samples, "hookd_http_request_duration_seconds_bucket", **webhook, status_class="4xx", le="+Inf")
        == 1
    )
    unmatched = {"method": "other", "route": "(unmatched)", "status_class": "4xx"}
    assert value(samples, "hookd_http_request_duration_seconds_count", **unmatched) == 1
    token = ok["webhook_url"].rsplit("/", 1)[1]
    labels = {label_value for _, label_set in samples for _, label_value in label_set}
    assert not any(token in v or unknown_token in v or "/no/such" in v for v in labels)

    # The pool's gauges, and the process metrics.
    assert value(samples, "hookd_queue_depth") == 0
    assert value(samples, "hookd_workers_busy") == 0
    assert value(samples, "hookd_workers") == hookd.settings.workers
    resident = value(samples, "process_resident_memory_bytes")
    assert resident is not None and resident > 1_000_000


async def test_the_gauges_show_running_and_waiting_tasks(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(workers=2)
    agent = await hookd.create_agent(llm={"model": "sleep=30"})
    for _ in range(3):
        await hookd.trigger(agent)
    samples = await scrape_until(hookd, lambda s: value(s, "hookd_workers_busy") == 2, "both workers busy")
    assert value(samples, "hookd_workers") == 2
    assert value(samples, "hookd_queue_depth") == 1
    assert value(samples, "hookd_tasks", status="STARTED") == 2
    assert value(samples, "hookd_tasks", status="PENDING") == 1
    assert value(samples, "hookd_queue_wait_seconds_count") == 2  # the two that started


async def test_metrics_need_the_admin_key(hookd: Hookd) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-key-wrong-key"}, {"Authorization": ADMIN_KEY}):
        response = await hookd.client.get("/metrics", headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        body = await response.json()
        assert body["success"] is False and "Bearer" in body["message"]
    response = await hookd.client.get("/metrics", headers=hookd.admin)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")


METRICS_KEY = "metrics-key-for-prometheus-only"


async def test_the_metrics_key_opens_metrics_and_nothing_else(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(metrics_key=METRICS_KEY)
    prometheus = {"Authorization": f"Bearer {METRICS_KEY}"}
    for headers in (prometheus, hookd.admin):  # the admin key still opens it
        response = await hookd.client.get("/metrics", headers=headers)
        assert response.status == 200, await response.text()
    for headers in ({}, {"Authorization": f"Bearer {METRICS_KEY}x"}, {"Authorization": "Bearer "}):
        response = await hookd.client.get("/metrics", headers=headers)
        assert response.status == 401
        assert "HOOKD_METRICS_KEY" in (await response.json())["message"]
    # The metrics key is no admin key: it cannot list, let alone create, agents.
    assert (await hookd.client.get("/api/agents", headers=prometheus)).status == 401
    created = await hookd.client.post("/api/agents", json={"name": "x"}, headers=prometheus)
    assert created.status == 401 and hookd.count_rows("agents") == 0


async def test_without_a_metrics_key_only_the_admin_key_opens_metrics(hookd: Hookd) -> None:
    assert hookd.settings.metrics_key == ""
    response = await hookd.client.get("/metrics", headers={"Authorization": "Bearer "})
    assert response.status == 401
    assert (await hookd.client.get("/metrics", headers=hookd.admin)).status == 200


async def test_each_app_has_its_own_registry(make_hookd: Any, tmp_path: Any) -> None:
    first: Hookd = await make_hookd()
    second: Hookd = await make_hookd(db=str(tmp_path / "second.db"))
    agent = await first.create_agent(name="only-in-first")
    await first.wait_for(await first.trigger(agent))
    await scrape_until(
        first,
        lambda s: value(s, "hookd_run_duration_seconds_count", agent="only-in-first") == 1,
        "the run counted in the first app",
    )
    samples = await scrape(second)
    assert value(samples, "hookd_run_duration_seconds_count", agent="only-in-first") is None
    assert value(samples, "hookd_tasks_finished_total", status="SUCCESS") == 0
