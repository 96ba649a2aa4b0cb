"""What the agent sees: the system message and the user message rendered from a payload."""

from __future__ import annotations

import json
import re
from typing import Any

from errors import InvalidInput

# {{question}}, {{payload}}, {{payload.a.b}} (list items by index: {{payload.items.0}}).
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"(question|payload(\.[^.\s{}]+)*)")


# Made once: json.dumps with options builds an encoder per call. The indented one is Python
# code (the C encoder does no indentation), so it is run a chunk at a time against a budget.
_INDENTED = json.JSONEncoder(ensure_ascii=False, indent=2)
_COMPACT = json.JSONEncoder(ensure_ascii=False)


class PromptTooLarge(Exception):
    """The rendered message would take more than its budget of bytes."""


class Budget:
    """What a rendering may still add, in UTF-8 bytes (HOOKD_MAX_PROMPT_BYTES, less what the
    prompt already holds). Indentation grows a nested payload by about its depth, so every
    piece is charged as it is made and the rendering stops once it would overrun."""

    def __init__(self, max_bytes: int, *, may_compact: bool = True) -> None:
        self.max_bytes = max_bytes
        self.left_bytes = max_bytes
        # False for a first try under a smaller budget than the real one: what does not fit
        # indented then fails, to be tried again under the real budget, not sent compact.
        self.may_compact = may_compact

    @property
    def spent_bytes(self) -> int:
        return self.max_bytes - self.left_bytes

    def charge(self, text: str) -> str:
        size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
        if size > self.left_bytes:
            raise PromptTooLarge()
        self.left_bytes -= size
        return text


def to_json_text(value: Any, budget: Budget) -> str:
    """JSON as a person (or a model) reads it: UTF-8, not \\u-escaped, indented; compact
    (one line, far smaller when deeply nested) when the indented form would not fit `budget`."""
    chunks: list[str] = []
    size = 0
    for chunk in _INDENTED.iterencode(value):
        size += len(chunk) if chunk.isascii() else len(chunk.encode("utf-8", "surrogatepass"))
        if size > budget.left_bytes:
            if not budget.may_compact:
                raise PromptTooLarge()
            return budget.charge(_COMPACT.encode(value))
        chunks.append(chunk)
    return budget.charge("".join(chunks))


def check_template(template: str) -> None:
    """Refuse a template naming anything other than question, payload or payload.<path>."""
    for match in PLACEHOLDER.finditer(template):
        if not _PATH.fullmatch(match.group(1)):
            raise InvalidInput(
                f"'input_template' has an unknown placeholder '{match.group(0)}'; use"
                " {{question}}, {{payload}} or {{payload.field.subfield}}."
            )


def _lookup(payload: Any, path: list[str]) -> Any:
    value = payload
    for key in path:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def _as_text(value: Any, budget: Budget) -> str:
    if value is None:
        return ""
    return budget.charge(value) if isinstance(value, str) else to_json_text(value, budget)


def render_template(template: str, payload: dict[str, Any], budget: Budget) -> str:
    """Plain substitution in one pass: a substituted value is never itself expanded."""
    pieces: list[str] = []
    end = 0
    for match in PLACEHOLDER.finditer(template):
        pieces.append(budget.charge(template[end : match.start()]))
        end = match.end()
        name = match.group(1)
        if name == "question":
            question = payload.get("question")
            pieces.append(budget.charge(question) if isinstance(question, str) else "")
        elif name == "payload":
            pieces.append(to_json_text(payload, budget))
        elif _PATH.fullmatch(name):
            pieces.append(_as_text(_lookup(payload, name.split(".")[1:]), budget))
        else:
            pieces.append(budget.charge(match.group(0)))
    pieces.append(budget.charge(template[end:]))
    return "".join(pieces)


def user_message(payload: dict[str, Any], input_template: str | None, budget: Budget) -> str:
    """The user message for a payload, charged to `budget` (PromptTooLarge past it).

    Without a template: the payload's `question` when it is a string, followed by any
    other fields as JSON context; otherwise the whole payload as JSON.
    """
    if input_template:
        return render_template(input_template, payload, budget)
    question = payload.get("question")
    if not isinstance(question, str):
        return to_json_text(payload, budget)
    context = {k: v for k, v in payload.items() if k != "question"}
    if not context:
        return budget.charge(question)
    head = budget.charge(f"{question}\n\nContext:\n")
    return head + to_json_text(context, budget)
