"""Agent runs: what the model is sent, the providers' wire formats, retries, timeouts, concurrency."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from typing import Any

import pytest

from tests.conftest import Hookd
from tests.fake_llm import FakeLLM


def sent_messages(fake: FakeLLM, model: str = "ok") -> list[dict[str, Any]]:
    (call,) = fake.calls_for(model)
    messages: list[dict[str, Any]] = call.body["messages"]
    return messages


async def test_system_prompt_and_question(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent(prompt="You triage support mail.")
    task_id = await hookd.trigger(agent, {"question": "Where is my parcel?"})
    assert (await hookd.wait_for(task_id))["status"] == "SUCCESS"
    assert sent_messages(fake_llm) == [
        {"role": "system", "content": "You triage support mail."},
        {"role": "user", "content": "Where is my parcel?"},
    ]


async def test_other_fields_follow_as_json_context(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent()
    await hookd.wait_for(
        await hookd.trigger(agent, {"question": "Status?", "order": {"id": 42, "city": "Köln"}})
    )
    user = sent_messages(fake_llm)[-1]["content"]
    assert user == 'Status?\n\nContext:\n{\n  "order": {\n    "id": 42,\n    "city": "Köln"\n  }\n}'


async def test_without_a_question_the_payload_is_the_message(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent()
    payload = {"event": "door_opened", "where": "Küche", "question": 5}
    await hookd.wait_for(await hookd.trigger(agent, payload))
    user = sent_messages(fake_llm)[-1]["content"]
    assert json.loads(user) == payload
    assert "Küche" in user  # UTF-8, not \\u-escaped


async def test_input_template_is_plain_substitution(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent(
        input_template="Repo {{payload.repository.name}}, first label {{ payload.labels.0 }}: {{question}}"
        " | missing=[{{payload.nope.deeper}}] | all={{payload}}"
    )
    payload = {"question": "{{payload}}", "repository": {"name": "hookd"}, "labels": ["bug", "ui"]}
    await hookd.wait_for(await hookd.trigger(agent, payload))
    user = sent_messages(fake_llm)[-1]["content"]
    head, _, rest = user.partition(" | ")
    # The question's own "{{payload}}" is inserted as text, never expanded again.
    assert head == "Repo hookd, first label bug: {{payload}}"
    missing, _, whole = rest.partition(" | ")
    assert missing == "missing=[]"
    assert json.loads(whole.removeprefix("all=")) == payload


async def test_anthropic_wire_format(
    hookd: Hookd, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test")
    agent = await hookd.create_agent(
        prompt="Be kind.",
        llm={
            "provider": "anthropic",
            "model": "claude-fake",
            "base_url": fake_llm.url,
            "api_key_env": "TEST_ANTHROPIC_KEY",
        },
    )
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "hello"}))
    assert done["status"] == "SUCCESS"
    assert done["result"] == {
        "answer": "You said: hello",
        "model": "claude-fake",
        "usage": {"input_tokens": 7, "output_tokens": 3},
    }
    (call,) = fake_llm.calls_for("claude-fake")
    assert call.path == "/v1/messages"
    assert call.headers["x-api-key"] == "sk-ant-test"
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.body["system"] == "Be kind."
    assert call.body["messages"] == [{"role": "user", "content": "hello"}]
    assert call.body["max_tokens"] > 0


async def test_openai_key_from_api_key_env(
    hookd: Hookd, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-123")
    agent = await hookd.create_agent(
        llm={
            "provider": "openai",
            "model": "gpt-fake",
            "base_url": fake_llm.url + "/v1",
            "api_key_env": "TEST_OPENAI_KEY",
        }
    )
    await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    (call,) = fake_llm.calls_for("gpt-fake")
    assert call.path == "/v1/chat/completions"
    assert call.headers["Authorization"] == "Bearer sk-test-123"


async def test_missing_key_variable_fails_clearly(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent(llm={"api_key_env": "TEST_UNSET_VARIABLE"})
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "FAILURE" and done["attempts"] == 1
    assert done["result"]["type"] == "config_error"
    assert "TEST_UNSET_VARIABLE" in done["result"]["error"]
    assert fake_llm.calls == []


async def test_default_key_goes_only_to_the_default_base_url(make_hookd: Any, fake_llm: FakeLLM) -> None:
    hookd: Hookd = await make_hookd(llm_api_key="sk-default")
    default = await hookd.create_agent(llm={"model": "to-default"})
    # The same server under another name: hookd cannot know it is the same, so no key.
    own_url = fake_llm.url.replace("127.0.0.1", "localhost") + "/v1"
    own = await hookd.create_agent(llm={"model": "to-own", "base_url": own_url})
    for agent in (default, own):
        await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert fake_llm.calls_for("to-default")[0].headers["Authorization"] == "Bearer sk-default"
    assert "Authorization" not in fake_llm.calls_for("to-own")[0].headers


OWN_VARIABLES = [
    (
        {"llm": {"api_key_env": "HOOKD_LLM_API_KEY", "base_url": "https://attacker.example/v1"}},
        "'llm.api_key_env'",
    ),
    ({"llm": {"api_key_env": "Hookd_Admin_Key"}}, "'llm.api_key_env'"),
    (
        {
            "tools": [
                {
                    "type": "notify",
                    "server": "https://attacker.example",
                    "topic": "t",
                    "api_key_env": "HOOKD_ADMIN_KEY",
                }
            ]
        },
        "'tools[0].api_key_env'",
    ),
    (
        {"mcp_servers": [{"name": "s", "command": ["python"], "env_from": {"TOKEN": "HOOKD_METRICS_KEY"}}]},
        "'mcp_servers[0].env_from.TOKEN'",
    ),
    (
        {
            "mcp_servers": [
                {
                    "name": "s",
                    "url": "https://attacker.example/mcp",
                    "headers_env": {"X-Key": "HOOKD_ADMIN_KEY"},
                }
            ]
        },
        "'mcp_servers[0].headers_env.X-Key'",
    ),
]


@pytest.mark.parametrize(("fields", "named"), OWN_VARIABLES)
async def test_no_agent_may_send_hookds_own_keys(hookd: Hookd, fields: dict[str, Any], named: str) -> None:
    """HOOKD_* variables are hookd's settings: its admin key, its metrics key, the default model's
    key. Naming one as an agent's secret would send it to a server of the agent's choosing."""
    for response in (
        await hookd.client.post("/api/agents", json={"name": "x"} | fields, headers=hookd.admin),
        await hookd.client.patch(
            f"/api/agents/{(await hookd.create_agent())['id']}", json=fields, headers=hookd.admin
        ),
    ):
        body = await response.json()
        assert response.status == 400, body
        assert named in body["message"] and "starting with HOOKD_ are hookd's own settings" in body["message"]
    assert hookd.count_rows("agents") == 1  # the one made to be changed, unchanged:
    (agent,) = (await (await hookd.client.get("/api/agents", headers=hookd.admin)).json())["agents"]
    assert agent["llm"]["api_key_env"] is None and agent["tools"] == agent["mcp_servers"] == []


async def test_an_agent_saved_naming_hookds_own_key_runs_without_it(
    make_hookd: Any, fake_llm: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent saved before such names were refused: its run fails before the model is asked."""
    monkeypatch.setenv("HOOKD_LLM_API_KEY", "sk-default")  # as hookd serve would have it
    hookd: Hookd = await make_hookd(llm_api_key="sk-default")
    own_url = fake_llm.url.replace("127.0.0.1", "localhost") + "/v1"
    agent = await hookd.create_agent(llm={"model": "steal", "base_url": own_url, "api_key_env": "OTHER_KEY"})
    llm = json.dumps({"model": "steal", "base_url": own_url, "api_key_env": "HOOKD_LLM_API_KEY"})
    with sqlite3.connect(hookd.settings.db) as conn:
        conn.execute("UPDATE agents SET llm = ? WHERE id = ?", (llm, agent["id"]))
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "FAILURE" and done["result"]["type"] == "config_error", done
    assert (
        "HOOKD_LLM_API_KEY" in done["result"]["error"] and "hookd's own settings" in done["result"]["error"]
    )
    assert fake_llm.calls == []


async def test_echo_needs_no_model(make_hookd: Any, fake_llm: FakeLLM) -> None:
    hookd: Hookd = await make_hookd(llm_provider="echo", llm_base_url="http://127.0.0.1:9/v1")
    agent = await hookd.create_agent(prompt="Sys.")
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "héllo"}))
    assert done["status"] == "SUCCESS"
    assert json.loads(done["result"]["answer"]) == [
        {"role": "system", "content": "Sys."},
        {"role": "user", "content": "héllo"},
    ]
    assert done["result"]["model"] == "echo"
    assert fake_llm.calls == []


async def test_transient_errors_are_retried_until_success(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent(llm={"model": "fail=2,status=503"}, max_attempts=3)
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "SUCCESS" and done["attempts"] == 3
    assert len(fake_llm.calls_for("fail=2,status=503")) == 3


async def test_retries_run_out_with_the_providers_message(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent(llm={"model": "fail=9,status=500"}, max_attempts=2)
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "FAILURE" and done["attempts"] == 2
    assert done["result"]["type"] == "llm_http_error"
    assert "HTTP 500" in done["result"]["error"] and "fake failure 2 with 500" in done["result"]["error"]
    assert "attempt 2 of 2" in done["result"]["error"]


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_other_client_errors_fail_at_once(hookd: Hookd, fake_llm: FakeLLM, status: int) -> None:
    model = f"fail=9,status={status}"
    agent = await hookd.create_agent(llm={"model": model}, max_attempts=3)
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "FAILURE" and done["attempts"] == 1
    assert f"HTTP {status}" in done["result"]["error"]
    assert len(fake_llm.calls_for(model)) == 1


async def test_retry_status_is_visible_between_attempts(make_hookd: Any, fake_llm: FakeLLM) -> None:
    hookd: Hookd = await make_hookd(retry_backoff_s=30)
    agent = await hookd.create_agent(llm={"model": "fail=1,status=502"})
    task_id = await hookd.trigger(agent, {"question": "x"})
    waiting = await hookd.wait_for(task_id, ("RETRY",))
    assert waiting["result"] is None
    assert waiting["last_error"]["type"] == "llm_http_error"
    assert waiting["next_attempt_at"] > waiting["created_at"]


async def test_429_retry_after_is_honoured(hookd: Hookd, fake_llm: FakeLLM) -> None:
    model = "fail=1,status=429,retry_after=1"
    agent = await hookd.create_agent(llm={"model": model})
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "SUCCESS" and done["attempts"] == 2
    first, second = fake_llm.calls_for(model)
    assert second.started_at - first.started_at >= 1.0  # not the 0.05 s backoff


async def test_unreachable_model_is_retried_then_fails(hookd: Hookd) -> None:
    with socket.socket() as probe:  # a port that refuses connections
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    agent = await hookd.create_agent(llm={"base_url": f"http://127.0.0.1:{closed_port}/v1"}, max_attempts=2)
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "FAILURE" and done["attempts"] == 2
    assert done["result"]["type"] == "llm_unreachable"
    assert f"127.0.0.1:{closed_port}" in done["result"]["error"]


@pytest.mark.parametrize(
    ("mode", "error_type"),
    [("reset", "llm_unreachable"), ("badjson", "llm_bad_response"), ("short", "llm_bad_response")],
)
async def test_broken_answers_are_retried(
    hookd: Hookd, fake_llm: FakeLLM, mode: str, error_type: str
) -> None:
    agent = await hookd.create_agent(llm={"model": f"mode={mode}"}, max_attempts=2)
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "FAILURE" and done["attempts"] == 2
    assert done["result"]["type"] == error_type, done["result"]


async def test_each_run_has_its_own_timeout(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, timeout_s=0.2, max_attempts=2)
    quick = await hookd.create_agent()
    slow_id = await hookd.trigger(agent, {"question": "x"})
    quick_id = await hookd.trigger(quick, {"question": "y"})
    assert (await hookd.wait_for(quick_id))["status"] == "SUCCESS"
    done = await hookd.wait_for(slow_id)
    assert done["status"] == "FAILURE" and done["attempts"] == 2
    assert done["result"]["type"] == "timeout"
    assert "0.2 s" in done["result"]["error"]


async def run_many(hookd: Hookd, model: str, count: int, **agent_fields: Any) -> float:
    agent = await hookd.create_agent(llm={"model": model}, **agent_fields)
    started = time.monotonic()
    await asyncio.gather(*(hookd.trigger(agent, {"n": i}) for i in range(count)))
    results = await hookd.wait_for_agent(agent["id"], count)
    assert [r["status"] for r in results] == ["SUCCESS"] * count
    return time.monotonic() - started


async def test_100_workers_run_100_slow_tasks_at_once(make_hookd: Any, fake_llm: FakeLLM) -> None:
    hookd: Hookd = await make_hookd(workers=100)
    wall_s = await run_many(hookd, "sleep=0.5", 100)
    assert fake_llm.max_in_flight["sleep=0.5"] == 100
    assert wall_s < 0.5 * 5  # about one run's time; far from the 50 s of one at a time


async def test_8_workers_is_the_default_bound(hookd: Hookd, fake_llm: FakeLLM) -> None:
    wall_s = await run_many(hookd, "sleep=0.5", 100)
    assert fake_llm.max_in_flight["sleep=0.5"] == 8
    assert 0.5 * 13 <= wall_s < 0.5 * 13 * 2  # ceil(100 / 8) = 13 rounds


async def test_agent_max_concurrency_holds(make_hookd: Any, fake_llm: FakeLLM) -> None:
    hookd: Hookd = await make_hookd(workers=50)
    capped = await hookd.create_agent(llm={"model": "sleep=0.5,capped"}, max_concurrency=3)
    free = await hookd.create_agent(llm={"model": "sleep=0.5,free"})
    for agent in (capped, free):  # each agent's twelve at once, so that a slow machine cannot
        # spread them over longer than a run takes (then fewer would be in flight together)
        await asyncio.gather(*(hookd.trigger(agent, {"n": i}) for i in range(12)))
    for agent in (capped, free):
        assert {t["status"] for t in await hookd.wait_for_agent(agent["id"], 12)} == {"SUCCESS"}
    assert fake_llm.max_in_flight["sleep=0.5,capped"] == 3
    assert fake_llm.max_in_flight["sleep=0.5,free"] == 12


async def test_paused_agents_tasks_wait_until_resumed(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, max_concurrency=1)
    blocker = await hookd.trigger(agent)
    waiting = await hookd.trigger(agent, {"question": "later"})
    await hookd.wait_for(blocker, ("STARTED",))
    await hookd.client.patch(
        f"/api/agents/{agent['id']}", json={"status": "paused", "llm": {"model": "ok"}}, headers=hookd.admin
    )
    await hookd.client.post(f"/api/tasks/{blocker}/cancel", headers=hookd.admin)
    await asyncio.sleep(0.2)  # a paused agent's queued task must not start; give it the chance to
    assert (await hookd.status(waiting))["status"] == "PENDING"
    await hookd.client.patch(f"/api/agents/{agent['id']}", json={"status": "active"}, headers=hookd.admin)
    done = await hookd.wait_for(waiting)
    assert done["status"] == "SUCCESS" and done["result"]["answer"] == "You said: later"


async def test_an_answer_sqlite_cannot_store_as_utf8_is_kept_escaped(hookd: Hookd, fake_llm: FakeLLM) -> None:
    agent = await hookd.create_agent(llm={"model": "mode=surrogate"})
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "SUCCESS"
    assert done["result"]["answer"] == "half \ud800 a pair"
