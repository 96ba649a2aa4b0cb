"""Tool calling: the built-in tools against real loopback servers, both wire formats, address
refusals, caps, max_steps, errors fed back to the model, and the journal that keeps a retried
run (also after a kill -9) from calling a tool twice."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agents.tools.addresses import address_kind
from tasks.sqlite.store import SQLiteStore
from tests.conftest import Hookd
from tests.fake_llm import FakeLLM
from tests.processes import HookdProcesses
from tests.remote import Api, read_tasks, wait_until

PAGE = """<!doctype html><html><head><title>Parcel  FAQ</title><style>p {color: red}</style>
<script>var secret = "not text";</script></head><body>
<nav><a href="/">Home</a> <a href="/faq">FAQ</a></nav>
<h1>Lost parcels</h1><p>Most parcels   arrive
 within <b>three</b> days.</p><ul><li>Check the tracking page.</li><li>Ask a neighbour.</li></ul>
<h2>Refunds</h2><div>After 14 days we refund you.</div></body></html>"""
PAGE_TEXT = (
    "Title: Parcel FAQ\n\n# Lost parcels\nMost parcels arrive within three days.\n"
    "- Check the tracking page.\n- Ask a neighbour.\n## Refunds\nAfter 14 days we refund you."
)


@dataclass
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Target:
    """A loopback HTTP server that tools call; it counts and keeps every request."""

    url: str = ""
    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)  # ends /slow

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(Hit(request.method, request.path, dict(request.headers), await request.text()))
        name = request.match_info["name"]
        if name == "big":
            return web.Response(text="x" * 300_000)
        if name == "slow":
            await asyncio.wait_for(self.release.wait(), 30)
            return web.Response(text="late")
        if name == "page":
            return web.Response(text=PAGE, content_type="text/html")
        if name == "redirect":
            raise web.HTTPFound(request.query["to"])
        if name == "ntfy":
            return web.json_response({"id": "msg1", "event": "message"})
        return web.json_response({"method": request.method, "body": await request.text()})


@pytest.fixture
async def target(aiohttp_server: Any) -> AsyncIterator[Target]:
    target = Target()
    app = web.Application()
    app.router.add_route("*", "/{name}", target.handle)
    app.router.add_route("*", "/{name}/{rest:.*}", target.handle)
    server = await aiohttp_server(app)
    target.port = server.port
    target.url = f"http://127.0.0.1:{server.port}"
    yield target
    target.release.set()


LOOPBACK_HTTP = {"type": "http_request", "allow_hosts": ["127.0.0.1"], "allow_private": True}


def llm(fake_llm: FakeLLM, provider: str, model: str) -> dict[str, str]:
    if provider == "anthropic":
        return {"provider": "anthropic", "model": model, "base_url": fake_llm.url}
    return {"model": model}


async def run(
    hookd: Hookd,
    fake_llm: FakeLLM,
    model: str,
    payload: dict[str, Any],
    provider: str = "openai",
    **fields: Any,
) -> dict[str, Any]:
    """Create an agent on the fake model, trigger it once, and wait for the final status."""
    fields.setdefault("tools", [LOOPBACK_HTTP])
    agent = await hookd.create_agent(llm=llm(fake_llm, provider, model), **fields)
    return await hookd.wait_for(await hookd.trigger(agent, payload))


def tool_messages(fake_llm: FakeLLM, model: str, provider: str) -> list[dict[str, Any]]:
    """The tool results in the model's last request, as {id, content, is_error}."""
    messages = fake_llm.calls_for(model)[-1].body["messages"]
    if provider == "openai":
        return [
            {"id": m["tool_call_id"], "content": m["content"], "is_error": m["content"].startswith("Error: ")}
            for m in messages
            if m["role"] == "tool"
        ]
    return [
        {"id": b["tool_use_id"], "content": b["content"], "is_error": b.get("is_error", False)}
        for m in messages
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
    ]


# -- http_request ------------------------------------------------------------------------


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_http_request_round_trip(
    hookd: Hookd, fake_llm: FakeLLM, target: Target, provider: str
) -> None:
    args = {"method": "POST", "url": target.url + "/orders", "headers": {"X-Ref": "42"}, "body": '{"a": 1}'}
    done = await run(hookd, fake_llm, "tool=http_request", {"args": args}, provider)

    assert done["status"] == "SUCCESS", done
    assert [(h.method, h.path, h.headers["X-Ref"], h.body) for h in target.hits] == [
        ("POST", "/orders", "42", '{"a": 1}')
    ]
    output = 'HTTP 200 OK\nContent-Type: application/json\n\n{"method": "POST", "body": "{\\"a\\": 1}"}'
    assert done["result"]["answer"] == f"Tool said: {output}"
    (call,) = done["result"]["tool_calls"]
    assert call == {
        "step": 1,
        "tool": "http_request",
        "arguments": args,
        "output": output,
        "error": None,
        "duration_s": call["duration_s"],
        "replayed": False,
    }
    assert 0 <= call["duration_s"] < 5
    first, _ = fake_llm.calls_for("tool=http_request")
    offered = first.body["tools"]
    if provider == "openai":
        assert offered[0]["function"]["name"] == "http_request"
        assert offered[0]["function"]["parameters"]["required"] == ["url"]
    else:
        assert offered[0]["name"] == "http_request" and "tool_choice" not in first.body
    call_id = "call_1_0" if provider == "openai" else "toolu_1_0"
    assert tool_messages(fake_llm, "tool=http_request", provider) == [
        {"id": call_id, "content": output, "is_error": False}
    ]
    assert done["result"]["usage"] == (
        {"prompt_tokens": 14, "completion_tokens": 6, "total_tokens": 20}
        if provider == "openai"
        else {"input_tokens": 14, "output_tokens": 6}
    )


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_two_calls_in_one_step(hookd: Hookd, fake_llm: FakeLLM, target: Target, provider: str) -> None:
    tools = [LOOPBACK_HTTP, {"type": "read_webpage", "allow_private": True}]
    payload = {
        "http_request_args": {"url": target.url + "/one"},
        "read_webpage_args": {"url": target.url + "/page"},
    }
    model = "tool=http_request+read_webpage,parallel=1"
    done = await run(hookd, fake_llm, model, payload, provider, tools=tools)
    assert done["status"] == "SUCCESS", done
    assert [h.path for h in target.hits] == ["/one", "/page"]
    assert [(c["step"], c["tool"]) for c in done["result"]["tool_calls"]] == [
        (1, "http_request"),
        (1, "read_webpage"),
    ]
    results = tool_messages(fake_llm, model, provider)
    assert [r["content"] for r in results][1] == PAGE_TEXT
    assert done["result"]["answer"] == f"Tool said: {PAGE_TEXT}"


@pytest.mark.parametrize(
    ("model", "payload", "error"),
    [
        (
            "tool=http_request",
            {"args": {"url": "http://example.com/"}},
            "example.com is not one of the hosts",
        ),
        ("tool=http_request", {"args": {"url": 5}}, "at $.url: 5 is not of type 'string'"),
        ("tool=http_request", {"args": {"url": "ftp://127.0.0.1/"}}, "is not an http:// or https:// URL"),
        ("tool=shell", {"args": {"command": "ls"}}, "there is no tool named 'shell'"),
        (
            "tool=http_request",
            {"args": {"url": "http://127.0.0.1:1/"}},
            "could not connect to http://127.0.0.1:1/",
        ),
    ],
    ids=["host-not-allowed", "bad-arguments", "not-http", "unknown-tool", "refused-connection"],
)
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_tool_errors_go_back_to_the_model(
    hookd: Hookd,
    fake_llm: FakeLLM,
    target: Target,
    provider: str,
    model: str,
    payload: dict[str, Any],
    error: str,
) -> None:
    done = await run(hookd, fake_llm, model, payload, provider)
    assert done["status"] == "SUCCESS", done
    (call,) = done["result"]["tool_calls"]
    assert error in call["error"] and call["output"] is None, call
    (result,) = tool_messages(fake_llm, model, provider)
    assert result["is_error"] and result["content"] == f"Error: {call['error']}"
    assert done["result"]["answer"] == f"Tool said: Error: {call['error']}"
    assert target.hits == []


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("0x7f.0.0.1", "loopback"),  # a name to aiohttp, 127.0.0.1 to getaddrinfo: refused once resolved
        ("[::1]", "loopback"),
        ("[::ffff:127.0.0.1]", "loopback"),
        ("[64:ff9b::7f00:1]", "loopback"),  # NAT64: 127.0.0.1 behind a NAT64 gateway
        ("[64:ff9b:1::a00:1]", "local-use NAT64"),
        ("[fec0::1]", "site-local"),
        ("169.254.169.254", "link-local"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("0.0.0.0", "unspecified"),
    ],
)
async def test_private_addresses_are_refused_by_default(
    hookd: Hookd, fake_llm: FakeLLM, target: Target, host: str, kind: str
) -> None:
    tools = [{"type": "http_request", "allow_hosts": ["*"]}]
    url = f"http://{host}:{target.port}/secret"
    done = await run(hookd, fake_llm, "tool=http_request", {"args": {"url": url}}, tools=tools)
    (call,) = done["result"]["tool_calls"]
    assert f"a {kind} address; set allow_private: true" in call["error"], call
    assert target.hits == []


@pytest.mark.parametrize(
    ("tool", "model"),
    [
        ({"type": "http_request", "allow_hosts": ["*"]}, "tool=http_request"),
        ({"type": "read_webpage"}, "tool=read_webpage"),
    ],
)
async def test_an_ipv6_form_is_judged_by_the_ipv4_address_it_carries(
    hookd: Hookd, fake_llm: FakeLLM, target: Target, tool: dict[str, Any], model: str
) -> None:
    url = f"http://[64:ff9b::7f00:1]:{target.port}/secret"
    done = await run(hookd, fake_llm, model, {"args": {"url": url}}, tools=[tool])
    (call,) = done["result"]["tool_calls"]
    assert call["error"] == (
        "refused to connect to 64:ff9b::7f00:1: it is the NAT64 form of 127.0.0.1, a loopback address;"
        " set allow_private: true on the tool to allow loopback, private and link-local addresses"
    ), call
    assert target.hits == []


async def test_read_webpage_and_notify_refuse_loopback_by_default(
    hookd: Hookd, fake_llm: FakeLLM, target: Target
) -> None:
    page = await run(
        hookd, fake_llm, "tool=read_webpage", {"args": {"url": f"http://localhost:{target.port}/page"}},
        tools=[{"type": "read_webpage"}],
    )  # fmt: skip
    notified = await run(
        hookd, fake_llm, "tool=notify", {"args": {"message": "hi"}},
        tools=[{"type": "notify", "server": target.url, "topic": "alerts"}],
    )  # fmt: skip
    assert "localhost: it is a loopback name" in page["result"]["tool_calls"][0]["error"], page
    assert "127.0.0.1: it is a loopback address" in notified["result"]["tool_calls"][0]["error"], notified
    assert target.hits == []


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost.", "a loopback name"),
        ("LOCALHOST.", "a loopback name"),
        ("app.localhost.", "a loopback name"),
        ("127.0.0.1.", "a loopback address"),
    ],
)
@pytest.mark.parametrize("tool", ["http_request", "read_webpage"])
async def test_a_trailing_dot_does_not_hide_a_loopback_host(
    hookd: Hookd, fake_llm: FakeLLM, target: Target, host: str, reason: str, tool: str
) -> None:
    url = f"http://{host}:{target.port}/secret"
    tools = [{"type": tool} | ({"allow_hosts": ["*"]} if tool == "http_request" else {})]
    done = await run(hookd, fake_llm, f"tool={tool}", {"args": {"url": url}}, tools=tools)
    (call,) = done["result"]["tool_calls"]
    assert f"refused to connect to {host.lower()}: it is {reason}; set allow_private" in call["error"], call
    assert target.hits == []


async def test_redirects_are_checked_hop_by_hop(hookd: Hookd, fake_llm: FakeLLM, target: Target) -> None:
    inside = f"{target.url}/redirect?to=/landed"
    outside = f"{target.url}/redirect?to=http://localhost:{target.port}/landed"
    model = "tool=http_request,steps=2"
    first = await run(hookd, fake_llm, model, {"args": {"url": inside}})
    assert first["result"]["tool_calls"][0]["output"].startswith("HTTP 200 OK")
    assert [h.path for h in target.hits] == ["/redirect", "/landed"] * 2  # the same call at step 2
    target.hits.clear()
    second = await run(hookd, fake_llm, "tool=http_request", {"args": {"url": outside}})
    assert "localhost is not one of the hosts" in second["result"]["tool_calls"][0]["error"]
    assert [h.path for h in target.hits] == ["/redirect"]


async def test_the_response_is_cut_at_max_response_bytes(
    hookd: Hookd, fake_llm: FakeLLM, target: Target
) -> None:
    done = await run(hookd, fake_llm, "tool=http_request", {"args": {"url": target.url + "/big"}})
    (result,) = tool_messages(fake_llm, "tool=http_request", "openai")
    head = "HTTP 200 OK\nContent-Type: text/plain\n\n"
    assert result["content"] == head + "x" * 100_000 + "\n…[cut: the response is longer than 100000 bytes]"
    output = done["result"]["tool_calls"][0]["output"]
    assert output.startswith(head + "xxx") and len(output) < 2100 and output.endswith("more characters]")


async def test_a_slow_answer_is_cut_at_the_tools_timeout(
    hookd: Hookd, fake_llm: FakeLLM, target: Target
) -> None:
    tools = [LOOPBACK_HTTP | {"timeout_s": 0.3}]
    started = time.monotonic()
    done = await run(
        hookd, fake_llm, "tool=http_request", {"args": {"url": target.url + "/slow"}}, tools=tools
    )
    assert done["status"] == "SUCCESS"
    assert "did not answer within 0.3 s" in done["result"]["tool_calls"][0]["error"]
    assert time.monotonic() - started < 5


async def test_a_tool_cannot_outlast_the_runs_timeout(
    hookd: Hookd, fake_llm: FakeLLM, target: Target
) -> None:
    payload = {"args": {"url": target.url + "/slow"}}
    done = await run(hookd, fake_llm, "tool=http_request", payload, timeout_s=0.5, max_attempts=1)
    assert done["status"] == "FAILURE" and done["result"]["type"] == "timeout", done
    # The call the timeout cut off is not shown; none finished, so the result has no tool_calls.
    assert "tool_calls" not in done["result"], done


async def test_max_steps_ends_a_run_that_keeps_calling_tools(
    hookd: Hookd, fake_llm: FakeLLM, target: Target
) -> None:
    model = "tool=http_request,steps=99"
    done = await run(hookd, fake_llm, model, {"args": {"url": target.url + "/again"}}, max_steps=3)
    assert done["status"] == "FAILURE" and done["attempts"] == 1, done
    assert done["result"]["type"] == "max_steps_exceeded"
    assert "max_steps is 3" in done["result"]["error"]
    assert len(fake_llm.calls_for(model)) == 3 and len(target.hits) == 3
    # The failure still shows what the run did: the calls of its three steps.
    assert [c["step"] for c in done["result"]["tool_calls"]] == [1, 2, 3], done
    assert all(c["output"].startswith("HTTP 200") for c in done["result"]["tool_calls"]), done


# -- read_webpage and notify -------------------------------------------------------------


async def test_read_webpage_keeps_the_readable_text(hookd: Hookd, fake_llm: FakeLLM, target: Target) -> None:
    tools = [{"type": "read_webpage", "allow_private": True}]
    done = await run(
        hookd, fake_llm, "tool=read_webpage", {"args": {"url": target.url + "/page"}}, tools=tools
    )
    assert done["result"]["answer"] == f"Tool said: {PAGE_TEXT}"
    cut = [{"type": "read_webpage", "allow_private": True, "max_chars": 20}]
    short = await run(
        hookd, fake_llm, "tool=read_webpage", {"args": {"url": target.url + "/page"}}, tools=cut
    )
    assert short["result"]["tool_calls"][0]["output"] == PAGE_TEXT[:20] + "\n…[cut at 20 characters]"


async def test_notify_posts_to_ntfy(
    hookd: Hookd, fake_llm: FakeLLM, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_NTFY_TOKEN", "tk_not_really_a_secret")
    config = {"type": "notify", "server": target.url + "/ntfy", "topic": "alerts", "allow_private": True}
    args = {
        "message": "Parcel 42 is lost",
        "title": "Zoë's parcel",
        "priority": 4,
        "tags": ["warning", "box"],
    }
    done = await run(
        hookd, fake_llm, "tool=notify", {"args": args}, tools=[config | {"api_key_env": "TEST_NTFY_TOKEN"}]
    )
    assert done["status"] == "SUCCESS", done
    (hit,) = target.hits
    assert (hit.method, hit.path, hit.body) == ("POST", "/ntfy/alerts", "Parcel 42 is lost")
    assert hit.headers["Title"] == "=?UTF-8?B?" + base64.b64encode("Zoë's parcel".encode()).decode() + "?="
    assert (hit.headers["Priority"], hit.headers["Tags"]) == ("4", "warning,box")
    assert hit.headers["Authorization"] == "Bearer tk_not_really_a_secret"
    assert done["result"]["tool_calls"][0]["output"] == "Sent to the ntfy topic alerts (message msg1)."
    agent = (await (await hookd.client.get("/api/agents", headers=hookd.admin)).json())["agents"][0]
    assert "tk_not_really_a_secret" not in json.dumps([done, agent])


async def test_notify_without_its_token_variable_fails_as_config_error(
    hookd: Hookd, fake_llm: FakeLLM, target: Target
) -> None:
    config = {"type": "notify", "server": target.url, "topic": "t", "api_key_env": "TEST_UNSET_TOKEN"}
    done = await run(hookd, fake_llm, "tool=notify", {"args": {"message": "x"}}, tools=[config])
    assert done["status"] == "FAILURE" and done["result"]["type"] == "config_error", done
    assert "TEST_UNSET_TOKEN" in done["result"]["error"]
    assert fake_llm.calls == [] and target.hits == []


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tools": {"type": "notify"}}, "'tools' must be a list"),
        ({"tools": [{"type": "shell"}]}, "'tools[0].type' must be one of http_request, read_webpage, notify"),
        ({"tools": [{"type": ["notify"]}]}, "'tools[0].type' must be one of"),  # unhashable: was a 500
        ({"tools": [{"type": {"a": 1}}]}, "'tools[0].type' must be one of"),
        ({"tools": [{"type": "http_request"}]}, "'tools[0].allow_hosts' is required"),
        ({"tools": [{"type": "http_request", "allow_hosts": "*"}]}, "must be a list of 1 to 100 host names"),
        ({"tools": [{"type": "read_webpage", "allow_hosts": []}]}, "must be a list of 1 to 100 host names"),
        (
            {"tools": [{"type": "http_request", "allow_hosts": ["a b"]}]},
            "has 'a b', which is not a host name",
        ),
        (  # an IDN is given as its xn-- form, as the document's pattern says
            {"tools": [{"type": "http_request", "allow_hosts": ["b\u00fccher.example"]}]},
            "(an IDN as its xn-- form)",
        ),
        ({"tools": [{"type": "http_request", "allow_hosts": [" api.example.com"]}]}, "not a host name"),
        ({"tools": [{"type": "http_request", "allow_hosts": ["[::1"]}]}, "not a host name"),
        (
            {"tools": [LOOPBACK_HTTP | {"allow_private": "yes"}]},
            "'tools[0].allow_private' must be true or false",
        ),
        ({"tools": [LOOPBACK_HTTP | {"timeout_s": 0}]}, "'tools[0].timeout_s' must be more than 0"),
        ({"tools": [LOOPBACK_HTTP | {"verbose": True}]}, "Unknown key 'tools[0].verbose'"),
        ({"tools": [LOOPBACK_HTTP, LOOPBACK_HTTP]}, "the agent already has a http_request tool"),
        ({"tools": [{"type": "notify"}]}, "'tools[0].topic' is required"),
        ({"tools": [{"type": "notify", "topic": "a/b"}]}, "'tools[0].topic' is required and must look like"),
        (
            {"tools": [{"type": "notify", "topic": "t", "server": "ntfy.sh"}]},
            "'tools[0].server' must be an ntfy",
        ),
        ({"tools": [{"type": "notify", "topic": "t", "token": "tk_x"}]}, "hookd never stores secrets"),
        ({"tools": [{"type": "notify", "topic": "t", "api_key_env": "A-B"}]}, "'tools[0].api_key_env' must"),
        (
            {"tools": [{"type": "notify", "topic": "t", "api_key_env": "HOOKD_METRICS_KEY"}]},
            "'tools[0].api_key_env' names HOOKD_METRICS_KEY, and variables starting with HOOKD_",
        ),
        (
            {"tools": [{"type": "read_webpage", "max_chars": 0}]},
            "'tools[0].max_chars' must be a whole number",
        ),
        ({"max_steps": 0}, "'max_steps' must be from 1 to 50"),
        ({"max_steps": 51}, "'max_steps' must be from 1 to 50"),
        ({"max_steps": "8"}, "'max_steps' must be a whole number"),
    ],
)
async def test_tool_configs_are_checked_on_save(hookd: Hookd, fields: dict[str, Any], message: str) -> None:
    response = await hookd.client.post("/api/agents", json={"name": "t"} | fields, headers=hookd.admin)
    body = await response.json()
    assert response.status == 400 and message in body["message"], body
    assert "tk_x" not in body["message"]
    assert hookd.count_rows("agents") == 0


async def test_a_tool_count_may_be_written_with_a_point(hookd: Hookd) -> None:
    agent = await hookd.create_agent(tools=[{"type": "read_webpage", "max_chars": 5000.0}])
    assert agent["tools"][0]["max_chars"] == 5000 and isinstance(agent["tools"][0]["max_chars"], int)


async def test_allow_hosts_are_taken_as_the_document_spells_them(hookd: Hookd) -> None:
    hosts = ["API.Example.com.", "*.example.org", "xn--bcher-kva.example", "10.0.0.1", "[::1]", "fe80::1"]
    agent = await hookd.create_agent(tools=[{"type": "http_request", "allow_hosts": hosts}])
    assert agent["tools"][0]["allow_hosts"] == [
        "api.example.com", "*.example.org", "xn--bcher-kva.example", "10.0.0.1", "::1", "fe80::1"
    ]  # fmt: skip


async def test_saved_tools_show_their_defaults(hookd: Hookd) -> None:
    agent = await hookd.create_agent(
        tools=[
            {"type": "http_request", "allow_hosts": ["API.Example.com."]},
            {"type": "notify", "topic": "t"},
        ],
        max_steps=12,
    )
    assert agent["tools"] == [
        {
            "type": "http_request",
            "allow_hosts": ["api.example.com"],
            "allow_private": False,
            "timeout_s": 20.0,
            "max_response_bytes": 100_000,
        },
        {
            "type": "notify",
            "server": "https://ntfy.sh",
            "topic": "t",
            "api_key_env": None,
            "allow_private": False,
            "timeout_s": 20.0,
        },
    ]
    assert agent["max_steps"] == 12
    response = await hookd.client.patch(
        f"/api/agents/{agent['id']}", json={"tools": None}, headers=hookd.admin
    )
    assert (await response.json())["tools"] == []


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
        ("127.0.0.2", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("100.64.0.1", "non-public"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        # IPv4-mapped and NAT64's well-known prefix: judged by the IPv4 address they carry.
        ("::ffff:8.8.8.8", None),
        ("64:ff9b::8.8.8.8", None),
        ("64:ff9b::127.0.0.1", "loopback"),
        ("64:ff9b::10.1.2.3", "private"),
        ("64:ff9b::169.254.169.254", "link-local"),
        ("64:ff9b::100.64.0.1", "non-public"),
        ("64:ff9b::224.0.0.1", "multicast"),
        ("64:ff9b::0.0.0.0", "unspecified"),
        # The other forms carrying an IPv4 address: refused whatever they carry.
        ("::8.8.8.8", "deprecated IPv4-compatible"),
        ("::127.0.0.1", "deprecated IPv4-compatible"),
        ("::ffff:0:8.8.8.8", "SIIT IPv4-translated"),
        ("::ffff:0:127.0.0.1", "SIIT IPv4-translated"),
        ("64:ff9b:1::808:808", "local-use NAT64"),
        ("64:ff9b:1:7f00:0:100::", "local-use NAT64"),  # 127.0.0.1 as a /48 prefix places it
        ("2002:808:808::1", "6to4"),
        ("2002:7f00:1::1", "6to4"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
        ("fec0::1", "site-local"),
        ("feff:ffff::1", "site-local"),
        # Inside ::/96, but themselves.
        ("::1", "loopback"),
        ("::", "unspecified"),
    ],
)
def test_ipv6_forms_carrying_an_ipv4_address(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


# -- the journal -------------------------------------------------------------------------


async def test_a_retried_run_replays_a_journalled_call(
    hookd: Hookd, fake_llm: FakeLLM, target: Target
) -> None:
    # Step 2 fails once (503): the task is retried, and its step-1 call must not go out again.
    model = "tool=http_request,fail_at=2:1"
    done = await run(hookd, fake_llm, model, {"args": {"method": "POST", "url": target.url + "/charge"}})
    assert (done["status"], done["attempts"]) == ("SUCCESS", 2), done
    assert len(target.hits) == 1
    (call,) = done["result"]["tool_calls"]
    assert call["replayed"] is True and call["output"].startswith("HTTP 200 OK")
    assert len(fake_llm.calls_for(model)) == 4  # steps 1, 2 (failed), then 1 and 2 again
    assert hookd.count_rows("tool_calls") == 1


async def test_the_journal_goes_with_its_task(hookd: Hookd, fake_llm: FakeLLM, target: Target) -> None:
    done = await run(hookd, fake_llm, "tool=http_request", {"args": {"url": target.url + "/x"}})
    assert done["status"] == "SUCCESS" and hookd.count_rows("tool_calls") == 1
    store = SQLiteStore(hookd.settings.db)  # as retention would, from the same file
    await store.open()
    try:
        assert await store.purge_finished(time.time() + 1, 10) == 1
    finally:
        await store.close()
    assert hookd.count_rows("tool_calls") == 0


@pytest.fixture
def processes(tmp_path: Path, fake_llm: FakeLLM) -> Iterator[HookdProcesses]:
    with HookdProcesses(tmp_path, llm_base_url=fake_llm.url + "/v1", llm_model="ok") as started:
        yield started


async def test_kill_9_mid_run_replays_the_journalled_call(
    processes: HookdProcesses, fake_llm: FakeLLM, target: Target
) -> None:
    hookd = await asyncio.to_thread(processes.start)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        api = Api(http, hookd)
        model = "tool=http_request,sleep_at=2:60"  # the model "thinks" at step 2 until the kill
        agent = await api.create_agent(llm={"model": model}, tools=[LOOPBACK_HTTP], max_attempts=3)
        task_id = await api.trigger(agent, {"args": {"method": "POST", "url": target.url + "/charge"}})
        await wait_until(lambda: len(fake_llm.calls_for(model)) == 2, "step 2 at the model")
        assert len(target.hits) == 1
        # The next start runs on a model that does not stop to think; the run in flight keeps its agent.
        await api.update_agent(agent["id"], llm={"model": "tool=http_request"})
        hookd.kill()
        assert read_tasks(hookd.db)[task_id]["status"] == "STARTED"

        await asyncio.to_thread(processes.start, port=hookd.port)
        (done,) = (await api.wait_all([task_id])).values()

    assert (done["status"], done["attempts"]) == ("SUCCESS", 2), done
    assert len(target.hits) == 1, "the journalled call was made again"
    (call,) = done["result"]["tool_calls"]
    assert (call["step"], call["replayed"]) == (1, True)
    assert done["result"]["answer"].startswith("Tool said: HTTP 200 OK")


def tls_for_loopback(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    """A throwaway CA's certificate, and a server context with a certificate it issued for 127.0.0.1."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca, leaf, extensions = tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.cnf"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    for command in (
        ["req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "1", "-subj", "/CN=hookd test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"],
        ["req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-set_serial", "1",
         "-days", "1", "-out", "leaf.pem", "-extfile", str(extensions)],
    ):  # fmt: skip
        subprocess.run([openssl, *command], cwd=tmp_path, check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf, tmp_path / "leaf.key")
    return ca, context


async def test_a_redirect_from_https_to_http_is_not_followed(
    processes: HookdProcesses,
    fake_llm: FakeLLM,
    target: Target,
    aiohttp_server: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The notify tool's token (and the message) never go out unencrypted after an https start."""
    ca, context = tls_for_loopback(tmp_path)
    hits: list[Hit] = []

    async def ntfy_over_tls(request: web.Request) -> web.Response:
        hits.append(Hit(request.method, request.path, dict(request.headers), await request.text()))
        if request.path.startswith("/moved/"):  # the same host, downgraded
            raise web.HTTPTemporaryRedirect(f"{target.url}/landed")
        return web.json_response({"id": "msg1", "event": "message"})

    app = web.Application()
    app.router.add_post("/{path:.*}", ntfy_over_tls)
    server = await aiohttp_server(app, ssl=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))  # the hookd process trusts the test's CA
    monkeypatch.setenv("TEST_NTFY_TOKEN", "tk_not_for_plain_http")
    hookd = await asyncio.to_thread(processes.start)
    async with aiohttp.ClientSession() as http:
        api = Api(http, hookd)
        task_ids = []
        for path in ("/direct", "/moved"):
            notify = {"type": "notify", "server": f"https://127.0.0.1:{server.port}{path}", "topic": "alerts"}
            agent = await api.create_agent(
                llm={"model": "tool=notify"},
                tools=[notify | {"api_key_env": "TEST_NTFY_TOKEN", "allow_private": True}],
            )
            task_ids.append(await api.trigger(agent, {"args": {"message": "Parcel 42 is lost"}}))
        direct, moved = (await api.wait_all(task_ids)).values()
    assert direct["result"]["tool_calls"][0]["output"] == "Sent to the ntfy topic alerts (message msg1).", (
        direct
    )
    (call,) = moved["result"]["tool_calls"]
    assert "does not follow a redirect from https to http" in (call["error"] or ""), call
    assert [(h.path, h.headers["Authorization"]) for h in hits] == [
        ("/direct/alerts", "Bearer tk_not_for_plain_http"),
        ("/moved/alerts", "Bearer tk_not_for_plain_http"),
    ]
    assert target.hits == []
