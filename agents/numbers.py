"""Numbers as JSON has them: one number type, so 1.0 is the whole number 1.

JSON Schema reads them so too ("type": "integer" takes 1.0), and the OpenAPI document says
"integer" for every count and limit: hookd takes 1.0 wherever it takes 1.
"""

from __future__ import annotations

from typing import Any


def whole_number(value: Any) -> int | None:
    """`value` as an int if it is a whole number (1 or 1.0; not true, 1.5 or NaN), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
