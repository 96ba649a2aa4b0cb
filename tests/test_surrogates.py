"""A model's answer holding an unpaired UTF-16 surrogate (valid JSON, but UTF-8 has no form for
it; the store keeps it escaped) through the paths that write it out as bytes. The callback and
the event stream are tested in test_callbacks.py and test_push.py."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Hookd
from tests.fake_llm import FakeLLM
from tests.test_cli import Cli


async def test_tasks_show_and_list_print_an_answer_holding_a_lone_surrogate(hookd: Hookd) -> None:
    agent = await hookd.create_agent(llm={"model": "mode=surrogate"})
    task_id = await hookd.trigger(agent, {"question": "x"})
    assert (await hookd.wait_for(task_id))["status"] == "SUCCESS"
    cli = Cli(Path(hookd.settings.db))

    shown = cli.json("tasks", "show", task_id)
    assert shown["result"]["answer"] == "half \ud800 a pair"
    (listed,) = cli.json("tasks", "list", "--json")
    assert listed["id"] == task_id and listed["status"] == "SUCCESS"
    # Anything UTF-8 can carry is still printed as itself.
    assert "é" in cli("agents", "show", (await hookd.create_agent(name="café"))["id"])
    assert "café" in {a["name"] for a in json.loads(cli("agents", "list", "--json"))}


async def test_an_answer_holding_a_lone_surrogate_can_be_sent_back_to_the_model(
    hookd: Hookd, fake_llm: FakeLLM
) -> None:
    """A structured answer that does not fit is sent back once; this one is not JSON at all."""
    agent = await hookd.create_agent(llm={"model": "mode=surrogate"}, json_schema={"type": "object"})
    done = await hookd.wait_for(await hookd.trigger(agent, {"question": "x"}))
    assert done["status"] == "FAILURE" and done["result"]["type"] == "schema_mismatch", done
    calls = fake_llm.calls_for("mode=surrogate")
    assert len(calls) == 2
    assert calls[1].body["messages"][-2]["content"] == "half \ud800 a pair"
