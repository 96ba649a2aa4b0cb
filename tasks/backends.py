"""The one place a backend is named: the store for the configured database."""

from __future__ import annotations

from urllib.parse import urlsplit

from errors import StorageUnavailable
from tasks.store import Store

POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(database_url: str, sqlite_path: str, sync: str) -> Store:
    """The store for `database_url` (postgresql://…), or without one SQLite's at `sqlite_path`
    (`sync`: its PRAGMA synchronous). Not opened yet: the caller awaits `open()`."""
    if not database_url:
        from tasks.sqlite.store import SQLiteStore

        return SQLiteStore(sqlite_path, sync=sync)
    scheme = urlsplit(database_url).scheme.lower()
    if scheme not in POSTGRES_SCHEMES:
        raise StorageUnavailable(
            f"hookd cannot use a database URL of scheme '{scheme}:'; use postgresql://user@host/database."
        )
    try:
        from tasks.postgres import PostgresStore
    except ImportError:
        raise StorageUnavailable(
            "PostgreSQL needs the postgres extra: pip install 'hookd[postgres]' (for asyncpg)."
        ) from None
    return PostgresStore(database_url)


def is_database_url(target: str) -> bool:
    """Whether a place given on the command line is a database URL (scheme://…), not a file."""
    return "://" in target


def open_store_at(target: str, sync: str) -> Store:
    """The store for a place given on the command line: a database URL, or a SQLite file's path."""
    if is_database_url(target):
        return open_store(target, "", sync)
    return open_store("", target, sync)
