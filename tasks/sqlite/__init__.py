"""The SQLite backend, hookd's embedded default: one file, one writer, group commit."""

from tasks.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
