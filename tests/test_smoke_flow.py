from tests.conftest import Hookd


async def test_webhook_to_success(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent, {"question": "ping"})
    body = await hookd.wait_for(task_id)
    assert body["status"] == "SUCCESS"
    assert body["result"]["answer"] == "You said: ping"
