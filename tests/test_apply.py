"""`hookd agents apply FILE`: agents declared in TOML, created or updated by name, as its users
run it (`python cli.py …` on a database in tmp_path, through test_cli's `Cli`)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents import apply
from agents.agent import SavePolicy, validate_agent_fields
from agents.signatures import new_secret
from errors import Conflict, InvalidInput, NotFound
from tasks.sqlite.store import SQLiteStore
from tests.processes import REPO_ROOT, clean_environ
from tests.test_cli import CLI_TIMEOUT_S, WEBHOOK_LINE, Cli

TRIAGE = """
[[agent]]
name = "triage"
description = "Sort support mail"
prompt = '''
Sort support mail by urgency.
Answer with one word.'''
input_template = "Mail from {{payload.from}}: {{question}}"
max_attempts = 5
timeout_s = 30
rate_limit = "60/min"
llm = { provider = "echo" }
"""

SUMMARISE = """
[[agent]]
name = "summarise"
prompt = "Summarise in one line."
max_concurrency = 2
status = "paused"

[agent.llm]
provider = "openai"
model = "gpt-4o-mini"
base_url = "https://api.openai.com/v1/"
api_key_env = "OPENAI_API_KEY"
"""

NOTE = "Webhook URLs are shown only when an agent is created"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "hookd.db")


class AgentsFile:
    """agents.toml in tmp_path; `apply()` runs `hookd agents apply` on it."""

    def __init__(self, cli: Cli, path: Path) -> None:
        self.cli = cli
        self.path = path

    def write(self, *tables: str) -> None:
        self.path.write_text("".join(tables), encoding="utf-8")

    def run(self, *flags: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`hookd agents apply FILE FLAGS`, with `env` added to a clean environment."""
        return subprocess.run(
            [sys.executable, "cli.py", "agents", "apply", str(self.path), *flags, "--db", str(self.cli.db)],
            cwd=REPO_ROOT,
            env=clean_environ() | (env or {}),
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )

    def apply(self, *flags: str, env: dict[str, str] | None = None) -> list[str]:
        result = self.run(*flags, env=env)
        assert result.returncode == 0 and result.stderr == "", result.stderr
        return result.stdout.splitlines()

    def fails(self, env: dict[str, str] | None = None) -> list[str]:
        """Apply, which must fail without a traceback: its error lines, without "hookd: "."""
        result = self.run(env=env)
        assert result.returncode == 1, result.stdout
        assert "Traceback" not in result.stderr and result.stdout == "", result.stderr
        assert result.stderr.startswith("hookd: "), result.stderr
        return result.stderr.removeprefix("hookd: ").splitlines()

    def agents(self) -> list[tuple[Any, ...]]:
        """Every agent row as stored, with its token hash and updated_at."""
        return self.cli.rows("SELECT * FROM agents ORDER BY name")


@pytest.fixture
def agents_file(cli: Cli, tmp_path: Path) -> AgentsFile:
    return AgentsFile(cli, tmp_path / "agents.toml")


def test_apply_creates_the_agents_and_prints_each_webhook_url_once(cli: Cli, agents_file: AgentsFile) -> None:
    agents_file.write(TRIAGE, SUMMARISE)
    out = agents_file.apply()
    assert out[0] == "created triage" and out[3] == "created summarise"
    assert out[-1] == f"{agents_file.path}: 2 created, 0 updated, 0 unchanged."
    assert not any(NOTE in line for line in out)  # every URL was shown
    urls = WEBHOOK_LINE.findall("\n".join(out))
    assert [url for url, _ in urls] == [out[2].strip(), out[5].strip()]
    assert all(url.startswith("http://127.0.0.1:7091/api/webhooks/agents/") for url, _ in urls)
    hashes = {name: token_hash for name, token_hash in cli.rows("SELECT name, token_sha256 FROM agents")}
    assert hashes == {
        "triage": hashlib.sha256(urls[0][1].encode()).digest(),
        "summarise": hashlib.sha256(urls[1][1].encode()).digest(),
    }

    triage = cli.json("agents", "show", "triage")
    # Every field the file set (fields it left out keep their defaults; newer ones are not listed).
    expected = {
        "name": "triage",
        "description": "Sort support mail",
        "prompt": "Sort support mail by urgency.\nAnswer with one word.",
        "input_template": "Mail from {{payload.from}}: {{question}}",
        "llm": {"provider": "echo", "model": None, "base_url": None, "api_key_env": None},
        "max_attempts": 5,
        "timeout_s": 30.0,
        "max_concurrency": None,
        "rate_limit": "60/min",
        "status": "active",
    }
    assert triage | expected == triage
    summarise = cli.json("agents", "show", "summarise")
    assert summarise["llm"] == {
        "provider": "openai",
        "model": "gpt-4o-mini",
        "base_url": "https://api.openai.com/v1",
        "api_key_env": "OPENAI_API_KEY",
    }
    assert (summarise["max_attempts"], summarise["max_concurrency"], summarise["status"]) == (3, 2, "paused")


def test_a_second_apply_changes_nothing_and_says_so(agents_file: AgentsFile) -> None:
    agents_file.write(TRIAGE, SUMMARISE)
    agents_file.apply()
    before = agents_file.agents()

    out = agents_file.apply()
    assert out[:3] == [
        "unchanged triage",
        "unchanged summarise",
        f"{agents_file.path}: nothing to change (2 unchanged).",
    ]
    assert NOTE in out[3] and "rotate-token" in out[3]
    assert WEBHOOK_LINE.findall("\n".join(out)) == []
    assert agents_file.agents() == before  # not even updated_at moved


def test_a_changed_field_is_updated_and_the_rest_kept(cli: Cli, agents_file: AgentsFile) -> None:
    agents_file.write(TRIAGE, SUMMARISE)
    agents_file.apply()
    (triage_before, summarise_before) = (cli.json("agents", "show", n) for n in ("triage", "summarise"))
    (token_before,) = cli.rows("SELECT token_sha256 FROM agents WHERE name = 'triage'")

    # A new timeout and model; the description line left out; a third agent added.
    changed = TRIAGE.replace("timeout_s = 30", "timeout_s = 45").replace(
        'llm = { provider = "echo" }', 'llm = { provider = "echo", model = "m2" }'
    )
    changed = changed.replace('description = "Sort support mail"\n', "")
    agents_file.write(changed, SUMMARISE, '[[agent]]\nname = "digest"\n')
    out = agents_file.apply()
    assert out[:2] == ["updated triage: timeout_s, llm", "unchanged summarise"]
    assert out[2] == "created digest" and len(WEBHOOK_LINE.findall("\n".join(out))) == 1
    assert out[5] == f"{agents_file.path}: 1 created, 1 updated, 1 unchanged."
    assert NOTE in out[6]

    triage = cli.json("agents", "show", "triage")
    assert triage["timeout_s"] == 45.0
    assert triage["llm"]["model"] == "m2"
    assert triage["description"] == "Sort support mail"  # left out of the file: kept
    assert triage["updated_at"] > triage_before["updated_at"]
    assert {k: v for k, v in triage.items() if k not in ("timeout_s", "llm", "updated_at")} == {
        k: v for k, v in triage_before.items() if k not in ("timeout_s", "llm", "updated_at")
    }
    assert cli.json("agents", "show", "summarise") == summarise_before
    # An update keeps the webhook URL.
    assert cli.rows("SELECT token_sha256 FROM agents WHERE name = 'triage'") == [token_before]


def test_dry_run_shows_the_plan_and_writes_nothing(cli: Cli, agents_file: AgentsFile) -> None:
    agents_file.write(TRIAGE)
    assert agents_file.apply("--dry-run") == [
        "would create triage",
        f"{agents_file.path}: 1 to create, 0 to update, 0 unchanged. Dry run: nothing was written.",
    ]
    assert agents_file.agents() == []

    agents_file.apply()
    before = agents_file.agents()
    agents_file.write(TRIAGE.replace("max_attempts = 5", "max_attempts = 7"), SUMMARISE)
    out = agents_file.apply("--dry-run")
    assert out[:3] == [
        "would update triage: max_attempts",
        "would create summarise",
        f"{agents_file.path}: 1 to create, 1 to update, 0 unchanged. Dry run: nothing was written.",
    ]
    assert WEBHOOK_LINE.findall("\n".join(out)) == []
    assert agents_file.agents() == before


def test_an_invalid_agent_writes_nothing_and_each_error_names_file_agent_and_field(
    agents_file: AgentsFile,
) -> None:
    agents_file.write(TRIAGE)
    agents_file.apply()
    before = agents_file.agents()

    # A valid change and a valid new agent, next to three invalid agents.
    agents_file.write(
        TRIAGE.replace("max_attempts = 5", "max_attempts = 6"),
        SUMMARISE,
        '[[agent]]\nname = "slow"\ntimeout_s = -1\n',
        '[[agent]]\nprompt = "Who am I?"\n',
        '[[agent]]\nname = "typo"\npromt = "Be brief."\n',
    )
    path = agents_file.path
    errors = agents_file.fails()
    assert errors[0] == f"{path}: agent 'slow': 'timeout_s' must be more than 0 and at most 3600."
    assert errors[1] == f"{path}: agent #4: 'name' is required."
    assert errors[2].startswith(f"{path}: agent 'typo': Unknown field 'promt'; agents have ")
    assert errors[3:] == ["Nothing was written."]
    assert agents_file.agents() == before


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            '[[agent]]\nname = "a"\nprompt = Be brief.\n',
            "not valid TOML: Invalid value (at line 3, column 10).",
        ),
        ('[[agent]]\nname = "a"\n[[agent]]\nname = "a"\n', "agent 'a' is declared twice (agents #1 and #2)."),
        ('[agent]\nname = "a"\n', "'agent' must be an array of tables: write [[agent]], not [agent]."),
        (
            '[[agents]]\nname = "a"\n',
            "unknown top-level key 'agents'; declare each agent in an [[agent]] table.",
        ),
        ("# nothing yet\n", "declares no agents; declare each in an [[agent]] table."),
        (
            '[[agent]]\nname = "a"\nllm = { api_key = "sk-live-123" }\n',
            "agent 'a': hookd never stores API keys",
        ),
    ],
)
def test_a_file_that_is_not_a_list_of_agents(agents_file: AgentsFile, text: str, error: str) -> None:
    agents_file.write(text)
    errors = agents_file.fails()
    assert errors[0].startswith(f"{agents_file.path}: {error}")
    assert "sk-live-123" not in "\n".join(errors)
    assert agents_file.agents() == []


def test_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    assert (
        cli.fails("agents", "apply", str(missing)) == f"{missing}: cannot be read: No such file or directory."
    )


async def test_the_store_saves_all_agents_or_none(tmp_path: Path) -> None:
    """`save_agents` is one transaction: a name taken, or an agent gone, undoes the rest."""
    store = SQLiteStore(str(tmp_path / "hookd.db"))
    await store.open()
    try:
        taken = await store.create_agent(validate_agent_fields({"name": "taken"}, creating=True), b"1" * 32)
        fresh = validate_agent_fields({"name": "fresh"}, creating=True)
        change = {"prompt": "changed"}
        with pytest.raises(Conflict):
            await store.save_agents([(fresh, b"2" * 32), ({"name": "taken"}, b"3" * 32)], [])
        with pytest.raises(NotFound):
            await store.save_agents([(fresh, b"2" * 32)], [(taken.id, change), ("0" * 36, change)])
        assert [a.name for a in await store.list_agents()] == ["taken"]
        assert (await store.get_agent(taken.id)).prompt == ""

        saved = await store.save_agents([(fresh, b"2" * 32)], [(taken.id, change)])
        assert [(a.name, a.prompt) for a in saved] == [("fresh", ""), ("taken", "changed")]
    finally:
        await store.close()


GITHUB_SECRET = "gh-s3cret-one"
# One agent per field whose validated form is not simply what the file says, or not what is
# stored: (what the file first says, what it says after a change). Each table sets its field.
FIELDS = {
    "signature": (
        f'signature = {{ type = "github", secret = "{GITHUB_SECRET}" }}',
        'signature = { type = "github", secret = "gh-s3cret-two" }',
    ),
    "signature_type": (
        f'signature = {{ type = "github", secret = "{GITHUB_SECRET}" }}',
        'signature = { type = "standard-webhooks", secret_env = "HOOKD_TEST_SIGNING_SECRET" }',
    ),
    "signature_env": (
        'signature = { type = "standard-webhooks", secret_env = "HOOKD_TEST_SIGNING_SECRET" }',
        'signature = { type = "standard-webhooks", secret_env = "HOOKD_TEST_OTHER_SECRET" }',
    ),
    "callback_url": ('callback_url = "https://example.org/cb"', 'callback_url = "https://example.org/cb2"'),
    "tools": (
        'tools = [{ type = "read_webpage" }, { type = "http_request", allow_hosts = ["API.example.com"] }]',
        'tools = [{ type = "read_webpage", max_chars = 500 }, { type = "http_request", allow_hosts = ["*"] }]',
    ),
    "max_steps": ("max_steps = 3", "max_steps = 4"),
    "json_schema": (
        'json_schema = { type = "object", properties = { summary = { type = "string" } } }',
        'json_schema = { type = "object", properties = { summary = { type = "string" } }, required = ["summary"] }',
    ),
    "mcp_servers": (
        'mcp_servers = [{ name = "files", command = ["python", "-m", "srv"], timeout_s = 30 },'
        ' { name = "search", url = "https://example.com/mcp", headers_env = { Authorization = "SEARCH_AUTH" } }]',
        'mcp_servers = [{ name = "files", command = ["python", "-m", "srv"], timeout_s = 31 }]',
    ),
    "knowledge_top_k": ("knowledge_top_k = 3", "knowledge_top_k = 0"),
    "llm": (
        'llm = { provider = "openai", base_url = "https://api.openai.com/v1/", model = "" }',
        'llm = { provider = "openai", base_url = "https://api.openai.com/v2/" }',
    ),
    "rate_limit": ('rate_limit = " 60 / minute "', 'rate_limit = "60/hour"'),
    "input_template": ('input_template = "Q: {{question}}"', 'input_template = ""'),
    "timeout_s": ("timeout_s = 30", "timeout_s = 30.5"),
}


def _agents(version: int) -> str:
    return "".join(f'[[agent]]\nname = "{name}"\n{lines[version]}\n' for name, lines in FIELDS.items())


def test_every_field_applied_again_is_unchanged_and_a_change_is_updated(
    cli: Cli, agents_file: AgentsFile
) -> None:
    first_secret, second_secret = new_secret("standard-webhooks"), new_secret("standard-webhooks")
    env = {"HOOKD_TEST_SIGNING_SECRET": first_secret, "HOOKD_TEST_OTHER_SECRET": second_secret}
    env["HOOKD_MCP_COMMANDS"] = "python"  # the stdio MCP server's program in FIELDS
    agents_file.write(_agents(0))
    created = agents_file.apply(env=env)
    assert [line for line in created if line.startswith("created ")] == [f"created {n}" for n in FIELDS]

    # The validated values (defaults filled in, names normalised) equal the stored ones.
    before = agents_file.agents()
    again = agents_file.apply(env=env)
    assert again[: len(FIELDS)] == [f"unchanged {name}" for name in FIELDS]
    assert agents_file.agents() == before

    agents_file.write(_agents(1))
    expected = {name: name.removesuffix("_type").removesuffix("_env") for name in FIELDS}
    expected = {
        name: "signature" if name.startswith("signature") else field for name, field in expected.items()
    }
    dry = agents_file.apply("--dry-run", env=env)
    assert dry[: len(FIELDS)] == [f"would update {name}: {field}" for name, field in expected.items()]
    assert agents_file.agents() == before

    updated = agents_file.apply(env=env)
    assert updated[: len(FIELDS)] == [f"updated {name}: {field}" for name, field in expected.items()]
    after = agents_file.apply(env=env)
    assert after[: len(FIELDS)] == [f"unchanged {name}" for name in FIELDS]
    secrets = dict(cli.rows("SELECT name, signature_secret FROM agents WHERE signature_type IS NOT NULL"))
    assert secrets == {
        "signature": "gh-s3cret-two",
        "signature_type": first_secret,
        "signature_env": second_secret,
    }
    assert cli.json("agents", "show", "knowledge_top_k")["knowledge_top_k"] == 0
    assert cli.json("agents", "show", "input_template")["input_template"] is None

    # The secret in the environment changed; the file did not.
    env["HOOKD_TEST_OTHER_SECRET"] = first_secret
    assert "updated signature_env: signature" in agents_file.apply(env=env)
    for output in (created, again, dry, updated, after):
        text = "\n".join(output)
        assert GITHUB_SECRET not in text and first_secret not in text and second_secret not in text


@pytest.mark.parametrize(
    ("signature", "env", "error"),
    [
        (
            '{ type = "github", secret_env = "HOOKD_TEST_UNSET" }',
            {},
            "'signature.secret_env': the environment variable HOOKD_TEST_UNSET is not set or empty;"
            " put the agent's signing secret in it.",
        ),
        (
            '{ type = "github", secret_env = "HOOKD_TEST_SECRET" }',
            {"HOOKD_TEST_SECRET": ""},
            "'signature.secret_env': the environment variable HOOKD_TEST_SECRET is not set or empty;",
        ),
        (
            '{ type = "github", secret = "abc", secret_env = "HOOKD_TEST_SECRET" }',
            {"HOOKD_TEST_SECRET": "abc"},
            "'signature' takes 'secret' or 'secret_env', not both.",
        ),
        ('{ type = "github" }', {}, "'signature' needs 'secret_env', the environment variable holding"),
        (
            '{ type = "github", secret_env = "not a name" }',
            {},
            "'signature.secret_env' must be the name of an environment variable",
        ),
        (
            '{ type = "standard-webhooks", secret_env = "HOOKD_TEST_SECRET" }',
            {"HOOKD_TEST_SECRET": "plain-not-whsec"},
            "'signature.secret' must be a Standard Webhooks secret",
        ),
    ],
)
def test_a_signature_secret_from_the_environment_that_is_missing_or_wrong(
    agents_file: AgentsFile, signature: str, env: dict[str, str], error: str
) -> None:
    agents_file.write(f'[[agent]]\nname = "signed"\nsignature = {signature}\n')
    errors = agents_file.fails(env=env)
    assert errors[0].startswith(f"{agents_file.path}: agent 'signed': {error}"), errors
    assert errors[-1] == "Nothing was written."
    assert "plain-not-whsec" not in "\n".join(errors)
    if "Standard Webhooks" in error:
        assert "the value of HOOKD_TEST_SECRET, named in 'signature.secret_env'" in errors[0]
    assert agents_file.agents() == []


def test_the_plan_never_shows_a_signing_secret() -> None:
    """A Step holds the secret to write; no repr of it (a log line, a traceback) shows it."""
    secret = new_secret("standard-webhooks")
    declared = [{"name": "a", "signature": {"type": "standard-webhooks", "secret_env": "SIGNING"}}]
    (step,) = apply.plan("f", declared, [], policy=SavePolicy(), environ={"SIGNING": secret})
    assert step.fields["signature_secret"] == secret
    assert secret not in repr(step) and secret not in str(step)
    assert secret[6:] not in repr(step)


def test_a_private_callback_url_follows_hookd_callback_allow_private(
    cli: Cli, agents_file: AgentsFile
) -> None:
    agents_file.write('[[agent]]\nname = "internal"\ncallback_url = "http://10.0.0.5/cb"\n')
    errors = agents_file.fails()
    assert errors[0] == (
        f"{agents_file.path}: agent 'internal': 'callback_url' points at 10.0.0.5, a private address."
        " hookd refuses those unless its setting HOOKD_CALLBACK_ALLOW_PRIVATE is true."
    )
    assert agents_file.agents() == []

    # With the setting on, apply takes what `hookd agents create --callback-url` takes.
    assert agents_file.apply(env={"HOOKD_CALLBACK_ALLOW_PRIVATE": "true"})[0] == "created internal"
    assert cli.json("agents", "show", "internal")["callback_url"] == "http://10.0.0.5/cb"


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            'json_schema = { type = "object", properties = { day = { type = "string", default = 2024-01-01 } } }',
            "'json_schema.properties.day.default' is a TOML date or time, which JSON has no type for;"
            " write it as a string.",
        ),
        (
            'json_schema = { type = "object", properties = { n = { type = "number", maximum = nan } } }',
            "'json_schema.properties.n.maximum' is nan, which JSON has no value for.",
        ),
        ('tools = [{ type = "read_webpage", timeout_s = inf }]', "'tools[0].timeout_s' is inf"),
    ],
)
def test_a_toml_value_json_has_no_type_for(agents_file: AgentsFile, line: str, error: str) -> None:
    agents_file.write(f'[[agent]]\nname = "a"\n{line}\n')
    assert agents_file.fails()[0].startswith(f"{agents_file.path}: agent 'a': {error}")
    assert agents_file.agents() == []


def test_plan_refuses_an_unset_secret_env_with_invalid_input() -> None:
    declared = [{"name": "a", "signature": {"type": "github", "secret_env": "NOWHERE"}}]
    with pytest.raises(InvalidInput, match="NOWHERE is not set or empty"):
        apply.plan("f", declared, [], policy=SavePolicy(), environ={})


def test_a_stdio_mcp_server_needs_its_program_listed(agents_file: AgentsFile) -> None:
    agents_file.write(
        '[[agent]]\nname = "files"\nmcp_servers = [{ name = "fs", command = ["python", "-m", "srv"] }]\n'
    )
    errors = agents_file.fails()  # HOOKD_MCP_COMMANDS unset: MCP servers over HTTP only
    assert "'mcp_servers[0].command': The MCP server 'fs' would start 'python'" in errors[0]
    assert errors[-1] == "Nothing was written."
    assert agents_file.agents() == []
    assert "created files" in agents_file.apply(env={"HOOKD_MCP_COMMANDS": "python"})
