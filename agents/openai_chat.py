"""OpenAI Chat Completions: `tools` / `tool_calls`, `role: tool` results, and `response_format`
json_schema for a structured answer (Ollama, llama.cpp, vLLM, OpenAI, … speak it too)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from agents.chat import ANSWER_FORMAT, Reply, ToolCall, ToolResult, ToolSpec
from agents.providers import ModelConfig, bad_shape, post_json


def _tool_call(raw: Any, config: ModelConfig, fallback_id: str) -> tuple[ToolCall, dict[str, Any]]:
    """The call, and the same call as it goes back into the conversation."""
    function = raw.get("function") if isinstance(raw, dict) else None
    if not isinstance(function, dict):
        raise bad_shape(config, "a function in each of message.tool_calls")
    call_id = raw["id"] if isinstance(raw.get("id"), str) and raw["id"] else fallback_id
    name = function["name"] if isinstance(function.get("name"), str) else ""
    raw_arguments = function.get("arguments")
    # OpenAI sends the arguments as JSON text; some compatible servers send the object.
    text = raw_arguments if isinstance(raw_arguments, str) else json.dumps(raw_arguments or {})
    arguments: Any
    problem = None
    try:
        arguments = json.loads(text) if text.strip() else {}
    except ValueError as exc:
        arguments, problem = {}, f"the arguments are not valid JSON ({exc})"
    if not isinstance(arguments, dict):
        arguments, problem = {}, "the arguments must be a JSON object"
    echoed = {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}
    return ToolCall(call_id, name, arguments, problem), echoed


class OpenAIChat:
    def __init__(
        self,
        config: ModelConfig,
        system: str,
        user: str,
        tools: list[ToolSpec],
        answer_schema: dict[str, Any] | None,
    ) -> None:
        self._config = config
        self._messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        self._messages.append({"role": "user", "content": user})
        self._tools = [
            {
                "type": "function",
                "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
            }
            for t in tools
        ]
        self._answer_schema = answer_schema
        self._turns = 0

    def _body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self._config.model, "messages": self._messages, "stream": False}
        if self._tools:
            body["tools"] = self._tools
        if self._answer_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": ANSWER_FORMAT, "schema": self._answer_schema, "strict": True},
            }
        return body

    async def send(self, session: aiohttp.ClientSession) -> Reply:
        config = self._config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        url = config.base_url + "/chat/completions"
        data = await post_json(session, config, url, headers, self._body())
        try:
            message = data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise bad_shape(config, "choices[0].message.content") from None
        if not isinstance(message, dict):
            raise bad_shape(config, "choices[0].message.content")
        self._turns += 1
        content = message.get("content")
        raw_calls = message.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise bad_shape(config, "a list in message.tool_calls")
        calls, echoed = [], []
        for n, raw in enumerate(raw_calls):
            call, echo = _tool_call(raw, config, f"call_{self._turns}_{n}")
            calls.append(call)
            echoed.append(echo)
        assistant: dict[str, Any] = {
            "role": "assistant",
            "content": content if isinstance(content, str) else None,
        }
        if echoed:
            assistant["tool_calls"] = echoed
        self._messages.append(assistant)
        usage = data.get("usage")
        reply = Reply(
            text=content if isinstance(content, str) else "",
            model=str(data.get("model") or config.model),
            usage=usage if isinstance(usage, dict) else {},
            tool_calls=calls,
        )
        if self._answer_schema is None or calls:
            return reply
        return self._structured(reply, message)

    @staticmethod
    def _structured(reply: Reply, message: dict[str, Any]) -> Reply:
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal:
            return Reply(
                reply.text, reply.model, reply.usage, structured_problem=f"the model refused: {refusal}"
            )
        try:
            answer = json.loads(reply.text)
        except ValueError as exc:
            return Reply(
                reply.text, reply.model, reply.usage, structured_problem=f"the answer is not JSON ({exc})"
            )
        return Reply(reply.text, reply.model, reply.usage, structured=answer)

    def add_tool_results(self, results: list[ToolResult]) -> None:
        for result in results:
            self._messages.append({"role": "tool", "tool_call_id": result.call.id, "content": result.output})

    def correct(self, problem: str) -> None:
        self._messages.append(
            {
                "role": "user",
                "content": f"Your answer does not match the required JSON schema: {problem}."
                " Answer again, with JSON that matches the schema.",
            }
        )
