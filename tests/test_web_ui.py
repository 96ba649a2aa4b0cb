"""The admin web page, end to end: sign in, agents from creation to deletion, the task list
and a task's page, in Debian's Chromium (the browser fixtures are in tests/web_ui.py).
The newer admin features (signatures, callbacks, tools, structured answers, the event
stream) are in tests/test_web_ui_agents.py.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
import sys

import pytest
from playwright.async_api import expect
from yarl import URL

from tests.conftest import ADMIN_KEY, Hookd
from tests.web_ui import POLL_MS, STATIC, Web, make_web_fixture, web_fixture

FIXTURES = (make_web_fixture, web_fixture)  # imported for pytest, which finds them by name


# -- the files, without a browser ----------------------------------------------------------


async def test_the_page_and_its_files_are_served_with_a_strict_policy(hookd: Hookd) -> None:
    response = await hookd.client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self';")
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    html = await response.text()
    assert html == (STATIC / "index.html").read_text(encoding="utf-8")
    # Offline: everything the page loads is its own (no CDN, no web fonts), and no inline code.
    assert set(re.findall(r'(?:src|href)="([^"#][^"]*)"', html)) == {
        "static/icon.svg",
        "static/style.css",
        "static/app.js",
    }
    assert not re.search(r"<script>|<style|\sstyle=|\son[a-z]+=", html)  # the CSP would block them
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), "an id used twice: a label would point at the wrong one"
    css = (STATIC / "style.css").read_text(encoding="utf-8")
    assert "url(" not in css and "@import" not in css and "@font-face" not in css

    # app.js loads the other modules by relative name, each of them one of the page's files,
    # and none of them writes markup.
    modules = {path.name for path in STATIC.glob("*.js")}
    loaded, todo = {"app.js"}, ["app.js"]
    while todo:
        source = (STATIC / todo.pop()).read_text(encoding="utf-8")
        assert "innerHTML" not in source and "insertAdjacentHTML" not in source
        for imported in re.findall(r'^import [^;]*? from "\./([^"]+)";$', source, flags=re.M):
            assert imported in modules, imported
            if imported not in loaded:
                loaded.add(imported)
                todo.append(imported)
    assert loaded == modules

    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
    assets = sorted(path for path in STATIC.iterdir() if path.name != "index.html")
    for name, content_type in [(path.name, types[path.suffix]) for path in assets]:
        response = await hookd.client.get(f"/static/{name}")
        assert response.status == 200, name
        assert response.content_type == content_type
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert await response.read() == (STATIC / name).read_bytes()


@pytest.mark.parametrize(
    "path",
    [
        "/static/..%2Fweb.py",
        "/static/%2E%2E%2F%2E%2E%2Fserver.py",
        "/static/..%5Cweb.py",
        "/static/app.js%00.py",
        "/static/index.html",  # the page is at /, not among the files
        "/static/nope.js",
        "/static/APP.JS",
    ],
)
async def test_no_other_file_is_served(hookd: Hookd, path: str) -> None:
    response = await hookd.client.get(URL(path, encoded=True))
    assert response.status == 404
    assert response.content_type == "application/json"  # the one error body, not a file
    body = await response.json()
    assert body["success"] is False and body["message"]


# -- in the browser ------------------------------------------------------------------------


async def test_sign_in_refuses_a_wrong_key_and_keeps_the_right_one_in_the_tab(web: Web) -> None:
    page = web.page
    await web.open()
    await web.sign_in("not-the-admin-key")
    alert = page.locator("#sign-in-error")
    await expect(alert).to_contain_text("That key was not accepted")
    await expect(alert).to_contain_text("Authorization: Bearer <admin key>")  # the API's own message
    assert await page.evaluate("sessionStorage.length") == 0
    await web.screenshot("sign-in-refused")

    await web.sign_in()
    await expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
    await expect(page.get_by_text("No tasks yet")).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('hookd.adminKey')") == ADMIN_KEY
    assert await page.evaluate("localStorage.length") == 0  # gone when the tab closes

    await page.reload()  # the tab remembers the key
    await expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0

    # A key that stops working (HOOKD_ADMIN_KEY changed) sends the page back to sign in.
    await page.evaluate("sessionStorage.setItem('hookd.adminKey', 'a-key-that-was-changed')")
    await page.reload()
    await expect(page.locator("#sign-in-error")).to_contain_text("no longer accepts this admin key")
    assert await page.evaluate("sessionStorage.length") == 0


async def test_an_agent_from_creation_to_deletion(web: Web) -> None:
    page, hookd = web.page, web.hookd
    await web.open_signed_in()
    await page.get_by_role("link", name="Agents", exact=True).click()
    await expect(page.get_by_text("No agents yet")).to_be_visible()

    # Create.
    await page.get_by_role("link", name="New agent").click()
    await page.get_by_label("Name", exact=True).fill("triage")
    await page.get_by_label("Description", exact=True).fill("Sorts support mail")
    await page.get_by_label("Prompt", exact=True).fill("Be brief.")
    await page.get_by_label("Attempts", exact=True).fill("2")
    await page.get_by_label("Rate limit", exact=True).fill("60/min")
    await web.screenshot("agent-form")
    await page.get_by_role("button", name="Create agent").click()

    # The webhook URL, shown once, with a copy button and snippets that work.
    dialog = page.get_by_role("dialog", name="Webhook URL for triage")
    await expect(dialog).to_be_visible()
    url = await page.get_by_label("Webhook URL", exact=True).input_value()
    assert re.fullmatch(re.escape(web.url) + r"api/webhooks/agents/[A-Za-z0-9_-]{43}", url), url
    curl = await page.locator("#curl-snippet").text_content()
    python = await page.locator("#python-snippet").text_content()
    assert curl is not None and f"'{url}'" in curl and "Content-Type: application/json" in curl
    assert python is not None and json.dumps(url) in python
    await dialog.get_by_role("button", name="Copy URL").click()
    await expect(page.locator("#copy-status")).to_have_text("Copied: URL.")
    assert await page.evaluate("navigator.clipboard.readText()") == url
    await dialog.get_by_role("button", name="Copy Python").click()
    await expect(page.locator("#copy-status")).to_have_text("Copied: Python.")
    assert await page.evaluate("navigator.clipboard.readText()") == python
    await web.screenshot("webhook-url")

    # The Python snippet, run as it is, triggers the agent.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", python, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, err.decode()
    snippet_task = ast.literal_eval(out.decode())["task_id"]

    await dialog.get_by_role("button", name="I have saved it").click()
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_label("Webhook URL", exact=True)).to_have_value("")  # the secret is not kept

    row = page.locator("#agents-table tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("triage")
    await expect(row).to_contain_text("Sorts support mail")
    await expect(row).to_contain_text("2 attempts")
    status, agents = await web.api("GET", "/api/agents")
    (agent,) = agents["agents"]
    assert (agent["name"], agent["max_attempts"], agent["rate_limit"]) == ("triage", 2, "60/min")
    assert (agent["description"], agent["prompt"], agent["status"]) == (
        "Sorts support mail",
        "Be brief.",
        "active",
    )

    # A webhook sent while the task list is open shows up and turns SUCCESS without a reload.
    await page.get_by_role("link", name="Tasks", exact=True).click()
    await expect(web.task_row(snippet_task)).to_contain_text("SUCCESS")
    await page.evaluate("window.notReloaded = true")
    response = await hookd.client.session.post(url, json={"question": "Where is my order?", "order": 42})
    assert response.status == 200
    task_id = (await response.json())["task_id"]
    await expect(web.task_row(task_id)).to_contain_text("SUCCESS")
    await expect(web.task_row(task_id)).to_contain_text("triage")
    await expect(web.task_row(task_id)).to_contain_text("1 / 2")
    await expect(page.locator("#tasks-table tbody tr").first).to_have_attribute("data-task-id", task_id)
    assert await page.evaluate("window.notReloaded") is True
    await web.screenshot("tasks")

    # The task's page: payload, answer, attempts and timings.
    await web.task_row(task_id).get_by_role("link").click()
    await expect(page.get_by_role("heading", name=f"Task {task_id}")).to_be_visible()
    await expect(page.locator("#task-payload")).to_have_text(
        json.dumps({"question": "Where is my order?", "order": 42}, indent=2)
    )
    await expect(page.locator("#task-answer")).to_contain_text("You said: Where is my order?")
    facts = page.locator("#task-facts")
    await expect(facts).to_contain_text("Attempts1 of 2")
    await expect(facts).to_contain_text("Agenttriage")
    await expect(facts).to_contain_text(re.compile(r"Took\d+\.\d\d s"))
    await expect(page.get_by_role("button", name="Cancel task")).to_be_hidden()
    await web.screenshot("task")

    # Pause, then resume.
    await page.get_by_role("link", name="Agents", exact=True).click()
    await page.get_by_role("button", name="Pause agent triage").click()
    await expect(web.agent_row(agent["id"])).to_contain_text("paused")
    await expect(page.locator("#notice")).to_contain_text("Paused “triage”")
    assert (await hookd.client.session.post(url, json={})).status == 409
    await page.get_by_role("button", name="Resume agent triage").click()
    await expect(web.agent_row(agent["id"])).to_contain_text("active")
    assert (await hookd.client.session.post(url, json={})).status == 200
    await web.screenshot("agents")

    # Edit: the form is filled in, and only what changed is sent.
    await page.get_by_role("link", name="Edit agent triage").click()
    await expect(page.get_by_role("heading", name="Edit “triage”")).to_be_visible()  # loaded
    await expect(page.get_by_label("Name", exact=True)).to_have_value("triage")
    await expect(page.get_by_label("Attempts", exact=True)).to_have_value("2")
    await expect(page.get_by_label("Rate limit", exact=True)).to_have_value("60/min")
    await page.get_by_label("Name", exact=True).fill("triage-2")
    await page.get_by_label("Prompt", exact=True).fill("Be very brief.")
    await page.get_by_label("Rate limit", exact=True).fill("")
    async with page.expect_request(lambda request: request.method == "PATCH") as patch:
        await page.get_by_role("button", name="Save changes").click()
    assert (await patch.value).post_data_json == {
        "name": "triage-2",
        "prompt": "Be very brief.",
        "rate_limit": None,
    }
    await expect(web.agent_row(agent["id"])).to_contain_text("triage-2")
    status, changed = await web.api("GET", f"/api/agents/{agent['id']}")
    assert (changed["name"], changed["prompt"], changed["rate_limit"]) == ("triage-2", "Be very brief.", None)
    assert (changed["description"], changed["max_attempts"]) == ("Sorts support mail", 2)

    # The API's refusal is shown as it said it.
    await hookd.create_agent(name="taken")
    await page.get_by_role("link", name="Edit agent triage-2").click()
    # The title changes once the agent is loaded; the Name input may still hold the last edit's
    # text before that, and typing then would be overwritten.
    await expect(page.get_by_role("heading", name="Edit “triage-2”")).to_be_visible()
    await expect(page.get_by_label("Name", exact=True)).to_have_value("triage-2")
    await page.get_by_label("Name", exact=True).fill("taken")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("#agent-form-error")).to_have_text("An agent named 'taken' already exists.")
    await page.get_by_role("link", name="Cancel", exact=True).click()

    # A new webhook URL: shown once; the old one stops working.
    await page.get_by_role("button", name="New webhook URL for agent triage-2").click()
    await web.confirm("New URL")
    await expect(page.get_by_role("dialog", name="Webhook URL for triage-2")).to_be_visible()
    new_url = await page.get_by_label("Webhook URL", exact=True).input_value()
    assert new_url != url and new_url.startswith(web.url + "api/webhooks/agents/")
    await page.get_by_role("button", name="I have saved it").click()
    assert (await hookd.client.session.post(url, json={})).status == 404
    assert (await hookd.client.session.post(new_url, json={})).status == 200

    # Delete, after saying no once.
    await page.get_by_role("button", name="Delete agent triage-2").click()
    await web.confirm("Keep it")
    await expect(web.agent_row(agent["id"])).to_be_visible()
    await page.get_by_role("button", name="Delete agent triage-2").click()
    await web.confirm("Delete")
    await expect(web.agent_row(agent["id"])).to_have_count(0)
    await expect(page.locator("#notice")).to_contain_text("Deleted “triage-2”")
    status, _ = await web.api("GET", f"/api/agents/{agent['id']}")
    assert status == 404


async def test_tasks_filter_and_cancel(web: Web) -> None:
    page, hookd = web.page, web.hookd
    slow = await hookd.create_agent(name="slow", llm={"model": "sleep=30"}, max_attempts=1)
    quick = await hookd.create_agent(name="quick")
    running = await hookd.trigger(slow, {"question": "take your time"})
    done = await hookd.trigger(quick, {"question": "quick one"})
    await hookd.wait_for(done)
    await hookd.wait_for(running, ("STARTED",))

    await web.open_signed_in()
    await expect(web.task_row(running)).to_contain_text("STARTED")
    await expect(web.task_row(done)).to_contain_text("SUCCESS")
    await expect(web.task_row(done).get_by_role("button")).to_have_count(0)  # nothing to cancel

    # Filters: by agent, by status, and both.
    rows = page.locator("#tasks-table tbody tr")
    await page.get_by_label("Agent", exact=True).select_option(label="slow")
    await expect(rows).to_have_count(1)
    await expect(web.task_row(running)).to_be_visible()
    await page.get_by_label("Status", exact=True).select_option("SUCCESS")
    await expect(page.get_by_text("No tasks match these filters.")).to_be_visible()
    await page.get_by_label("Agent", exact=True).select_option(label="All agents")
    await expect(rows).to_have_count(1)
    await expect(web.task_row(done)).to_be_visible()
    assert "status=SUCCESS" in page.url  # the filter is in the address, so it can be shared
    await page.get_by_label("Status", exact=True).select_option(label="Unfinished")
    await expect(rows).to_have_count(1)
    await expect(web.task_row(running)).to_be_visible()

    # Cancel a running task from the list.
    await web.task_row(running).get_by_role("button", name=f"Cancel task {running}").click()
    await web.confirm("Keep it")
    assert (await hookd.status(running))["status"] == "STARTED"
    await web.task_row(running).get_by_role("button", name=f"Cancel task {running}").click()
    await web.confirm("Cancel task")
    await page.get_by_label("Status", exact=True).select_option(label="Any status")
    await expect(web.task_row(running)).to_contain_text("FAILURE")
    await expect(web.task_row(running)).to_contain_text("cancelled")
    assert (await hookd.status(running))["result"]["type"] == "cancelled"
    await web.screenshot("tasks-cancelled")

    # Cancel one from its own page; it shows the error once it is final.
    another = await hookd.trigger(slow, {"question": "and another"})
    await hookd.wait_for(another, ("STARTED",))
    await page.goto(f"{web.url}#/tasks/{another}")
    await expect(page.locator("#task-status")).to_have_text("STARTED")
    await expect(page.locator("#task-facts")).to_contain_text("running")
    await page.get_by_role("button", name="Cancel task").click()
    await web.confirm("Cancel task")
    await expect(page.locator("#task-status")).to_have_text("FAILURE")
    await expect(page.locator("#task-error-type")).to_have_text("cancelled")
    await expect(page.get_by_role("button", name="Cancel task")).to_be_hidden()
    await web.screenshot("task-cancelled")


async def test_a_refusal_from_the_api_is_shown_as_it_said_it(web: Web) -> None:
    page, hookd = web.page, web.hookd
    slow = await hookd.create_agent(llm={"model": "sleep=30"})
    running = await hookd.trigger(slow)
    await hookd.wait_for(running, ("STARTED",))
    await page.clock.install()  # the list is not refreshed unless the test moves the clock
    await web.open_signed_in()
    cancel = web.task_row(running).get_by_role("button", name=f"Cancel task {running}")
    await expect(cancel).to_be_visible()

    status, _ = await web.api("POST", f"/api/tasks/{running}/cancel")  # behind the page's back
    assert status == 200
    await cancel.click()
    await web.confirm("Cancel task")
    await expect(page.get_by_role("alert")).to_have_text(
        f"Task '{running}' already finished (FAILURE); there is nothing to cancel."
    )
    await expect(web.task_row(running)).to_contain_text("FAILURE")  # and the list catches up
    await expect(cancel).to_have_count(0)
    await web.screenshot("refusal")


async def test_user_text_is_shown_as_text_never_as_html(web: Web) -> None:
    page, hookd = web.page, web.hookd
    name = '<img src=x onerror="window.pwned=1">'
    agent = await hookd.create_agent(name=name, description="<b>bold</b>")
    payload = {"question": "<script>window.pwned=2</script>", "html": "<i>x</i>"}
    task_id = await hookd.trigger(agent, payload)
    await hookd.wait_for(task_id)

    await web.open_signed_in()
    await expect(web.task_row(task_id).locator("td").nth(1)).to_have_text(name)
    await page.get_by_role("link", name="Agents", exact=True).click()
    await expect(web.agent_row(agent["id"]).locator(".name")).to_have_text(name)
    await expect(web.agent_row(agent["id"])).to_contain_text("<b>bold</b>")
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-payload")).to_have_text(json.dumps(payload, indent=2))
    await expect(page.locator("#task-answer")).to_contain_text("You said: <script>window.pwned=2</script>")
    await expect(page.locator("#task-facts")).to_contain_text(name)
    await page.locator("#task-facts").get_by_role("link", name=name).click()  # the agent's page
    await expect(page.locator("#agent-title")).to_have_text(name)
    await expect(page.locator("#agent-about")).to_have_text("<b>bold</b>")
    assert await page.locator("main img, main script, main b, main i").count() == 0
    assert await page.evaluate("window.pwned") is None


async def test_the_live_list_pauses_while_the_tab_is_hidden(web: Web) -> None:
    page = web.page
    await page.clock.install()  # the page's timers run only when the test moves its clock
    await web.open_signed_in()
    live = page.locator("#tasks-live")
    await expect(live).to_contain_text("Live · updated")
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/api/tasks?" in request.url else None)

    async with page.expect_request(re.compile(r"/api/tasks\?")):  # visible: it polls
        await page.clock.run_for(POLL_MS)

    await page.evaluate("""() => {
        Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
        document.dispatchEvent(new Event("visibilitychange"));
    }""")
    await expect(live).to_have_text("Paused while this tab is hidden")
    before = len(polls)
    await page.clock.run_for(20 * POLL_MS)
    await page.evaluate("1")  # any request made by now has been reported
    assert len(polls) == before, "it polled while hidden"

    async with page.expect_request(re.compile(r"/api/tasks\?")):  # visible again: at once
        await page.evaluate("""() => {
            delete document.hidden;
            delete document.visibilityState;
            document.dispatchEvent(new Event("visibilitychange"));
        }""")
    await expect(live).to_contain_text("Live · updated")
