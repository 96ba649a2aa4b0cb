"""The admin page and the newer admin features, in Debian's Chromium (fixtures: tests/web_ui.py):
a signed agent with a callback, made in the form, its task, its deliveries and its callback
secret; tools and a JSON schema from the form, and the task page's tool calls and structured
answer; the task page following the task's event stream, or polling without it.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp.web import Application, Request, Response
from playwright.async_api import Route, expect

from tests.remote import poll
from tests.web_ui import MakeWeb, Web, make_web_fixture, web_fixture

FIXTURES = (make_web_fixture, web_fixture)  # imported for pytest, which finds them by name
SCHEMA = {
    "type": "object",
    "properties": {"summary": {"type": "string"}, "priority": {"type": "integer"}},
    "required": ["summary", "priority"],
    "additionalProperties": False,
}


@dataclass
class Receiver:
    """A callback receiver on 127.0.0.1: /hook answers `statuses` in turn, then 200; /gone 410."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.read()))
        return Response(status=self.statuses.pop(0) if self.statuses else 200)

    async def gone(self, request: Request) -> Response:
        return Response(status=410)

    def app(self) -> Application:
        app = Application()
        app.router.add_post("/hook", self.hook)
        app.router.add_post("/gone", self.gone)
        return app


def standard_webhooks_mac(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """The Standard Webhooks signature, computed here as a sender or receiver would (the spec)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


async def send_signed(web: Web, url: str, secret: str, payload: dict[str, Any]) -> str:
    body = json.dumps(payload).encode()
    msg_id, timestamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": standard_webhooks_mac(secret, msg_id, timestamp, body),
    }
    response = await web.hookd.client.session.post(url, data=body, headers=headers)
    answer = await response.json()
    assert response.status == 200, answer
    return str(answer["task_id"])


async def run_snippet(python: str, env: dict[str, str]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        python,
        env=os.environ | env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    answer: dict[str, Any] = ast.literal_eval(out.decode())  # the snippet prints a dict
    return answer


async def test_a_signed_agent_with_a_callback(make_web: MakeWeb, aiohttp_server: Any) -> None:
    web = await make_web(callback_allow_private=True)  # the receiver is on 127.0.0.1
    page = web.page
    receiver = Receiver(statuses=[500])  # the first callback is refused once, then delivered
    server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    receiver.url = str(server.make_url("/hook"))

    # The form: a callback URL, and a Standard Webhooks secret made in the browser.
    await web.open_signed_in()
    await page.get_by_role("link", name="Agents", exact=True).click()
    await page.get_by_role("link", name="New agent").click()
    await page.get_by_label("Name", exact=True).fill("signed")
    await page.get_by_label("Callback URL", exact=True).fill(receiver.url)
    await expect(page.get_by_label("Signing secret", exact=True)).to_be_hidden()
    await page.get_by_label("Require a signature", exact=True).select_option("standard-webhooks")
    await page.get_by_role("button", name="Generate", exact=True).click()
    secret = await page.get_by_label("Signing secret", exact=True).input_value()
    assert re.fullmatch(r"whsec_[A-Za-z0-9+/]{43}=", secret), secret  # 32 random bytes
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    await expect(page.locator("#agent-signature-status")).to_contain_text("never shows it again")
    await page.get_by_role("button", name="Copy", exact=True).click()
    await expect(page.locator("#agent-signature-status")).to_have_text("Copied: signing secret.")
    assert await page.evaluate("navigator.clipboard.readText()") == secret
    await web.screenshot("agent-form-signed")
    await page.get_by_role("button", name="Create agent").click()

    # Shown once: the URL, the secret, and a Python snippet that signs with it.
    dialog = page.get_by_role("dialog", name="Webhook URL for signed")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#webhook-signed")).to_contain_text("standard-webhooks")
    await expect(page.get_by_label("Signing secret for the sender", exact=True)).to_have_value(secret)
    await expect(page.locator("#curl-box")).to_be_hidden()  # curl alone cannot sign
    url = await page.get_by_label("Webhook URL", exact=True).input_value()
    python = await page.locator("#python-snippet").text_content()
    assert python is not None and secret not in python  # read from the environment
    await web.screenshot("webhook-url-signed")
    snippet_task = (await run_snippet(python, {"WEBHOOK_SECRET": secret}))["task_id"]
    await dialog.get_by_role("button", name="I have saved it").click()
    await expect(page.locator("#webhook-secret")).to_have_value("")  # not kept once the dialog is closed

    _, agents = await web.api("GET", "/api/agents")
    (agent,) = agents["agents"]
    assert (agent["signature"], agent["callback_url"]) == ({"type": "standard-webhooks"}, receiver.url)
    assert secret not in json.dumps(agent)
    unsigned = await web.hookd.client.session.post(url, json={"question": "unsigned"})
    assert unsigned.status == 401

    # The snippet's task: the callback was refused once (HTTP 500), then delivered.
    await page.goto(f"{web.url}#/tasks/{snippet_task}")
    await expect(page.locator("#task-status")).to_have_text("SUCCESS")
    delivery = page.locator("#task-deliveries tbody tr")
    await expect(delivery).to_have_count(1)
    await expect(delivery.locator("td").nth(0)).to_have_text("delivered")
    await expect(delivery.locator("td").nth(1)).to_have_text("2")
    await expect(delivery.locator("td").nth(2)).to_have_text("HTTP 200")
    await expect(delivery).to_contain_text(receiver.url)
    assert len(receiver.received) == 2

    # A webhook signed here, in the test, runs; its callback is signed with the callback secret.
    task_id = await send_signed(web, url, secret, {"question": "signed by the test"})
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-status")).to_have_text("SUCCESS")
    await expect(page.locator("#task-answer")).to_have_text("You said: signed by the test")
    await expect(delivery.locator("td").nth(0)).to_have_text("delivered")
    await expect(delivery.locator("td").nth(1)).to_have_text("1")
    await expect(delivery.locator("td").nth(4)).to_contain_text("after the result")
    headers, body = receiver.received[-1]
    assert json.loads(body)["task_id"] == task_id
    await expect(delivery).to_contain_text(headers["webhook-id"])
    await web.screenshot("task-delivered")

    # The agent's page: the signature it requires, the callback secret hidden until revealed.
    await page.get_by_role("link", name="signed", exact=True).click()
    await expect(page.get_by_role("heading", name="signed", exact=True)).to_be_visible()
    await expect(page.locator("#agent-signature")).to_contain_text("Requires a standard-webhooks signature")
    await expect(page.locator("#agent-callback-url")).to_contain_text(receiver.url)
    shown_secret = page.locator("#agent-callback-secret")
    await expect(shown_secret).not_to_contain_text("whsec_")
    await page.get_by_role("button", name="Reveal", exact=True).click()
    callback_secret = agent["callback_secret"]
    await expect(shown_secret).to_have_text(callback_secret)
    assert headers["webhook-signature"] == standard_webhooks_mac(
        callback_secret, headers["webhook-id"], headers["webhook-timestamp"], body
    )
    await page.get_by_role("button", name="Copy secret", exact=True).click()
    await expect(page.locator("#agent-secret-status")).to_have_text("Copied: callback secret.")
    assert await page.evaluate("navigator.clipboard.readText()") == callback_secret
    await page.get_by_role("button", name="Hide", exact=True).click()
    await expect(shown_secret).not_to_contain_text("whsec_")
    await web.screenshot("agent")

    # A new callback secret, after saying yes.
    await page.get_by_role("button", name="New callback secret").click()
    await web.confirm("Keep it")
    await page.get_by_role("button", name="New callback secret").click()
    await web.confirm("New secret")
    await expect(page.locator("#agent-secret-status")).to_contain_text("New callback secret made")
    _, rotated = await web.api("GET", f"/api/agents/{agent['id']}")
    assert rotated["callback_secret"] != callback_secret
    await expect(shown_secret).not_to_contain_text("whsec_")
    await page.get_by_role("button", name="Reveal", exact=True).click()
    await expect(shown_secret).to_have_text(rotated["callback_secret"])

    # Pause and resume from here; a new webhook URL, whose snippet still signs (the page has
    # no signing secret to show: hookd never gives it back).
    await page.get_by_role("button", name="Pause", exact=True).click()
    await expect(page.locator("#agent-status")).to_have_text("paused")
    await expect(page.locator("#notice")).to_contain_text("Paused “signed”")
    await page.get_by_role("button", name="Resume", exact=True).click()
    await expect(page.locator("#agent-status")).to_have_text("active")
    await page.get_by_role("button", name="New webhook URL").click()
    await web.confirm("New URL")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#webhook-signed")).to_contain_text("standard-webhooks")
    await expect(page.locator("#webhook-secret-row")).to_be_hidden()
    url = await page.get_by_label("Webhook URL", exact=True).input_value()
    await expect(page.locator("#python-snippet")).to_contain_text(json.dumps(url))
    await dialog.get_by_role("button", name="I have saved it").click()
    await expect(page.get_by_role("heading", name="signed", exact=True)).to_be_focused()

    # Edit: the saved signature is kept unless changed; only the callback URL is sent.
    await page.get_by_role("link", name="Edit", exact=True).click()
    await expect(page.get_by_role("heading", name="Edit “signed”")).to_be_visible()
    await expect(page.get_by_label("Require a signature", exact=True)).to_have_value("standard-webhooks")
    await expect(page.get_by_label("Signing secret", exact=True)).to_have_value("")
    gone = str(server.make_url("/gone"))
    await page.get_by_label("Callback URL", exact=True).fill(gone)
    async with page.expect_request(lambda request: request.method == "PATCH") as patch:
        await page.get_by_role("button", name="Save changes").click()
    assert (await patch.value).post_data_json == {"callback_url": gone}
    await expect(page.locator("#notice")).to_have_text("Saved “signed”.")

    # A receiver that answers 410 Gone: the delivery fails for good, and says why.
    task_id = await send_signed(web, url, secret, {"question": "nobody listens"})
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(delivery.locator("td").nth(0)).to_have_text("failed")
    await expect(delivery.locator("td").nth(2)).to_contain_text("HTTP 410")
    await expect(delivery.locator("td").nth(2)).to_contain_text("410 Gone: no more attempts")
    await expect(delivery.locator("td").nth(4)).to_have_text("no more attempts")

    # GitHub's signature instead, with a secret made here; a new URL's snippet signs with it.
    await page.goto(f"{web.url}#/agents/{agent['id']}/edit")
    await expect(page.get_by_role("heading", name="Edit “signed”")).to_be_visible()
    await page.get_by_label("Require a signature", exact=True).select_option("github")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("#agent-form-error")).to_have_text(
        "Enter the github secret the sender signs with, or generate one."
    )
    await page.get_by_role("button", name="Generate", exact=True).click()
    github_secret = await page.get_by_label("Signing secret", exact=True).input_value()
    assert re.fullmatch(r"[0-9a-f]{64}", github_secret), github_secret
    async with page.expect_request(lambda request: request.method == "PATCH") as patch:
        await page.get_by_role("button", name="Save changes").click()
    assert (await patch.value).post_data_json == {"signature": {"type": "github", "secret": github_secret}}
    await expect(page.locator("#notice")).to_have_text("Saved “signed”.")
    await page.goto(f"{web.url}#/agents/{agent['id']}")
    await expect(page.locator("#agent-signature")).to_contain_text("Requires a github signature")
    await page.get_by_role("button", name="New webhook URL").click()  # its token is looked up afresh
    await web.confirm("New URL")
    await expect(page.locator("#webhook-signed")).to_contain_text("github")
    url = await page.get_by_label("Webhook URL", exact=True).input_value()
    python = await page.locator("#python-snippet").text_content()
    assert python is not None and "X-Hub-Signature-256" in python
    github_task = (await run_snippet(python, {"WEBHOOK_SECRET": github_secret}))["task_id"]
    assert (await web.hookd.wait_for(github_task))["status"] == "SUCCESS"
    await dialog.get_by_role("button", name="I have saved it").click()

    # No signature any more: sent as null.
    await page.goto(f"{web.url}#/agents/{agent['id']}/edit")
    await expect(page.get_by_role("heading", name="Edit “signed”")).to_be_visible()
    await expect(page.get_by_label("Require a signature", exact=True)).to_have_value("github")
    await page.get_by_label("Require a signature", exact=True).select_option("")
    async with page.expect_request(lambda request: request.method == "PATCH") as patch:
        await page.get_by_role("button", name="Save changes").click()
    assert (await patch.value).post_data_json == {"signature": None}
    await expect(page.locator("#notice")).to_have_text("Saved “signed”.")
    _, unsigned_agent = await web.api("GET", f"/api/agents/{agent['id']}")
    assert unsigned_agent["signature"] is None

    async def send_unsigned() -> int:
        return (await web.hookd.client.session.post(url, json={})).status

    # The webhook's view of the agent is remembered for a second (api/rate_limit.py).
    await poll(send_unsigned, lambda status: status == 200, "an unsigned webhook taken")


async def test_tools_and_a_json_schema_from_the_form(web: Web) -> None:
    page, hookd = web.page, web.hookd
    await web.open_signed_in()
    await page.goto(f"{web.url}#/agents/new")
    await page.get_by_label("Name", exact=True).fill("researcher")
    await page.get_by_label("Model", exact=True).fill("tool=http_request+shell,json=good")
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    # Not JSON: the page says so and sends nothing.
    tools = page.get_by_label("Tools (JSON)", exact=True)
    assert "http_request" in (await tools.get_attribute("placeholder") or "")
    await tools.fill("[{type: http_request}]")
    await page.get_by_role("button", name="Create agent").click()
    error = page.locator("#agent-form-error")
    await expect(error).to_contain_text("'tools' is not valid JSON")
    await expect(error).to_contain_text("nothing was sent")
    await expect(tools).to_be_focused()
    await web.screenshot("agent-form-bad-json")

    # JSON that hookd refuses: its message, as it said it.
    bad_tools = [{"type": "http_request"}]
    status, refusal = await web.api("POST", "/api/agents", json={"name": "x", "tools": bad_tools})
    assert status == 400
    await tools.fill(json.dumps(bad_tools))
    await page.get_by_role("button", name="Create agent").click()
    await expect(error).to_have_text(refusal["message"])
    assert posts == [web.url + "api/agents"]  # the one the page sent: hookd's refusal

    health = str(hookd.client.make_url("/api/health"))
    good_tools = [{"type": "http_request", "allow_hosts": ["127.0.0.1"], "allow_private": True}]
    await tools.fill(json.dumps(good_tools, indent=2))
    await page.get_by_label("Model turns per run", exact=True).fill("4")
    schema = page.get_by_label("Answer JSON schema", exact=True)
    await schema.fill('{"type": "object",')
    await page.get_by_role("button", name="Create agent").click()
    await expect(error).to_contain_text("'json_schema' is not valid JSON")
    await schema.fill(json.dumps(SCHEMA))
    await page.get_by_role("button", name="Create agent").click()
    await expect(page.get_by_role("dialog", name="Webhook URL for researcher")).to_be_visible()
    url = await page.get_by_label("Webhook URL", exact=True).input_value()
    await page.get_by_role("button", name="I have saved it").click()

    _, agents = await web.api("GET", "/api/agents")
    (agent,) = agents["agents"]
    assert (agent["tools"][0]["allow_hosts"], agent["max_steps"], agent["json_schema"]) == (
        ["127.0.0.1"],
        4,
        SCHEMA,
    )
    await expect(web.agent_row(agent["id"])).to_contain_text("1 tool")
    await expect(web.agent_row(agent["id"])).to_contain_text("JSON schema")
    await web.screenshot("agents-with-tools")

    # Edit: the JSON comes back as it was saved, and only what changed is sent.
    await page.get_by_role("link", name="Edit agent researcher").click()
    await expect(page.get_by_role("heading", name="Edit “researcher”")).to_be_visible()  # loaded
    await expect(tools).to_have_value(re.compile(r'^\[\n  \{\n    "type": "http_request",'))
    assert json.loads(await tools.input_value()) == agent["tools"]  # with hookd's defaults filled in
    await expect(schema).to_have_value(re.compile(r'^\{\n  "type": "object",'))
    assert json.loads(await schema.input_value()) == SCHEMA
    await expect(page.get_by_label("Require a signature", exact=True)).to_have_value("")
    await page.get_by_label("Model turns per run", exact=True).fill("5")
    async with page.expect_request(lambda request: request.method == "PATCH") as patch:
        await page.get_by_role("button", name="Save changes").click()
    assert (await patch.value).post_data_json == {"max_steps": 5}
    await expect(page.locator("#notice")).to_have_text("Saved “researcher”.")

    # A run: a tool call that works, one the model gets wrong, then a structured answer.
    answer = {"summary": "hookd is up", "priority": 2}
    payload = {"http_request_args": {"url": health}, "shell_args": {"command": "ls"}, "good": answer}
    response = await hookd.client.session.post(url, json=payload)
    task_id = (await response.json())["task_id"]
    await hookd.wait_for(task_id)
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-status")).to_have_text("SUCCESS")
    await expect(page.get_by_role("heading", name="Structured answer")).to_be_visible()
    await expect(page.locator("#task-structured")).to_have_text(json.dumps(answer, indent=2))
    await expect(page.locator("#task-answer")).to_be_hidden()

    calls = page.locator("#task-tool-calls > li")
    await expect(calls).to_have_count(2)
    first, second = calls.nth(0), calls.nth(1)
    await expect(first.get_by_role("heading")).to_have_text("Step 1: http_request")
    await expect(first.locator(".call-arguments")).to_have_text(json.dumps({"url": health}, indent=2))
    await expect(first.locator(".call-output")).to_contain_text("HTTP 200")
    await expect(first.locator(".call-output")).to_contain_text('"status": "ok"')
    await expect(first).to_contain_text(re.compile(r"\d+\.\d\d s"))
    await expect(first.locator(".badge")).to_have_count(0)
    await expect(second.get_by_role("heading")).to_have_text("Step 2: shell")
    await expect(second.locator(".badge")).to_have_text("error")
    await expect(second.locator(".call-error")).to_contain_text("there is no tool named 'shell'")
    result = (await hookd.status(task_id))["result"]
    assert [call["tool"] for call in result["tool_calls"]] == ["http_request", "shell"]
    await web.screenshot("task-tool-calls")


async def test_the_task_page_follows_the_event_stream(web: Web) -> None:
    page, hookd = web.page, web.hookd
    slow = await hookd.create_agent(llm={"model": "sleep=30"}, max_attempts=1)
    task_id = await hookd.trigger(slow, {"question": "take your time"})
    await hookd.wait_for(task_id, ("STARTED",))
    await page.clock.install()  # no timer runs: only the event stream can bring the change
    await web.open_signed_in()
    reads: list[str] = []
    page.on("request", lambda request: reads.append(request.url) if task_id in request.url else None)
    async with page.expect_request(re.compile(rf"/api/tasks/{task_id}/events$")) as stream:
        await page.goto(f"{web.url}#/tasks/{task_id}")
    assert (await stream.value).headers.get("authorization") is None  # public: the id is the credential
    await expect(page.locator("#task-status")).to_have_text("STARTED")

    status, _ = await web.api("POST", f"/api/tasks/{task_id}/cancel")  # behind the page's back
    assert status == 200
    await expect(page.locator("#task-status")).to_have_text("FAILURE")
    await expect(page.locator("#task-error-type")).to_have_text("cancelled")
    assert sum(url.endswith("/events") for url in reads) == 1


async def test_without_the_event_stream_the_task_page_polls(web: Web) -> None:
    page, hookd = web.page, web.hookd
    slow = await hookd.create_agent(llm={"model": "sleep=30"}, max_attempts=1)
    task_id = await hookd.trigger(slow, {"question": "take your time"})
    await hookd.wait_for(task_id, ("STARTED",))
    refused: list[str] = []

    async def refuse(route: Route) -> None:  # a proxy that does not pass event streams
        refused.append(route.request.url)
        await route.abort()

    await page.route(re.compile(r"/events$"), refuse)
    await web.open_signed_in()
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-status")).to_have_text("STARTED")
    status, _ = await web.api("POST", f"/api/tasks/{task_id}/cancel")
    assert status == 200
    await expect(page.locator("#task-status")).to_have_text("FAILURE")
    assert refused, "the page did not try the event stream"
