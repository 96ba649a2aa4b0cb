"""Running the model's tool calls: checked against the tool's schema, journalled once they
succeed, replayed on a later attempt instead of being made again, and recorded for the result.

A call's key in the journal is the step it was asked in, the tool and its arguments as
canonical JSON: a retried run that reaches the same call at the same step gets the journalled
output back, so a request that already went out (a POST, a notification) is not sent twice.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Protocol

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry

from agents.chat import ToolCall, ToolResult
from agents.providers import ModelError
from agents.tools.base import Tool, ToolError

log = logging.getLogger("hookd.tools")

OUTPUT_EXCERPT_CHARS = 2000  # of each output, in result.tool_calls; the model gets it whole
JournalKey = tuple[int, str, str]  # step, tool, canonical JSON arguments


class ToolJournal(Protocol):
    """Where successful calls are kept across attempts (the task store implements it)."""

    async def tool_journal(self, task_id: str) -> dict[JournalKey, str]:
        """The outputs of the task's journalled calls, by key."""

    async def journal_tool_call(self, task_id: str, attempt: int, key: JournalKey, output: str) -> bool:
        """Commit one successful call's output; False if this run no longer holds its task."""


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def excerpt(text: str, max_chars: int = OUTPUT_EXCERPT_CHARS) -> str:
    return (
        text if len(text) <= max_chars else text[:max_chars] + f"…[{len(text) - max_chars} more characters]"
    )


def _arguments_problem(validator: Draft202012Validator, arguments: dict[str, Any]) -> str | None:
    try:
        error = best_match(validator.iter_errors(arguments))
    except Exception:  # a schema jsonschema cannot apply (say, an MCP server's): the tool decides
        return None
    if error is None:
        return None
    return f"the arguments do not fit the tool's schema: at {error.json_path}: {error.message[:300]}"


class ToolRunner:
    """The tool calls of one run of one task."""

    def __init__(
        self,
        tools: list[Tool],
        journal: ToolJournal,
        task_id: str,
        attempt: int,
        records: list[dict[str, Any]] | None = None,
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        # An empty registry: a $ref in a tool's schema is never fetched from anywhere.
        self._validators = {
            tool.name: Draft202012Validator(tool.parameters, registry=Registry()) for tool in tools
        }
        self._journal = journal
        self._task_id = task_id
        self._attempt = attempt
        self._done: dict[JournalKey, str] | None = None  # read once, on the first call
        self.records: list[dict[str, Any]] = [] if records is None else records  # result.tool_calls

    async def call(self, step: int, call: ToolCall) -> ToolResult:
        if self._done is None:
            self._done = await self._journal.tool_journal(self._task_id)
        started = time.monotonic()
        key = (step, call.name, canonical_json(call.arguments))
        replayed = key in self._done
        output, error = (self._done[key], None) if replayed else await self._run(call)
        if output is not None and not replayed:
            self._done[key] = output
            try:
                held = await self._journal.journal_tool_call(self._task_id, self._attempt, key, output)
            except Exception:
                log.exception("task %s: tool call not journalled; a retry would make it again", self._task_id)
            else:
                if not held:  # cancelled, or taken over by another node: make no more calls
                    raise ModelError(
                        "superseded",
                        "This run no longer holds its task (cancelled, or taken over after its lease expired).",
                        transient=False,
                    )
        self.records.append(
            {
                "step": step,
                "tool": call.name,
                "arguments": call.arguments,
                "output": None if output is None else excerpt(output),
                "error": error,
                "duration_s": round(time.monotonic() - started, 3),
                "replayed": replayed,
            }
        )
        if output is None:
            return ToolResult(call, f"Error: {error}", is_error=True)
        return ToolResult(call, output, is_error=False)

    async def _run(self, call: ToolCall) -> tuple[str | None, str | None]:
        """(output, None) or (None, what went wrong)."""
        tool = self._tools.get(call.name)
        if tool is None:
            names = ", ".join(self._tools) or "none"
            return None, f"there is no tool named {call.name!r}; the tools are: {names}."
        problem = call.problem or _arguments_problem(self._validators[call.name], call.arguments)
        if problem:
            return None, problem
        try:
            return await tool.call(call.arguments), None
        except ToolError as exc:
            return None, str(exc)
        except Exception as exc:
            log.exception("task %s: tool %s failed", self._task_id, call.name)
            return None, f"the tool failed unexpectedly ({type(exc).__name__}); see hookd's log."
