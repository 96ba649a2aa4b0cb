"""hookd's log lines: text for people, or one JSON object per line for log collectors.

Everything goes through the standard library's logging to stderr. A line about a task or a
request carries its structured fields in `extra=fields(...)`: the text format already says
them in the message, the JSON format adds them as keys beside ts, level, logger and msg.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FIELDS = "hookd_fields"  # the LogRecord attribute `fields()` sets
_BASE_KEYS = ("ts", "level", "logger", "msg")


def fields(**values: Any) -> dict[str, Any]:
    """`extra=` for a log call: fields the JSON format adds to the line as keys."""
    return {_FIELDS: values}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (ISO 8601 UTC), level, logger, msg, then the fields."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, Any] = {
            "ts": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in getattr(record, _FIELDS, {}).items():
            if key not in _BASE_KEYS:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ASCII-only: a line stays one valid JSON line whatever an agent name or path holds
        # (newlines, lone surrogates), and whatever encoding stderr has.
        return json.dumps(line, default=str)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send every logger's lines at `level` and above to stderr, as text or JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
