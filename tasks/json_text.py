"""JSON as hookd stores it in SQLite columns and sends it over HTTP: compact UTF-8 text."""

from __future__ import annotations

import json
from typing import Any


def json_text(value: Any) -> str:
    """Compact JSON text for a column or a request body. An unpaired surrogate (a model's answer
    may hold one) has no UTF-8 form: then every non-ASCII character stays \\u-escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a model's answer: keep it escaped
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


def json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)
