"""Time-ordered ids (UUIDv7, RFC 9562).

Time-ordered keys append to the end of SQLite's indexes, so insert rates stay flat as the
table grows, where random uuid4 keys slow down; at least 62 random bits keep an id unguessable
(ids made in the same millisecond share a counter in rand_a, RFC 9562 method 1).
"""

from __future__ import annotations

import os
import re
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_last_rand_a = 0
# Random bytes fetched in bulk: one getrandom() call per 400 ids instead of one per id.
_RANDOM_CHUNK_BYTES = 4000
_random = b""
_random_at = 0


def uuid7() -> str:
    """A new UUIDv7 string; ids made in the same millisecond by one process still sort in order."""
    global _last_ms, _last_rand_a, _random, _random_at
    with _lock:
        if _random_at >= len(_random):
            _random, _random_at = os.urandom(_RANDOM_CHUNK_BYTES), 0
        rand = int.from_bytes(_random[_random_at : _random_at + 10], "big")
        _random_at += 10
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            # Same (or an earlier, if the clock stepped back) millisecond: count up in
            # rand_a (RFC 9562 method 1), moving to the next millisecond when it overflows.
            ms = _last_ms
            rand_a = _last_rand_a + 1
            if rand_a > 0xFFF:
                ms += 1
                rand_a = 0
        else:
            rand_a = (rand >> 62) & 0x7FF  # start low so the counter has room
        _last_ms, _last_rand_a = ms, rand_a
    rand_b = rand & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    text = f"{value:032x}"  # formatted by hand: uuid.UUID() costs more than the rest together
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_uuid(text: str) -> bool:
    """Whether `text` is a UUID in its canonical 8-4-4-4-12 hex form (either case)."""
    return _UUID_TEXT.fullmatch(text) is not None
