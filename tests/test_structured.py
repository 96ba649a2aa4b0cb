"""Structured output: an agent's json_schema in both wire formats, the answer checked, one
correction with the error shown to the model, then FAILURE schema_mismatch; bad schemas refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import Hookd
from tests.fake_llm import FakeLLM

SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "priority": {"type": "integer", "minimum": 1, "maximum": 3},
    },
    "required": ["summary", "priority"],
    "additionalProperties": False,
}
GOOD = {"summary": "Parcel lost", "priority": 2}
BAD = {"summary": "Parcel lost", "priority": "urgent"}
BAD_REASON = "at $.priority: 'urgent' is not of type 'integer'"
PAYLOAD = {"good": GOOD, "bad": BAD}


def llm(fake_llm: FakeLLM, provider: str, model: str) -> dict[str, str]:
    if provider == "anthropic":
        return {"provider": "anthropic", "model": model, "base_url": fake_llm.url}
    return {"model": model}


async def run(hookd: Hookd, fake_llm: FakeLLM, provider: str, model: str, **fields: Any) -> dict[str, Any]:
    agent = await hookd.create_agent(llm=llm(fake_llm, provider, model), json_schema=SCHEMA, **fields)
    return await hookd.wait_for(await hookd.trigger(agent, PAYLOAD))


def feedback(fake_llm: FakeLLM, model: str, provider: str) -> str:
    """What the model was told about its answer, in the second request."""
    last = fake_llm.calls_for(model)[1].body["messages"][-1]
    if provider == "openai":
        assert last["role"] == "user"
        return str(last["content"])
    (block,) = last["content"]
    assert block["type"] == "tool_result" and block["is_error"] is True
    assert block["tool_use_id"] == "toolu_1_answer"
    return str(block["content"])


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_a_valid_answer_is_the_structured_result(
    hookd: Hookd, fake_llm: FakeLLM, provider: str
) -> None:
    done = await run(hookd, fake_llm, provider, "json=good")
    assert done["status"] == "SUCCESS", done
    assert done["result"]["structured"] == GOOD
    assert json.loads(done["result"]["answer"]) == GOOD
    assert "tool_calls" not in done["result"]  # the agent has no tools
    (call,) = fake_llm.calls_for("json=good")
    if provider == "openai":
        assert call.body["response_format"] == {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True},
        }
    else:
        assert call.body["tool_choice"] == {"type": "tool", "name": "final_answer"}
        (tool,) = call.body["tools"]
        assert (tool["name"], tool["input_schema"]) == ("final_answer", SCHEMA)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_an_invalid_answer_is_corrected_once(hookd: Hookd, fake_llm: FakeLLM, provider: str) -> None:
    model = "json=bad-then-good"
    done = await run(hookd, fake_llm, provider, model)
    assert (done["status"], done["attempts"]) == ("SUCCESS", 1), done
    assert done["result"]["structured"] == GOOD
    assert len(fake_llm.calls_for(model)) == 2
    assert BAD_REASON in feedback(fake_llm, model, provider)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_two_invalid_answers_fail_as_schema_mismatch(
    hookd: Hookd, fake_llm: FakeLLM, provider: str
) -> None:
    model = "json=bad-then-bad"
    done = await run(hookd, fake_llm, provider, model, max_attempts=3)
    assert (done["status"], done["attempts"]) == ("FAILURE", 1), done
    assert done["result"]["type"] == "schema_mismatch"
    assert BAD_REASON in done["result"]["error"]
    assert len(fake_llm.calls_for(model)) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_an_answer_that_is_not_json_is_corrected(
    hookd: Hookd, fake_llm: FakeLLM, provider: str
) -> None:
    model = "json=notjson-then-good"
    done = await run(hookd, fake_llm, provider, model)
    assert done["result"]["structured"] == GOOD, done
    last = fake_llm.calls_for(model)[1].body["messages"][-1]
    assert last["role"] == "user"  # Anthropic too: a text answer, no tool_use to answer
    expected = (
        "the answer is not JSON" if provider == "openai" else "was not given through the final_answer tool"
    )
    assert expected in last["content"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_tools_first_then_a_structured_answer(hookd: Hookd, fake_llm: FakeLLM, provider: str) -> None:
    model = "tool=notify,json=good"
    agent = await hookd.create_agent(
        llm=llm(fake_llm, provider, model),
        json_schema=SCHEMA,
        tools=[{"type": "notify", "server": "http://127.0.0.1:1", "topic": "t", "allow_private": True}],
    )
    done = await hookd.wait_for(await hookd.trigger(agent, PAYLOAD | {"args": {"message": "hi"}}))
    assert done["status"] == "SUCCESS", done
    assert done["result"]["structured"] == GOOD
    assert "could not connect" in done["result"]["tool_calls"][0]["error"]
    if provider == "anthropic":  # the model may call other tools before the answer
        assert fake_llm.calls_for(model)[0].body["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(
    ("json_schema", "message"),
    [
        ([1], "'json_schema' must be a JSON Schema object"),
        ({"type": "string"}, 'its root needs "type": "object"'),
        ({"type": "object", "properties": {"a": {"type": "nope"}}}, "not a valid JSON Schema (2020-12): at"),
        ({"type": "object", "required": "a"}, "'a' is not of type 'array'"),
        (
            {"type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}},
            "may only $ref its own",
        ),
    ],
)
async def test_a_bad_json_schema_is_refused(hookd: Hookd, json_schema: Any, message: str) -> None:
    response = await hookd.client.post(
        "/api/agents", json={"name": "s", "json_schema": json_schema}, headers=hookd.admin
    )
    body = await response.json()
    assert response.status == 400 and message in body["message"], body
    assert hookd.count_rows("agents") == 0


async def test_the_schema_is_kept_and_can_be_removed(hookd: Hookd) -> None:
    agent = await hookd.create_agent(json_schema=SCHEMA)
    response = await hookd.client.get(f"/api/agents/{agent['id']}", headers=hookd.admin)
    assert (await response.json())["json_schema"] == SCHEMA
    response = await hookd.client.patch(
        f"/api/agents/{agent['id']}", json={"json_schema": None}, headers=hookd.admin
    )
    assert (await response.json())["json_schema"] is None
