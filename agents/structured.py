"""Structured output: an agent's json_schema, checked when it is saved, and the model's answer
checked against it."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from referencing import Registry

from errors import InvalidInput

MAX_SCHEMA_CHARS = 100_000
MAX_REPORTED_ERRORS = 3


def _refs(value: Any) -> list[str]:
    """Every $ref and $dynamicRef in a schema, however deep."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found += [v for k, v in item.items() if k in ("$ref", "$dynamicRef") and isinstance(v, str)]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def check_json_schema(value: Any) -> dict[str, Any] | None:
    """The agent's json_schema as given to the API, or a 400 saying what is wrong with it."""
    if value is None:
        return None
    example = '{"type": "object", "properties": {"summary": {"type": "string"}}, "required": ["summary"]}'
    if not isinstance(value, dict):
        raise InvalidInput(f"'json_schema' must be a JSON Schema object, like {example}, or null.")
    if value.get("type") != "object":
        raise InvalidInput(
            '\'json_schema\' must describe a JSON object: its root needs "type": "object" (the'
            f" model APIs require it), like {example}."
        )
    if len(json.dumps(value)) > MAX_SCHEMA_CHARS:
        raise InvalidInput(f"'json_schema' is too large: at most {MAX_SCHEMA_CHARS} characters as JSON.")
    try:
        Draft202012Validator.check_schema(value)
    except SchemaError as exc:
        where = exc.json_path.replace("$", "json_schema", 1)
        raise InvalidInput(
            f"'json_schema' is not a valid JSON Schema (2020-12): at {where}: {exc.message[:300]}"
        ) from None
    if any(not ref.startswith("#") for ref in _refs(value)):
        raise InvalidInput(
            "'json_schema' may only $ref its own parts (like #/$defs/item); hookd does not fetch other schemas."
        )
    return value


def answer_problem(schema: dict[str, Any], answer: Any) -> str | None:
    """Why the answer does not fit the schema (where, and what is wrong), or None if it does."""
    # An empty registry: a $ref is never fetched from anywhere.
    validator = Draft202012Validator(schema, registry=Registry())
    try:
        errors = list(validator.iter_errors(answer))
    except Exception as exc:  # e.g. a $ref to a part the schema does not have
        return f"the schema could not be applied ({type(exc).__name__}: {str(exc)[:200]})"
    if not errors:
        return None
    first = best_match(errors)
    ordered = [first, *(e for e in errors if e is not first)][:MAX_REPORTED_ERRORS]
    problems = "; ".join(f"at {e.json_path}: {e.message[:300]}" for e in ordered)
    more = len(errors) - len(ordered)
    return problems + (f" (and {more} more)" if more else "")
