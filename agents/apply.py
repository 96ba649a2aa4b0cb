"""Agents as code: `hookd agents apply FILE` makes the agents match a TOML file's [[agent]] tables.

Agents are matched by name. A field the file sets is written if it differs; a field it
leaves out keeps its current value (on creation, its default), the way PATCH does. Every
agent is checked before anything is written, and all writes share one transaction.
"""

from __future__ import annotations

import datetime
import hmac
import json
import math
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.agent import Agent, SavePolicy, validate_agent_fields
from agents.env_names import ENV_NAME
from agents.signatures import validate_signature
from agents.tokens import new_token
from errors import InvalidInput
from tasks.store import Store

_ABSENT = object()
# Fields stored as JSON: compared as read back (a tuple comes back a list, a key set once).
_JSON_FIELDS = frozenset({"llm", "tools", "json_schema", "mcp_servers"})


@dataclass(frozen=True)
class Step:
    """What applying the file does to one agent."""

    name: str
    # Validated, as the file declares them, keyed by column (`signature` is signature_type and
    # signature_secret). Never shown: it holds the signing secret.
    fields: dict[str, Any] = field(repr=False)
    existing: Agent | None
    changed: tuple[str, ...]  # fields of an existing agent the file changes, in file order

    @property
    def action(self) -> str:
        if self.existing is None:
            return "create"
        return "update" if self.changed else "unchanged"


@dataclass(frozen=True)
class Outcome:
    step: Step
    agent: Agent
    token: str | None  # the new agent's webhook token, never stored: shown once


def read_agents_file(path: Path, label: str) -> list[Any]:
    """The [[agent]] tables of a TOML file, unchecked. InvalidInput, prefixed with `label`
    (the path as the user typed it), for a file that cannot be read or is not such a file."""
    try:
        with path.open("rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise InvalidInput(f"{label}: cannot be read: {exc.strerror or exc}.") from None
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise InvalidInput(f"{label}: not valid TOML: {exc}.") from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{label}: not valid TOML: the file is not UTF-8.") from None
    unknown = sorted(set(document) - {"agent"})
    if unknown:
        raise InvalidInput(
            f"{label}: unknown top-level key '{unknown[0]}'; declare each agent in an [[agent]] table."
        )
    agents = document.get("agent")
    if agents is None or agents == []:
        raise InvalidInput(f"{label}: declares no agents; declare each in an [[agent]] table.")
    if not isinstance(agents, list):
        raise InvalidInput(f"{label}: 'agent' must be an array of tables: write [[agent]], not [agent].")
    return agents


def _not_json(value: Any, where: str) -> str | None:
    """Where the table holds a value JSON has no type for (a TOML date or time, nan, inf), if
    anywhere: hookd's API is JSON, so such a value could not be stored or compared as written."""
    if isinstance(value, datetime.date | datetime.time):
        return f"'{where}' is a TOML date or time, which JSON has no type for; write it as a string."
    if isinstance(value, float) and not math.isfinite(value):
        return f"'{where}' is {value}, which JSON has no value for."
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _not_json(item, f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}")
        if found:
            return found
    return None


def _signature_from_env(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """The table with `signature.secret_env` replaced by the secret it names, so that the
    secret itself need not be written in the file (like the CLI's --signature-secret-env)."""
    signature = data.get("signature")
    if not isinstance(signature, dict) or ("secret" in signature and "secret_env" not in signature):
        return data
    if "secret" in signature:
        raise InvalidInput("'signature' takes 'secret' or 'secret_env', not both.")
    env_name = signature.get("secret_env")
    if env_name is None:
        raise InvalidInput(
            "'signature' needs 'secret_env', the environment variable holding the sender's secret"
            ' (like { type = "github", secret_env = "GITHUB_WEBHOOK_SECRET" }), or the \'secret\' itself.'
        )
    if not isinstance(env_name, str) or not ENV_NAME.fullmatch(env_name):
        raise InvalidInput(
            "'signature.secret_env' must be the name of an environment variable, like GITHUB_WEBHOOK_SECRET."
        )
    secret = environ.get(env_name)
    if not secret:
        raise InvalidInput(
            f"'signature.secret_env': the environment variable {env_name} is not set or empty;"
            " put the agent's signing secret in it."
        )
    resolved = {key: value for key, value in signature.items() if key != "secret_env"} | {"secret": secret}
    try:
        validate_signature(resolved)
    except InvalidInput as exc:
        if "'signature.secret'" not in str(exc):
            raise
        # The message names 'signature.secret', which the file does not have: say where it is.
        raise InvalidInput(
            f"{exc} (The secret is the value of {env_name}, named in 'signature.secret_env'.)"
        ) from None
    return data | {"signature": resolved}


def _same(key: str, fields: dict[str, Any], agent: Agent) -> bool:
    """Whether the file's validated `key` equals the stored one."""
    if key == "signature":  # validated as two columns, stored as one Signature
        kind, secret = fields["signature_type"], fields["signature_secret"]
        stored = agent.signature
        if stored is None or kind is None:
            return stored is None and kind is None
        # In constant time: how long a comparison takes must not tell how much of a secret matched.
        return stored.type == kind and hmac.compare_digest(stored.secret.encode(), secret.encode())
    value = fields[key]
    if key in _JSON_FIELDS:
        value = json.loads(json.dumps(value))
    return bool(getattr(agent, key, _ABSENT) == value)


def _declared(fields: dict[str, Any]) -> list[str]:
    """The agent fields the validated `fields` came from, in file order."""
    names = ("signature" if key.startswith("signature_") else key for key in fields)
    return list(dict.fromkeys(names))


def _columns(name: str) -> tuple[str, ...]:
    return ("signature_type", "signature_secret") if name == "signature" else (name,)


def _changed(fields: dict[str, Any], agent: Agent) -> tuple[str, ...]:
    # Stored values are compared as read back (llm is a dict of the keys set, timeout_s a
    # float). A field the Agent does not carry counts as changed.
    return tuple(name for name in _declared(fields) if not _same(name, fields, agent))


def plan(
    label: str,
    declared: list[Any],
    existing: list[Agent],
    *,
    policy: SavePolicy,
    environ: Mapping[str, str] = os.environ,
) -> list[Step]:
    """Check every declared agent and say what applying each does. InvalidInput naming the
    file, the agent and the field for every agent that is wrong (then nothing is written).
    `policy` is what the settings allow; `environ` holds the secrets that `signature.secret_env`
    names."""
    by_name = {agent.name: agent for agent in existing}
    errors: list[str] = []
    steps: list[Step] = []
    first_seen: dict[str, int] = {}
    for number, data in enumerate(declared, start=1):
        name = data.get("name") if isinstance(data, dict) else None
        who = f"agent '{name}'" if isinstance(name, str) and name.strip() else f"agent #{number}"
        try:
            if not isinstance(data, dict):
                raise InvalidInput("must be a table: declare each agent with [[agent]].")
            for key, value in data.items():
                problem = _not_json(value, str(key))
                if problem:
                    raise InvalidInput(problem)
            fields = validate_agent_fields(
                _signature_from_env(data, environ),
                creating=True,
                policy=policy,
            )
        except InvalidInput as exc:
            errors.append(f"{label}: {who}: {exc}")
            continue
        name = fields["name"]
        if name in first_seen:
            errors.append(f"{label}: {who} is declared twice (agents #{first_seen[name]} and #{number}).")
            continue
        first_seen[name] = number
        agent = by_name.get(name)
        steps.append(Step(name, fields, agent, () if agent is None else _changed(fields, agent)))
    if errors:
        raise InvalidInput("\n".join([*errors, "Nothing was written."]))
    return steps


async def apply(store: Store, steps: list[Step]) -> list[Outcome]:
    """Write the plan in one transaction; the created agents (with their tokens), then the
    updated ones."""
    creates = [step for step in steps if step.action == "create"]
    tokens = [new_token() for _ in creates]
    updates = [step for step in steps if step.action == "update"]
    changes = []
    for step in updates:
        assert step.existing is not None  # only an existing agent is updated
        columns = [column for name in step.changed for column in _columns(name)]
        changes.append((step.existing.id, {column: step.fields[column] for column in columns}))
    saved = await store.save_agents(
        [(step.fields, token_hash) for step, (_, token_hash) in zip(creates, tokens, strict=True)], changes
    )
    created, updated = saved[: len(creates)], saved[len(creates) :]
    return [
        Outcome(step, agent, token) for step, agent, (token, _) in zip(creates, created, tokens, strict=True)
    ] + [Outcome(step, agent, None) for step, agent in zip(updates, updated, strict=True)]


def report(
    label: str, steps: list[Step], outcomes: list[Outcome] | None, webhook_url: Callable[[str], str]
) -> list[str]:
    """What apply did, one line per agent and a summary; for a dry run (`outcomes` None),
    what it would do."""
    dry = outcomes is None
    tokens = {o.step.name: o.token for o in outcomes or [] if o.token is not None}
    lines = []
    for step in steps:
        if step.action == "create":
            lines.append(f"{'would create' if dry else 'created'} {step.name}")
            if step.name in tokens:
                lines.append(
                    "  its webhook URL, shown this once (the agent's secret; keep it like a password):"
                )
                lines.append(f"  {webhook_url(tokens[step.name])}")
        elif step.action == "update":
            lines.append(f"{'would update' if dry else 'updated'} {step.name}: {', '.join(step.changed)}")
        else:
            lines.append(f"unchanged {step.name}")
    created, updated, unchanged = (
        sum(s.action == a for s in steps) for a in ("create", "update", "unchanged")
    )
    if dry:
        lines.append(
            f"{label}: {created} to create, {updated} to update, {unchanged} unchanged."
            " Dry run: nothing was written."
        )
    elif created + updated == 0:
        lines.append(f"{label}: nothing to change ({unchanged} unchanged).")
    else:
        lines.append(f"{label}: {created} created, {updated} updated, {unchanged} unchanged.")
    if created < len(steps):
        lines.append(
            "Webhook URLs are shown only when an agent is created: hookd keeps only a hash of each"
            " token. `hookd agents rotate-token NAME` issues a new one (the old URL stops working)."
        )
    return lines
