"""Callbacks: a final result POSTed to the agent's callback_url, signed the Standard Webhooks way,
retried until a 2xx, stored and shown in the admin API, sent after a restart, and refused on
private addresses unless HOOKD_CALLBACK_ALLOW_PRIVATE allows them.

The receivers are real aiohttp servers on 127.0.0.1, so these tests turn that setting on;
the tests about the setting show what happens with it off.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tasks.callbacks import sign
from tasks.sqlite.store import SQLiteStore
from tests.conftest import Hookd
from tests.processes import free_port
from tests.remote import poll
from tests.test_cli import Cli

MakeHookd = Callable[..., Awaitable[Hookd]]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A callback receiver: answers the statuses in `answers` in turn, then 200."""

    answers: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        return web.Response(status=self.answers.pop(0) if self.answers else 200)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app


@pytest.fixture
def start_receiver(aiohttp_server: Any) -> Callable[..., Awaitable[Receiver]]:
    async def start(answers: list[int] | None = None, port: int | None = None) -> Receiver:
        receiver = Receiver(answers=list(answers or []))
        server = await aiohttp_server(receiver.app(), host="127.0.0.1", port=port)
        receiver.url = str(server.make_url("/hook"))
        return receiver

    return start


@pytest.fixture
async def hookd(make_hookd: MakeHookd) -> Hookd:
    return await make_hookd(callback_allow_private=True)


async def deliveries(hookd: Hookd, task_id: str) -> list[dict[str, Any]]:
    response = await hookd.client.get(f"/api/tasks/{task_id}/deliveries", headers=hookd.admin)
    assert response.status == 200, await response.text()
    found: list[dict[str, Any]] = (await response.json())["deliveries"]
    return found


async def settled(hookd: Hookd, task_id: str) -> dict[str, Any]:
    """The task's one delivery, once it is delivered or failed."""
    found = await poll(
        lambda: deliveries(hookd, task_id),
        lambda found: len(found) == 1 and found[0]["status"] != "pending",
        "the delivery settled",
    )
    return found[0]


def expected_signature(secret: str, headers: dict[str, str], body: bytes) -> str:
    """Computed here as a receiver would, from the Standard Webhooks spec."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def test_signatures_match_the_standard_webhooks_example() -> None:
    # The reference example of the Standard Webhooks libraries (libraries/python/tests).
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_the_final_status_is_posted_signed(hookd: Hookd, start_receiver: Any) -> None:
    receiver = await start_receiver()
    agent = await hookd.create_agent(callback_url=receiver.url)
    assert agent["callback_url"] == receiver.url
    task_id = await hookd.trigger(agent, {"question": "ping"})
    delivery = await settled(hookd, task_id)

    (got,) = receiver.received
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["webhook-id"] == delivery["id"]
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 60
    assert got.headers["webhook-signature"] == expected_signature(
        agent["callback_secret"], got.headers, got.body
    )
    body = json.loads(got.body)
    assert body == await hookd.status(task_id)
    assert body["status"] == "SUCCESS" and body["result"]["answer"] == "You said: ping"

    assert delivery | {"id": None, "created_at": None, "last_attempt_at": None, "delivered_at": None} == {
        "id": None,
        "task_id": task_id,
        "url": receiver.url,
        "status": "delivered",
        "attempts": 1,
        "next_attempt_at": None,
        "last_attempt_at": None,
        "last_status_code": 200,
        "last_error": None,
        "created_at": None,
        "delivered_at": None,
    }
    assert delivery["delivered_at"] is not None
    response = await hookd.client.get(f"/api/tasks/{task_id}", headers=hookd.admin)
    assert (await response.json())["deliveries"] == [delivery]


async def test_a_name_is_resolved_and_sent_its_host_header(hookd: Hookd, start_receiver: Any) -> None:
    receiver = await start_receiver()
    url = receiver.url.replace("127.0.0.1", "localhost")  # the receiver listens on 127.0.0.1 only
    agent = await hookd.create_agent(callback_url=url)
    delivery = await settled(hookd, await hookd.trigger(agent))
    assert delivery["status"] == "delivered" and delivery["url"] == url
    (got,) = receiver.received
    assert got.headers["Host"] == url.split("/")[2]


async def test_failed_attempts_are_retried_with_the_same_id(hookd: Hookd, start_receiver: Any) -> None:
    receiver = await start_receiver(answers=[500, 500])
    agent = await hookd.create_agent(callback_url=receiver.url)
    task_id = await hookd.trigger(agent)
    delivery = await settled(hookd, task_id)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("delivered", 3, 200)
    assert len(receiver.received) == 3
    assert {got.headers["webhook-id"] for got in receiver.received} == {delivery["id"]}
    assert len({got.body for got in receiver.received}) == 1  # the same message each time
    for got in receiver.received:
        assert got.headers["webhook-signature"] == expected_signature(
            agent["callback_secret"], got.headers, got.body
        )


async def test_410_gone_stops_the_attempts(hookd: Hookd, start_receiver: Any) -> None:
    receiver = await start_receiver(answers=[410])
    agent = await hookd.create_agent(callback_url=receiver.url)
    task_id = await hookd.trigger(agent)
    delivery = await settled(hookd, task_id)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("failed", 1, 410)
    assert "410 Gone" in delivery["last_error"] and delivery["next_attempt_at"] is None


async def test_an_unreachable_receiver_is_retried_and_recorded(hookd: Hookd) -> None:
    agent = await hookd.create_agent(callback_url=f"http://127.0.0.1:{free_port()}/hook")
    task_id = await hookd.trigger(agent)
    await hookd.wait_for(task_id)
    # Queued with the result, in its transaction: there as soon as the task is final.
    assert len(await deliveries(hookd, task_id)) == 1
    found = await poll(
        lambda: deliveries(hookd, task_id), lambda found: found[0]["attempts"] >= 2, "two attempts"
    )
    assert found[0]["status"] == "pending" and found[0]["next_attempt_at"] is not None
    assert found[0]["last_status_code"] is None
    assert found[0]["last_error"].startswith("Could not reach the receiver")


async def test_a_cancelled_task_is_called_back_too(hookd: Hookd, start_receiver: Any) -> None:
    receiver = await start_receiver()
    agent = await hookd.create_agent(callback_url=receiver.url, llm={"model": "sleep=30"})
    task_id = await hookd.trigger(agent)
    response = await hookd.client.post(f"/api/tasks/{task_id}/cancel", headers=hookd.admin)
    assert response.status == 200
    assert (await settled(hookd, task_id))["status"] == "delivered"
    assert json.loads(receiver.received[0].body)["result"]["type"] == "cancelled"


async def test_a_pending_callback_is_sent_after_a_restart(make_hookd: MakeHookd, start_receiver: Any) -> None:
    port = free_port()  # nothing listens here yet: the receiver is down
    first = await make_hookd(callback_allow_private=True)
    agent = await first.create_agent(callback_url=f"http://127.0.0.1:{port}/hook")
    task_id = await first.trigger(agent)
    await poll(
        lambda: deliveries(first, task_id),
        lambda found: bool(found) and found[0]["attempts"] >= 1,
        "an attempt",
    )
    await first.client.close()  # hookd stops with the callback still pending

    receiver = await start_receiver(port=port)
    second = await make_hookd(callback_allow_private=True)  # a new app on the same database
    assert second.settings.db == first.settings.db
    delivery = await settled(second, task_id)
    assert delivery["status"] == "delivered" and delivery["attempts"] >= 2
    (got,) = receiver.received
    assert got.headers["webhook-id"] == delivery["id"]
    assert got.headers["webhook-signature"] == expected_signature(
        agent["callback_secret"], got.headers, got.body
    )


# -- the signing secret ----------------------------------------------------------------


async def test_the_secret_can_be_rotated(hookd: Hookd, start_receiver: Any) -> None:
    receiver = await start_receiver()
    agent = await hookd.create_agent(callback_url=receiver.url)
    old = agent["callback_secret"]
    assert old.startswith("whsec_") and len(base64.b64decode(old.removeprefix("whsec_"))) >= 24
    response = await hookd.client.post(f"/api/agents/{agent['id']}/callback-secret", headers=hookd.admin)
    assert response.status == 200
    new = (await response.json())["callback_secret"]
    assert new.startswith("whsec_") and new != old
    response = await hookd.client.get(f"/api/agents/{agent['id']}", headers=hookd.admin)
    assert (await response.json())["callback_secret"] == new

    await settled(hookd, await hookd.trigger(agent))
    (got,) = receiver.received
    assert got.headers["webhook-signature"] == expected_signature(new, got.headers, got.body)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/agents/00000000-0000-7000-8000-000000000000/callback-secret"),
        ("GET", "/api/tasks/00000000-0000-7000-8000-000000000000/deliveries"),
    ],
)
async def test_the_new_admin_routes_need_the_key(hookd: Hookd, method: str, path: str) -> None:
    response = await hookd.client.request(method, path)
    assert response.status == 401
    response = await hookd.client.request(method, path, headers=hookd.admin)
    assert response.status == 404


async def test_the_secret_is_never_logged(
    hookd: Hookd, start_receiver: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    receiver = await start_receiver(answers=[500])
    agent = await hookd.create_agent(callback_url=receiver.url)
    await settled(hookd, await hookd.trigger(agent))
    assert "callback" in caplog.text  # the attempts were logged
    secret = agent["callback_secret"]
    assert secret not in caplog.text and secret.removeprefix("whsec_") not in caplog.text


# -- callback_url and private addresses ------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://localhost./hook",
        "http://LOCALHOST./hook",
        "http://app.localhost./hook",
        "http://127.0.0.1./hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::7f00:1]/hook",  # NAT64: 127.0.0.1 behind a NAT64 gateway
        "http://[64:ff9b::a01:203]/hook",  # 10.1.2.3
        "http://[64:ff9b:1::808:808]/hook",  # NAT64's local-use prefix: refused whatever it carries
        "http://[::ffff:0:7f00:1]/hook",  # SIIT
        "http://[::7f00:1]/hook",  # IPv4-compatible
        "http://[2002:7f00:1::1]/hook",  # 6to4
        "http://[fec0::1]/hook",  # site-local
    ],
)
async def test_private_addresses_are_refused_when_the_agent_is_saved(make_hookd: MakeHookd, url: str) -> None:
    hookd = await make_hookd()  # HOOKD_CALLBACK_ALLOW_PRIVATE off, the default
    response = await hookd.client.post(
        "/api/agents", json={"name": "private", "callback_url": url}, headers=hookd.admin
    )
    assert response.status == 400
    assert "HOOKD_CALLBACK_ALLOW_PRIVATE" in (await response.json())["message"]
    assert hookd.count_rows("agents") == 0


async def test_a_name_resolving_to_a_private_address_is_refused_at_delivery(
    make_hookd: MakeHookd, start_receiver: Any
) -> None:
    receiver = await start_receiver()
    allowed = await make_hookd(callback_allow_private=True)
    agent = await allowed.create_agent(callback_url=receiver.url)
    await allowed.client.close()
    # The same agent, served with the setting off: the address is checked when sending.
    hookd = await make_hookd()
    task_id = await hookd.trigger(agent)
    delivery = await settled(hookd, task_id)
    assert (delivery["status"], delivery["attempts"], delivery["last_status_code"]) == ("failed", 1, None)
    assert "127.0.0.1, a loopback address" in delivery["last_error"]
    assert "HOOKD_CALLBACK_ALLOW_PRIVATE" in delivery["last_error"]
    assert receiver.received == []


async def test_an_ipv6_form_carrying_a_private_ipv4_address_is_refused_at_delivery(
    make_hookd: MakeHookd, start_receiver: Any
) -> None:
    receiver = await start_receiver()
    url = receiver.url.replace("127.0.0.1", "[64:ff9b::7f00:1]")
    allowed = await make_hookd(callback_allow_private=True)
    agent = await allowed.create_agent(callback_url=url)
    await allowed.client.close()
    hookd = await make_hookd()
    delivery = await settled(hookd, await hookd.trigger(agent))
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert "64:ff9b::7f00:1, the NAT64 form of 127.0.0.1, a loopback address" in delivery["last_error"]
    assert receiver.received == []


@pytest.mark.parametrize(
    ("host", "reason"), [("localhost.", "a loopback name"), ("127.0.0.1.", "a loopback address")]
)
async def test_a_trailing_dot_does_not_hide_a_loopback_host_at_delivery(
    make_hookd: MakeHookd, start_receiver: Any, host: str, reason: str
) -> None:
    receiver = await start_receiver()
    url = receiver.url.replace("127.0.0.1", host)
    allowed = await make_hookd(callback_allow_private=True)
    agent = await allowed.create_agent(callback_url=url)
    await allowed.client.close()
    hookd = await make_hookd()  # checked before the lookup, where "localhost." may not resolve
    delivery = await settled(hookd, await hookd.trigger(agent))
    assert (delivery["status"], delivery["attempts"]) == ("failed", 1)
    assert f"points at {host}, {reason}; hookd refuses callbacks there" in delivery["last_error"]
    assert receiver.received == []


@pytest.mark.parametrize(
    "url",
    ["ftp://example.org/x", "example.org/hook", "http://", "http://exa mple.org", 7,
     "https://example.org/caf\u00e9", "https://example.org:70000/hook", "https://[::1::2]/hook"],
)  # fmt: skip
async def test_a_callback_url_must_be_an_http_url(hookd: Hookd, url: Any) -> None:
    response = await hookd.client.post(
        "/api/agents", json={"name": "bad", "callback_url": url}, headers=hookd.admin
    )
    assert response.status == 400
    assert "'callback_url' must be an http:// or https:// URL" in (await response.json())["message"]


async def test_callback_url_can_be_changed_and_cleared(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    assert agent["callback_url"] is None
    path = f"/api/agents/{agent['id']}"
    for value, expected in [("https://example.org/hook", "https://example.org/hook"), (None, None)]:
        response = await hookd.client.patch(path, json={"callback_url": value}, headers=hookd.admin)
        assert response.status == 200
        assert (await response.json())["callback_url"] == expected


def test_the_cli_sets_the_callback_url(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "hookd.db")
    cli.create_agent("notify", "--callback-url", "https://example.org/hook")
    shown = cli.json("agents", "show", "notify")
    assert shown["callback_url"] == "https://example.org/hook" and shown["callback_secret"].startswith(
        "whsec_"
    )
    assert cli.json("agents", "update", "notify", "--callback-url", "")["callback_url"] is None
    assert "HOOKD_CALLBACK_ALLOW_PRIVATE" in cli.fails(
        "agents", "update", "notify", "--callback-url", "http://10.0.0.1/"
    )
    allowed = cli(
        "agents", "update", "notify", "--callback-url", "http://10.0.0.1/", callback_allow_private="true"
    )
    assert json.loads(allowed)["callback_url"] == "http://10.0.0.1/"


async def test_agents_from_an_older_file_get_a_secret(make_hookd: MakeHookd) -> None:
    hookd = await make_hookd()
    agent = await hookd.create_agent()
    await hookd.client.close()
    with sqlite3.connect(hookd.settings.db) as conn:
        conn.execute("UPDATE agents SET callback_secret = NULL")
    reopened = await make_hookd()
    response = await reopened.client.get(f"/api/agents/{agent['id']}", headers=reopened.admin)
    secret = (await response.json())["callback_secret"]
    assert secret.startswith("whsec_") and secret != agent["callback_secret"]


async def test_tasks_ended_by_a_takeover_or_cancel_get_a_delivery_in_the_same_write(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "hookd.db"))
    await store.open()
    try:
        fields = {"name": "a", "max_attempts": 1, "callback_url": "https://example.org/hook"}
        await store.create_agent(fields, b"h" * 32)
        interrupted, cancelled = await store.enqueue(b"h" * 32, "{}"), await store.enqueue(b"h" * 32, "{}")
        assert interrupted and cancelled
        assert [c.task.id for c in await store.claim_batch(1, 30.0)] == [interrupted]  # then hookd "dies"
        successor = SQLiteStore(store.path)  # the next server of the file
        await successor.open()
        try:
            assert (await successor.take_over_expired()).failed == 1
        finally:
            await successor.close()
        await store.cancel(cancelled)
        for task_id in (interrupted, cancelled):
            (delivery,) = await store.list_deliveries(task_id)
            assert (delivery.status, delivery.url, delivery.attempts) == (
                "pending",
                fields["callback_url"],
                0,
            )
    finally:
        await store.close()


async def test_an_answer_holding_a_lone_surrogate_is_delivered_signed(
    hookd: Hookd, start_receiver: Any
) -> None:
    """UTF-8 cannot carry an unpaired surrogate (a model may answer one; the store keeps it
    escaped): the body keeps it \\u-escaped, and the signature is over the bytes sent."""
    receiver = await start_receiver()
    agent = await hookd.create_agent(callback_url=receiver.url, llm={"model": "mode=surrogate"})
    task_id = await hookd.trigger(agent, {"question": "x"})
    delivery = await settled(hookd, task_id)
    assert (delivery["status"], delivery["attempts"], delivery["last_error"]) == ("delivered", 1, None)

    (got,) = receiver.received
    assert got.headers["webhook-signature"] == expected_signature(
        agent["callback_secret"], got.headers, got.body
    )
    assert b"\\ud800" in got.body
    body = json.loads(got.body.decode("utf-8"))
    assert body["result"]["answer"] == "half \ud800 a pair"
    assert body == await hookd.status(task_id)
