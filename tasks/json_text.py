"""JSON as hookd stores it in SQLite columns and sends it over HTTP: compact UTF-8 text."""

from __future__ import annotations

import json
from typing import Any

# How deeply hookd reads nested JSON (objects and arrays), in webhooks and admin bodies alike. Real
# senders nest fewer than 20 levels; deeper JSON is refused,
# which keeps every later stage — rendering, storing, serving — clear of deep recursion.
MAX_JSON_DEPTH = 32
# A result nested deeper than this (a model's structured answer, its tools' arguments) is not
# stored: every read would have to parse and serve it.
MAX_RESULT_DEPTH = 2 * MAX_JSON_DEPTH


def may_nest_deeper_than(text: str, max_depth: int) -> bool:
    """False when JSON `text` has too few brackets to nest deeper than `max_depth`: the usual
    small value needs no walk (two scans in C)."""
    return text.count("[") + text.count("{") > max_depth


def loads_within(text: str, max_depth: int) -> tuple[bool, Any]:
    """(True, the value) for JSON text nested at most `max_depth` deep; (False, None) for one
    deeper (which only an older hookd stored, and no view could serve)."""
    if not may_nest_deeper_than(text, max_depth):
        return True, json.loads(text)
    try:
        value = json.loads(text)
    except RecursionError:
        return False, None
    return (False, None) if nested_deeper_than(value, max_depth) else (True, value)


def nested_deeper_than(value: Any, max_depth: int) -> bool:
    """Whether `value` has objects or arrays nested more than `max_depth` levels (a bare
    object is one level). Walks without recursion, visiting containers only."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        for child in node.values() if type(node) is dict else node:
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


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
