"""The database's shape over time: schema.sql for a new file, migrations/ for an older one.

In a checkout both live at the repository root; in a wheel they travel inside `tasks`.
"""

from __future__ import annotations

import re
import sqlite3
from functools import cache
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from errors import StorageUnavailable

_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


def _resource(name: str) -> Traversable:
    packaged = resources.files("tasks").joinpath(name)
    if packaged.is_file() or packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / name


def schema_sql() -> str:
    return _resource("schema.sql").read_text(encoding="utf-8")


@cache
def migrations() -> tuple[tuple[int, str], ...]:
    """(version, script) for every migration, in order; version N upgrades N-1 to N."""
    found: list[tuple[int, str]] = []
    for entry in _resource("migrations").iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append((int(match[1]), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _ in found]
    if versions != list(range(2, 2 + len(versions))):
        raise RuntimeError(f"migrations/ must number 002, 003, … without gaps; found {versions}")
    return tuple(found)


def schema_version() -> int:
    """The newest schema: 1 (schema.sql's first shape) plus one per migration."""
    return 1 + len(migrations())


def set_up(conn: sqlite3.Connection, path: str) -> None:
    """Bring the file at `conn` to the newest schema: create it, or migrate it step by step."""
    target = schema_version()
    ((version,),) = conn.execute("PRAGMA user_version").fetchall()
    if version == target:
        return
    if version > target:
        raise StorageUnavailable(
            f"{path} was written by a newer hookd (schema {version}); upgrade hookd to open it."
        )
    steps = [(target, schema_sql())] if version == 0 else [m for m in migrations() if m[0] > version]
    for step_version, script in steps:
        try:
            # executescript commits first; the whole step, version bump included, is one transaction.
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {step_version};\nCOMMIT;")
        except sqlite3.OperationalError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            ((now,),) = conn.execute("PRAGMA user_version").fetchall()
            if now < step_version:  # not a concurrent opener that got there first
                raise
