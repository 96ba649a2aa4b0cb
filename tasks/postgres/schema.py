"""The PostgreSQL database's shape over time: schema.sql for a new database, migrations/ for an
older one, applied at open under an advisory lock so that nodes starting together don't race.

Both files travel inside this package (tasks/postgres/), in a checkout and in a wheel alike.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

from asyncpg import exceptions as pg

from errors import StorageUnavailable
from tasks.postgres.connection import SCHEMA_LOCK

_MIGRATION_NAME = re.compile(r"(\d{3})_[a-z0-9_]+\.sql")


def schema_sql() -> str:
    return resources.files(__package__).joinpath("schema.sql").read_text(encoding="utf-8")


@cache
def migrations() -> tuple[tuple[int, str], ...]:
    """(version, script) for every migration, in order; version N upgrades N-1 to N."""
    found: list[tuple[int, str]] = []
    for entry in resources.files(__package__).joinpath("migrations").iterdir():
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match:
            found.append((int(match[1]), entry.read_text(encoding="utf-8")))
    found.sort()
    versions = [version for version, _ in found]
    if versions != list(range(2, 2 + len(versions))):
        raise RuntimeError(
            f"tasks/postgres/migrations/ must number 002, 003, … without gaps; found {versions}"
        )
    return tuple(found)


def schema_version() -> int:
    """The newest schema: 1 (schema.sql's first shape) plus one per migration."""
    return 1 + len(migrations())


async def current_version(conn: Any) -> int:
    """The database's schema version; 0 for a database hookd has not set up."""
    if await conn.fetchval("SELECT to_regclass('hookd_schema')") is None:
        return 0
    version = await conn.fetchval("SELECT max(version) FROM hookd_schema")
    return int(version or 0)


async def set_up(conn: Any, shown_url: str) -> None:
    """Bring the database to the newest schema: create it, or migrate it step by step, each
    step one transaction with its version bump, under SCHEMA_LOCK. A node that waited for the
    lock reads the version again and finds the work done."""
    target = schema_version()
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", *SCHEMA_LOCK)
            version = await current_version(conn)
            if version == target:
                return
            if version > target:
                raise StorageUnavailable(
                    f"{shown_url} was written by a newer hookd (schema {version}); upgrade hookd to open it."
                )
            step, script = (target, schema_sql()) if version == 0 else migrations()[version - 1]
            try:
                await conn.execute(script)
            except (pg.DuplicateTableError, pg.DuplicateObjectError, pg.DuplicateFunctionError) as exc:
                raise StorageUnavailable(
                    f"{shown_url} already holds tables of another application ({exc}); give hookd a"
                    " database of its own."
                ) from None
            except pg.InsufficientPrivilegeError as exc:
                raise StorageUnavailable(
                    f"hookd's role may not create its schema in {shown_url} ({exc}): it needs to own the"
                    " database (or have CREATE on it and its schema), so that it can create its tables"
                    " and the unaccent and btree_gin extensions."
                ) from None
            await conn.execute("DELETE FROM hookd_schema")
            await conn.execute("INSERT INTO hookd_schema (version) VALUES ($1)", step)
