"""hookd's configuration, declared once.

Each setting has a name, an environment variable, a default and a help text. The CLI
flags of `hookd serve`, their validation and the README's configuration table are all
generated from `SETTINGS`; nothing else reads the environment for configuration.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit


class SettingsError(ValueError):
    """A setting has a value hookd cannot use; the message says which and why."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("must be 1 or more")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be 0 or more")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be between 0 and 65535")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects NaN
        raise ValueError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:  # also rejects NaN
        raise ValueError("must be more than 0")
    return value


def _lease_s(text: str) -> float:
    value = _positive_float(text)
    if value < 1:
        raise ValueError("must be at least 1 (seconds): a renewal takes a round trip to the database")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _bearer_key(when_unset: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text and len(text.strip()) < 16:
            raise ValueError(f"must be at least 16 characters (or unset, {when_unset})")
        return text.strip()

    return parse


def _http_url(text: str) -> str:
    if not text:
        return text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return text.rstrip("/")


@dataclass(frozen=True)
class RateLimit:
    """`count` requests per `period_s`, as a token bucket: bursts up to `count`."""

    count: int
    period_s: float

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "hour", 86400.0: "day"}[self.period_s]
        return f"{self.count}/{unit}"


# A count from 1 to 999,999,999 (leading zeros aside), per a unit; the OpenAPI document's
# rate_limit pattern says the same (\s is the whitespace str.isspace() means).
_RATE = re.compile(r"\s*0*([1-9][0-9]{0,8})\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*")
_PERIODS_S = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
              "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0}  # fmt: skip


def parse_rate_limit(text: str) -> RateLimit | None:
    """'60/min' → RateLimit(60, 60.0); '' → None (no limit). ValueError when malformed."""
    if not text.strip():
        return None
    match = _RATE.fullmatch(text)
    if match is None:
        raise ValueError("must look like 60/min (a count from 1 to 999999999 per s, min, hour or day)")
    return RateLimit(int(match.group(1)), _PERIODS_S[match.group(2)])


def _programs(text: str) -> tuple[str, ...]:
    """A comma-separated list of programs: names looked up on PATH, or absolute paths; * is any."""
    programs = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    for program in programs:
        relative_path = "/" in program and not program.startswith("/")
        if program != "*" and (relative_path or "\0" in program):
            raise ValueError(f"'{program}' must be a program name (npx) or an absolute path (/usr/bin/npx)")
    return programs


def _database_url(text: str) -> str:
    if text and urlsplit(text).scheme.lower() not in ("postgresql", "postgres"):
        raise ValueError("must be a postgresql:// URL, like postgresql://hookd:secret@db.example.org/hookd")
    return text.strip()


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False  # secrets are read from the environment only, never from argv

    @property
    def env(self) -> str:
        return "HOOKD_" + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", "127.0.0.1", "Address to listen on. Use 0.0.0.0 to accept other machines."),
    Setting("port", "7091", "TCP port to listen on (DocsGPT's).", _port),
    Setting("db", "./hookd.db", "SQLite database file; created with its schema when missing."),
    Setting(
        "database_url",
        "",
        "postgresql://user:password@host/database: keep hookd's data in PostgreSQL instead of"
        " HOOKD_DB (pip install 'hookd[postgres]'; HOOKD_ADMIN_KEY is then required). Unset: SQLite.",
        _database_url,
        secret=True,
    ),
    Setting(
        "workers",
        "8",
        "Agent runs in flight at once, across all agents. 0: this node accepts webhooks and"
        " answers status, and other nodes on its PostgreSQL database run the tasks.",
        _non_negative_int,
    ),
    Setting(
        "admin_key",
        "",
        "Bearer key for the admin API. Unset: generated at first start and kept in"
        " `<db>.admin-key` (mode 0600).",
        _bearer_key("to have one generated"),
        secret=True,
    ),
    Setting(
        "metrics_key",
        "",
        "Bearer key that GET /metrics takes besides the admin key: give this one to Prometheus,"
        " which then holds no key to the admin API. Unset: /metrics takes the admin key only.",
        _bearer_key("so that /metrics takes the admin key only"),
        secret=True,
    ),
    Setting(
        "public_url",
        "",
        "Base URL used in the webhook URLs hookd hands out, e.g. https://hooks.example.org."
        " Unset: taken from the request.",
        _http_url,
    ),
    Setting(
        "max_body_bytes",
        "1048576",
        "Largest webhook body accepted; larger ones get 413.",
        _positive_int,
    ),
    Setting(
        "max_prompt_bytes",
        "2097152",
        "Most bytes an agent's system and user messages may hold once rendered; past it, the task"
        " ends FAILURE `prompt_too_large` and nothing is sent to the model. A payload rendered"
        " indented past it is sent compact (one line) instead.",
        _positive_int,
    ),
    Setting(
        "max_result_bytes",
        "4194304",
        "Most bytes a run's result may take as JSON; a larger one is not stored, and the task ends"
        " FAILURE `result_too_large`.",
        _positive_int,
    ),
    Setting(
        "body_timeout_s",
        "30",
        "How long a client may take to send a request body; slower ones get 408.",
        _non_negative_float,
    ),
    Setting(
        "keepalive_timeout_s",
        "15",
        "How long an idle connection stays open for a next request (or its first one) before hookd"
        " closes it: each holds a file descriptor. Behind a reverse proxy that keeps connections to"
        " hookd open, set it longer than the proxy's own idle timeout.",
        _positive_float,
    ),
    Setting(
        "max_pending",
        "100000",
        "Most tasks waiting to run (PENDING or RETRY); past it, webhooks get 429 with Retry-After.",
        _positive_int,
    ),
    Setting(
        "rate_limit",
        "",
        "Webhooks each agent takes, like 60/min (per s, min, hour or day), in bursts up to the"
        " count; past it, 429 with Retry-After. An agent's own rate_limit wins. Unset: no limit.",
        parse_rate_limit,
    ),
    Setting(
        "result_ttl_days",
        "30",
        "Finished tasks older than this are deleted, a few at a time; 0 keeps them forever.",
        _non_negative_float,
    ),
    Setting(
        "shutdown_grace_s",
        "30",
        "On SIGTERM/SIGINT, how long running agent runs may take to finish; the rest go back"
        " to the queue for the next start.",
        _non_negative_float,
    ),
    Setting(
        "lease_s",
        "30",
        "How long a running task stays its node's without a renewal (renewed every third of it)."
        " A task whose node died is run again, by another node or the next start, once its lease"
        " is over; on SQLite the next start takes it at once.",
        _lease_s,
    ),
    Setting(
        "retry_backoff_s",
        "2",
        "First retry delay after a transient model error or a failed callback; doubles per"
        " attempt (with jitter), capped at 300 s for runs and 1 hour for callbacks.",
        _non_negative_float,
    ),
    Setting(
        "sync",
        "full",
        "SQLite `synchronous`: `full` survives power loss, `normal` survives a process crash"
        " but may lose the last commits on power loss.",
        _choice("full", "normal"),
    ),
    Setting(
        "callback_allow_private",
        "false",
        "Allow agents' callback URLs on loopback, link-local and private addresses (checked on the"
        " address each callback connects to). Leave it off unless the receivers are on your own network.",
        _bool,
    ),
    Setting(
        "mcp_commands",
        "",
        "Programs an agent's MCP server may start (stdio), comma-separated: names found on"
        " hookd's PATH or absolute paths, matched exactly against the command's first word; `*`"
        " allows any. Empty: only MCP servers over HTTP. Whoever holds the admin key can run what"
        " is listed here, with any arguments, as hookd's user: a launcher or interpreter (`npx`,"
        " `uvx`, `python`, a shell) runs anything, like `*`.",
        _programs,
    ),
    Setting(
        "llm_provider",
        "openai",
        "Default model API for agents that name none: openai, anthropic or echo.",
        _choice("openai", "anthropic", "echo"),
    ),
    Setting(
        "llm_base_url",
        "http://127.0.0.1:11434/v1",
        "Default API root (a local Ollama). hookd appends /chat/completions or /v1/messages.",
        _http_url,
    ),
    Setting("llm_model", "llama3.2", "Default model name."),
    Setting(
        "llm_api_key",
        "",
        "Key for the default API root; sent only to HOOKD_LLM_BASE_URL, never to an agent's own base_url.",
        secret=True,
    ),
    Setting(
        "log_level",
        "info",
        "debug, info, warning or error.",
        _choice("debug", "info", "warning", "error"),
    ),
    Setting(
        "log_format",
        "text",
        "text, or json: one object per line with ts, level, logger, msg and the line's fields"
        " (task_id, agent, status, attempt, …).",
        _choice("text", "json"),
    ),
)


@dataclass(frozen=True)
class Settings:
    """The parsed settings; build with `load_settings`, which fills in the defaults."""

    host: str
    port: int
    db: str
    database_url: str
    workers: int
    admin_key: str
    metrics_key: str
    public_url: str
    max_body_bytes: int
    max_prompt_bytes: int
    max_result_bytes: int
    body_timeout_s: float
    keepalive_timeout_s: float
    max_pending: int
    rate_limit: RateLimit | None
    result_ttl_days: float
    shutdown_grace_s: float
    lease_s: float
    retry_backoff_s: float
    sync: str
    callback_allow_private: bool
    mcp_commands: tuple[str, ...]
    llm_provider: str
    llm_base_url: str
    llm_model: str
    llm_api_key: str
    log_level: str
    log_format: str

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def secret_values(self) -> list[str]:
        """The secret settings' values that are set, and the database URL's password: what no log
        line may show."""
        values = [
            value
            for s in SETTINGS
            if s.secret and s.name != "database_url" and (value := getattr(self, s.name))
        ]
        # Of the database URL, its passwords: the rest (host, database) is for log lines to say.
        if self.database_url:
            parts = urlsplit(self.database_url)
            query = parse_qsl(parts.query)
            values += [p for p in (parts.password, *(v for k, v in query if k == "password")) if p]
        return values

    def __repr__(self) -> str:  # keys must never reach a log line or a traceback
        shown = {
            s.name: ("<set>" if getattr(self, s.name) else "") if s.secret else getattr(self, s.name)
            for s in SETTINGS
        }
        return f"Settings({shown})"


def _parse(setting: Setting, text: str, source: str) -> Any:
    try:
        return setting.parse(text)
    except ValueError as exc:
        shown = "(hidden)" if setting.secret else repr(text)
        raise SettingsError(f"{source} = {shown}: {exc}") from None


def load_settings(
    environ: Mapping[str, str] | None = None, args: argparse.Namespace | None = None
) -> Settings:
    """Defaults, overridden by the environment, overridden by command-line flags."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = _parse(setting, setting.default, setting.name)
        if setting.env in environ:
            value = _parse(setting, environ[setting.env], setting.env)
        flag_value = getattr(args, setting.name, None) if args is not None else None
        if flag_value is not None:
            value = _parse(setting, flag_value, setting.flag)
        values[setting.name] = value
    return Settings(**values)


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    """Give `parser` one flag per non-secret setting, with its env variable in the help."""
    for setting in SETTINGS:
        if setting.secret:
            continue
        parser.add_argument(
            setting.flag,
            dest=setting.name,
            default=None,
            metavar=setting.name.upper(),
            help=f"{setting.help} [env {setting.env}, default {setting.default!r}]",
        )


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| Variable | Flag | Default | Meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        flag = "(env only)" if s.secret else f"`{s.flag}`"
        default = f"`{s.default}`" if s.default else "(unset)"
        lines.append(f"| `{s.env}` | {flag} | {default} | {s.help.replace('|', '/')} |")
    return "\n".join(lines)
