"""hookd's log lines: text for people, or one JSON object per line for log collectors, and
never a credential in either.

Everything goes through the standard library's logging to stderr. A line about a task or a
request carries its structured fields in `extra=fields(...)`: the text format already says
them in the message, the JSON format adds them as keys beside ts, level, logger and msg.

Every line passes `Redactor` on its way out, whichever logger wrote it (hookd's, aiohttp's,
asyncio's) and wherever a credential hides in it: the message, its arguments, its fields, the
traceback. Two of aiohttp's and asyncio's own lines are shortened first, because they are
about something hookd cannot help and came with a traceback each, thousands a second at worst:
a request aiohttp could not parse (`ClientErrors`) and accept() finding no file descriptor
free (`AcceptErrors`).
"""

from __future__ import annotations

import errno
import json
import logging
import re
import resource
import sys
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_FIELDS = "hookd_fields"  # the LogRecord attribute `fields()` sets
_BASE_KEYS = ("ts", "level", "logger", "msg")
QUIET_INTERVAL_S = 10.0  # the shortened lines: at most one of a kind per this many seconds


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
        # As logging.Formatter does: the traceback's text is kept on the record (Redactor's, redacted).
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ASCII-only: a line stays one valid JSON line whatever an agent name or path holds
        # (newlines, lone surrogates), and whatever encoding stderr has.
        return json.dumps(line, default=str)


# -- credentials out of every line ------------------------------------------------------------

WEBHOOK_PREFIX = "/api/webhooks/agents/"
# Shorter "keys" are placeholders (HOOKD_LLM_API_KEY=ollama), not worth holes in every line.
MIN_SECRET_CHARS = 8


def _hex_byte(byte: int) -> str:
    """`byte` as two hex digits in either case, for a regex: 0x2f → 2[fF]."""
    return "".join(f"[{d.lower()}{d.upper()}]" if d.isalpha() else d for d in f"{byte:02x}")


def _any_spelling(text: str, *, ignore_case: bool = False) -> str:
    """A regex for `text` as a log line may hold it: as is, or any of its characters
    percent-encoded (%2F, %2f) as a client may send them, or escaped as the repr of bytes
    writes them (\\x2f) in aiohttp's parser errors."""
    parts = []
    for char in text:
        forms = set()
        for variant in {char, char.swapcase()} if ignore_case else {char}:
            forms |= {re.escape(variant), re.escape(repr(variant)[1:-1])}
            encoded = variant.encode("utf-8", "surrogateescape")
            forms.add("".join("%" + _hex_byte(byte) for byte in encoded))
            forms.add("".join(r"\\x" + _hex_byte(byte) for byte in encoded))
        if char == " ":
            forms.add(r"\+")  # a form-encoded space
        # Atomic: under re.I, "A" and "a" both match, and a failed match would try every mix.
        parts.append("(?>" + "|".join(sorted(forms)) + ")")
    return "".join(parts)


# What a value runs to: the next whitespace (a request line's next word, the end of the
# line). The quotes and brackets it ends on are kept, so that a repr stays readable, but
# nothing inside it ends it early: a quote or a control byte in the middle of a token is
# still the token.
_BODY = r"(?P<body>(?!<redacted>)\S+?)"  # a second pass leaves the first one's work alone
_CLOSING = r"""['")\]},.]*"""
_END = f"(?P<end>{_CLOSING})" + r"(?=\s|$)"

# A webhook's path holds its token, and its query string is a GET's payload (which may
# carry the sender's keys): whatever follows the prefix, however the prefix is spelled.
_WEBHOOK_TAIL = re.compile(
    f"(?P<prefix>{_any_spelling(WEBHOOK_PREFIX, ignore_case=True)})"
    r"(?P<body>(?!<token>(?:\?<redacted>)?" + _CLOSING + r"(?:\s|$))\S*?)" + _END,
    re.I,
)
# A query parameter named like a credential (?key=, ?api_key=, ?authorization=, ?token=…),
# on any route: a client that puts the admin key in the URL must not get it into the log.
_CREDENTIAL_PARAM = re.compile(
    r"(?P<name>[?&;][\w.%-]*?(?:key|token|secret|passw(?:or)?d|auth|signature|sig|session|credential)"
    r"[\w.%-]*=)(?P<body>(?!<redacted>)[^&;\s]+?)(?P<end>" + _CLOSING + r")(?=[&;\s]|$)",
    re.I,
)
# A credential header, as a header line (Authorization: Bearer …) or a dict's repr.
_CREDENTIAL_HEADER = re.compile(
    r"(?P<name>\b(?:proxy-)?authorization|\bx-api-key)(?P<sep>(?>['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|basic)\s+)?))"
    + _BODY
    + _END,
    re.I,
)
# In a traceback only, where aiohttp's parser errors quote raw requests (the messages name
# agents, which may well be called "basic …"): a bearer or basic credential without its
# header's name (aiohttp quotes some values alone), and any request line's query string
# (the access log's lines keep ?task_id= and the like).
_BARE_CREDENTIAL = re.compile(r"(?P<name>\b(?:bearer|basic)\s+)" + _BODY + _END, re.I)
_REQUEST_LINE_QUERY = re.compile(r"(?P<line>\b[A-Z]{3,10} /[^\s?]*)\?" + _BODY + _END)

_secret_values: set[str] = set()
_secret_pattern: re.Pattern[str] | None = None
_secret_starts: tuple[str, ...] = ()


def keep_out_of_logs(*values: str) -> None:
    """Never let these values (keys from the settings, the admin key) reach a log line, in
    any spelling; every line written through `configure_logging`'s handler is searched."""
    global _secret_pattern, _secret_starts
    new = {value for value in values if len(value) >= MIN_SECRET_CHARS} - _secret_values
    if not new:
        return
    _secret_values.update(new)
    # Longest first: a key that holds another is replaced whole.
    spelled = (_any_spelling(value) for value in sorted(_secret_values, key=len, reverse=True))
    _secret_pattern = re.compile("|".join(spelled))
    _secret_starts = tuple({value[:MIN_SECRET_CHARS] for value in _secret_values})


def _webhook(match: re.Match[str]) -> str:
    query = "?<redacted>" if "?" in match["body"] else ""
    return f"{match['prefix']}<token>{query}{match['end']}"


def redact(text: str, *, traceback: bool = False) -> str:
    """`text` without credentials: webhook tokens (and a webhook's query string), query
    parameters and headers that carry credentials, and the values `keep_out_of_logs` was given.
    `traceback`: also the query string of any request line in it, and bare bearer credentials."""
    # Each pattern runs only where a plain substring says it may match: they cost some 5 µs
    # each on a line, and most lines (the access log's, the tasks') hold none of them.
    # Any spelling but the plain one holds a % (or + for a space) or a backslash.
    lowered = text.lower()
    encoded = "%" in text or "\\" in text
    if _secret_pattern is not None and (encoded or "+" in text or any(s in text for s in _secret_starts)):
        text = _secret_pattern.sub("<redacted>", text)
    if encoded or "agents/" in lowered:
        text = _WEBHOOK_TAIL.sub(_webhook, text)
    if traceback:
        text = _REQUEST_LINE_QUERY.sub(r"\g<line>?<redacted>\g<end>", text)
        text = _BARE_CREDENTIAL.sub(r"\g<name><redacted>\g<end>", text)
    if "=" in text:
        text = _CREDENTIAL_PARAM.sub(r"\g<name><redacted>\g<end>", text)
    if "authorization" in lowered or "x-api-key" in lowered:
        text = _CREDENTIAL_HEADER.sub(r"\g<name>\g<sep><redacted>\g<end>", text)
    return text


_TRACEBACKS = logging.Formatter()


class Redactor(logging.Filter):
    """On the handler, so it sees every logger's lines: renders the message with its
    arguments and the traceback, and takes the credentials out of them and out of the fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # the formatter would fail too, and print the arguments raw: not them
            message = f"{record.msg} {record.args!r}"
        record.msg, record.args = redact(message), None
        values = getattr(record, _FIELDS, None)
        if values:
            setattr(record, _FIELDS, {k: redact(v) if isinstance(v, str) else v for k, v in values.items()})
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, traceback=True)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, traceback=True)
        return True


# -- third-party lines, shortened --------------------------------------------------------------


class Throttle:
    """At most one line per `interval_s`; the next one says how many were held back."""

    def __init__(self, interval_s: float = QUIET_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self._next_at = float("-inf")
        self._held = 0

    def allow(self) -> int | None:
        """None: hold this line back. Else how many were held back since the last one let through."""
        now = time.monotonic()
        if now < self._next_at:
            self._held += 1
            return None
        held, self._held, self._next_at = self._held, 0, now + self.interval_s
        return held


def _held_back(count: int) -> str:
    return f" ({count} more like it since the last one, not logged)" if count else ""


def _parse_error_reason(exc: HttpProcessingError) -> str:
    """What aiohttp's parser found wrong, without the raw bytes it quotes: its messages put a
    label line ending in ':' before the quoted line ("Invalid char in url path:"), or quote it
    after ': ' ("Got more than 8190 bytes when reading: b'…'")."""
    lines = [line.strip() for line in exc.message.splitlines() if line.strip()]
    labels = [line.rstrip(":") for line in lines if line.endswith(":")]
    reason = ": ".join(labels) if labels else (lines[0].split(": ", 1)[0] if lines else "")
    return f"{type(exc).__name__}: {reason[:200]}"


class ClientErrors(logging.Filter):
    """On aiohttp.server: a request aiohttp could not parse (a bad request line, URL or
    header: 400 before any handler runs) is the client's fault, yet aiohttp logs it as an
    ERROR with a traceback that quotes the raw request line or header. One INFO line instead,
    with the reason and not the bytes, at most one per QUIET_INTERVAL_S; the access log still
    has a line for each."""

    def __init__(self) -> None:
        super().__init__()
        self._throttle = Throttle()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (isinstance(exc, HttpProcessingError) and 400 <= exc.code < 500):
            return True
        level = min(record.levelno, logging.INFO)  # aiohttp logs TLS on the HTTP port at DEBUG
        if not logging.getLogger(record.name).isEnabledFor(level):
            return False
        held = self._throttle.allow()
        if held is None:
            return False
        record.msg = (
            f"{record.getMessage()}: refused with {exc.code}, {_parse_error_reason(exc)}{_held_back(held)}"
        )
        record.args, record.exc_info, record.exc_text = None, None, None
        record.levelno, record.levelname = level, logging.getLevelName(level)
        return True


_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def open_files_limit() -> str:
    """RLIMIT_NOFILE as a log line says it: "1024 (hard limit 524288)"."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    shown = ["unlimited" if limit == resource.RLIM_INFINITY else str(limit) for limit in (soft, hard)]
    return f"{shown[0]} (hard limit {shown[1]})"


class AcceptErrors(logging.Filter):
    """On asyncio: with every file descriptor in use, each accept() on the listening socket
    fails, and asyncio logs each with a traceback. Before CPython's fix for gh-151615 it goes
    on trying up to the listen backlog (1,024) times a loop iteration: tens of thousands of
    lines a second. One ERROR line instead, at most one per QUIET_INTERVAL_S, naming the
    limit. The connections wait in the backlog, and asyncio accepts them once others close."""

    def __init__(self) -> None:
        super().__init__()
        self._throttle = Throttle()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not (
            isinstance(exc, OSError)
            and exc.errno in _OUT_OF_RESOURCES
            and str(record.msg).startswith("socket.accept()")
        ):
            return True
        held = self._throttle.allow()
        if held is None:
            return False
        record.msg = (
            f"cannot accept new connections: {exc.strerror}; open files limit {open_files_limit()}."
            f" They wait until other connections close{_held_back(held)}"
        )
        record.args, record.exc_info, record.exc_text = None, None, None
        return True


def configure_logging(level: str, log_format: str = "text", secrets: Iterable[str] = ()) -> None:
    """Send every logger's lines at `level` and above to stderr, as text or JSON, without
    credentials (`secrets` too: see keep_out_of_logs)."""
    keep_out_of_logs(*secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(Redactor())
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logging.getLogger("aiohttp.server").addFilter(ClientErrors())
    logging.getLogger("asyncio").addFilter(AcceptErrors())
