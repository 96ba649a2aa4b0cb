"""A file made by an older hookd is migrated to the same schema a new file gets, keeping its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from tasks.sqlite_schema import migrations, schema_version
from tasks.sqlite_store import SQLiteStore

SCHEMA_V1 = Path(__file__).parent / "data" / "schema_v1.sql"


def shape(path: Path) -> dict[str, Any]:
    """Every table's columns and every index's definition, comparable across both paths."""
    conn = sqlite3.connect(path)
    try:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )]  # fmt: skip
        columns = {
            table: [row[1:] for row in conn.execute(f"PRAGMA table_xinfo({table})")] for table in tables
        }
        indexes = dict(conn.execute("SELECT name, sql FROM sqlite_schema WHERE type IN ('index', 'trigger')"))
        ((version,),) = conn.execute("PRAGMA user_version").fetchall()
        return {"columns": columns, "indexes": indexes, "version": version}
    finally:
        conn.close()


async def test_a_version_1_file_is_migrated_to_the_new_schema_with_its_rows(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.executescript(SCHEMA_V1.read_text() + "\nPRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO agents (id, name, token_sha256, created_at, updated_at) VALUES ('a1', 'old', x'00', 1, 1)"
    )
    conn.execute(
        "INSERT INTO tasks (id, agent_id, payload, max_attempts, run_after, created_at)"
        " VALUES ('t1', 'a1', '{}', 3, 1, 1)"
    )
    conn.commit()
    conn.close()

    for path in (old, tmp_path / "new.db"):
        store = SQLiteStore(str(path))
        await store.open()
        await store.close()

    assert shape(old) == shape(tmp_path / "new.db")
    assert shape(old)["version"] == schema_version() == 1 + len(migrations())
    store = SQLiteStore(str(old))
    await store.open()
    try:
        assert (await store.get_agent("a1")).name == "old"
        assert (await store.get_task("t1")) is not None
    finally:
        await store.close()
