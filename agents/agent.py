"""What an agent is: its fields, their validation, and its public JSON shape."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from agents.env_names import check_env_name
from agents.mcp_config import check_mcp_servers, refuse_unlisted_commands
from agents.numbers import whole_number
from agents.prompt import check_template
from agents.signatures import Signature, validate_signature
from agents.structured import check_json_schema
from agents.tools.addresses import host_refusal
from agents.tools.registry import check_tools
from agents.urls import URL_RULES, is_url
from errors import InvalidInput
from settings import Settings, parse_rate_limit

PROVIDERS = ("openai", "anthropic", "echo")
AGENT_STATUSES = ("active", "paused")
LLM_FIELDS = ("provider", "model", "base_url", "api_key_env")

MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 100_000
MAX_ATTEMPTS = 20
MAX_TIMEOUT_S = 3600.0
DEFAULT_MAX_STEPS = 8
MAX_STEPS = 50
MAX_URL_CHARS = 2000
MAX_KNOWLEDGE_TOP_K = 20


def iso_time(epoch_s: float | None) -> str | None:
    """The API's time format (agents and tasks): ISO 8601 in UTC, to the millisecond."""
    if epoch_s is None:
        return None
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    description: str
    prompt: str
    input_template: str | None
    llm: dict[str, str]  # only the keys the agent sets; the rest come from HOOKD_LLM_*
    max_attempts: int
    timeout_s: float
    max_concurrency: int | None
    rate_limit: str | None  # like "60/min"; None: the server's HOOKD_RATE_LIMIT
    status: str
    created_at: float
    updated_at: float
    signature: Signature | None  # what its webhooks must be signed with; None: nothing
    tools: list[dict[str, Any]]  # checked configs (agents/tools/registry.py)
    max_steps: int  # model turns per run
    json_schema: dict[str, Any] | None  # the answer's shape; None: free text
    callback_url: str | None  # final results are POSTed here (tasks/callbacks.py)
    callback_secret: str | None = field(repr=False)  # signs them; never in a log or a traceback
    mcp_servers: list[dict[str, Any]]  # checked configs (agents/mcp_config.py)
    knowledge_top_k: int  # chunks of its sources put in each run's prompt; 0: none

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "prompt": self.prompt,
            "input_template": self.input_template,
            "llm": {key: self.llm.get(key) for key in LLM_FIELDS},
            "max_attempts": self.max_attempts,
            "timeout_s": self.timeout_s,
            "max_concurrency": self.max_concurrency,
            "rate_limit": self.rate_limit,
            "status": self.status,
            "created_at": iso_time(self.created_at),
            "updated_at": iso_time(self.updated_at),
            "signature": None if self.signature is None else self.signature.to_json(),
            "tools": self.tools,
            "max_steps": self.max_steps,
            "json_schema": self.json_schema,
            "mcp_servers": self.mcp_servers,
            "callback_url": self.callback_url,
            "callback_secret": self.callback_secret,  # the admin API and the CLI only
            "knowledge_top_k": self.knowledge_top_k,
        }


def _encodable(name: str, value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"'{name}' contains an unpaired UTF-16 surrogate; send valid Unicode.") from None
    return value


def _text(name: str, value: Any, *, max_chars: int, required: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"'{name}' must be a string.")
    _encodable(name, value)
    if required and not value.strip():
        raise InvalidInput(f"'{name}' must not be empty.")
    if len(value) > max_chars:
        raise InvalidInput(f"'{name}' is too long: at most {max_chars} characters.")
    return value


def _int(name: str, value: Any, low: int, high: int) -> int:
    number = whole_number(value)
    if number is None:
        raise InvalidInput(f"'{name}' must be a whole number from {low} to {high}.")
    if not low <= number <= high:
        raise InvalidInput(f"'{name}' must be from {low} to {high}, not {value}.")
    return number


def _llm(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidInput('\'llm\' must be an object like {"provider": "openai", "model": …}.')
    if "api_key" in value:
        raise InvalidInput(
            "hookd never stores API keys: put the key in an environment variable of the"
            " hookd process and name that variable in 'llm.api_key_env'."
        )
    unknown = sorted(set(value) - set(LLM_FIELDS))
    if unknown:
        raise InvalidInput(f"Unknown field 'llm.{unknown[0]}'; 'llm' takes {', '.join(LLM_FIELDS)}.")
    llm: dict[str, str] = {}
    for key, item in value.items():
        if item is None or item == "":
            continue  # unset: use the server default
        if not isinstance(item, str):
            raise InvalidInput(f"'llm.{key}' must be a string.")
        llm[key] = _encodable(f"llm.{key}", item)
    if "provider" in llm and llm["provider"] not in PROVIDERS:
        raise InvalidInput(f"'llm.provider' must be one of {', '.join(PROVIDERS)}.")
    if "base_url" in llm:
        if not is_url(llm["base_url"]):
            raise InvalidInput(
                "'llm.base_url' must be an http:// or https:// API root, e.g."
                f" http://127.0.0.1:11434/v1 or https://api.anthropic.com; {URL_RULES}"
            )
        llm["base_url"] = llm["base_url"].rstrip("/")
    if "api_key_env" in llm:
        check_env_name(llm["api_key_env"], "llm.api_key_env", "OPENAI_API_KEY")
    return llm


def _callback_url(value: Any, *, allow_private: bool) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidInput("'callback_url' must be an http:// or https:// URL, or null.")
    url = _encodable("callback_url", value)
    if len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"'callback_url' is too long: at most {MAX_URL_CHARS} characters.")
    if not is_url(url):
        raise InvalidInput(
            f"'callback_url' must be an http:// or https:// URL, e.g. https://example.org/hooks/hookd; {URL_RULES}"
        )
    # Callbacks are requests hookd makes on a caller's behalf: without this, an agent's
    # callback_url could reach the services behind hookd's firewall. The same rule as the tools';
    # a name other than localhost is checked on the addresses it resolves to, at each delivery.
    host = urlsplit(url).hostname or ""  # never empty: the pattern requires a host
    reason = None if allow_private else host_refusal(host)
    if reason is not None:
        raise InvalidInput(
            f"'callback_url' points at {host}, {reason}. hookd refuses those unless its"
            " setting HOOKD_CALLBACK_ALLOW_PRIVATE is true."
        )
    return url


@dataclass(frozen=True)
class SavePolicy:
    """What the operator's settings let an agent be saved with. The default allows the least."""

    allow_private_callbacks: bool = False  # HOOKD_CALLBACK_ALLOW_PRIVATE
    mcp_commands: tuple[str, ...] = ()  # HOOKD_MCP_COMMANDS

    @classmethod
    def of(cls, settings: Settings) -> SavePolicy:
        return cls(settings.callback_allow_private, settings.mcp_commands)


def validate_agent_fields(data: Any, *, creating: bool, policy: SavePolicy = SavePolicy()) -> dict[str, Any]:
    """Check an agent object from the API or the CLI; return the fields to store.

    Unknown fields are refused rather than ignored, so a typo cannot go unnoticed.
    """
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object describing the agent.")
    known = {
        "name", "description", "prompt", "input_template", "llm",
        "max_attempts", "timeout_s", "max_concurrency", "rate_limit", "status", "signature",
        "tools", "max_steps", "json_schema", "mcp_servers",
        "callback_url",
        "knowledge_top_k",
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidInput(f"Unknown field '{unknown[0]}'; agents have {', '.join(sorted(known))}.")
    if creating and "name" not in data:
        raise InvalidInput("'name' is required.")
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if key == "name":
            fields[key] = _text(key, value, max_chars=MAX_NAME_CHARS, required=True).strip()
        elif key in ("description", "prompt"):
            fields[key] = _text(key, "" if value is None else value, max_chars=MAX_TEXT_CHARS)
        elif key == "input_template":
            fields[key] = None if value in (None, "") else _text(key, value, max_chars=MAX_TEXT_CHARS)
            if fields[key] is not None:
                check_template(fields[key])
        elif key == "llm":
            fields[key] = _llm(value)
        elif key == "max_attempts":
            fields[key] = _int(key, value, 1, MAX_ATTEMPTS)
        elif key == "timeout_s":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidInput("'timeout_s' must be a number of seconds.")
            if isinstance(value, float) and math.isnan(value):
                raise InvalidInput("'timeout_s' must be a number of seconds.")
            if not 0 < value <= MAX_TIMEOUT_S:
                raise InvalidInput(f"'timeout_s' must be more than 0 and at most {MAX_TIMEOUT_S:g}.")
            fields[key] = float(value)
        elif key == "max_concurrency":
            fields[key] = None if value is None else _int(key, value, 1, 10_000)
        elif key == "rate_limit":
            if value is None or value == "":
                fields[key] = None
                continue
            if not isinstance(value, str):
                raise InvalidInput("'rate_limit' must be a string like '60/min', or null.")
            try:
                limit = parse_rate_limit(value)
            except ValueError as exc:
                raise InvalidInput(f"'rate_limit' {exc}.") from None
            fields[key] = None if limit is None else str(limit)
        elif key == "status":
            if value not in AGENT_STATUSES:
                raise InvalidInput("'status' must be 'active' or 'paused'.")
            fields[key] = value
        elif key == "signature":  # stored as two columns
            fields["signature_type"], fields["signature_secret"] = validate_signature(value)
        elif key == "tools":
            fields[key] = check_tools(value)
        elif key == "max_steps":
            fields[key] = _int(key, value, 1, MAX_STEPS)
        elif key == "json_schema":
            fields[key] = check_json_schema(value)
        elif key == "mcp_servers":
            fields[key] = check_mcp_servers(value)
            refuse_unlisted_commands(fields[key], policy.mcp_commands)
        elif key == "callback_url":
            fields[key] = _callback_url(value, allow_private=policy.allow_private_callbacks)
        elif key == "knowledge_top_k":
            fields[key] = _int(key, value, 0, MAX_KNOWLEDGE_TOP_K)
    return fields
