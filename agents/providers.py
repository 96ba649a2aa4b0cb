"""Talking to model APIs: the shared transport, its errors, and echo (no model).

The wire formats live in agents/openai_chat.py and agents/anthropic_chat.py. Plain HTTP
through hookd's one shared aiohttp ClientSession; no vendor SDKs. Every failure becomes a
`ModelError` whose type names what went wrong and whose `transient` flag says whether
another attempt may succeed.
"""

from __future__ import annotations

import email.utils
import io
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from errors import HookdError
from tasks.json_text import json_text

MAX_RESPONSE_BYTES = 16 * 1024 * 1024
MAX_RETRY_AFTER_S = 3600.0
VENDOR_BASE_URLS = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


class ModelError(HookdError):
    """A run failed at the model. `type` is the code stored in the task's result."""

    status = 502

    def __init__(
        self, type_: str, message: str, *, transient: bool, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.type = type_
        self.transient = transient
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class ModelConfig:
    """The model one run talks to, resolved from the agent's `llm` and the defaults."""

    provider: str
    model: str
    base_url: str
    api_key: str = field(default="", repr=False)


def _safe_url(url: str) -> str:
    """The URL without credentials or query string, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _retry_after_s(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _provider_message(body: bytes) -> str:
    """The provider's own error text: OpenAI/Anthropic {"error": {"message"}}, Ollama {"error": "…"}."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(empty body)"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(message := error.get("message"), str):
        return message[:500]
    if isinstance(error, str):
        return error[:500]
    if isinstance(data, dict) and isinstance(message := data.get("message"), str):
        return message[:500]
    return text[:500]


async def _read_limited(response: aiohttp.ClientResponse) -> bytes:
    chunks, size = [], 0
    async for chunk in response.content.iter_chunked(65536):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise ModelError(
                "llm_bad_response",
                f"The model's answer is larger than {MAX_RESPONSE_BYTES // 2**20} MiB.",
                transient=False,
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _scrub(text: str, secret: str) -> str:
    return text.replace(secret, "***") if secret else text


async def post_json(
    session: aiohttp.ClientSession, config: ModelConfig, url: str, headers: dict[str, str], body: Any
) -> dict[str, Any]:
    where = _safe_url(url)
    try:
        # A BytesIO body is streamed in chunks: a large payload does not hold the event loop.
        data = io.BytesIO(json_text(body).encode())
        headers = headers | {"Content-Type": "application/json"}
        async with session.post(url, data=data, headers=headers) as response:
            raw = await _read_limited(response)
            status = response.status
            retry_after = response.headers.get("Retry-After")
    except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
        raise ModelError(
            "llm_bad_response",
            f"The model API at {where} sent a broken or cut-short response: {type(exc).__name__}",
            transient=True,
        ) from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = _scrub(str(exc) or type(exc).__name__, config.api_key)
        raise ModelError(
            "llm_unreachable", f"Could not reach the model API at {where}: {reason}", transient=True
        ) from None
    if status != 200:
        message = _scrub(_provider_message(raw), config.api_key)
        transient = status == 429 or status >= 500
        raise ModelError(
            "llm_http_error",
            f"The model API answered HTTP {status} ({where}): {message}",
            transient=transient,
            retry_after_s=_retry_after_s(retry_after) if status == 429 else None,
        )
    try:
        data = json.loads(raw)
    except ValueError:
        raise ModelError(
            "llm_bad_response",
            f"The model API at {where} answered with something that is not JSON.",
            transient=True,
        ) from None
    if not isinstance(data, dict):
        raise ModelError(
            "llm_bad_response",
            f"The model API at {where} answered JSON that is not an object.",
            transient=True,
        )
    return data


def bad_shape(config: ModelConfig, what: str) -> ModelError:
    return ModelError(
        "llm_bad_response",
        f"The {config.provider} API answered without {what}; is base_url ({_safe_url(config.base_url)})"
        f" really a {config.provider}-compatible API root?",
        transient=True,
    )


def echo_answer(system: str, user: str) -> str:
    """The echo provider's answer: the messages a model would have been sent."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user})
    return json.dumps(messages, ensure_ascii=False, indent=2)
