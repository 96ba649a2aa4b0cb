"""What the agent sees: the system message and the user message rendered from a payload."""

from __future__ import annotations

import json
import re
from typing import Any

from errors import InvalidInput

# {{question}}, {{payload}}, {{payload.a.b}} (list items by index: {{payload.items.0}}).
PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_PATH = re.compile(r"(question|payload(\.[^.\s{}]+)*)")


def to_json_text(value: Any) -> str:
    """JSON as a person (or a model) reads it: UTF-8, not \\u-escaped, indented."""
    return json.dumps(value, ensure_ascii=False, indent=2)


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


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else to_json_text(value)


def render_template(template: str, payload: dict[str, Any]) -> str:
    """Plain substitution in one pass: a substituted value is never itself expanded."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "question":
            question = payload.get("question")
            return question if isinstance(question, str) else ""
        if name == "payload":
            return to_json_text(payload)
        if _PATH.fullmatch(name):
            return _as_text(_lookup(payload, name.split(".")[1:]))
        return match.group(0)

    return PLACEHOLDER.sub(substitute, template)


def user_message(payload: dict[str, Any], input_template: str | None) -> str:
    """The user message for a payload.

    Without a template: the payload's `question` when it is a string, followed by any
    other fields as JSON context; otherwise the whole payload as JSON.
    """
    if input_template:
        return render_template(input_template, payload)
    question = payload.get("question")
    if not isinstance(question, str):
        return to_json_text(payload)
    context = {k: v for k, v in payload.items() if k != "question"}
    if not context:
        return question
    return f"{question}\n\nContext:\n{to_json_text(context)}"
