"""MCP servers as tools, against a real MCP server (tests/mcp_server.py) started as a subprocess:
over stdio by hookd itself, and over streamable HTTP on loopback. Discovery, calls and their
results, error results, timeouts, failures to connect, secrets kept out of messages, and no
server process left behind when a run ends, fails or is cancelled."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from agents.mcp import McpTool, ToolError, open_mcp_tools, result_text, tool_name
from agents.mcp_config import check_mcp_servers
from agents.providers import ModelError
from errors import InvalidInput
from settings import SettingsError, load_settings
from tests.processes import REPO_ROOT, free_port

SERVER = str(REPO_ROOT / "tests" / "mcp_server.py")
SECRET = "s3cret-value-never-shown"
READY_TIMEOUT_S = 15.0


def stdio(**changes: Any) -> dict[str, Any]:
    return {"name": "calc", "command": [sys.executable, SERVER]} | changes


ANY_COMMAND = ("*",)  # HOOKD_MCP_COMMANDS=*


@asynccontextmanager
async def connected(
    *servers: dict[str, Any], commands: tuple[str, ...] = ANY_COMMAND
) -> AsyncIterator[dict[str, McpTool]]:
    """The servers' tools by name, for as long as a run would hold them."""
    async with AsyncExitStack() as stack:
        tools = await open_mcp_tools(check_mcp_servers(list(servers)), stack, commands)
        yield {tool.name: tool for tool in tools}


async def unavailable(*servers: dict[str, Any]) -> ModelError:
    return await unavailable_with(*servers, commands=ANY_COMMAND)


async def unavailable_with(*servers: dict[str, Any], commands: tuple[str, ...]) -> ModelError:
    with pytest.raises(ModelError) as caught:
        async with connected(*servers, commands=commands):
            pass
    return caught.value


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The test server over streamable HTTP on a free loopback port, ready."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("mcp") / "server.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen([sys.executable, SERVER, "--http", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not _accepts(port):
            if popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the MCP test server did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        popen.terminate()
        popen.wait(10)


def _accepts(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


# -- discovery and calls ---------------------------------------------------------------------


async def test_tools_are_discovered_with_prefixed_names_and_schemas() -> None:
    async with connected(stdio()) as tools:
        assert set(tools) == {
            "calc__add", "calc__echo", "calc__fail", "calc__sleep", "calc__pid", "calc__env",
            "calc__header", "calc__picture", "calc__big", "calc__read_file",
        }  # fmt: skip
        add = tools["calc__add"]
        assert add.description == "Add two whole numbers."
        assert add.parameters["type"] == "object"
        assert set(add.parameters["properties"]) == {"a", "b"}
        assert add.parameters["properties"]["a"]["type"] == "integer"
        assert sorted(add.parameters["required"]) == ["a", "b"]
        assert tools["calc__pid"].parameters["properties"] == {}


async def test_calls_are_forwarded_and_their_results_become_the_output() -> None:
    async with connected(stdio(max_output_chars=1000)) as tools:
        assert await tools["calc__add"].call({"a": 2, "b": 3}) == "5"
        assert await tools["calc__echo"].call({"text": "héllo\nworld"}) == "héllo\nworld"
        assert await tools["calc__read_file"].call({}) == "contents"  # called by its own name
        assert await tools["calc__picture"].call({}) == "[image: image/png, 100 bytes, not shown]"
        assert await tools["calc__big"].call({"chars": 5000}) == "x" * 1000 + "…[4000 more characters cut]"
        # An error result (isError) is a tool error carrying the server's text.
        with pytest.raises(ToolError, match=r"the disk is full$"):
            await tools["calc__fail"].call({"message": "the disk is full"})
        with pytest.raises(ToolError, match="validation error"):
            await tools["calc__add"].call({"a": "two", "b": 3})
        assert await tools["calc__add"].call({"a": 1, "b": 1}) == "2"  # the session goes on


async def test_the_runs_own_error_comes_out_unchanged() -> None:
    # The SDK's task groups wrap an exception they are closed with in an ExceptionGroup; the
    # run's error must keep its type, or the task's FAILURE would not say what went wrong.
    with pytest.raises(ModelError) as caught:
        async with connected(stdio()) as tools:
            await tools["calc__add"].call({"a": 1, "b": 2})
            raise ModelError("llm_http_error", "the model said no", transient=False)
    assert caught.value.type == "llm_http_error"


def test_result_text_summarizes_resources() -> None:
    from mcp import types

    result = types.CallToolResult(
        content=[
            types.TextContent(type="text", text="see:"),
            types.ResourceLink(type="resource_link", uri="file:///a.txt", name="a.txt"),
            types.EmbeddedResource(
                type="resource", resource=types.TextResourceContents(uri="file:///b.txt", text="bee")
            ),
            types.EmbeddedResource(
                type="resource",
                resource=types.BlobResourceContents(uri="file:///c.bin", mime_type="app/x", blob="AAAA"),
            ),
        ]
    )
    assert result_text(result, 10_000) == (
        "see:\n[resource link: file:///a.txt (a.txt)]\n[resource: file:///b.txt]\nbee\n"
        "[resource: file:///c.bin, app/x, 3 bytes, not shown]"
    )
    assert result_text(types.CallToolResult(content=[], structured_content={"n": 1}), 100) == '{"n": 1}'


def test_tool_names_fit_the_providers_charset_and_stay_unique() -> None:
    taken: set[str] = set()
    assert tool_name("files", "read.file", taken) == "files__read_file"
    assert tool_name("files", "read file", taken) == "files__read_file_2"
    long = tool_name("files", "a" * 80, taken)
    assert long == "files__" + "a" * 57 and len(long) == 64
    assert tool_name("files", "a" * 81, taken) == "files__" + "a" * 55 + "_2"


async def test_the_tools_key_offers_only_the_tools_named() -> None:
    async with connected(stdio(tools=["add", "read.file"])) as tools:
        assert set(tools) == {"calc__add", "calc__read_file"}
    error = await unavailable(stdio(tools=["add", "subtract"]))
    assert error.type == "config_error" and not error.transient
    assert "'calc' has no tool 'subtract'" in str(error) and "add, big, echo" in str(error)


async def test_two_servers_are_told_apart_by_their_prefix() -> None:
    async with connected(stdio(), stdio(name="other", tools=["echo"])) as tools:
        assert "calc__echo" in tools and "other__echo" in tools
        pids = {await tools["calc__pid"].call({})}
        assert await tools["other__echo"].call({"text": "hi"}) == "hi"
    assert not any(alive(int(pid)) for pid in pids)


# -- time limits ---------------------------------------------------------------------------


async def test_a_slow_call_is_cut_at_timeout_s_and_the_session_goes_on() -> None:
    async with connected(stdio(timeout_s=0.5)) as tools:
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"the MCP server 'calc' did not answer within 0\.5 s"):
            await tools["calc__sleep"].call({"seconds": 30})
        assert time.monotonic() - started < 5
        assert await tools["calc__add"].call({"a": 1, "b": 2}) == "3"


async def test_a_silent_server_is_cut_at_connect_timeout_s_and_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    silent = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    error = await unavailable(
        stdio(command=[sys.executable, "-c", silent, str(pid_file)], connect_timeout_s=1)
    )
    assert error.type == "mcp_unavailable" and error.transient
    assert "MCP server 'calc'" in str(error) and "no answer within 1 s" in str(error)
    assert not alive(int(pid_file.read_text()))


# -- the server process never outlives the run ---------------------------------------------------


async def test_the_server_process_ends_with_the_session() -> None:
    async with connected(stdio()) as tools:
        pid = int(await tools["calc__pid"].call({}))
        assert alive(pid)
    assert not alive(pid)


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_the_server_process_ends_when_the_run_is_cancelled(how: str) -> None:
    pids: list[int] = []
    calling = asyncio.Event()

    async def run() -> None:
        async with connected(stdio(timeout_s=120)) as tools:
            pids.append(int(await tools["calc__pid"].call({})))
            calling.set()
            await tools["calc__sleep"].call({"seconds": 60})

    if how == "cancel":  # as POST /api/tasks/{id}/cancel or a shutdown does
        task = asyncio.create_task(run())
        await asyncio.wait_for(calling.wait(), READY_TIMEOUT_S)
        await asyncio.sleep(0)  # let the call go out
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    else:  # as the agent's timeout_s does

        async def cut_short() -> None:
            await calling.wait()
            deadline.reschedule(asyncio.get_running_loop().time() + 0.2)

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(None) as deadline, asyncio.TaskGroup() as group:
                group.create_task(cut_short())
                await run()
    assert pids and not alive(pids[0])


# -- failures to connect -------------------------------------------------------------------------


async def test_a_command_that_does_not_exist_is_a_clear_lasting_error() -> None:
    error = await unavailable(stdio(command=["/nonexistent/mcp-server", "--flag"]))
    assert error.type == "mcp_unavailable" and not error.transient
    assert str(error) == (
        "The agent's MCP server 'calc' (the command '/nonexistent/mcp-server') is unavailable:"
        " No such file or directory"
    )


async def test_a_server_that_dies_at_start_is_quoted_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MCP_TOKEN", SECRET)
    dies = "import os, sys; sys.exit('cannot log in with ' + os.environ['GH_TOKEN'])"
    error = await unavailable(
        stdio(command=[sys.executable, "-c", dies], env_from={"GH_TOKEN": "TEST_MCP_TOKEN"})
    )
    assert error.type == "mcp_unavailable" and error.transient
    assert "MCP server 'calc'" in str(error) and "cannot log in with ***" in str(error)
    assert SECRET not in str(error)


async def test_an_unset_variable_is_a_config_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_MCP_UNSET", raising=False)
    error = await unavailable(stdio(env_from={"GH_TOKEN": "TEST_MCP_UNSET"}))
    assert error.type == "config_error" and not error.transient
    assert str(error) == (
        "The agent's MCP server 'calc' takes the variable GH_TOKEN from TEST_MCP_UNSET,"
        " which is not set in hookd's environment."
    )


@pytest.mark.parametrize(
    ("server", "field"),
    [
        (stdio(env_from={"GH_TOKEN": "TEST_OK"}), "env_from"),
        (
            {"name": "remote", "url": "http://127.0.0.1:9/mcp", "headers_env": {"X-Key": "TEST_OK"}},
            "headers_env",
        ),
    ],
)
async def test_a_saved_server_naming_hookds_own_variable_gets_nothing(
    monkeypatch: pytest.MonkeyPatch, server: dict[str, Any], field: str
) -> None:
    """For an agent saved before such names were refused: its run ends before anything is sent."""
    monkeypatch.setenv("HOOKD_ADMIN_KEY", SECRET)
    (saved,) = check_mcp_servers([server])
    saved[field] = {name: "HOOKD_ADMIN_KEY" for name in saved[field]}  # as an older hookd kept it
    async with AsyncExitStack() as stack:
        with pytest.raises(ModelError) as caught:
            await open_mcp_tools([saved], stack, ANY_COMMAND)
    error = caught.value
    assert error.type == "config_error" and not error.transient
    assert "variables starting with HOOKD_ are hookd's own settings" in str(error)
    assert SECRET not in str(error)


async def test_the_server_gets_env_and_env_from_but_not_hookds_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_MCP_TOKEN", SECRET)
    monkeypatch.setenv("HOOKD_ADMIN_KEY", "admin-key-of-hookd")
    server = stdio(env={"LOG_LEVEL": "debug"}, env_from={"GH_TOKEN": "TEST_MCP_TOKEN"})
    async with connected(server) as tools:
        env = tools["calc__env"]
        assert await env.call({"name": "LOG_LEVEL"}) == "debug"
        assert await env.call({"name": "GH_TOKEN"}) == SECRET
        assert await env.call({"name": "HOOKD_ADMIN_KEY"}) == "(unset)"
        assert await env.call({"name": "PATH"}) == os.environ["PATH"]
        with pytest.raises(ToolError) as caught:  # an error message never carries a secret
            await tools["calc__fail"].call({"message": f"bad token {SECRET}"})
        assert str(caught.value).endswith("bad token ***")


async def test_without_the_mcp_package_an_agent_with_servers_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with AsyncExitStack() as stack:
        monkeypatch.setitem(sys.modules, "mcp", None)  # what `import mcp` meets without the extra
        assert await open_mcp_tools([], stack) == []  # an agent without servers does not need it
        with pytest.raises(ModelError) as caught:
            await open_mcp_tools(check_mcp_servers([stdio()]), stack, ANY_COMMAND)
    assert caught.value.type == "config_error" and not caught.value.transient
    assert "pip install 'hookd[mcp]'" in str(caught.value)


def test_hookd_imports_without_loading_the_sdk() -> None:
    code = "import sys, agents.mcp, agents.mcp_config; assert 'mcp' not in sys.modules, 'mcp loaded'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


# -- streamable HTTP -----------------------------------------------------------------------------


async def test_over_http_tools_are_discovered_and_called(http_url: str) -> None:
    async with connected({"name": "remote", "url": http_url}) as tools:
        assert "remote__add" in tools and "remote__read_file" in tools
        assert await tools["remote__add"].call({"a": 20, "b": 22}) == "42"
        with pytest.raises(ToolError, match=r"nope$"):
            await tools["remote__fail"].call({"message": "nope"})


async def test_over_http_headers_come_from_named_variables(
    http_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_MCP_AUTH", f"Bearer {SECRET}")
    server = {"name": "remote", "url": http_url, "headers_env": {"Authorization": "TEST_MCP_AUTH"}}
    async with connected(server) as tools:
        assert await tools["remote__header"].call({"name": "authorization"}) == f"Bearer {SECRET}"


async def test_over_http_a_slow_call_is_cut_at_timeout_s(http_url: str) -> None:
    async with connected({"name": "remote", "url": http_url, "timeout_s": 0.5}) as tools:
        with pytest.raises(ToolError, match=r"did not answer within 0\.5 s"):
            await tools["remote__sleep"].call({"seconds": 30})
        assert await tools["remote__echo"].call({"text": "still here"}) == "still here"


async def test_over_http_an_unreachable_server_is_unavailable_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_MCP_AUTH", SECRET)
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp?key=in-the-query"
    error = await unavailable({"name": "remote", "url": url, "headers_env": {"X-Key": "TEST_MCP_AUTH"}})
    assert error.type == "mcp_unavailable" and error.transient
    assert str(error).startswith(
        f"The agent's MCP server 'remote' (http://127.0.0.1:{port}/mcp) is unavailable: "
    )
    assert "in-the-query" not in str(error) and SECRET not in str(error)


async def test_over_http_a_wrong_path_is_unavailable(http_url: str) -> None:
    error = await unavailable({"name": "remote", "url": http_url.replace("/mcp", "/elsewhere")})
    assert error.type == "mcp_unavailable"
    assert "Not Found" in str(error)


# -- checking `mcp_servers` on save ------------------------------------------------------------


def test_servers_are_normalized_with_defaults() -> None:
    given = [
        {"name": "files", "command": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv"]},
        {"name": "search", "url": "https://example.com/mcp", "headers_env": {"Authorization": "SEARCH_AUTH"}},
    ]
    checked = check_mcp_servers(given)
    assert checked == [
        {
            "name": "files",
            "command": ["npx", "-y", "@modelcontextprotocol/server-filesystem", "/srv"],
            "env": {},
            "env_from": {},
            "cwd": None,
            "tools": None,
            "connect_timeout_s": 30.0,
            "timeout_s": 60.0,
            "max_output_chars": 100_000,
        },
        {
            "name": "search",
            "url": "https://example.com/mcp",
            "headers_env": {"Authorization": "SEARCH_AUTH"},
            "tools": None,
            "connect_timeout_s": 30.0,
            "timeout_s": 60.0,
            "max_output_chars": 100_000,
        },
    ]
    assert check_mcp_servers(checked) == checked  # what is stored passes again unchanged
    assert check_mcp_servers(None) == []


@pytest.mark.parametrize(
    ("servers", "message"),
    [
        ({"name": "x"}, "'mcp_servers' must be a list of at most 10 servers"),
        ([stdio()] * 11, "'mcp_servers' must be a list of at most 10 servers"),
        (["python -m server"], "'mcp_servers[0]' must be an object"),
        ([{"name": "x"}], "'mcp_servers[0]' needs either a 'command' (stdio) or a 'url'"),
        ([{"name": "x", "command": ["a"], "url": "http://h/"}], "needs either a 'command'"),
        ([stdio(name="")], "'mcp_servers[0].name' is required: 1 to 30 letters"),
        ([stdio(name="my files")], "'mcp_servers[0].name' is required"),
        ([stdio(name="x" * 31)], "'mcp_servers[0].name' is required"),
        ([stdio(), stdio()], "'mcp_servers[1].name': another server is already named 'calc'"),
        (
            [stdio(command="python -m server")],
            "'mcp_servers[0].command' must be the program and its arguments",
        ),
        ([stdio(command=[])], "'mcp_servers[0].command' must be the program"),
        ([stdio(command=["a\0b"])], "'mcp_servers[0].command' must be the program"),
        ([stdio(comand=["a"])], "Unknown key 'mcp_servers[0].comand'; a server with a command takes"),
        ([stdio(headers_env={})], "Unknown key 'mcp_servers[0].headers_env'"),
        ([stdio(env={"GITHUB_TOKEN": "ghp_x"})], "'mcp_servers[0].env.GITHUB_TOKEN' looks like a secret"),
        ([stdio(env={"api_key": "k"})], "'mcp_servers[0].env.api_key' looks like a secret"),
        ([stdio(env={"1X": "v"})], "'mcp_servers[0].env' must map variable names to values"),
        ([stdio(env={"X": 1})], "'mcp_servers[0].env' must map variable names to values"),
        ([stdio(env_from={"X": "not a name"})], "'mcp_servers[0].env_from' must map each name"),
        (
            [stdio(env_from={"GH_TOKEN": "HOOKD_ADMIN_KEY"})],
            "'mcp_servers[0].env_from.GH_TOKEN' names HOOKD_ADMIN_KEY, and variables starting with HOOKD_",
        ),
        (
            [{"name": "s", "url": "http://h/", "headers_env": {"Authorization": "hookd_llm_api_key"}}],
            "'mcp_servers[0].headers_env.Authorization' names hookd_llm_api_key",
        ),
        ([stdio(cwd="relative/dir")], "'mcp_servers[0].cwd' must be an absolute path"),
        ([stdio(tools=[])], "'mcp_servers[0].tools' must be a list of the server's tool names"),
        ([stdio(tools="add")], "'mcp_servers[0].tools' must be a list"),
        ([stdio(timeout_s=0)], "'mcp_servers[0].timeout_s' must be a number of seconds"),
        ([stdio(timeout_s=float("nan"))], "'mcp_servers[0].timeout_s' must be a number of seconds"),
        ([stdio(connect_timeout_s=True)], "'mcp_servers[0].connect_timeout_s' must be a number"),
        ([stdio(max_output_chars=0)], "'mcp_servers[0].max_output_chars' must be a whole number"),
        ([{"name": "s", "url": "ftp://h/mcp"}], "'mcp_servers[0].url' must be an http:// or https:// URL"),
        ([{"name": "s", "url": "http://h:port/mcp"}], "'mcp_servers[0].url' must be an http://"),
        ([{"name": "s", "url": "http://[::1/mcp"}], "'mcp_servers[0].url' must be an http://"),
        ([{"name": "s", "url": ""}], "'mcp_servers[0].url' must be an http://"),
        ([{"name": "s", "url": "http://h:65536/mcp"}], "a port up to 65535"),
        ([{"name": "s", "url": "http://[::1::2]/mcp"}], "'mcp_servers[0].url' must be an http://"),
        ([{"name": "s", "url": "http://h/a b"}], "printable ASCII only (no spaces"),
        ([{"name": "s", "url": "http://h/caf\u00e9"}], "percent-encode anything else"),
        ([{"name": "s", "url": "https://u:pw@h/mcp"}], "take the credentials out of 'mcp_servers[0].url'"),
        ([{"name": "s", "url": "http://h/", "headers": {"A": "b"}}], "hookd never stores secrets"),
        ([{"name": "s", "url": "http://h/", "headers_env": {"Bad Header": "V"}}], "headers_env' must map"),
        ([{"name": "s", "url": "http://h/", "headers_env": {"A": "b-c"}}], "headers_env' must map"),
        ([{"name": "s", "url": "http://h/", "cwd": "/"}], "Unknown key 'mcp_servers[0].cwd'"),
    ],
)
def test_bad_servers_are_refused_with_a_message_naming_the_field(servers: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_mcp_servers(servers)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "url",
    ["http://h/", "HTTPS://Example.COM:8443/mcp?v=1#x", "http://127.0.0.1:9/mcp", "http://[::1]:9/mcp",
     "http://[fe80::1:2]/mcp", "https://h/caf%C3%A9"],
)  # fmt: skip
def test_http_urls_with_a_host_name_or_an_address_are_taken(url: str) -> None:
    assert check_mcp_servers([{"name": "s", "url": url}])[0]["url"] == url


# -- HOOKD_MCP_COMMANDS: which programs a stdio server may start ------------------------------


async def test_a_program_the_list_does_not_name_is_not_started(tmp_path: Path) -> None:
    started = tmp_path / "started"
    server = stdio(command=[sys.executable, "-c", f"open({str(started)!r}, 'w')"])
    for commands in ((), ("npx", "uvx"), (Path(sys.executable).name + "-other",)):
        error = await unavailable_with(server, commands=commands)
        assert error.type == "config_error" and not error.transient
        assert f"would start {sys.executable!r}, which HOOKD_MCP_COMMANDS does not list" in str(error)
    assert not started.exists()


async def test_a_listed_program_starts_matched_by_its_exact_first_word() -> None:
    async with connected(stdio(), commands=("npx", sys.executable)) as tools:
        assert "calc__add" in tools


async def test_servers_over_http_need_no_listing(http_url: str) -> None:
    async with connected({"name": "calc", "url": http_url}, commands=()) as tools:
        assert "calc__add" in tools


async def test_the_api_refuses_an_unlisted_program_and_stores_nothing(make_hookd: Any) -> None:
    hookd = await make_hookd()  # HOOKD_MCP_COMMANDS unset: HTTP servers only
    response = await hookd.client.post(
        "/api/agents", json={"name": "x", "mcp_servers": [stdio()]}, headers=hookd.admin
    )
    assert response.status == 400
    message = (await response.json())["message"]
    assert message.startswith("'mcp_servers[0].command': The MCP server 'calc' would start")
    assert "HOOKD_MCP_COMMANDS=/usr/local/bin/github-mcp-server" in message
    assert "an MCP server over HTTP" in message
    assert hookd.count_rows("agents") == 0


@pytest.mark.parametrize(
    ("field", "name"),
    [("env", "PATH"), ("env", "LD_PRELOAD"), ("env", "PYTHONWARNINGS"), ("env", "BROWSER"),
     ("env", "node_options"), ("env_from", "BASH_ENV"), ("env_from", "DYLD_INSERT_LIBRARIES")],
)  # fmt: skip
def test_variables_that_would_run_other_code_are_refused(field: str, name: str) -> None:
    server = stdio(**{field: {name: "/tmp/x" if field == "env" else "MCP_SOME_VALUE"}})
    with pytest.raises(InvalidInput, match=f"'mcp_servers\\[0\\].{field}.{name}' may not be set"):
        check_mcp_servers([server])


async def test_a_saved_server_setting_such_a_variable_starts_nothing(tmp_path: Path) -> None:
    """An agent saved before such names were refused: its run ends before anything starts."""
    started = tmp_path / "started"
    (saved,) = check_mcp_servers([stdio(command=[sys.executable, "-c", f"open({str(started)!r}, 'w')"])])
    saved["env"] = {"PYTHONSTARTUP": "/tmp/x"}  # as an older hookd kept it
    async with AsyncExitStack() as stack:
        with pytest.raises(ModelError) as caught:
            await open_mcp_tools([saved], stack, ANY_COMMAND)
    assert caught.value.type == "config_error" and "run other code" in str(caught.value)
    assert not started.exists()


async def test_a_listed_name_is_found_on_hookds_own_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bare name starts the program of that name on hookd's PATH (the server's own env may
    not set PATH): here a folder holding the test server as an executable named mcp-calc."""
    program = tmp_path / "bin" / "mcp-calc"
    program.parent.mkdir()
    program.write_text(f'#!/bin/sh\nexec {sys.executable} {SERVER} "$@"\n')
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{program.parent}:{os.environ['PATH']}")
    async with connected(stdio(command=["mcp-calc"]), commands=("mcp-calc",)) as tools:
        assert "calc__add" in tools


def test_the_setting_takes_names_and_absolute_paths() -> None:
    environ = {"HOOKD_MCP_COMMANDS": " npx, /usr/bin/uvx ,npx,"}
    assert load_settings(environ=environ).mcp_commands == ("npx", "/usr/bin/uvx")
    assert load_settings(environ={}).mcp_commands == ()
    with pytest.raises(SettingsError, match="must be a program name"):
        load_settings(environ={"HOOKD_MCP_COMMANDS": "bin/npx"})


# -- end to end: an agent's run ---------------------------------------------------------------


@pytest.fixture
async def hookd(make_hookd: Any) -> Any:
    """hookd allowed to start this Python (the test server's) and the missing program below."""
    return await make_hookd(mcp_commands=(sys.executable, "/nonexistent/mcp-server"))


async def test_an_agent_calls_an_mcp_tool_from_a_webhook(hookd: Any) -> None:
    agent = await hookd.create_agent(llm={"model": "tool=calc__add"}, mcp_servers=[stdio()])
    assert agent["mcp_servers"] == check_mcp_servers([stdio()])
    done = await hookd.wait_for(await hookd.trigger(agent, {"args": {"a": 2, "b": 3}}))
    assert done["status"] == "SUCCESS", done
    (call,) = done["result"]["tool_calls"]
    assert call["tool"] == "calc__add" and call["output"] == "5" and call["error"] is None


async def test_an_agent_whose_server_cannot_start_fails_mcp_unavailable(hookd: Any) -> None:
    server = stdio(command=["/nonexistent/mcp-server"])
    agent = await hookd.create_agent(llm={"model": "tool=calc__add"}, mcp_servers=[server])
    done = await hookd.wait_for(await hookd.trigger(agent, {}))
    assert done["status"] == "FAILURE" and done["attempts"] == 1, done
    assert done["result"]["type"] == "mcp_unavailable"
    assert "'calc'" in done["result"]["error"]


async def test_bad_mcp_servers_are_refused_by_the_api_and_nothing_is_stored(hookd: Any) -> None:
    body = {"name": "x", "mcp_servers": [stdio(env={"GITHUB_TOKEN": SECRET})]}
    response = await hookd.client.post("/api/agents", json=body, headers=hookd.admin)
    assert response.status == 400
    message = (await response.json())["message"]
    assert "'mcp_servers[0].env.GITHUB_TOKEN' looks like a secret" in message and SECRET not in message
    assert hookd.count_rows("agents") == 0
