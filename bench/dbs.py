"""Databases for the benchmark, made straight with SQLite in bulk and cached between runs.

hookd's own schema (schema.sql, through tasks/sqlite/schema.py) and one agent whose webhook
token is known to the benchmark; then N tasks generated inside SQLite by one INSERT … SELECT
over a counter, so a million rows take seconds, not the hours a million webhooks would.
Task ids are UUIDv7-shaped and time-ordered like hookd's, so the indexes have the shape a
busy hookd gives them.

A built file is kept in the system's temporary folder under a name made from a hash of
everything that shapes it (the schema, this file, the arguments); each run copies it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tasks.sqlite.schema import migrations, schema_sql, set_up  # noqa: E402

CACHE_DIR = Path(tempfile.gettempdir()) / "hookd-bench-cache"
# A webhook token as hookd issues them (43 URL-safe characters); not a secret, only a fixture.
TOKEN = "bench-token-0000000000000000000000000000000"
AGENT_ID = "01900000-0000-7000-8000-000000000001"
DAY_S = 86400.0

# The tasks, generated in SQLite. Ids: 48 bits of milliseconds, spaced evenly over the day
# before `now`, then random bits, formatted as UUIDv7. Finished tasks carry a result like
# the instant model's; pending ones are due now.
_INSERT_TASKS = """
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
INSERT INTO tasks (id, agent_id, status, payload, result, attempts, max_attempts, run_after,
                   created_at, started_at, finished_at)
SELECT printf('%08x-%04x-7%03x-%04x-%012x', ms >> 16, ms & 65535, abs(random()) % 4096,
              32768 + abs(random()) % 16384, abs(random()) % 281474976710656),
       :agent_id, :status, printf('{"question":"benchmark","n":%d}', i),
       CASE WHEN :status = 'SUCCESS'
            THEN '{"answer":"You said: benchmark","model":"ok","usage":{"total_tokens":10}}' END,
       CASE WHEN :status = 'SUCCESS' THEN 1 ELSE 0 END, 3, at, at,
       CASE WHEN :status = 'SUCCESS' THEN at + 0.01 END,
       CASE WHEN :status = 'SUCCESS' THEN at + 0.02 END
FROM (SELECT i, CAST((:start + i * :step) * 1000 AS INTEGER) AS ms, :start + i * :step AS at FROM n)
"""


@dataclass(frozen=True)
class BenchDb:
    path: Path
    tasks: int
    status: str

    @property
    def token(self) -> str:
        return TOKEN


def _token_sha256() -> bytes:
    return hashlib.sha256(TOKEN.encode()).digest()


def _fingerprint(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in (schema_sql(), *(script for _, script in migrations()), Path(__file__).read_text(), *parts):
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def build(path: Path, tasks: int, status: str, model: str) -> None:
    """A new database file at `path`: hookd's schema, the bench agent, `tasks` tasks in `status`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        set_up(conn, str(path))
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO agents (id, name, prompt, llm, token_sha256, created_at, updated_at)"
            " VALUES (?, 'bench', 'Be brief.', json_object('model', ?), ?, ?, ?)",
            (AGENT_ID, model, _token_sha256(), now - DAY_S, now - DAY_S),
        )
        if tasks:
            start = now - DAY_S  # within the day before: never old enough for retention
            conn.execute(
                _INSERT_TASKS,
                {
                    "count": tasks,
                    "agent_id": AGENT_ID,
                    "status": status,
                    "start": start,
                    "step": DAY_S / tasks,
                },
            )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def prepared(dest: Path, tasks: int, status: str, model: str, say: Callable[[str], None] = print) -> BenchDb:
    """A copy at `dest` of the cached database with these contents, built first if need be."""
    CACHE_DIR.mkdir(exist_ok=True)
    name = f"tasks-{tasks}-{status.lower()}-{_fingerprint(str(tasks), status, model)}.db"
    cached = CACHE_DIR / name
    if not cached.exists():
        started_s = time.monotonic()
        partial = cached.with_suffix(f".{os.getpid()}.partial")
        try:
            build(partial, tasks, status, model)
            partial.rename(cached)  # only a complete file ever has the cached name
        finally:
            for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
        say(
            f"  built {cached} ({tasks:,} tasks) in {time.monotonic() - started_s:.1f} s; kept for later runs"
        )
    shutil.copyfile(cached, dest)
    return BenchDb(dest, tasks, status)


def sample_ids(db: Path, count: int) -> list[str]:
    """`count` task ids picked at random over the whole table (so reads touch all of it)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        ((last,),) = conn.execute("SELECT max(rowid) FROM tasks").fetchall()
        if not last:
            return []
        rowids = random.Random(0).choices(range(1, last + 1), k=count)
        return [row[0] for r in rowids for row in conn.execute("SELECT id FROM tasks WHERE rowid = ?", (r,))]


def trim(db: Path, keep_rowids: int) -> int:
    """Delete the tasks added after the first `keep_rowids` (those a measurement queued)."""
    with contextlib.closing(sqlite3.connect(db, isolation_level=None, timeout=30)) as conn:
        deleted = conn.execute("DELETE FROM tasks WHERE rowid > ?", (keep_rowids,)).rowcount
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return deleted
