"""Time-ordered ids (UUIDv7, RFC 9562).

Time-ordered keys append to the end of SQLite's indexes, so insert rates stay flat as the
table grows, where random uuid4 keys slow down; the 74 random bits keep an id unguessable.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_last_rand_a = 0


def uuid7() -> str:
    """A new UUIDv7 string; ids made in the same millisecond by one process still sort in order."""
    global _last_ms, _last_rand_a
    rand = int.from_bytes(os.urandom(10), "big")
    with _lock:
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
    return str(uuid.UUID(int=value))


def is_uuid(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text.lower() and len(text) == 36
    except ValueError:
        return False
