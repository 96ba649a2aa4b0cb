"""The one fake in hookd's tests: a model server speaking the real wire protocols over HTTP.

OpenAI Chat Completions at `POST /v1/chat/completions` (base_url `<url>/v1`) and Anthropic
Messages at `POST /v1/messages` (base_url `<url>`). The *model name* picks the behaviour,
as comma-separated `key=value` directives, so each agent in a test can misbehave its own way:

    sleep=0.5             answer after 0.5 s
    fail=2                the first 2 calls for this model fail with `status` (default 503)
    status=429            the failing status
    retry_after=1         Retry-After header on failures
    mode=hang             never answer
    mode=reset            drop the connection without answering
    mode=badjson          answer 200 with a body that is not JSON
    mode=short            announce a longer body than is sent, then close
    mode=surrogate        answer text holding a lone UTF-16 surrogate (valid JSON, not UTF-8)

Answers are `You said: <last user message>`, so tests can see what the agent sent.

Tools and structured answers, in both wire formats. The *step* of a request is 1 + the
assistant turns already in its conversation, so a retried run starts again at step 1:

    tool=http_request     call this tool (`tool=a+b`: a at step 1, b at step 2, …); the
                          arguments are the user message's "<tool>_args", else its "args"
                          (the user message is read as a JSON object)
    steps=3               call tools on steps 1–3 (default: one step per tool named)
    parallel=1            all the tools named, in one step
    sleep_at=2:30         at step 2, answer after 30 s
    fail_at=2:1           the first time step 2 is asked, fail with `status` (default 503)
    json=bad-then-good    the final answers in turn, each `good` or `bad` (the user message's
                          "good" or "bad" object) or `notjson`; after the last, the last again.
                          OpenAI: as the content; Anthropic: as the input of the forced tool.

After tool results, a free-text answer is `Tool said: <the last tool result>`. A conversation
that breaks the protocol (a tool result for no call, a call left unanswered) gets a 400.
It can also be run by itself for the benchmark: `python tests/fake_llm.py PORT`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    model: str
    started_at: float  # time.monotonic()


@dataclass
class FakeLLM:
    calls: list[Call] = field(default_factory=list)
    in_flight: Counter[str] = field(default_factory=Counter)
    max_in_flight: Counter[str] = field(default_factory=Counter)  # per model
    failures_sent: Counter[str] = field(default_factory=Counter)
    step_failures_sent: Counter[tuple[str, int]] = field(default_factory=Counter)
    record: bool = True  # the benchmark turns this off
    url: str = ""  # set once serving: the server root, without a trailing slash

    def calls_for(self, model: str) -> list[Call]:
        return [c for c in self.calls if c.model == model]

    @staticmethod
    def directives(model: str) -> dict[str, str]:
        return dict(part.split("=", 1) for part in model.split(",") if "=" in part)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        model = str(body.get("model", ""))
        if self.record:
            self.calls.append(Call(request.path, dict(request.headers), body, model, time.monotonic()))
        self.in_flight[model] += 1
        self.max_in_flight[model] = max(self.max_in_flight[model], self.in_flight[model])
        try:
            return await self._answer(request, body, model)
        finally:
            self.in_flight[model] -= 1

    async def _answer(self, request: web.Request, body: dict[str, Any], model: str) -> web.StreamResponse:
        anthropic = request.path == "/v1/messages"
        d = self.directives(model)
        if "sleep" in d:
            await asyncio.sleep(float(d["sleep"]))
        mode = d.get("mode", "ok")
        if mode == "hang":
            await asyncio.sleep(3600)
        if mode == "reset":
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if mode == "badjson":
            return web.Response(text="<html>502 Bad Gateway</html>", content_type="text/html")
        if mode == "short":
            response = web.StreamResponse(
                headers={"Content-Length": "1000", "Content-Type": "application/json"}
            )
            await response.prepare(request)
            await response.write(b'{"choices": [')
            assert request.transport is not None
            request.transport.abort()
            return response
        if mode == "surrogate":
            return web.Response(
                text='{"model": "m", "choices": [{"message": {"content": "half \\ud800 a pair"}}]}',
                content_type="application/json",
            )
        if self.failures_sent[model] < int(d.get("fail", "0")):
            self.failures_sent[model] += 1
            status = int(d.get("status", "503"))
            headers = {"Retry-After": d["retry_after"]} if "retry_after" in d else {}
            message = f"fake failure {self.failures_sent[model]} with {status}"
            error = (
                {"type": "error", "error": {"type": "api_error", "message": message}}
                if anthropic
                else {"error": {"message": message, "type": "server_error"}}
            )
            return web.json_response(error, status=status, headers=headers)
        conversation = AnthropicConversation(body) if anthropic else OpenAIConversation(body)
        problem = conversation.problem()
        if problem:
            return _protocol_error(anthropic, problem)
        step = conversation.step()
        if "sleep_at" in d and int(d["sleep_at"].split(":")[0]) == step:
            await asyncio.sleep(float(d["sleep_at"].split(":")[1]))
        if "fail_at" in d:
            fail_step, times = (int(n) for n in d["fail_at"].split(":"))
            if fail_step == step and self.step_failures_sent[model, step] < times:
                self.step_failures_sent[model, step] += 1
                return _protocol_error(anthropic, f"fake failure at step {step}", int(d.get("status", "503")))
        if anthropic and "anthropic-version" not in request.headers:
            return _protocol_error(True, "anthropic-version header is required")
        calls = _tool_calls(d, step, conversation.user_json())
        if calls:
            return conversation.tool_calls(model, calls)
        if conversation.structured():
            kinds = d.get("json", "good").split("-then-")
            kind = kinds[min(conversation.answers_given(), len(kinds) - 1)]
            return conversation.structured_answer(model, kind)
        if anthropic:
            return self._anthropic(request, body, model, conversation.last_tool_result())
        return self._openai(body, model, conversation.last_tool_result())

    @staticmethod
    def _openai(body: dict[str, Any], model: str, tool_result: str | None = None) -> web.Response:
        user = body["messages"][-1]["content"]
        text = f"You said: {user}" if tool_result is None else f"Tool said: {tool_result}"
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )

    @staticmethod
    def _anthropic(
        request: web.Request, body: dict[str, Any], model: str, tool_result: str | None = None
    ) -> web.Response:
        user = body["messages"][-1]["content"]
        text = f"You said: {user}" if tool_result is None else f"Tool said: {tool_result}"
        return web.json_response(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 7, "output_tokens": 3},
            }
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_post("/v1/messages", self.handle)
        return app


def _protocol_error(anthropic: bool, message: str, status: int = 400) -> web.Response:
    kind = "invalid_request_error" if status == 400 else "api_error"
    if anthropic:
        return web.json_response(
            {"type": "error", "error": {"type": kind, "message": message}}, status=status
        )
    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


def _tool_calls(d: dict[str, str], step: int, user: dict[str, Any]) -> list[tuple[str, Any]]:
    """(tool, arguments) the `tool=` directive asks for at this step."""
    if "tool" not in d:
        return []
    names = d["tool"].split("+")
    parallel = d.get("parallel") == "1"
    if step > int(d.get("steps", "1" if parallel else str(len(names)))):
        return []
    chosen = names if parallel else [names[(step - 1) % len(names)]]
    return [(name, user.get(f"{name}_args", user.get("args", {}))) for name in chosen]


def _json_object(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _usage(anthropic: bool) -> dict[str, int]:
    if anthropic:
        return {"input_tokens": 7, "output_tokens": 3}
    return {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}


class OpenAIConversation:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.messages: list[dict[str, Any]] = body.get("messages", [])

    def problem(self) -> str | None:
        open_ids: set[str] = set()
        for message in self.messages:
            if message.get("role") == "tool":
                if message.get("tool_call_id") not in open_ids:
                    return f"a tool message answers no open tool call ({message.get('tool_call_id')!r})"
                open_ids.discard(message["tool_call_id"])
                continue
            if open_ids:
                return f"tool calls {sorted(open_ids)} got no tool message"
            if message.get("role") == "assistant" and message.get("tool_calls"):
                for call in message["tool_calls"]:
                    function = call.get("function", {})
                    if not (
                        isinstance(function.get("name"), str) and isinstance(function.get("arguments"), str)
                    ):
                        return "a tool call without function.name and function.arguments (a string)"
                open_ids = {call["id"] for call in message["tool_calls"]}
        if open_ids:
            return f"tool calls {sorted(open_ids)} got no tool message"
        for tool in self.body.get("tools", []):
            function = tool.get("function", {})
            if tool.get("type") != "function" or not isinstance(function.get("parameters"), dict):
                return "tools[] must be {type: function, function: {name, description, parameters}}"
        response_format = self.body.get("response_format")
        if response_format is not None:
            spec = response_format.get("json_schema", {})
            if response_format.get("type") != "json_schema" or not isinstance(spec.get("schema"), dict):
                return "response_format must be {type: json_schema, json_schema: {name, schema, strict}}"
        return None

    def step(self) -> int:
        return 1 + sum(m.get("role") == "assistant" for m in self.messages)

    def user_json(self) -> dict[str, Any]:
        return _json_object(next((m["content"] for m in self.messages if m.get("role") == "user"), None))

    def structured(self) -> bool:
        return "response_format" in self.body

    def answers_given(self) -> int:
        return sum(m.get("role") == "assistant" and not m.get("tool_calls") for m in self.messages)

    def last_tool_result(self) -> str | None:
        results = [m["content"] for m in self.messages if m.get("role") == "tool"]
        return results[-1] if results else None

    def _reply(self, model: str, message: dict[str, Any], finish_reason: str) -> web.Response:
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                "usage": _usage(False),
            }
        )

    def tool_calls(self, model: str, calls: list[tuple[str, Any]]) -> web.Response:
        step = self.step()
        tool_calls = [
            {
                "id": f"call_{step}_{n}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for n, (name, arguments) in enumerate(calls)
        ]
        message = {"role": "assistant", "content": None, "tool_calls": tool_calls}
        return self._reply(model, message, "tool_calls")

    def structured_answer(self, model: str, kind: str) -> web.Response:
        content = "not JSON at all" if kind == "notjson" else json.dumps(self.user_json().get(kind))
        return self._reply(model, {"role": "assistant", "content": content}, "stop")


class AnthropicConversation:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.messages: list[dict[str, Any]] = body.get("messages", [])

    @staticmethod
    def _blocks(message: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        content = message.get("content")
        return [b for b in content if b.get("type") == kind] if isinstance(content, list) else []

    def problem(self) -> str | None:
        pending: set[str] = set()
        for message in self.messages:
            if message.get("role") == "user":
                answered = {b.get("tool_use_id") for b in self._blocks(message, "tool_result")}
                if answered != pending:
                    return f"tool_result blocks {sorted(map(str, answered))} for tool_use blocks {sorted(pending)}"
                pending = set()
            elif message.get("role") == "assistant":
                if pending:
                    return "tool_use blocks got no tool_result before the next assistant turn"
                pending = {b["id"] for b in self._blocks(message, "tool_use")}
        if pending:
            return f"tool_use blocks {sorted(pending)} got no tool_result"
        names = []
        for tool in self.body.get("tools", []):
            if not (isinstance(tool.get("name"), str) and isinstance(tool.get("input_schema"), dict)):
                return "tools[] must be {name, description, input_schema}"
            names.append(tool["name"])
        choice = self.body.get("tool_choice")
        if choice is not None and choice.get("type") == "tool" and choice.get("name") not in names:
            return f"tool_choice names {choice.get('name')!r}, which is not in tools"
        return None

    def _answer_tool(self) -> str | None:
        choice = self.body.get("tool_choice") or {}
        if choice.get("type") == "tool":
            return str(choice["name"])
        if choice.get("type") == "any" and any(
            t["name"] == "final_answer" for t in self.body.get("tools", [])
        ):
            return "final_answer"
        return None

    def step(self) -> int:
        return 1 + sum(m.get("role") == "assistant" for m in self.messages)

    def user_json(self) -> dict[str, Any]:
        return _json_object(self.messages[0].get("content") if self.messages else None)

    def structured(self) -> bool:
        return self._answer_tool() is not None

    def answers_given(self) -> int:
        answer_tool = self._answer_tool()
        return sum(
            m.get("role") == "assistant"
            and (
                not self._blocks(m, "tool_use")
                or any(b.get("name") == answer_tool for b in self._blocks(m, "tool_use"))
            )
            for m in self.messages
        )

    def last_tool_result(self) -> str | None:
        results = [b for m in self.messages for b in self._blocks(m, "tool_result")]
        if not results:
            return None
        content = results[-1].get("content")
        if isinstance(content, list):
            return "".join(b.get("text", "") for b in content)
        return str(content)

    def _reply(self, model: str, content: list[dict[str, Any]], stop_reason: str) -> web.Response:
        return web.json_response(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop_reason,
                "usage": _usage(True),
            }
        )

    def tool_calls(self, model: str, calls: list[tuple[str, Any]]) -> web.Response:
        step = self.step()
        content = [
            {"type": "tool_use", "id": f"toolu_{step}_{n}", "name": name, "input": arguments}
            for n, (name, arguments) in enumerate(calls)
        ]
        return self._reply(model, content, "tool_use")

    def structured_answer(self, model: str, kind: str) -> web.Response:
        if kind == "notjson":
            return self._reply(model, [{"type": "text", "text": "not JSON at all"}], "end_turn")
        block = {"type": "tool_use", "id": f"toolu_{self.step()}_answer", "name": self._answer_tool()}
        return self._reply(model, [block | {"input": self.user_json().get(kind)}], "tool_use")


if __name__ == "__main__":
    fake = FakeLLM(record=False)
    web.run_app(fake.app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
