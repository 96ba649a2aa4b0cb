"""Agents as code: `hookd agents apply FILE` makes the agents match a TOML file's [[agent]] tables.

Agents are matched by name. A field the file sets is written if it differs; a field it
leaves out keeps its current value (on creation, its default), the way PATCH does. Every
agent is checked before anything is written, and all writes share one transaction.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.agent import Agent, validate_agent_fields
from agents.tokens import new_token
from errors import InvalidInput
from tasks.store import Store

_ABSENT = object()


@dataclass(frozen=True)
class Step:
    """What applying the file does to one agent."""

    name: str
    fields: dict[str, Any]  # validated, as the file declares them
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


def _changed(fields: dict[str, Any], agent: Agent) -> tuple[str, ...]:
    # Validated values compare with the stored ones as read back (llm is a dict of the keys
    # set, timeout_s a float). A field the Agent does not carry counts as changed.
    return tuple(key for key, value in fields.items() if getattr(agent, key, _ABSENT) != value)


def plan(label: str, declared: list[Any], existing: list[Agent]) -> list[Step]:
    """Check every declared agent and say what applying each does. InvalidInput naming the
    file, the agent and the field for every agent that is wrong (then nothing is written)."""
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
            fields = validate_agent_fields(data, creating=True)
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
        changes.append((step.existing.id, {key: step.fields[key] for key in step.changed}))
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
