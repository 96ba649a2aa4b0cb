"""`hookd agents apply FILE`: agents declared in TOML, created or updated by name, as its users
run it (`python cli.py …` on a database in tmp_path, through test_cli's `Cli`)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from agents.agent import validate_agent_fields
from errors import Conflict, NotFound
from tasks.sqlite_store import SQLiteStore
from tests.test_cli import WEBHOOK_LINE, Cli

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

    def apply(self, *flags: str) -> list[str]:
        return self.cli("agents", "apply", str(self.path), *flags).splitlines()

    def fails(self) -> list[str]:
        """Apply, which must fail without a traceback: its error lines, without "hookd: "."""
        result = self.cli.run("agents", "apply", str(self.path))
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
