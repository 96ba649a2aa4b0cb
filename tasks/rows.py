"""Rows as every backend stores them: the columns of agents, tasks, deliveries and sources,
and how a row becomes hookd's object. Both stores (tasks/sqlite/store.py, tasks/postgres/)
select these columns in this order, so they return equal objects for equal rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from agents.agent import Agent
from agents.knowledge import Source
from agents.signatures import Signature
from tasks.json_text import json_or_none, json_text
from tasks.store import Task, stored_result

AGENT_COLUMNS = (
    "id, name, description, prompt, input_template, llm, max_attempts, timeout_s,"
    " max_concurrency, rate_limit, status, created_at, updated_at, signature_type, signature_secret,"
    " tools, max_steps, json_schema, callback_url, callback_secret, mcp_servers,"
    " knowledge_top_k"
)
AGENT_WRITABLE = (
    "name", "description", "prompt", "input_template", "llm",
    "max_attempts", "timeout_s", "max_concurrency", "rate_limit", "status",
    "signature_type", "signature_secret",
    "tools", "max_steps", "json_schema",
    "callback_url", "mcp_servers", "knowledge_top_k",
)  # fmt: skip
AGENT_JSON = ("llm", "tools", "json_schema", "mcp_servers")  # stored as JSON text

TASK_COLUMNS = (
    "id, agent_id, status, payload, result, last_error, attempts, max_attempts,"
    " run_after, created_at, started_at, finished_at"
)
DELIVERY_COLUMNS = (
    "id, task_id, agent_id, url, status, attempts, next_attempt_at, last_attempt_at,"
    " last_status_code, last_error, created_at, delivered_at"
)
SOURCE_COLUMNS = "id, agent_id, name, format, chunks, bytes, created_at"
# A list's columns: no payload, and a large result only as the preview `list_preview` made
# when it was stored. CASE reads `result` only for a row without a preview, so that a large
# result never leaves the database for a list.
LIST_TASK_COLUMNS = """id, agent_id, status, '' AS payload,
    CASE WHEN result_preview IS NULL THEN result END,
    last_error, attempts, max_attempts, run_after, created_at, started_at, finished_at, result_preview"""


def agent_from_row(row: Sequence[Any]) -> Agent:
    return Agent(
        id=row[0],
        name=row[1],
        description=row[2],
        prompt=row[3],
        input_template=row[4],
        llm=json.loads(row[5]),
        max_attempts=row[6],
        timeout_s=row[7],
        max_concurrency=row[8],
        rate_limit=row[9],
        status=row[10],
        created_at=row[11],
        updated_at=row[12],
        signature=None if row[13] is None else Signature(row[13], row[14]),
        tools=json.loads(row[15]),
        max_steps=row[16],
        json_schema=json_or_none(row[17]),
        callback_url=row[18],
        callback_secret=row[19],
        mcp_servers=json.loads(row[20]),
        knowledge_top_k=row[21],
    )


def agent_row(fields: dict[str, Any]) -> dict[str, Any]:
    """Validated agent fields as column values."""
    unknown = set(fields) - set(AGENT_WRITABLE)
    assert not unknown, f"not agent columns: {unknown}"
    return {k: (json_text(v) if k in AGENT_JSON and v is not None else v) for k, v in fields.items()}


def task_from_row(row: Sequence[Any]) -> Task:
    return Task(
        id=row[0],
        agent_id=row[1],
        status=row[2],
        payload=row[3],
        result=stored_result(row[4]),
        last_error=json_or_none(row[5]),
        attempts=row[6],
        max_attempts=row[7],
        run_after=row[8],
        created_at=row[9],
        started_at=row[10],
        finished_at=row[11],
    )


def listed_task_from_row(row: Sequence[Any]) -> Task:
    """A task selected with LIST_TASK_COLUMNS."""
    task = task_from_row(row)
    if row[12] is None:
        return task
    return dataclasses.replace(task, result=json.loads(row[12]), result_truncated=True)


def source_from_row(row: Sequence[Any]) -> Source:
    return Source(
        id=row[0], agent_id=row[1], name=row[2], format=row[3], chunks=row[4], bytes=row[5], created_at=row[6]
    )
