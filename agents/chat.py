"""A conversation with a model, as the run loop sees it, whatever the wire format.

agents/openai_chat.py and agents/anthropic_chat.py each keep their vendor's message list and
turn it into these few types: what the model is offered (`ToolSpec`), what it asked for
(`ToolCall`), what it was told back (`ToolResult`), and what it said (`Reply`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp

# The forced tool through which an Anthropic model gives a structured answer.
ANSWER_TOOL = "final_answer"
# The response_format name an OpenAI model's structured answer goes under.
ANSWER_FORMAT = "answer"


@dataclass(frozen=True)
class ToolSpec:
    """A tool as the model is offered it."""

    name: str
    description: str
    parameters: dict[str, Any]  # JSON Schema of the arguments (an object)


@dataclass(frozen=True)
class ToolCall:
    id: str  # the provider's id, echoed back with the result
    name: str
    arguments: dict[str, Any]
    problem: str | None = None  # why the arguments could not be read; told to the model


@dataclass(frozen=True)
class ToolResult:
    call: ToolCall
    output: str  # what the model is told: the tool's output, or what went wrong
    is_error: bool


@dataclass(frozen=True)
class Reply:
    """One model turn. Tool calls, if any, come first: the answer is final only without them."""

    text: str
    model: str
    usage: dict[str, Any]
    tool_calls: list[ToolCall] = field(default_factory=list)
    # With a json_schema: the answer as parsed (an object), or why there is none.
    structured: Any = None
    structured_problem: str | None = None


class Chat(Protocol):
    """One conversation: the system and user messages at the start, then turns."""

    async def send(self, session: aiohttp.ClientSession) -> Reply:
        """Ask the model for its next turn (and remember it as part of the conversation)."""

    def add_tool_results(self, results: list[ToolResult]) -> None:
        """Tell the model what its tool calls returned, one result per call of its last turn."""

    def correct(self, problem: str) -> None:
        """Tell the model its last answer did not fit the schema, and why."""
