"""Environment variables an agent names for its secrets, and the ones it may never name.

An agent never holds a secret: `llm.api_key_env`, a notify tool's `api_key_env` and an MCP
server's `env_from` and `headers_env` name variables of hookd's environment, whose values are
read at run time and sent to a server the agent's author chose. hookd's own settings (HOOKD_*:
the admin key, the metrics key, the default model's key) must never be among them, or whoever
may configure an agent could send those keys to a server of their choosing.
"""

from __future__ import annotations

import os
import re
from typing import Any

from agents.providers import ModelError
from errors import InvalidInput

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
HOOKDS_OWN = "HOOKD_"


def is_hookds_own(name: str) -> bool:
    """Whether `name` is in hookd's own namespace (any case: some systems ignore it)."""
    return name.upper().startswith(HOOKDS_OWN)


def _refusal(name: str) -> str:
    return (
        f"names {name[:100]}, and variables starting with {HOOKDS_OWN} are hookd's own settings (its"
        " admin key among them), which an agent may never send anywhere"
    )


def check_env_name(value: Any, where: str, example: str) -> str:
    """`value` if it can name the variable that holds a secret an agent sends; InvalidInput if not."""
    if not isinstance(value, str) or not ENV_NAME.fullmatch(value):
        raise InvalidInput(f"'{where}' must be the name of an environment variable, like {example}.")
    if is_hookds_own(value):
        raise InvalidInput(f"'{where}' {_refusal(value)}: put the secret in a variable like {example}.")
    return value


def secret_from_env(name: str) -> str:
    """The value of the variable `name` ("" when unset), for an agent to send.

    Names are checked when an agent is saved; this check is for agents saved before that.
    """
    if is_hookds_own(name):
        raise ModelError(
            "config_error",
            f"The agent {_refusal(name)}; update it to name another variable.",
            transient=False,
        )
    return os.environ.get(name, "")
