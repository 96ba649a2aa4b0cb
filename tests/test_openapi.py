"""GET /api/openapi.json: it lists exactly the app's routes, and Schemathesis finds hookd true to it.

Schemathesis runs against a real hookd subprocess (hookd is aiohttp, not ASGI or WSGI) with
the echo provider, so no model is needed. Each operation gets its share of generated cases,
valid and invalid, with a fixed seed; admin operations carry the admin key on most cases,
and the webhook gets a real token on some, so success paths run too, not only refusals.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import FormData
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode

from agents.agent import validate_agent_fields
from agents.tokens import WEBHOOK_PATH
from api.openapi import DOCUMENT, PATHS
from api.openapi_agent_schemas import RATE_UNITS
from errors import InvalidInput
from server import create_app
from settings import load_settings, parse_rate_limit
from tests.conftest import ADMIN_KEY, Hookd
from tests.processes import HookdProcess, HookdProcesses

SEED = 20_261_127
WEBHOOK = WEBHOOK_PATH + "{token}"
FORM = "application/x-www-form-urlencoded"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]
CONTROL = re.compile("[\x00-\x1f\x7f]")
SURROGATE = re.compile("[\ud800-\udfff]")
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


# -- Schemathesis ------------------------------------------------------------------------

# Cases per operation: together over 1,000. Operations without parameters have few distinct
# cases, and Hypothesis stops once it has tried them all.
MAX_EXAMPLES = {
    ("POST", "/api/webhooks/agents/{token}"): 150,
    ("GET", "/api/webhooks/agents/{token}"): 120,
    ("GET", "/api/task_status"): 100,
    ("POST", "/api/agents"): 150,
    ("PATCH", "/api/agents/{agent_id}"): 150,
    ("GET", "/api/agents/{agent_id}"): 70,
    ("DELETE", "/api/agents/{agent_id}"): 50,
    ("POST", "/api/agents/{agent_id}/webhook"): 50,
    ("GET", "/api/tasks"): 80,  # its status pattern is slow to generate
    ("GET", "/api/tasks/{task_id}"): 70,
    ("POST", "/api/tasks/{task_id}/cancel"): 50,
    ("GET", "/api/tasks/{task_id}/events"): 50,
    ("GET", "/api/tasks/{task_id}/deliveries"): 50,
    ("POST", "/api/agents/{agent_id}/callback-secret"): 30,
    ("POST", "/api/agents/{agent_id}/sources"): 100,
}
FEW_CASES = 10  # the operations without parameters


@dataclass
class Target:
    """hookd under test, and the real tokens and ids given to Schemathesis."""

    process: HookdProcess
    schema: Any
    session: requests.Session
    tokens: dict[str, str]  # "active", "paused"
    agent_ids: dict[str, str]  # by method: DELETE, PATCH and POST (rotate) each change their own agent
    task_ids: dict[str, str]  # "done", "done2", "running" (it runs until it is cancelled)
    sources: tuple[str, list[str]]  # an agent's id, and its sources' ids
    cases: dict[tuple[str, str], int] = field(default_factory=dict)
    statuses: dict[tuple[str, str], set[int]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with (
        HookdProcesses(tmp_path_factory.mktemp("openapi"), llm_provider="echo", log_level="warning") as procs,
        socket.create_server(("127.0.0.1", 0)) as silent_model,  # listens, never answers
        requests.Session() as session,
    ):
        process = procs.start()

        def create(name: str, **fields: Any) -> dict[str, Any]:
            response = session.post(process.url + "/api/agents", json={"name": name} | fields, headers=ADMIN)
            assert response.status_code == 201, response.text
            agent: dict[str, Any] = response.json()
            return agent

        def trigger(agent: dict[str, Any]) -> str:
            response = session.post(agent["webhook_url"], json={"question": "hi"})
            assert response.status_code == 200, response.text
            return str(response.json()["task_id"])

        active, paused = create("active"), create("paused", status="paused")
        stalled = create(
            "stalled",
            llm={"provider": "openai", "base_url": f"http://127.0.0.1:{silent_model.getsockname()[1]}"},
            max_attempts=1,
            timeout_s=3600,
        )
        task_ids = {"done": trigger(active), "done2": trigger(active), "running": trigger(stalled)}
        knowing = create("knowing")
        source_ids = [
            session.post(
                f"{process.url}/api/agents/{knowing['id']}/sources",
                json={"name": f"notes {n}.md", "content": "# Notes\n\nThe door code is 4711."},
                headers=ADMIN,
            ).json()["id"]
            for n in range(2)
        ]
        schema = schemathesis.openapi.from_url(process.url + "/api/openapi.json")
        schema.config.seed = SEED
        schema.config.checks.update(included_check_names=CHECKS)
        under_test = Target(
            process,
            schema,
            session,
            tokens={
                name: agent["webhook_url"].rsplit("/", 1)[1]
                for name, agent in [("active", active), ("paused", paused)]
            },
            agent_ids={"GET": active["id"]}
            | {method: create(f"for {method}")["id"] for method in ("DELETE", "PATCH", "POST")},
            task_ids=task_ids,
            sources=(knowing["id"], source_ids),
        )
        yield under_test
        if set(under_test.cases) == documented_routes():  # every operation ran (not a -k selection)
            assert sum(under_test.cases.values()) >= 1000
        assert session.get(process.url + "/api/health").status_code == 200


def strategy(target: Target, method: str, path: str) -> st.SearchStrategy[Any]:
    """Generated cases, valid and invalid, some of them with real credentials, ids and tokens."""
    operation = target.schema[path][method]
    fixed: list[dict[str, Any]] = [{}]
    if "{token}" in path:
        fixed += [{"path_parameters": {"token": token}} for token in target.tokens.values()]
    if "{agent_id}" in path:
        fixed.append({"path_parameters": {"agent_id": target.agent_ids[method]}})
    if "{task_id}" in path:
        # The running task's event stream would stay open until the task ends: not that one.
        fixed += [
            {"path_parameters": {"task_id": task_id}}
            for name, task_id in target.task_ids.items()
            if not (name == "running" and path.endswith("/events"))
        ]
    if "{source_id}" in path:
        agent_id, source_ids = target.sources
        fixed += [{"path_parameters": {"agent_id": agent_id, "source_id": s}} for s in source_ids]
    if path == "/api/task_status":
        # wait=0 on the running task: a long-poll on it would last its whole wait.
        fixed += [
            {"query": {"task_id": task_id} | ({"wait": 0} if name == "running" else {})}
            for name, task_id in target.task_ids.items()
        ]
    variants = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for kwargs in fixed:
            if PATHS[path][method.lower()]["security"]:  # mostly with the key: more than the 401
                variants += [operation.as_strategy(mode, headers=ADMIN, **kwargs)] * 3
            variants.append(operation.as_strategy(mode, **kwargs))
    return st.one_of(variants)


def success_cases(target: Target, method: str, path: str) -> list[schemathesis.Case]:
    """A request that succeeds, for each operation: Hypothesis runs these first, every time."""
    operation = target.schema[path][method]
    token, agent_id = {"token": target.tokens["active"]}, {"agent_id": target.agent_ids.get(method, "")}
    task_ids = target.task_ids
    admin = {"headers": ADMIN} if PATHS[path][method.lower()]["security"] else {}
    cases: dict[tuple[str, str], list[dict[str, Any]]] = {
        ("POST", WEBHOOK): [
            {"path_parameters": token, "body": {"question": "hi", "n": 1}, "media_type": "application/json"},
            {"path_parameters": token, "body": {"question": "hi"}, "media_type": FORM},
            {"path_parameters": token, "body": {"question": "hi"}, "media_type": "multipart/form-data"},
        ],
        ("GET", WEBHOOK): [{"path_parameters": token}],
        ("GET", "/api/task_status"): [{"query": {"task_id": task_ids["done"]}}],
        ("POST", "/api/agents"): [
            {
                "body": {"name": "explicit", "llm": {"provider": "echo"}, "rate_limit": "5/min"},
                "media_type": "application/json",
            }
        ],
        ("PATCH", "/api/agents/{agent_id}"): [
            {
                "path_parameters": agent_id,
                "body": {"description": "changed"},
                "media_type": "application/json",
            }
        ],
        ("GET", "/api/tasks"): [{"query": {"status": "SUCCESS,pending", "limit": 10}}],
        ("GET", "/api/tasks/{task_id}"): [{"path_parameters": {"task_id": task_ids["done"]}}],
        ("GET", "/api/tasks/{task_id}/events"): [{"path_parameters": {"task_id": task_ids["done"]}}],
        ("GET", "/api/tasks/{task_id}/deliveries"): [{"path_parameters": {"task_id": task_ids["done"]}}],
        ("POST", "/api/tasks/{task_id}/cancel"): [{"path_parameters": {"task_id": task_ids["running"]}}],
        ("GET", "/static/{name}"): [{"path_parameters": {"name": "app.js"}}],
        ("POST", "/api/agents/{agent_id}/sources"): [
            {
                "path_parameters": agent_id,
                "body": {"name": "faq.md", "content": "# FAQ\n\nOpen the door with 4711."},
                "media_type": "application/json",
            },
            {
                "path_parameters": agent_id,
                "body": {"file": b"<h1>FAQ</h1><p>Open the door.</p>", "name": "faq.html"},
                "media_type": "multipart/form-data",
            },
        ],
        ("DELETE", "/api/agents/{agent_id}/sources/{source_id}"): [
            {"path_parameters": {"agent_id": target.sources[0], "source_id": target.sources[1][0]}}
        ],
    }
    default = [{"path_parameters": agent_id}] if "{agent_id}" in path else [{}]
    return [operation.Case(**kwargs, **admin) for kwargs in cases.get((method, path), default)]


@pytest.mark.parametrize(("method", "path"), sorted(documented_routes()), ids=lambda x: str(x))
def test_schemathesis(target: Target, method: str, path: str) -> None:
    max_examples = MAX_EXAMPLES.get((method, path), FEW_CASES)

    def run(case: schemathesis.Case) -> None:
        target.cases[method, path] = target.cases.get((method, path), 0) + 1
        response = case.call_and_validate(base_url=target.process.url, session=target.session, timeout=10)
        target.statuses.setdefault((method, path), set()).add(response.status_code)

    test = hypothesis.given(case=strategy(target, method, path))(run)
    for case in success_cases(target, method, path):
        test = hypothesis.example(case=case)(test)
    settings = hypothesis.settings(
        max_examples=max_examples,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    hypothesis.seed(SEED)(settings(test))()
    if (method, path) in MAX_EXAMPLES:
        assert target.cases[method, path] >= max_examples
    assert any(200 <= status < 300 for status in target.statuses[method, path]), "no success path ran"


def test_schemathesis_budget_is_over_a_thousand_cases() -> None:
    assert set(MAX_EXAMPLES) <= documented_routes()
    assert sum(MAX_EXAMPLES.values()) >= 1000
