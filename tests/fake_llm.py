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
It can also be run by itself for the benchmark: `python tests/fake_llm.py PORT`.
"""

from __future__ import annotations

import asyncio
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
        if anthropic:
            return self._anthropic(request, body, model)
        return self._openai(body, model)

    @staticmethod
    def _openai(body: dict[str, Any], model: str) -> web.Response:
        user = body["messages"][-1]["content"]
        return web.json_response(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"You said: {user}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
            }
        )

    @staticmethod
    def _anthropic(request: web.Request, body: dict[str, Any], model: str) -> web.Response:
        if "anthropic-version" not in request.headers:
            return web.json_response(
                {
                    "type": "error",
                    "error": {
                        "type": "invalid_request_error",
                        "message": "anthropic-version header is required",
                    },
                },
                status=400,
            )
        user = body["messages"][-1]["content"]
        return web.json_response(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": f"You said: {user}"}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": 7, "output_tokens": 3},
            }
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self.handle)
        app.router.add_post("/v1/messages", self.handle)
        return app


if __name__ == "__main__":
    fake = FakeLLM(record=False)
    web.run_app(fake.app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
