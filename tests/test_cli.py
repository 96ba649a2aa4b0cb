"""The `hookd` command as its users run it: `python cli.py …` in a subprocess, on a database
in tmp_path; for tasks, next to a real `python server.py` on the same file."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from settings import markdown_table
from tests.processes import REPO_ROOT, HookdProcess, HookdProcesses, clean_environ

CLI_TIMEOUT_S = 30.0
WEBHOOK_LINE = re.compile(r"^  (\S+/api/webhooks/agents/([A-Za-z0-9_-]{43}))$", re.MULTILINE)


class Cli:
    """`python cli.py ARGS`, with `--db` added for the commands that open the database."""

    def __init__(self, db: Path) -> None:
        self.db = db

    def run(
        self, *args: str, timeout_s: float = CLI_TIMEOUT_S, settings: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`settings` by setting name: {"public_url": …} becomes HOOKD_PUBLIC_URL."""
        argv = [sys.executable, "cli.py", *args]
        if args[0] in ("agents", "tasks"):
            argv += ["--db", str(self.db)]
        return subprocess.run(
            argv,
            cwd=REPO_ROOT,
            env=clean_environ(**(settings or {})),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def __call__(self, *args: str, **settings: str) -> str:
        """Run a command that must succeed quietly; its stdout."""
        result = self.run(*args, settings=settings)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args))

    def fails(self, *args: str, timeout_s: float = CLI_TIMEOUT_S) -> str:
        """Run a command that must fail with one clear line on stderr; that line."""
        result = self.run(*args, timeout_s=timeout_s)
        assert result.returncode != 0, result.stdout
        assert "Traceback" not in result.stderr, result.stderr
        assert result.stderr.startswith("hookd: ") and result.stderr.count("\n") == 1, result.stderr
        return result.stderr.removeprefix("hookd: ").strip()

    def create_agent(self, name: str, *flags: str, **settings: str) -> tuple[str, str]:
        """`agents create`; the webhook URL it printed and the token in it."""
        out = self("agents", "create", "--name", name, "--prompt", "Be brief.", *flags, **settings)
        assert out.startswith(f"Created agent '{name}' (")
        found = WEBHOOK_LINE.findall(out)
        assert len(found) == 1, out
        url, token = found[0]
        return url, token

    def rows(self, sql: str) -> list[Any]:
        with closing(sqlite3.connect(self.db)) as conn:
            return conn.execute(sql).fetchall()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "hookd.db")


def test_create_prints_the_webhook_url(cli: Cli) -> None:
    url, token = cli.create_agent("triage", "--provider", "echo")
    assert url == f"http://127.0.0.1:7091/api/webhooks/agents/{token}"

    for public_url in ("https://hooks.example.org", "https://hooks.example.org/"):
        url, token = cli.create_agent(f"public {public_url}", "--provider", "echo", public_url=public_url)
        assert url == f"https://hooks.example.org/api/webhooks/agents/{token}"


def test_the_token_is_stored_only_as_its_sha256(cli: Cli) -> None:
    _, token = cli.create_agent("secret", "--provider", "echo")
    files = sorted(cli.db.parent.glob(cli.db.name + "*"))
    assert cli.db in files
    for path in files:
        assert token.encode() not in path.read_bytes(), path.name
    assert cli.rows("SELECT name, token_sha256 FROM agents") == [
        ("secret", hashlib.sha256(token.encode()).digest())
    ]


def test_list_show_and_update(cli: Cli) -> None:
    assert cli("agents", "list").startswith("No agents yet.")
    assert cli.json("agents", "list", "--json") == []
    cli.create_agent("triage", "--provider", "echo")
    cli.create_agent("alerts", "--provider", "openai", "--model", "m1", "--max-attempts", "5")

    lines = cli("agents", "list").splitlines()
    assert lines[0].split() == ["ID", "STATUS", "PROVIDER", "NAME"]
    assert [line.split()[1:] for line in lines[1:]] == [
        ["active", "openai", "alerts"],
        ["active", "echo", "triage"],
    ]
    listed = cli.json("agents", "list", "--json")
    assert [(a["name"], a["llm"]["provider"], a["max_attempts"]) for a in listed] == [
        ("alerts", "openai", 5),
        ("triage", "echo", 3),
    ]
    assert not any("token" in key or "webhook" in key for agent in listed for key in agent)

    shown = cli.json("agents", "show", "triage")
    assert shown == listed[1]
    assert cli.json("agents", "show", shown["id"]) == shown  # by id as well as by name

    updated = cli.json("agents", "update", "triage", "--status", "paused", "--model", "m")
    assert updated["status"] == "paused"
    assert updated["llm"] == {"provider": "echo", "model": "m", "base_url": None, "api_key_env": None}
    assert updated["updated_at"] > shown["updated_at"]
    assert cli.json("agents", "show", "triage") == updated
    assert cli.json("agents", "show", "alerts") == listed[0]


def test_tools_max_steps_and_json_schema(cli: Cli) -> None:
    tools = '[{"type": "read_webpage", "allow_hosts": ["docs.example.com"]}]'
    cli.create_agent("reader", "--tools", tools, "--max-steps", "4", "--json-schema", '{"type": "object"}')
    shown = cli.json("agents", "show", "reader")
    assert [(t["type"], t["allow_hosts"]) for t in shown["tools"]] == [("read_webpage", ["docs.example.com"])]
    assert (shown["max_steps"], shown["json_schema"]) == (4, {"type": "object"})
    updated = cli.json("agents", "update", "reader", "--tools", "null", "--json-schema", "null")
    assert (updated["tools"], updated["json_schema"], updated["max_steps"]) == ([], None, 4)
    assert cli.fails("agents", "update", "reader", "--tools", "[{").startswith("--tools must be JSON")
    message = cli.fails("agents", "update", "reader", "--json-schema", '{"type": "array"}')
    assert message.startswith("'json_schema' must describe a JSON object")


def test_rotate_token(cli: Cli) -> None:
    old_url, _ = cli.create_agent("triage", "--provider", "echo")
    out = cli("agents", "rotate-token", "triage")
    assert out.startswith("New token for agent 'triage' (")
    assert out.rstrip().endswith("The old webhook URL no longer works.")
    ((new_url, new_token),) = WEBHOOK_LINE.findall(out)
    assert new_url != old_url and new_url.startswith("http://127.0.0.1:7091/api/webhooks/agents/")
    assert cli.rows("SELECT token_sha256 FROM agents") == [(hashlib.sha256(new_token.encode()).digest(),)]


def test_delete(cli: Cli) -> None:
    cli.create_agent("triage", "--provider", "echo")
    (agent_id,) = cli.rows("SELECT id FROM agents")[0]
    assert cli("agents", "delete", "triage") == (
        f"Deleted agent 'triage' ({agent_id}); 0 unfinished tasks cancelled.\n"
    )
    assert cli.fails("agents", "show", "triage") == "No agent is named 'triage'."
    assert cli.rows("SELECT count(*) FROM agents") == [(0,)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["agents", "create", "--name", "taken"], "An agent named 'taken' already exists."),
        (
            ["agents", "create", "--name", "x", "--max-attempts", "0"],
            "'max_attempts' must be from 1 to 20, not 0.",
        ),
        (
            ["agents", "create", "--name", "x", "--timeout-s", "nan"],
            "'timeout_s' must be a number of seconds.",
        ),
        (["agents", "create", "--name", "  "], "'name' must not be empty."),
        (
            ["agents", "create", "--name", "x", "--base-url", "localhost:11434"],
            "'llm.base_url' must be an http",
        ),
        (["agents", "show", "nobody"], "No agent is named 'nobody'."),
        (["agents", "update", "nobody", "--status", "paused"], "No agent is named 'nobody'."),
        (
            ["agents", "update", "taken", "--max-concurrency", "0"],
            "'max_concurrency' must be from 1 to 10000",
        ),
        (["agents", "delete", "nobody"], "No agent is named 'nobody'."),
        (["agents", "rotate-token", "nobody"], "No agent is named 'nobody'."),
        (["tasks", "list", "--agent", "nobody"], "No agent is named 'nobody'."),
        (["tasks", "list", "--status", "DONE"], "Unknown status DONE"),
        (["tasks", "show", "not-a-task-id"], "No task has this id."),
        (["tasks", "show", "01a21af2-8951-7111-95f8-fbbbff5a1933"], "No task has this id."),
        (["tasks", "cancel", "01a21af2-8951-7111-95f8-fbbbff5a1933"], "No task has id"),
    ],
)
def test_errors_are_one_clear_line(cli: Cli, args: list[str], message: str) -> None:
    cli.create_agent("taken", "--provider", "echo")
    assert cli.fails(*args).startswith(message)
    assert cli.rows("SELECT name, max_concurrency FROM agents") == [("taken", None)]  # nothing changed


def test_usage_errors_come_from_argparse(cli: Cli) -> None:
    result = cli.run("agents", "create", "--prompt", "no name")
    assert result.returncode == 2
    assert "the following arguments are required: --name" in result.stderr
    assert "Traceback" not in result.stderr
    assert not cli.db.exists()


@pytest.mark.parametrize("kind", ["directory", "not a database"])
def test_a_database_path_hookd_cannot_use(cli: Cli, kind: str) -> None:
    if kind == "directory":
        cli.db.mkdir()
    else:
        cli.db.write_text("these are my notes, not a database\n")
    # A clear error within seconds, where a working command takes a fraction of one.
    assert "database" in cli.fails("agents", "list", timeout_s=5.0).lower()


def test_settings_prints_the_configuration_table(cli: Cli) -> None:
    out = cli("settings")
    assert out == markdown_table() + "\n"
    assert out.startswith("| Variable | Flag | Default | Meaning |\n|---|---|---|---|\n")
    assert "| `HOOKD_PORT` | `--port` | `7091` |" in out
    assert "| `HOOKD_ADMIN_KEY` | (env only) |" in out


@pytest.mark.parametrize("argv", [["server.py", "--help"], ["cli.py", "serve", "--help"]])
def test_serve_help_lists_the_flags(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, *argv],
        cwd=REPO_ROOT,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    flags = set(re.findall(r"(--[a-z-]+)", result.stdout))
    assert {"--port", "--db", "--workers", "--host", "--shutdown-grace-s", "--llm-base-url"} <= flags
    assert not {"--admin-key", "--llm-api-key"} & flags  # secrets come from the environment only
    assert "HOOKD_PORT" in result.stdout


# -- tasks, next to a running server ----------------------------------------------------


@pytest.fixture
def silent_model_url() -> Iterator[str]:
    """An API root that accepts connections and never answers: a run there waits forever."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"


@pytest.fixture
def server(tmp_path: Path, cli: Cli) -> Iterator[HookdProcess]:
    with HookdProcesses(tmp_path) as processes:
        yield processes.start(cli.db, workers=1)


def http_json(url: str, payload: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def wait_for_status(server: HookdProcess, task_id: str, status: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        code, body = http_json(f"{server.url}/api/task_status?task_id={task_id}")
        assert code == 200, body
        if body["status"] == status:
            return
        assert time.monotonic() < deadline, f"task still {body['status']}, not {status}"
        time.sleep(0.02)


def test_tasks_list_show_and_cancel_next_to_a_running_server(
    cli: Cli, server: HookdProcess, silent_model_url: str
) -> None:
    # One worker: the first run waits on the silent model, the other tasks stay queued.
    printed_url, _ = cli.create_agent(
        "slow", "--base-url", silent_model_url, "--model", "m", "--timeout-s", "600"
    )
    webhook_url = server.url + urlsplit(printed_url).path  # the printed token works on the server
    task_ids = []
    for n in range(3):
        code, body = http_json(webhook_url, {"question": f"task {n}"})
        assert code == 200, body
        task_ids.append(body["task_id"])
    running, queued, last = task_ids
    wait_for_status(server, running, "STARTED")

    listed = cli("tasks", "list", "--status", "PENDING").splitlines()
    assert listed[0].split() == ["ID", "STATUS", "TRIES", "CREATED"]
    assert [line.split()[:3] for line in listed[1:]] == [[last, "PENDING", "0/3"], [queued, "PENDING", "0/3"]]
    assert [t["id"] for t in cli.json("tasks", "list", "--json")] == [last, queued, running]
    assert [t["id"] for t in cli.json("tasks", "list", "--json", "--status", "started,retry")] == [running]
    assert [t["id"] for t in cli.json("tasks", "list", "--json", "--agent", "slow", "--limit", "1")] == [last]

    shown = cli.json("tasks", "show", queued)
    assert (shown["id"], shown["status"], shown["attempts"]) == (queued, "PENDING", 0)
    assert shown["payload"] == {"question": "task 1"} and shown["result"] is None

    assert cli("tasks", "cancel", queued).startswith(f"Task {queued} cancelled.")
    cancelled = cli.json("tasks", "show", queued)
    assert cancelled["status"] == "FAILURE"
    assert cancelled["result"] == {"error": "The task was cancelled.", "type": "cancelled"}
    assert http_json(f"{server.url}/api/task_status?task_id={queued}")[1]["result"]["type"] == "cancelled"
    assert cli.fails("tasks", "cancel", queued) == (
        f"Task '{queued}' already finished (FAILURE); there is nothing to cancel."
    )

    # A running task too: it ends at once, and the server, which hears of it (it watches the
    # file for other processes' commits), stops the run and gives its only worker to the last task.
    cli("tasks", "cancel", running)
    code, body = http_json(f"{server.url}/api/task_status?task_id={running}")
    assert (body["status"], body["result"]["type"], body["attempts"]) == ("FAILURE", "cancelled", 1)
    wait_for_status(server, last, "STARTED")
    assert f"task {running}: no longer this node's (cancelled" in server.log()

    # The server sees a rotation by the CLI at once: the old URL is refused.
    cli("agents", "rotate-token", "slow")
    code, body = http_json(webhook_url, {"question": "old token"})
    assert code == 404 and body["success"] is False
