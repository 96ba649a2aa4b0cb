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
    """A payload whose indented rendering runs to 24 MiB (the cap here, after which it goes
    compact) — about a second of the encoder's Python code — is accepted and rendered while a
    ticker on the event loop keeps its pace: it is never held for more than a sliver of that."""
    hookd: Hookd = await make_hookd(max_prompt_bytes=24 << 20)
    payload = nested(MAX_JSON_DEPTH - 1, [0] * 400_000)  # 800 KB compact; about 27 MB indented
    agent = await hookd.create_agent(llm={"model": "render-lag"})
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
        body = io.BytesIO(json.dumps(payload, separators=(",", ":")).encode())
        response = await hookd.client.post(
            agent["webhook_path"], data=body, headers={"Content-Type": "application/json"}
        )
        assert response.status == 200, await response.text()
        task = await hookd.wait_for((await response.json())["task_id"], timeout_s=60)
    finally:
        ticker.cancel()
    assert task["status"] == "SUCCESS", task
    assert max(gaps_s) < 0.15, f"the event loop was held for {max(gaps_s):.3f} s"


async def test_a_non_ascii_payload_too_large_indented_is_sent_compact(
    make_hookd: Any, fake_llm: FakeLLM
) -> None:
    """Bytes, not characters, decide: 18,015 characters indented are 24,015 bytes, over the cap,
    and the 18,007 bytes compact are under it."""
    hookd: Hookd = await make_hookd(max_prompt_bytes=20_000 + len("Be brief."))
    agent = await hookd.create_agent(llm={"model": "cap-bytes"})
    payload = {"a": ["éééé"] * 1500}
    task_id = await hookd.trigger(agent, payload)
    assert (await hookd.wait_for(task_id))["status"] == "SUCCESS"
    (call,) = fake_llm.calls_for("cap-bytes")
    sent = call.body["messages"][-1]["content"]
    assert "\n" not in sent and json.loads(sent) == payload


async def test_an_agent_prompt_over_the_cap_says_so(make_hookd: Any) -> None:
    hookd: Hookd = await make_hookd(max_prompt_bytes=1_000)
    agent = await hookd.create_agent(prompt="p" * 2_000)
    body = await hookd.wait_for(await hookd.trigger(agent, {"question": "q"}))
    assert body["result"]["type"] == "prompt_too_large"
    assert "The agent's prompt alone is 2000 bytes" in body["result"]["error"]


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


async def test_a_result_stored_too_deep_by_an_older_hookd_reads_as_a_failure(hookd: Hookd) -> None:
    """Such a result used to make the task page, the whole task list and task_status 500."""
    agent = await hookd.create_agent(status="paused")
    task_id = "01900000-0000-7000-8000-00000000000e"
    deep = '{"answer":"a","model":"m","usage":{},"structured":' + "[" * 980 + "]" * 980 + "}"
    with sqlite3.connect(hookd.settings.db) as conn:
        conn.execute(
            "INSERT INTO tasks (id, agent_id, status, payload, result, max_attempts, run_after,"
            " created_at, finished_at) VALUES (?, ?, 'SUCCESS', '{}', ?, 1, 0, 0, 0)",
            (task_id, agent["id"], deep),
        )
    for path in (f"/api/tasks/{task_id}", "/api/tasks", f"/api/task_status?task_id={task_id}"):
        response = await hookd.client.get(path, headers=hookd.admin)
        assert response.status == 200, (path, await response.text())
    status = await hookd.status(task_id)
    assert status["result"]["type"] == "result_too_large"
    assert "nested deeper than 64 levels" in status["result"]["error"]


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
    assert preview == {"model": "ok", "answer": "You said: " + "w" * 490 + "…"}
    assert tasks[small]["result_truncated"] is False
    assert tasks[small]["result"]["answer"] == "You said: Hi"
    assert all("payload" not in task for task in tasks.values())

    whole = await (await hookd.client.get(f"/api/tasks/{large}", headers=hookd.admin)).json()
    assert whole["result"]["answer"] == "You said: " + "w" * 100_000
    assert whole["payload"] == {"question": "w" * 100_000}


# -- HOOKD_MAX_PENDING under concurrency ---------------------------------------------------


async def test_a_slow_body_holds_no_place_in_the_queue(make_hookd: Any) -> None:
    """A place is held only from the body's end to the commit: senders trickling their bodies
    (up to HOOKD_BODY_TIMEOUT_S) cannot fill the queue for everyone else."""
    hookd: Hookd = await make_hookd(max_pending=2)
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, max_concurrency=1)
    running = await hookd.trigger(agent)
    await hookd.wait_for(running, ("STARTED",))
    host, port = hookd.client.server.host, hookd.client.server.port
    trickling = []
    for _ in range(2):
        _, writer = await asyncio.open_connection(host, port)
        writer.write(
            f"POST {agent['webhook_path']} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
        await writer.drain()
        trickling.append(writer)
    try:
        await asyncio.sleep(0.2)  # the two requests are in their handlers, waiting for their bodies
        for n in range(2):  # the two places the slow senders would have held
            await hookd.trigger(agent, {"n": n})
        refused = await hookd.client.post(agent["webhook_path"], json={"n": 3})
        assert refused.status == 429
    finally:
        for writer in trickling:
            writer.close()


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


async def test_an_empty_database_file_is_made_private(make_hookd: Any, make_settings: Any) -> None:
    """A file made empty in advance (touch, a volume's mount) holds nothing yet: made 0600 too."""
    path = make_settings().db
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    os.chmod(path, 0o644)
    await make_hookd()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


async def test_a_database_others_can_read_is_warned_about(
    make_hookd: Any, make_settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    path = make_settings().db
    with sqlite3.connect(path) as conn:  # a database as an older hookd left it, 0644
        conn.execute("CREATE TABLE made_before (x)")
    os.chmod(path, 0o644)
    await make_hookd()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("can be read by other users (mode 0644)" in w and "chmod 600" in w for w in warnings)
