"""JSON in SQLite columns: how hookd writes it, and reads it back."""

from __future__ import annotations

import json
from typing import Any


def json_text(value: Any) -> str:
    """Compact JSON text for a column; a lone surrogate (which UTF-8 cannot hold) stays escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, e.g. from a model's answer: keep it escaped
        text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text


def json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)
