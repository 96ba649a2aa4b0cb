"""A file made by an older hookd is migrated to the same schema a new file gets, keeping its rows."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from tasks.sqlite.schema import migrations, schema_version
from tasks.sqlite.store import SQLiteStore

SCHEMA_V1 = Path(__file__).parent / "data" / "schema_v1.sql"


# A string literal (its case kept), a comment, a run of whitespace, or any other character.
_SQL_TOKEN = re.compile(r"'(?:[^']|'')*'|--[^\n]*|/\*.*?\*/|\s+|.", re.DOTALL)


def normalised(sql: str) -> str:
    """SQL as one comparable line: comments dropped, whitespace collapsed (none beside
    parentheses and commas), lowercase outside string literals."""
    parts: list[str] = []
    for token in _SQL_TOKEN.findall(sql):
        if token.startswith(("--", "/*")) or token.isspace():
            parts.append(" ")
        else:
            parts.append(token if token.startswith("'") else token.lower())
    text = re.sub(r" +", " ", "".join(parts)).strip()
    return re.sub(r" ?([(),]) ?", r"\1", text)


def checks(sql: str) -> list[str]:
    """Every CHECK expression of a CREATE TABLE, column or table constraint alike, sorted.

    A migrated table's SQL is its old CREATE TABLE with each ADD COLUMN's text spliced in
    before the closing parenthesis, so its constraints are in another order than a new file's;
    this compares what they say, wherever they sit."""
    text = normalised(sql)
    found = []
    for match in re.finditer(r"\bcheck\(", text):
        depth, end, quoted = 0, match.end() - 1, False
        for end in range(match.end() - 1, len(text)):
            char = text[end]
            if char == "'":
                quoted = not quoted
            elif not quoted and char in "()":
                depth += 1 if char == "(" else -1
                if depth == 0:
                    break
        found.append(text[match.end() : end])
    return sorted(found)


def shape(path: Path) -> dict[str, Any]:
    """What a file's schema says, comparable across a migrated file and a new one: each
    table's columns, CHECKs, foreign keys, indexes and options, each index's and trigger's
    definition, and each virtual table's."""
    conn = sqlite3.connect(path)
    try:
        tables = dict(conn.execute(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall())  # fmt: skip
        columns, constraints, virtual = {}, {}, {}
        for table, sql in tables.items():
            if normalised(sql).startswith("create virtual table"):
                virtual[table] = normalised(sql)
                continue
            columns[table] = [row[1:] for row in conn.execute(f"PRAGMA table_xinfo({table})")]
            keys: dict[int, list[Any]] = {}
            for key, _, parent, child, parent_column, *rules in conn.execute(
                f"PRAGMA foreign_key_list({table})"
            ):
                keys.setdefault(key, []).append((parent, child, parent_column, *rules))
            options = conn.execute("SELECT wr, strict FROM pragma_table_list WHERE name = ?", (table,))
            constraints[table] = {
                "checks": checks(sql),
                "foreign_keys": sorted(map(tuple, keys.values())),
                "indexes": sorted(row[1:] for row in conn.execute(f"PRAGMA index_list({table})")),
                "without_rowid, strict": options.fetchall(),
            }
        indexes = dict(conn.execute("SELECT name, sql FROM sqlite_schema WHERE type IN ('index', 'trigger')"))
        ((version,),) = conn.execute("PRAGMA user_version").fetchall()
        return {
            "columns": columns,
            "constraints": constraints,
            "virtual": virtual,
            "indexes": indexes,
            "version": version,
        }
    finally:
        conn.close()


def test_checks_are_read_wherever_they_sit() -> None:
    created = """CREATE TABLE t (
        a TEXT CHECK (a IN ('X', 'y')),  -- a comment (with a paren
        b INTEGER NOT NULL
            CHECK(b BETWEEN 0 AND 9),
        CHECK ((a IS NULL) = (b IS NULL))
    )"""
    # Created without b, then altered: b's text is spliced in before the closing parenthesis.
    altered = "CREATE TABLE t (a TEXT CHECK(a in ('X','y')), CHECK((a is null)=(b is null))"
    altered += ", b INTEGER NOT NULL CHECK (b between 0 and 9))"
    assert (
        checks(created)
        == checks(altered)
        == ["(a is null)=(b is null)", "a in('X','y')", "b between 0 and 9"]
    )
    assert checks(created.replace("'X'", "'x'")) != checks(created)  # literals keep their case


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


async def test_large_results_stored_before_the_preview_column_list_as_their_type(tmp_path: Path) -> None:
    """Migration 007: a result over 2 KiB gets a preview of its type alone, so that a list never
    reads it; a small one stays shown whole."""
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.executescript(SCHEMA_V1.read_text() + "\nPRAGMA user_version = 1;")
    conn.execute(
        "INSERT INTO agents (id, name, token_sha256, created_at, updated_at) VALUES ('a1', 'old', x'00', 1, 1)"
    )
    large_failure = json.dumps({"error": "e" * 3000, "type": "llm_http_error"})
    large_success = json.dumps({"answer": "a" * 3000, "model": "m", "usage": {}})
    small = json.dumps({"answer": "hi", "model": "m", "usage": {}})
    for task_id, result in (("t1", large_failure), ("t2", large_success), ("t3", small)):
        conn.execute(
            "INSERT INTO tasks (id, agent_id, status, payload, result, max_attempts, run_after, created_at)"
            " VALUES (?, 'a1', 'SUCCESS', '{}', ?, 3, 1, 1)",
            (task_id, result),
        )
    conn.commit()
    conn.close()

    store = SQLiteStore(str(old))
    await store.open()
    try:
        listed = {task.id: task for task in await store.list_tasks()}
    finally:
        await store.close()
    assert (listed["t1"].result, listed["t1"].result_truncated) == ({"type": "llm_http_error"}, True)
    assert (listed["t2"].result, listed["t2"].result_truncated) == ({}, True)
    assert (listed["t3"].result, listed["t3"].result_truncated) == (json.loads(small), False)
