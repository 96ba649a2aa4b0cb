"""The admin page and an agent's knowledge and MCP servers, in Debian's Chromium (fixtures:
tests/web_ui.py): sources uploaded as a file and pasted as text on the agent's page, refused
uploads, a task's answer with the sources it was given, deleting a source; MCP servers set in
the agent form and shown on the agent's page, and a run that calls one.
"""

from __future__ import annotations

import io
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import expect

from agents.knowledge import MAX_SOURCE_BYTES
from api.sources import MAX_UPLOAD_BYTES
from tests.processes import REPO_ROOT
from tests.web_ui import MakeWeb, Web, make_web_fixture, web_fixture

FIXTURES = (make_web_fixture, web_fixture)  # imported for pytest, which finds them by name
MCP_SERVER = str(REPO_ROOT / "tests" / "mcp_server.py")

HANDBOOK = """# Handbook

Welcome to the team. This handbook says how we work.

## Door

The office door opens with the code 4711. After 22:00 the alarm is armed; disarm it with the
grey key in the red box.

## Holidays

Ask your lead for holidays two weeks ahead. Unused days carry over until March.
"""

PAGE = """<!doctype html><html><head><title>Coffee</title></head><body>
<script>window.pwned = 1;</script>
<h1>Coffee machine</h1><p>Descale the coffee machine every Friday with the blue bottle.</p>
<ul><li>Empty the drip tray</li><li>Refill the beans</li></ul></body></html>"""


async def sources_of(web: Web, agent_id: str) -> list[dict[str, Any]]:
    status, body = await web.api("GET", f"/api/agents/{agent_id}/sources")
    assert status == 200, body
    sources: list[dict[str, Any]] = body["sources"]
    return sources


def write_file(folder: Path, name: str, content: bytes) -> Path:
    """A file for the page's file input."""
    path = folder / name
    path.write_bytes(content)
    return path


async def refusal_of_file(web: Web, agent_id: str, name: str, content: bytes) -> tuple[int, str]:
    """What hookd answers the same file sent by another client: the page must say just that."""
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(content), filename=name)
    status, body = await web.api("POST", f"/api/agents/{agent_id}/sources", data=form)
    assert body["success"] is False, body
    return status, str(body["message"])


async def test_sources_on_the_agent_page_and_in_a_tasks_answer(web: Web, tmp_path: Path) -> None:
    page, hookd = web.page, web.hookd
    agent = await hookd.create_agent(name="helpdesk", prompt="Answer from the sources.")
    await web.open_signed_in()
    await page.goto(f"{web.url}#/agents/{agent['id']}")
    await expect(page.get_by_role("heading", name="helpdesk", exact=True)).to_be_visible()
    await expect(page.locator("#sources-empty")).to_be_visible()
    await expect(page.locator("#agent-knowledge-use")).to_contain_text("Each run gets the 4 chunks")
    rows = page.locator("#sources-table tbody tr")
    status_line = page.locator("#sources-status")

    # A Markdown file, as multipart/form-data; its format comes from its name.
    handbook = write_file(tmp_path, "handbook.md", HANDBOOK.encode())
    await page.get_by_label("File", exact=True).set_input_files(handbook)
    async with page.expect_request(lambda request: request.method == "POST") as upload:
        await page.get_by_role("button", name="Upload", exact=True).click()
    assert (await upload.value).headers["content-type"].startswith("multipart/form-data; boundary=")
    await expect(status_line).to_have_text(
        f"Added “handbook.md”: 1 chunk from {len(HANDBOOK.encode())} bytes of markdown."
    )
    await expect(rows).to_have_count(1)
    await expect(page.get_by_label("File", exact=True)).to_have_value("")  # the form is cleared

    # Pasted HTML, as JSON.
    await page.get_by_label("Source name", exact=True).fill("coffee")
    await page.get_by_label("Text format", exact=True).select_option("html")
    await page.get_by_label("Text", exact=True).fill(PAGE)
    async with page.expect_request(lambda request: request.method == "POST") as paste:
        await page.get_by_role("button", name="Add source", exact=True).click()
    assert (await paste.value).post_data_json == {"name": "coffee", "content": PAGE, "format": "html"}
    await expect(rows).to_have_count(2)
    await expect(page.get_by_label("Text", exact=True)).to_have_value("")

    # The list says what hookd stored, oldest first.
    stored = await sources_of(web, agent["id"])
    assert [(s["name"], s["format"]) for s in stored] == [("handbook.md", "markdown"), ("coffee", "html")]
    for row, source in zip([rows.nth(0), rows.nth(1)], stored, strict=True):
        await expect(row).to_have_attribute("data-source-id", source["id"])
        cells = row.locator("td")
        await expect(cells.nth(0)).to_have_text(source["name"])
        await expect(cells.nth(1)).to_have_text(source["format"])
        await expect(cells.nth(2)).to_have_text(str(source["chunks"]))
        await expect(cells.nth(3)).to_have_attribute("title", f"{source['bytes']:,} bytes of UTF-8")
        await expect(cells.nth(4).locator("time")).to_have_attribute("datetime", source["created_at"])
    await web.screenshot("agent-knowledge")

    # Refused files: hookd's message as it said it, and nothing stored.
    refused = [
        ("menu.txt", "Café au lait, crème brûlée".encode("latin-1"), 400),
        # Read, then refused: more text than a source may hold.
        ("big.txt", b"All work and no play. " * (MAX_SOURCE_BYTES // 22 + 1000), 413),
        ("huge.txt", b"x" * (MAX_UPLOAD_BYTES + 1), 413),  # refused by its Content-Length, unread
    ]
    upload_error = page.locator("#source-upload-error")
    for name, content, expected_status in refused:
        path = write_file(tmp_path, name, content)
        await page.get_by_label("File", exact=True).set_input_files(path)
        async with page.expect_response(lambda response: response.request.method == "POST") as answer:
            await page.get_by_role("button", name="Upload", exact=True).click()
        assert (await answer.value).status == expected_status
        status, message = await refusal_of_file(web, agent["id"], name, content)
        assert status == expected_status
        await expect(upload_error).to_have_text(message)
        await expect(status_line).to_have_text("")
        await expect(rows).to_have_count(2)
        assert len(await sources_of(web, agent["id"])) == 2
        if expected_status == 400:
            assert "not valid UTF-8 text (bad byte at offset 3)" in message
            await web.screenshot("agent-knowledge-refused")
        else:
            assert f"a source is at most {MAX_SOURCE_BYTES}" in message
        await expect(page.get_by_label("File", exact=True)).to_have_value(
            re.compile(re.escape(path.name) + "$")
        )

    # A pasted source hookd refuses (HTML with no text in it): its message, nothing stored.
    await page.get_by_label("Source name", exact=True).fill("empty")
    await page.get_by_label("Text format", exact=True).select_option("html")
    await page.get_by_label("Text", exact=True).fill("<script>x()</script>")
    await page.get_by_role("button", name="Add source", exact=True).click()
    await expect(page.locator("#source-paste-error")).to_have_text("The source has no text to index.")
    await expect(upload_error).to_be_hidden()
    assert len(await sources_of(web, agent["id"])) == 2

    # A question that matches the handbook: the task's page shows the answer and its sources.
    task_id = await hookd.trigger(agent, {"question": "What is the code for the office door?"})
    done = await hookd.wait_for(task_id)
    assert done["status"] == "SUCCESS", done
    (used,) = done["result"]["sources"]
    assert used["source"]["name"] == "handbook.md"
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-status")).to_have_text("SUCCESS")
    await expect(page.locator("#task-answer")).to_have_text("You said: What is the code for the office door?")
    cited = page.locator("#task-sources > li")
    await expect(cited).to_have_count(1)
    await expect(cited).to_have_text(re.compile(rf"^\[1\] handbook\.md · chunk {used['chunk']} · score \S+$"))
    shown_score = float((await cited.text_content() or "").rpartition(" ")[2])
    assert math.isclose(shown_score, used["score"], rel_tol=0.01), (shown_score, used["score"])  # 3 digits
    await expect(cited).to_have_attribute("data-source-id", stored[0]["id"])
    await web.screenshot("task-sources")

    # A question that matches nothing: the page says so.
    task_id = await hookd.trigger(agent, {"question": "Nothing here matches."})
    assert (await hookd.wait_for(task_id))["result"]["sources"] == []
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-sources-none")).to_be_visible()
    await expect(cited).to_have_count(0)

    # Delete the HTML source, after saying no once.
    await page.goto(f"{web.url}#/agents/{agent['id']}")
    await expect(rows).to_have_count(2)
    await page.get_by_role("button", name="Delete source coffee").click()
    await web.confirm("Keep it")
    await expect(rows).to_have_count(2)
    await page.get_by_role("button", name="Delete source coffee").click()
    await web.confirm("Delete")
    await expect(status_line).to_have_text("Deleted “coffee”.")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-source-id", stored[0]["id"])
    assert [s["id"] for s in await sources_of(web, agent["id"])] == [stored[0]["id"]]
    assert await page.evaluate("window.pwned") is None  # the HTML was data all along


async def test_a_task_without_knowledge_shows_no_sources(web: Web) -> None:
    page, hookd = web.page, web.hookd
    agent = await hookd.create_agent()
    task_id = await hookd.trigger(agent, {"question": "hello"})
    assert "sources" not in (await hookd.wait_for(task_id))["result"]
    await web.open_signed_in()
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-answer")).to_have_text("You said: hello")
    await expect(page.locator("#task-sources-box")).to_be_hidden()


async def test_mcp_servers_and_knowledge_top_k_from_the_form(
    make_web: MakeWeb, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = await make_web(mcp_commands=(sys.executable,))  # HOOKD_MCP_COMMANDS lists the test server's Python
    page, hookd = web.page, web.hookd
    monkeypatch.setenv("CALC_SERVER_TOKEN", "calc-token-value")  # hookd's own environment, read at run time
    await web.open_signed_in()
    await page.goto(f"{web.url}#/agents/new")
    await page.get_by_label("Name", exact=True).fill("calculator")
    await page.get_by_label("Model", exact=True).fill("tool=calc__add")
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    servers = page.get_by_label("MCP servers (JSON)", exact=True)
    placeholder = await servers.get_attribute("placeholder") or ""
    assert '"command"' in placeholder and '"url"' in placeholder and '"headers_env"' in placeholder
    error = page.locator("#agent-form-error")

    # Not JSON: the page says so and sends nothing.
    await servers.fill('[{"name": "calc", command: ["python"]}]')
    await page.get_by_role("button", name="Create agent").click()
    await expect(error).to_contain_text("'mcp_servers' is not valid JSON")
    await expect(error).to_contain_text("nothing was sent")
    await expect(servers).to_be_focused()
    assert posts == []

    # JSON that hookd refuses: its message, as it said it.
    bad = [{"name": "calc", "command": f"{sys.executable} {MCP_SERVER}"}]
    status, refusal = await web.api("POST", "/api/agents", json={"name": "x", "mcp_servers": bad})
    assert status == 400 and "mcp_servers[0].command" in refusal["message"]
    await servers.fill(json.dumps(bad))
    await page.get_by_role("button", name="Create agent").click()
    await expect(error).to_have_text(refusal["message"])
    await web.screenshot("agent-form-mcp-refused")
    assert posts == [web.url + "api/agents"]
    _, listed = await web.api("GET", "/api/agents")
    assert listed["agents"] == []

    # A stdio server: the test MCP server, started by hookd for each run.
    calc = {
        "name": "calc",
        "command": [sys.executable, MCP_SERVER],
        "env": {"CALC_MODE": "plain-value-kept-off-the-page"},
        "env_from": {"CALC_TOKEN": "CALC_SERVER_TOKEN"},
    }
    await servers.fill(json.dumps([calc], indent=2))
    await page.get_by_label("Source excerpts per run", exact=True).fill("2")
    await page.get_by_role("button", name="Create agent").click()
    await expect(page.get_by_role("dialog", name="Webhook URL for calculator")).to_be_visible()
    url = await page.get_by_label("Webhook URL", exact=True).input_value()
    await page.get_by_role("button", name="I have saved it").click()
    _, listed = await web.api("GET", "/api/agents")
    (agent,) = listed["agents"]
    assert agent["knowledge_top_k"] == 2
    assert [(s["name"], s["command"], s["env_from"]) for s in agent["mcp_servers"]] == [
        ("calc", calc["command"], calc["env_from"])
    ]
    await expect(web.agent_row(agent["id"])).to_contain_text("1 MCP server")

    # The agent's page: the server's name, its command and the names of hookd's variables.
    await page.get_by_role("link", name="calculator", exact=True).click()
    server_row = page.locator('#agent-mcp-table tr[data-mcp-server="calc"]')
    await expect(server_row.locator("td").nth(0)).to_have_text("calc")
    await expect(server_row.locator("td").nth(1)).to_have_text(f"stdio {sys.executable} {MCP_SERVER}")
    await expect(server_row.locator("td").nth(2)).to_have_text("all")
    await expect(server_row.locator("td").nth(3)).to_have_text("CALC_TOKEN ← $CALC_SERVER_TOKEN")
    await expect(page.locator("#agent-mcp-empty")).to_be_hidden()
    await expect(page.locator("#agent-knowledge-use")).to_contain_text("Each run gets the 2 chunks")
    for value in ("plain-value-kept-off-the-page", "calc-token-value"):
        await expect(page.locator("#view-agent")).not_to_contain_text(value)
    await web.screenshot("agent-mcp")

    # Edit: the servers come back as saved; only what changed is sent.
    await page.get_by_role("link", name="Edit", exact=True).click()
    await expect(page.get_by_role("heading", name="Edit “calculator”")).to_be_visible()
    assert json.loads(await servers.input_value()) == agent["mcp_servers"]
    await expect(page.get_by_label("Source excerpts per run", exact=True)).to_have_value("2")
    await page.get_by_label("Source excerpts per run", exact=True).fill("0")
    search = {
        "name": "search",
        "url": "https://search.example.com/mcp",
        "headers_env": {"Authorization": "SEARCH_AUTH"},
    }
    await servers.fill(json.dumps([*agent["mcp_servers"], search]))
    async with page.expect_request(lambda request: request.method == "PATCH") as patch:
        await page.get_by_role("button", name="Save changes").click()
    assert (await patch.value).post_data_json == {
        "mcp_servers": [*agent["mcp_servers"], search],
        "knowledge_top_k": 0,
    }
    await expect(page.locator("#notice")).to_have_text("Saved “calculator”.")
    await page.goto(f"{web.url}#/agents/{agent['id']}")
    http_row = page.locator('#agent-mcp-table tr[data-mcp-server="search"]')
    await expect(http_row.locator("td").nth(1)).to_have_text("HTTP https://search.example.com/mcp")
    await expect(http_row.locator("td").nth(3)).to_have_text("Authorization ← $SEARCH_AUTH")
    await expect(page.locator("#agent-knowledge-use")).to_contain_text("Runs get none of these sources")

    # Back to the one stdio server, and a run whose model calls its tool.
    await page.goto(f"{web.url}#/agents/{agent['id']}/edit")
    await expect(page.get_by_role("heading", name="Edit “calculator”")).to_be_visible()
    await servers.fill(json.dumps(agent["mcp_servers"]))
    async with page.expect_request(lambda request: request.method == "PATCH") as patch:
        await page.get_by_role("button", name="Save changes").click()
    assert (await patch.value).post_data_json == {"mcp_servers": agent["mcp_servers"]}
    await expect(page.locator("#notice")).to_have_text("Saved “calculator”.")
    response = await hookd.client.session.post(url, json={"args": {"a": 2, "b": 3}})
    task_id = (await response.json())["task_id"]
    done = await hookd.wait_for(task_id, timeout_s=30)
    assert done["status"] == "SUCCESS", done["result"]
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-answer")).to_have_text("Tool said: 5")
    call = page.locator("#task-tool-calls > li")
    await expect(call.get_by_role("heading")).to_have_text("Step 1: calc__add")
    await expect(call.locator(".call-output")).to_have_text("5")
    await expect(page.locator("#task-sources-box")).to_be_hidden()  # knowledge_top_k 0, no sources

    # Emptied: no servers.
    await page.goto(f"{web.url}#/agents/{agent['id']}/edit")
    await expect(page.get_by_role("heading", name="Edit “calculator”")).to_be_visible()
    await servers.fill("")
    async with page.expect_request(lambda request: request.method == "PATCH") as patch:
        await page.get_by_role("button", name="Save changes").click()
    assert (await patch.value).post_data_json == {"mcp_servers": []}
    await expect(page.locator("#notice")).to_have_text("Saved “calculator”.")
    await page.goto(f"{web.url}#/agents/{agent['id']}")
    await expect(page.locator("#agent-mcp-empty")).to_be_visible()
    await expect(page.locator("#agent-mcp-table")).to_be_hidden()
    await expect(page.locator("#agent-mcp-table tbody tr")).to_have_count(0)


async def test_source_names_are_shown_as_text(web: Web) -> None:
    page, hookd = web.page, web.hookd
    name = '<img src=x onerror="window.pwned=1">.md'
    agent = await hookd.create_agent()
    status, source = await web.api(
        "POST", f"/api/agents/{agent['id']}/sources", json={"name": name, "content": HANDBOOK}
    )
    assert status == 201, source
    task_id = await hookd.trigger(agent, {"question": "Which code opens the office door?"})
    assert (await hookd.wait_for(task_id))["result"]["sources"][0]["source"]["name"] == name

    await web.open_signed_in()
    await page.goto(f"{web.url}#/agents/{agent['id']}")
    await expect(page.locator("#sources-table tbody td.name")).to_have_text(name)
    await expect(page.get_by_role("button", name=f"Delete source {name}")).to_be_visible()
    await page.goto(f"{web.url}#/tasks/{task_id}")
    await expect(page.locator("#task-sources .name")).to_have_text(name)
    assert await page.locator("main img").count() == 0
    assert await page.evaluate("window.pwned") is None
