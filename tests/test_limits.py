"""A webhook's cost is bounded by its size and by documented limits: nesting at the webhook,
the rendered prompt, the stored result, the size of a list of tasks; the queue limit holds
under concurrent senders; health costs nothing per call; the database files are private."""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import stat
import time
from typing import Any

import pytest

from tasks.json_text import MAX_JSON_DEPTH
from tests.conftest import Hookd
from tests.fake_llm import FakeLLM


def nested(depth: int, leaf: Any = 0) -> Any:
    """`depth` levels of arrays around `leaf`, with an object at the root (a webhook's shape)."""
    value = leaf
    for _ in range(depth - 1):
        value = [value]
    return {"a": value}


# -- nesting, at the webhook -----------------------------------------------------------


async def test_json_nested_to_the_limit_is_taken_and_deeper_is_refused(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    accepted = await hookd.client.post(agent["webhook_path"], json=nested(MAX_JSON_DEPTH))
    assert accepted.status == 200, await accepted.text()

    deeper = await hookd.client.post(agent["webhook_path"], json=nested(MAX_JSON_DEPTH + 1))
    assert deeper.status == 400
    message = (await deeper.json())["message"]
    assert f"more than {MAX_JSON_DEPTH} levels deep" in message and "nothing was stored" in message
    assert hookd.count_rows() == 1


async def test_the_reported_attack_body_is_refused_at_once(hookd: Hookd) -> None:
    """300 arrays, each nested 900 deep (540 KB): today's ~489 MB prompt, refused now."""
    agent = await hookd.create_agent()
    body = b'{"x": [' + b",".join([b"[" * 900 + b"]" * 900] * 300) + b"]}"
    assert len(body) > 500_000
    response = await hookd.client.post(
        agent["webhook_path"], data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert "levels deep" in (await response.json())["message"]
    assert hookd.count_rows() == 0


async def test_admin_bodies_have_the_same_nesting_limit(hookd: Hookd) -> None:
    body = {"name": "deep", "prompt": "p", "llm": nested(MAX_JSON_DEPTH + 1)}
    response = await hookd.client.post("/api/agents", json=body, headers=hookd.admin)
    assert response.status == 400
    assert "levels deep" in (await response.json())["message"]
    assert hookd.count_rows("agents") == 0


async def test_a_deep_payload_stored_before_the_limit_is_served_as_text(hookd: Hookd) -> None:
    """A task saved by an older hookd (no nesting limit) still has a page: its payload comes as
    its JSON text, where the view used to answer 500 (RecursionError)."""
    agent = await hookd.create_agent(status="paused")
    deep_json = '{"a":' + "[" * 980 + "]" * 980 + "}"
    task_id = "01900000-0000-7000-8000-00000000000d"
    with sqlite3.connect(hookd.settings.db) as conn:
        conn.execute(
            "INSERT INTO tasks (id, agent_id, payload, max_attempts, run_after, created_at)"
            " VALUES (?, ?, ?, 1, 0, 0)",
            (task_id, agent["id"], deep_json),
        )
    response = await hookd.client.get(f"/api/tasks/{task_id}", headers=hookd.admin)
    assert response.status == 200, await response.text()
    assert (await response.json())["payload"] == deep_json


# -- the rendered prompt -----------------------------------------------------------------


async def test_a_prompt_over_the_cap_fails_and_sends_nothing(make_hookd: Any, fake_llm: FakeLLM) -> None:
    hookd: Hookd = await make_hookd(max_prompt_bytes=20_000)
    agent = await hookd.create_agent(llm={"model": "cap-test"})
    task_id = await hookd.trigger(agent, {"question": "Summarise", "text": "x" * 25_000})
    body = await hookd.wait_for(task_id)
    assert body["status"] == "FAILURE"
    assert body["result"]["type"] == "prompt_too_large"
    assert "HOOKD_MAX_PROMPT_BYTES" in body["result"]["error"]
    assert fake_llm.calls_for("cap-test") == []


async def test_the_agents_own_prompt_counts_against_the_cap(make_hookd: Any, fake_llm: FakeLLM) -> None:
    hookd: Hookd = await make_hookd(max_prompt_bytes=20_000)
    agent = await hookd.create_agent(prompt="é" * 9_000, llm={"model": "cap-prompt"})  # 18,000 bytes
    task_id = await hookd.trigger(agent, {"question": "q" * 3_000})
    body = await hookd.wait_for(task_id)
    assert body["result"]["type"] == "prompt_too_large"
    assert fake_llm.calls_for("cap-prompt") == []


async def test_a_template_repeating_the_payload_is_charged_for_each_copy(
    make_hookd: Any, fake_llm: FakeLLM
) -> None:
    hookd: Hookd = await make_hookd(max_prompt_bytes=50_000)
    template = "{{payload}}" * 100
    agent = await hookd.create_agent(input_template=template, llm={"model": "cap-template"})
    task_id = await hookd.trigger(agent, {"text": "y" * 1_000})  # 1 KB, 100 times over
    assert (await hookd.wait_for(task_id))["result"]["type"] == "prompt_too_large"
    assert fake_llm.calls_for("cap-template") == []


async def test_a_payload_too_large_indented_is_sent_compact(make_hookd: Any, fake_llm: FakeLLM) -> None:
    """Indentation grows a payload nested d deep about d-fold; past the cap, the model gets
    the payload on one line instead of nothing."""
    hookd: Hookd = await make_hookd(max_prompt_bytes=200_000)
    payload = nested(MAX_JSON_DEPTH - 1, list(range(10_000)))  # ~60 KB compact, ~700 KB indented
    agent = await hookd.create_agent(llm={"model": "cap-compact"})
    task_id = await hookd.trigger(agent, payload)
    assert (await hookd.wait_for(task_id))["status"] == "SUCCESS"
    (call,) = fake_llm.calls_for("cap-compact")
    sent = call.body["messages"][-1]["content"]
    assert "\n" not in sent and json.loads(sent) == payload
    assert len(sent.encode()) < 200_000

    small = {"question": "Hi", "n": [1, 2]}
    task_id = await hookd.trigger(agent, small)
    await hookd.wait_for(task_id)
    assert fake_llm.calls_for("cap-compact")[-1].body["messages"][-1]["content"] == (
        'Hi\n\nContext:\n{\n  "n": [\n    1,\n    2\n  ]\n}'
    )


async def test_rendering_a_large_payload_leaves_the_event_loop_free(make_hookd: Any) -> None:
    """A payload that takes the indented encoder most of a second (up to the cap, after which
    it goes compact) renders off the event loop: a ticker on the loop keeps its pace."""
    hookd: Hookd = await make_hookd(max_prompt_bytes=24 << 20)
    payload = nested(MAX_JSON_DEPTH - 1, [0] * 400_000)  # 800 KB; about 27 MB indented
    agent = await hookd.create_agent(llm={"model": "render-lag"})
    body = io.BytesIO(json.dumps(payload, separators=(",", ":")).encode())
    response = await hookd.client.post(
        agent["webhook_path"], data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status == 200, await response.text()
    gaps_s: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps_s.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        task = await hookd.wait_for((await response.json())["task_id"], timeout_s=60)
    finally:
        ticker.cancel()
    assert task["status"] == "SUCCESS", task
    assert sum(gaps_s) > 0.5, "the rendering was too quick to tell anything"
    assert max(gaps_s) < 0.25, f"the event loop was held for {max(gaps_s):.3f} s"


# -- the stored result ---------------------------------------------------------------------


async def test_a_result_over_the_cap_is_not_stored(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(max_result_bytes=10_000)
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent, {"question": "z" * 20_000})  # answered back: 'You said: zzz…'
    body = await hookd.wait_for(task_id)
    assert body["status"] == "FAILURE"
    assert body["result"]["type"] == "result_too_large"
    assert "HOOKD_MAX_RESULT_BYTES" in body["result"]["error"]
    with sqlite3.connect(hookd.settings.db) as conn:
        ((stored,),) = conn.execute("SELECT length(result) FROM tasks WHERE id = ?", (task_id,))
    assert stored < 1_000

    fits = await hookd.trigger(agent, {"question": "z" * 5_000})
    assert (await hookd.wait_for(fits))["status"] == "SUCCESS"


# -- lists ---------------------------------------------------------------------------------


async def test_a_list_of_tasks_carries_previews_of_large_results(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd()
    agent = await hookd.create_agent()
    large = await hookd.trigger(agent, {"question": "w" * 100_000})
    small = await hookd.trigger(agent, {"question": "Hi"})
    for task_id in (large, small):
        assert (await hookd.wait_for(task_id))["status"] == "SUCCESS"

    response = await hookd.client.get("/api/tasks", headers=hookd.admin)
    text = await response.text()
    assert len(text) < 5_000
    tasks = {task["id"]: task for task in json.loads(text)["tasks"]}
    assert tasks[large]["result_truncated"] is True
    preview = tasks[large]["result"]
    assert preview["answer"] == "You said: " + "w" * 490 + "…"
    assert preview["model"] == "ok" and "usage" not in preview
    assert tasks[small]["result_truncated"] is False
    assert tasks[small]["result"]["answer"] == "You said: Hi"
    assert all("payload" not in task for task in tasks.values())

    whole = await (await hookd.client.get(f"/api/tasks/{large}", headers=hookd.admin)).json()
    assert whole["result"]["answer"] == "You said: " + "w" * 100_000
    assert whole["payload"] == {"question": "w" * 100_000}


# -- HOOKD_MAX_PENDING under concurrency ---------------------------------------------------


@pytest.mark.parametrize("senders", [100, 400])
async def test_max_pending_holds_for_concurrent_senders(make_hookd: Any, senders: int) -> None:
    hookd: Hookd = await make_hookd(max_pending=10)
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, max_concurrency=1)
    running = await hookd.trigger(agent)
    await hookd.wait_for(running, ("STARTED",))

    async def send(n: int) -> int:
        response = await hookd.client.post(agent["webhook_path"], json={"n": n})
        await response.read()
        return response.status

    statuses = await asyncio.gather(*(send(n) for n in range(senders)))
    assert statuses.count(200) == 10
    assert statuses.count(429) == senders - 10
    with sqlite3.connect(hookd.settings.db) as conn:
        ((pending,),) = conn.execute("SELECT count(*) FROM tasks WHERE status = 'PENDING'")
    assert pending == 10


# -- health ----------------------------------------------------------------------------------


async def test_health_costs_the_same_at_any_queue_depth(hookd: Hookd) -> None:
    """No count over the queue per call: 200 health checks at 200,000 waiting tasks take about
    the CPU time of 200 requests (a count(*) over that queue costs tens of ms each)."""
    agent = await hookd.create_agent(status="paused")
    with sqlite3.connect(hookd.settings.db) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)"
            " INSERT INTO tasks (id, agent_id, payload, max_attempts, run_after, created_at)"
            " SELECT printf('01900000-0000-7000-8000-%012d', i), ?, '{}', 1, 0, 0 FROM n",
            (agent["id"],),
        )
    deadline = time.monotonic() + 10
    while (await (await hookd.client.get("/api/health")).json())["queue_depth"] != 200_000:
        assert time.monotonic() < deadline, "the pool never counted the queue"
        await asyncio.sleep(0.05)

    cpu_started_s = time.process_time()
    for _ in range(200):
        response = await hookd.client.get("/api/health")
        assert (await response.json())["queue_depth"] == 200_000
    cpu_s = time.process_time() - cpu_started_s
    assert cpu_s < 1.0, f"200 health checks took {cpu_s:.2f} s of CPU"


# -- file modes --------------------------------------------------------------------------------


async def test_database_files_are_created_readable_by_their_owner_only(make_hookd: Any) -> None:
    previous = os.umask(0o022)  # a normal umask, under which files are made 0644
    try:
        hookd: Hookd = await make_hookd()
        agent = await hookd.create_agent()
        await hookd.wait_for(await hookd.trigger(agent))
    finally:
        os.umask(previous)
    db = hookd.settings.db
    modes = {path: stat.S_IMODE(os.stat(path).st_mode) for path in (db, db + "-wal", db + "-shm")}
    assert modes == dict.fromkeys(modes, 0o600)


async def test_a_database_others_can_read_is_warned_about(
    make_hookd: Any, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_settings().db
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))  # as an older hookd left it
    os.chmod(path, 0o644)
    await make_hookd()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("can be read by other users (mode 0644)" in w and "chmod 600" in w for w in warnings)
