"""Schemathesis finds hookd true to its OpenAPI document, with every check Schemathesis has.

hookd runs as a real subprocess on loopback (it is aiohttp, not ASGI or WSGI), and admin
operations get the admin key as the call's Authorization, so that the ignored_auth check sends
each of them without it and with a wrong one, too. Three runs, all with a fixed seed:

- the coverage run, through Schemathesis' pytest integration (its examples and coverage
  phases): for each operation, the boundary values of every parameter and body field, valid
  and invalid, each required part left out, and methods its path does not take;
- the fuzzing run: each operation's share of generated cases, valid and invalid, some with
  real tokens and ids and most of the admin ones with the key, and a request that succeeds
  first, so success paths run too, not only refusals;
- the stateful run, through Schemathesis' engine: sequences that follow the document's links.

A real token or id replaces a generated one only where the case was generated valid, so a
valid case reaches the code behind the route instead of its 404, and an invalid one stays so.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.engine import events as engine_events

from api.openapi import DOCUMENT, PATHS
from tests.conftest import ADMIN_KEY
from tests.processes import HookdProcess, HookdProcesses
from tests.test_openapi import WEBHOOK, documented_routes

SEED = 20_261_127
FORM = "application/x-www-form-urlencoded"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
Headers = dict[str, str]

# The echo provider: no model is needed. And two settings with which hookd refuses by policy
# what the document allows by shape, as the document says in words: callback URLs on private
# addresses, and stdio MCP servers whose program HOOKD_MCP_COMMANDS does not list. They are
# opened, so Schemathesis tests the shape. Nothing runs because of them: the agents it creates
# or changes are never triggered (it knows no token but those of agents made here).
SERVER_SETTINGS = {
    "llm_provider": "echo",
    "log_level": "warning",
    "callback_allow_private": "true",
    "mcp_commands": "*",
}
# As a schemathesis.toml would say it. Every check is on; none is left out.
CONFIG = schemathesis.Config.from_str(f"""
seed = {SEED}

[checks]
enabled = true

[phases]
examples.enabled = true
coverage.enabled = true
fuzzing.enabled = false  # the fuzzing run draws its own cases (strategy() below)
stateful.enabled = true  # the stateful run: test_schemathesis_stateful

[checks.negative_data_rejection]
# 413 too: a body over HOOKD_MAX_BODY_BYTES (a string far over its maxLength, say) is refused
# before it is read, as the document says.
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx",
]

[[operations]]
include-path-regex = "^/api/webhooks/"
# 422 means what the document says: the idempotency key was used before with another body.
# Cases share keys ("0", "00", …), so a valid request may find its key taken by an earlier one.
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx",
]
""")
# The served document is this one (tests/test_openapi.py checks), and the pytest
# integration needs it when the tests are collected, before hookd runs.
COVERAGE = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@dataclass
class Target:
    """hookd under test, and the real tokens and ids given to Schemathesis."""

    process: HookdProcess
    schema: Any
    session: requests.Session
    tokens: dict[str, str]  # "active", "paused"
    agent_ids: dict[str, str]  # by method: DELETE, PATCH and POST (rotate) each change their own agent
    coverage_agent_ids: dict[str, str]  # the same, for the coverage run
    task_ids: dict[str, str]  # "done", "done2", "running" (it runs until it is cancelled)
    sources: tuple[str, list[str]]  # an agent's id, and its sources' ids
    cases: dict[tuple[str, str], int] = field(default_factory=dict)
    statuses: dict[tuple[str, str], set[int]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with (
        HookdProcesses(tmp_path_factory.mktemp("openapi"), **SERVER_SETTINGS) as procs,
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
        schema = schemathesis.openapi.from_url(process.url + "/api/openapi.json", config=CONFIG)
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
            coverage_agent_ids={"GET": active["id"]}
            | {method: create(f"coverage {method}")["id"] for method in ("DELETE", "PATCH", "POST")},
            task_ids=task_ids,
            sources=(knowing["id"], source_ids),
        )
        yield under_test
        if set(under_test.cases) == documented_routes():  # every operation ran (not a -k selection)
            assert sum(under_test.cases.values()) >= 1000
        assert session.get(process.url + "/api/health").status_code == 200


# -- the coverage run --------------------------------------------------------------------


def use_real_ids(case: schemathesis.Case, real: dict[str, Any]) -> schemathesis.Case:
    """The case with real tokens and ids (`real`: the path parameters and query to use) where it
    was generated valid; a case invalid there keeps what it has, for hookd to refuse."""
    meta = case.meta
    path, query = real.get("path_parameters"), real.get("query")
    if path and not (meta and meta.is_negative_at(ParameterLocation.PATH)):
        case.path_parameters = (case.path_parameters or {}) | path
    if query and not (meta and meta.is_negative_at(ParameterLocation.QUERY)):
        case.query = (case.query or {}) | query
    return case


@COVERAGE.parametrize()
def test_schemathesis_coverage(case: schemathesis.Case, target: Target) -> None:
    ids = {
        "token": target.tokens["active"],
        "agent_id": target.coverage_agent_ids.get(case.method, target.coverage_agent_ids["GET"]),
        "task_id": target.task_ids["done"],  # not the running one: its events would not end
    }
    if "{source_id}" in case.path:
        ids |= {"agent_id": target.sources[0], "source_id": target.sources[1][1]}
    path = {name: ids[name] for name in case.path_parameters or {} if name in ids}
    use_real_ids(case, {"path_parameters": path})
    case.call_and_validate(base_url=target.process.url, session=target.session, headers=ADMIN, timeout=10)


# -- the fuzzing run ---------------------------------------------------------------------

# Cases per operation: together over 1,000. Operations without parameters have few distinct
# cases, and Hypothesis stops once it has tried them all. An agent's body is the costliest to
# generate (its URL and address patterns), and the coverage run has its boundaries already.
MAX_EXAMPLES = {
    ("POST", "/api/webhooks/agents/{token}"): 150,
    ("GET", "/api/webhooks/agents/{token}"): 120,
    ("GET", "/api/task_status"): 100,
    ("POST", "/api/agents"): 100,
    ("PATCH", "/api/agents/{agent_id}"): 100,
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
STATEFUL_SCENARIOS, STATEFUL_STEPS = 60, 8


def strategy(target: Target, method: str, path: str) -> st.SearchStrategy[tuple[schemathesis.Case, Headers]]:
    """Generated cases, valid and invalid, some of them with real ids and tokens, and the headers
    to send them with: the admin key, or none."""
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
    # Two strategies, not one per real id: building one for hookd's agent body is costly.
    generated = st.one_of([operation.as_strategy(mode) for mode in GenerationMode])
    if (method, path) == ("GET", WEBHOOK):
        generated = generated.filter(lambda case: not only_the_query_is_invalid(case))
    # Mostly with the admin key where it is needed: there is more behind it than the 401. It is
    # sent as the call's own headers, so Schemathesis knows it for a real key (ignored_auth).
    keys = [ADMIN, ADMIN, ADMIN, {}] if PATHS[path][method.lower()]["security"] else [{}]

    def sent_with(
        case: schemathesis.Case, real: dict[str, Any], key: Headers
    ) -> tuple[schemathesis.Case, Headers]:
        # An admin operation has no header parameter but Authorization: a case invalid in its
        # headers is about a malformed key, which the real one must not replace.
        malformed_key = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
        return use_real_ids(case, real), {} if malformed_key else key

    return st.builds(sent_with, generated, st.sampled_from(fixed), st.sampled_from(keys))


def only_the_query_is_invalid(case: schemathesis.Case) -> bool:
    """Whether the case is invalid in its query alone. Any query string is a valid GET webhook
    payload (its values are text, and any names will do), so an "invalid" one Schemathesis makes
    (a number or an object where text is due) arrives as valid text: it is no test of hookd."""
    meta = case.meta
    return (
        meta is not None
        and meta.is_negative_at(ParameterLocation.QUERY)
        and not any(meta.is_negative_at(at) for at in (ParameterLocation.PATH, ParameterLocation.HEADER))
    )


def success_cases(target: Target, method: str, path: str) -> list[tuple[schemathesis.Case, Headers]]:
    """A request that succeeds, for each operation: Hypothesis runs these first, every time."""
    operation = target.schema[path][method]
    token, agent_id = {"token": target.tokens["active"]}, {"agent_id": target.agent_ids.get(method, "")}
    task_ids = target.task_ids
    headers = ADMIN if PATHS[path][method.lower()]["security"] else {}
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
    return [(operation.Case(**kwargs), headers) for kwargs in cases.get((method, path), default)]


@pytest.mark.parametrize(("method", "path"), sorted(documented_routes()), ids=lambda x: str(x))
def test_schemathesis(target: Target, method: str, path: str) -> None:
    max_examples = MAX_EXAMPLES.get((method, path), FEW_CASES)

    def run(drawn: tuple[schemathesis.Case, Headers]) -> None:
        case, headers = drawn
        target.cases[method, path] = target.cases.get((method, path), 0) + 1
        response = case.call_and_validate(
            base_url=target.process.url, session=target.session, headers=headers, timeout=10
        )
        target.statuses.setdefault((method, path), set()).add(response.status_code)

    test = hypothesis.given(drawn=strategy(target, method, path))(run)
    for drawn in success_cases(target, method, path):
        test = hypothesis.example(drawn=drawn)(test)
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


# -- the stateful run --------------------------------------------------------------------


def test_schemathesis_stateful(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Sequences of calls that pass the ids one answer gives on to the next (the document's
    links: an agent created, then changed, deleted and read again; a source added and deleted),
    through Schemathesis' own engine. It runs every check too, and use_after_free and
    ensure_resource_availability only mean something here. Its own hookd: it deletes agents."""
    with HookdProcesses(tmp_path_factory.mktemp("stateful"), **SERVER_SETTINGS) as procs:
        process = procs.start()
        config = schemathesis.Config.from_str(f"""
seed = {SEED}
base-url = "{process.url}"
headers = {{ Authorization = "{ADMIN["Authorization"]}" }}

[checks]
enabled = true

[phases]
examples.enabled = false
coverage.enabled = false
fuzzing.enabled = false
stateful.enabled = true
stateful.max-steps = {STATEFUL_STEPS}

[generation]
max-examples = {STATEFUL_SCENARIOS}
""")
        schema = schemathesis.openapi.from_url(process.url + "/api/openapi.json", config=config)
        problems: list[str] = []
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, engine_events.NonFatalError | engine_events.FatalError):
                problems.append(f"{type(event).__name__}: {event.error}")
            elif isinstance(event, engine_events.EngineFinished):
                problems += [f"{failure.title}: {failure.message}" for failure in event.failures]
        assert problems == []
