"""Anthropic Messages: `tool_use` / `tool_result` content blocks, and a structured answer
through a forced tool whose input is the answer."""

from __future__ import annotations

from typing import Any

import aiohttp

from agents.chat import ANSWER_TOOL, Reply, ToolCall, ToolResult, ToolSpec
from agents.providers import ModelConfig, bad_shape, post_json

ANTHROPIC_VERSION = "2023-06-01"
ANTHROPIC_MAX_TOKENS = 4096


class AnthropicChat:
    def __init__(
        self,
        config: ModelConfig,
        system: str,
        user: str,
        tools: list[ToolSpec],
        answer_schema: dict[str, Any] | None,
    ) -> None:
        self._config = config
        self._system = system
        self._messages: list[dict[str, Any]] = [{"role": "user", "content": user}]
        self._tools: list[dict[str, Any]] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in tools
        ]
        self._tool_choice: dict[str, Any] | None = None
        self._structured = answer_schema is not None
        if answer_schema is not None:
            self._tools.append(
                {
                    "name": ANSWER_TOOL,
                    "description": "Give your final answer through this tool: its input is the answer,"
                    " in the shape the task requires.",
                    "input_schema": answer_schema,
                }
            )
            # Forced: the answer tool alone, or — while there are other tools to call first —
            # any tool, so the model can still use them before it answers.
            self._tool_choice = {"type": "tool", "name": ANSWER_TOOL} if not tools else {"type": "any"}
        self._pending_ids: list[tuple[str, str]] = []  # (id, name) of the last turn's tool_use blocks

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._config.model,
            "max_tokens": ANTHROPIC_MAX_TOKENS,
            "messages": self._messages,
        }
        if self._system:
            body["system"] = self._system
        if self._tools:
            body["tools"] = self._tools
        if self._tool_choice is not None:
            body["tool_choice"] = self._tool_choice
        return body

    async def send(self, session: aiohttp.ClientSession) -> Reply:
        config = self._config
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        data = await post_json(session, config, config.base_url + "/v1/messages", headers, self._body())
        blocks = data.get("content")
        if not isinstance(blocks, list):
            raise bad_shape(config, "a content list")
        blocks = [b for b in blocks if isinstance(b, dict)]
        text = "".join(
            b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)
        )
        calls: list[ToolCall] = []
        answer: ToolCall | None = None
        self._pending_ids = []
        for block in blocks:
            if block.get("type") != "tool_use":
                continue
            call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
            if not isinstance(call_id, str) or not isinstance(name, str):
                raise bad_shape(config, "an id and a name in each tool_use block")
            problem = None if isinstance(arguments, dict) else "the input must be a JSON object"
            call = ToolCall(call_id, name, arguments if isinstance(arguments, dict) else {}, problem)
            self._pending_ids.append((call_id, name))
            if self._structured and name == ANSWER_TOOL:
                answer = answer or call
            else:
                calls.append(call)
        # Sent back as received: the API expects its own blocks in the history.
        self._messages.append({"role": "assistant", "content": blocks or [{"type": "text", "text": "…"}]})
        usage = data.get("usage")
        reply = Reply(
            text=text,
            model=str(data.get("model") or config.model),
            usage=usage if isinstance(usage, dict) else {},
            tool_calls=[] if answer is not None else calls,  # the answer ends the run
        )
        if not self._structured or reply.tool_calls:
            return reply
        if answer is None:
            problem = f"the answer was not given through the {ANSWER_TOOL} tool"
            return Reply(reply.text, reply.model, reply.usage, structured_problem=problem)
        if answer.problem:
            return Reply(reply.text, reply.model, reply.usage, structured_problem=answer.problem)
        return Reply(reply.text, reply.model, reply.usage, structured=answer.arguments)

    def add_tool_results(self, results: list[ToolResult]) -> None:
        content: list[dict[str, Any]] = []
        for result in results:
            block: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": result.call.id,
                "content": result.output,
            }
            if result.is_error:
                block["is_error"] = True
            content.append(block)
        self._messages.append({"role": "user", "content": content})
        self._pending_ids = []

    def correct(self, problem: str) -> None:
        message = (
            f"Your answer does not match the required JSON schema: {problem}."
            f" Call {ANSWER_TOOL} again with an answer that matches the schema."
        )
        if not self._pending_ids:
            self._messages.append({"role": "user", "content": message})
            return
        # Every tool_use needs its tool_result in the next message, the answer's included.
        content = [
            {"type": "tool_result", "tool_use_id": call_id, "content": message, "is_error": True}
            if name == ANSWER_TOOL
            else {
                "type": "tool_result",
                "tool_use_id": call_id,
                "content": "Not run: the final answer came in the same turn.",
                "is_error": True,
            }
            for call_id, name in self._pending_ids
        ]
        self._messages.append({"role": "user", "content": content})
        self._pending_ids = []
