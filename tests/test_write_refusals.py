"""Every route that writes answers 503 with the error body while the database cannot take
writes, nothing stored, and the OpenAPI document says so for each of them.

The fault is real: the immutable attribute on the database file and its WAL (test_faults.py's
ReadOnlyFile), on an in-process hookd; skipped where chattr is not available.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agents.tokens import WEBHOOK_PATH
from api.openapi import DOCUMENT, PATHS
from tests.conftest import Hookd
from tests.test_faults import ReadOnlyFile
from tests.test_knowledge import add_json


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[ReadOnlyFile]:
    probe = tmp_path / "probe"
    probe.touch()
    try:
        subprocess.run(["chattr", "+i", str(probe)], check=True, capture_output=True, timeout=10)
        subprocess.run(["chattr", "-i", str(probe)], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pytest.skip("no immutable attribute (chattr) on this filesystem")
    fault = ReadOnlyFile(tmp_path / "hookd.db")
    try:
        yield fault
    finally:
        fault.remove()


def documented_error(path: str, method: str, status: str) -> dict[str, Any]:
    """The error body schema the document gives `status` of this operation; fails if it has none."""
    responses = PATHS[path][method]["responses"]
    assert status in responses, f"{method.upper()} {path} does not document {status}"
    schema: dict[str, Any] = responses[status]["content"]["application/json"]["schema"]
    return {"components": DOCUMENT["components"], **schema}  # where its $refs point


async def test_every_write_route_answers_a_documented_503_while_the_database_is_read_only(
    hookd: Hookd, read_only: ReadOnlyFile
) -> None:
    agent = await hookd.create_agent(llm={"model": "mode=hang"}, timeout_s=60)
    source = await add_json(hookd, agent["id"], name="notes.txt", content="Some notes.")
    running = await hookd.trigger(agent, {"question": "hangs"})
    await hookd.wait_for(running, ("STARTED",))
    rows = hookd.count_rows("tasks"), hookd.count_rows("agents"), hookd.count_rows("sources")
    token = agent["webhook_path"].removeprefix(WEBHOOK_PATH)
    a, s = agent["id"], source["id"]
    writes: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
        # (method, documented path, its parameters, request keywords)
        ("post", WEBHOOK_PATH + "{token}", {"token": token}, {"json": {"question": "x"}}),
        ("get", WEBHOOK_PATH + "{token}", {"token": token}, {"params": {"question": "x"}}),
        ("post", "/api/agents", {}, {"json": {"name": "new"}}),
        ("patch", "/api/agents/{agent_id}", {"agent_id": a}, {"json": {"prompt": "changed"}}),
        ("delete", "/api/agents/{agent_id}", {"agent_id": a}, {}),
        ("post", "/api/agents/{agent_id}/webhook", {"agent_id": a}, {}),
        ("post", "/api/agents/{agent_id}/callback-secret", {"agent_id": a}, {}),
        ("post", "/api/agents/{agent_id}/sources", {"agent_id": a}, {"json": {"name": "b", "content": "B."}}),
        ("delete", "/api/agents/{agent_id}/sources/{source_id}", {"agent_id": a, "source_id": s}, {}),
        ("post", "/api/tasks/{task_id}/cancel", {"task_id": running}, {}),
    ]
    await asyncio.to_thread(read_only.apply)
    try:
        for method, path, parameters, request in writes:
            headers = {} if path.startswith(WEBHOOK_PATH) else hookd.admin
            response = await hookd.client.request(
                method.upper(), path.format(**parameters), headers=headers, **request
            )
            body = await response.json()
            assert response.status == 503, (method, path, response.status, body)
            assert "nothing was stored" in body["message"], body
            jsonschema.validate(body, documented_error(path, method, "503"))
    finally:
        await asyncio.to_thread(read_only.remove)
    assert (hookd.count_rows("tasks"), hookd.count_rows("agents"), hookd.count_rows("sources")) == rows
    # The same routes work again as soon as the database does.
    response = await hookd.client.post(f"/api/tasks/{running}/cancel", headers=hookd.admin)
    assert response.status == 200, await response.text()


def test_every_operation_that_writes_documents_503() -> None:
    """The routes that only read do not: a read never waits on the writer."""
    documented = {
        (method, path)
        for path, item in PATHS.items()
        for method, op in item.items()
        if isinstance(op, dict) and "503" in op.get("responses", {})
    }
    assert documented == {
        ("post", WEBHOOK_PATH + "{token}"),
        ("get", WEBHOOK_PATH + "{token}"),
        ("post", "/api/agents"),
        ("patch", "/api/agents/{agent_id}"),
        ("delete", "/api/agents/{agent_id}"),
        ("post", "/api/agents/{agent_id}/webhook"),
        ("post", "/api/agents/{agent_id}/callback-secret"),
        ("post", "/api/agents/{agent_id}/sources"),
        ("delete", "/api/agents/{agent_id}/sources/{source_id}"),
        ("post", "/api/tasks/{task_id}/cancel"),
    }
