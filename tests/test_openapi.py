"""GET /api/openapi.json: it lists exactly the app's routes and the agent's fields, and where
Schemathesis found the document and hookd disagreeing, they now agree.

The Schemathesis runs themselves are in tests/test_schemathesis.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from jsonschema import Draft202012Validator

from agents.agent import validate_agent_fields
from agents.tokens import WEBHOOK_PATH
from api.openapi import DOCUMENT, PATHS
from api.openapi_agent_schemas import RATE_UNITS
from errors import InvalidInput
from server import create_app
from settings import load_settings, parse_rate_limit
from tests.conftest import Hookd

WEBHOOK = WEBHOOK_PATH + "{token}"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def documented_routes() -> set[tuple[str, str]]:
    return {
        (method.upper(), path) for path, item in PATHS.items() for method in item if method in HTTP_METHODS
    }


def test_the_document_lists_exactly_the_app_routes(tmp_path: Path) -> None:
    app = create_app(load_settings(environ={}).replace(db=str(tmp_path / "hookd.db")))
    registered = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        # HEAD: aiohttp's twin of each GET; *: the catch-all that answers 404 and 405
        if route.method not in ("HEAD", "*") and route.resource is not None
    }
    assert registered - documented_routes() == set(), "routes missing from api/openapi_paths.py"
    assert documented_routes() - registered == set(), (
        "api/openapi_paths.py lists routes the app does not have"
    )


def test_the_agent_body_lists_exactly_the_fields_hookd_takes() -> None:
    with pytest.raises(InvalidInput) as refused:
        validate_agent_fields({"no_such_field": 1}, creating=False)
    listed = re.search(r"agents have (.*?)\.?$", str(refused.value))
    assert listed is not None, str(refused.value)
    body = PATHS["/api/agents"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert sorted(body["properties"]) == listed.group(1).split(", ")
    for unit in RATE_UNITS:  # the units the rate_limit pattern names are the ones hookd reads
        assert parse_rate_limit(f"2/{unit}") is not None


async def test_the_document_is_served_without_auth(hookd: Hookd) -> None:
    response = await hookd.client.get("/api/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.json() == DOCUMENT


# -- where the document and hookd disagreed (issue 10; Schemathesis found each) ----------


def document_accepts(instance: Any, *pointer: str | int) -> bool:
    """Whether the document's schema at `pointer` (the keys down to it) takes `instance`."""
    schema: Any = DOCUMENT
    for key in pointer:
        schema = schema[key]
    validator = Draft202012Validator(
        schema | {"components": DOCUMENT["components"]}, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    return bool(validator.is_valid(instance))


def webhook_header(name: str) -> tuple[str | int, ...]:
    """The pointer to the schema of one of the POST webhook's headers."""
    parameters = PATHS[WEBHOOK]["post"]["parameters"]
    (n,) = [n for n, parameter in enumerate(parameters) if parameter["name"] == name]
    return ("paths", WEBHOOK, "post", "parameters", n, "schema")


# A 1×1 grey PNG: the image Schemathesis sent as a binary part.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108000000003a7e9b55"
    "0000000a49444154789c636000000002000148afa4710000000049454e44ae426082"
)
AGENT_BODY = ("paths", "/api/agents", "post", "requestBody", "content", "application/json", "schema")


async def test_an_empty_mcp_url_is_refused_by_the_document_as_by_hookd(hookd: Hookd) -> None:
    for url, status in [("", 400), ("https://example.com/mcp", 201)]:
        body = {"name": f"mcp {status}", "mcp_servers": [{"name": "search", "url": url}]}
        response = await hookd.client.post("/api/agents", json=body, headers=hookd.admin)
        assert response.status == status, await response.text()
        assert document_accepts(body, *AGENT_BODY) is (status == 201), url


async def test_a_source_file_is_text_to_the_document_and_a_binary_one_is_refused(hookd: Hookd) -> None:
    """The document described the file part as binary (format: binary), so Schemathesis sent
    an image; hookd indexes only UTF-8 text, so the document now says text, as hookd does."""
    form = DOCUMENT["paths"]["/api/agents/{agent_id}/sources"]["post"]["requestBody"]["content"]
    file = form["multipart/form-data"]["schema"]["properties"]["file"]
    assert file["type"] == "string" and "format" not in file
    assert file["contentMediaType"] == "text/plain"
    agent = await hookd.create_agent()
    for content, status in [(PNG, 400), (b"# Notes\n\nThe door code is 4711.", 201)]:
        upload = FormData()
        upload.add_field("file", content, filename="notes.md", content_type="text/markdown")
        response = await hookd.client.post(
            f"/api/agents/{agent['id']}/sources", data=upload, headers=hookd.admin
        )
        assert response.status == status, await response.text()
        if status == 400:
            assert "is not valid UTF-8 text" in (await response.json())["message"]


async def test_a_multipart_webhook_may_carry_the_idempotency_key_the_document_lists(hookd: Hookd) -> None:
    webhook = PATHS[WEBHOOK]["post"]
    assert "multipart/form-data" in webhook["requestBody"]["content"]
    assert "Idempotency-Key" in [parameter["name"] for parameter in webhook["parameters"]]
    agent = await hookd.create_agent()
    answers = []
    for _ in range(2):
        form = FormData({"question": "hi"}, default_to_multipart=True)
        response = await hookd.client.post(
            agent["webhook_path"], data=form, headers={"Idempotency-Key": "form-1"}
        )
        assert response.status == 200, await response.text()
        answers.append(await response.json())
    assert answers[0] == answers[1]  # the second was the first again: one task
    assert hookd.count_rows() == 1


async def test_an_empty_github_delivery_beside_an_idempotency_key_is_refused_as_documented(
    hookd: Hookd,
) -> None:
    assert not document_accepts("", *webhook_header("X-GitHub-Delivery"))
    assert document_accepts("72d3162e-cc78-11e3-81ab-4c9367dc0958", *webhook_header("X-GitHub-Delivery"))
    agent = await hookd.create_agent()
    headers = {"Idempotency-Key": "k", "X-GitHub-Delivery": ""}
    response = await hookd.client.post(agent["webhook_path"], json={}, headers=headers)
    assert response.status == 400, await response.text()
    assert "X-GitHub-Delivery" in (await response.json())["message"]
    assert hookd.count_rows() == 0
