"""What a tool is, and the checks every tool type's configuration shares.

A tool is anything with a name, a description, a JSON Schema for its arguments and an async
`call`: the built-in ones here, and later the tools an MCP server lists.
"""

from __future__ import annotations

import math
import re
from typing import Any, Protocol

from agents.env_names import check_env_name
from agents.numbers import whole_number
from errors import InvalidInput

SECRET_KEYS = ("token", "api_key", "password", "secret", "authorization")


class ToolError(Exception):
    """The call failed in a way the model should hear about (and may recover from)."""


class Tool(Protocol):
    @property
    def name(self) -> str:
        """Unique within a run; what the model calls it by."""

    @property
    def description(self) -> str:
        """What the tool does, for the model."""

    @property
    def parameters(self) -> dict[str, Any]:
        """A JSON Schema (type object) of the arguments; calls are checked against it first."""

    async def call(self, arguments: dict[str, Any]) -> str:
        """The output for the model; ToolError when the call failed."""


class ConfigReader:
    """Reads one entry of an agent's `tools`, answering bad values with a 400 that names it."""

    def __init__(self, config: dict[str, Any], where: str, keys: tuple[str, ...]) -> None:
        self.config = config
        self.where = where
        for key in config:
            if key == "type":
                continue
            if key.lower() in SECRET_KEYS:
                raise InvalidInput(
                    f"hookd never stores secrets: put the {key} in an environment variable of the"
                    f" hookd process and name that variable in '{where}.api_key_env'."
                )
            if key not in keys:
                raise InvalidInput(f"Unknown key '{where}.{key}'; this tool takes {', '.join(keys)}.")

    def fail(self, key: str, message: str) -> InvalidInput:
        return InvalidInput(f"'{self.where}.{key}' {message}")

    def flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false.")
        return value

    def number(self, key: str, default: float, high: float) -> float:
        value = self.config.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.fail(key, "must be a number.")
        if not 0 < value <= high:
            raise self.fail(key, f"must be more than 0 and at most {high:g}.")
        return float(value)

    def whole(self, key: str, default: int, low: int, high: int) -> int:
        value = whole_number(self.config.get(key, default))
        if value is None or not low <= value <= high:
            raise self.fail(key, f"must be a whole number from {low} to {high}.")
        return value

    def text(self, key: str, *, pattern: re.Pattern[str], example: str, required: bool) -> str | None:
        value = self.config.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.fail(
                key,
                f"is required and must look like {example}." if required else f"must look like {example}.",
            )
        return value

    def env_name(self, key: str, example: str) -> str | None:
        """The name of the variable that holds a secret the tool sends (None: no secret)."""
        value = self.config.get(key)
        return None if value is None else check_env_name(value, f"{self.where}.{key}", example)
