"""Trusted ingress on the webhook: signatures (Standard Webhooks, GitHub) and idempotency keys.

The verifiers are pinned to the published test vectors; everything else goes through real
webhook requests, counting rows in the database file.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, FormData

from agents.signatures import (
    TIMESTAMP_TOLERANCE_S,
    Signature,
    github_signature,
    standard_webhooks_signature,
    validate_signature,
    verify,
)
from api.app_keys import store_key
from api.ingress import Ingress
from errors import InvalidInput, Unauthorized
from tasks.retention import purge_idempotency_keys
from tasks.store import IDEMPOTENCY_WINDOW_S
from tests.conftest import Hookd
from tests.test_cli import Cli

# GitHub's documented vector ("Validating webhook deliveries").
GH_SECRET = "It's a Secret to Everybody"
GH_PAYLOAD = b"Hello, World!"
GH_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# The Standard Webhooks reference libraries' vector (their "sign function works" test).
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TIMESTAMP = 1614265330
SW_PAYLOAD = b'{"test": 2432232314}'
SW_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
# Signatures the reference tests mix in: invalid, or of another version.
SW_DECOYS = [
    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
]

JSON = {"Content-Type": "application/json"}


def sw_sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """A sender's signature, written out here rather than taken from hookd's own signer."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sw_headers(
    body: bytes, *, secret: str = SW_SECRET, msg_id: str = SW_MSG_ID, at: float | None = None
) -> dict[str, str]:
    timestamp = int(time.time() if at is None else at)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sw_sign(secret, msg_id, timestamp, body),
    } | JSON


# -- the verifiers, on the published vectors ----------------------------------------------


def test_github_vector() -> None:
    assert github_signature(GH_SECRET, GH_PAYLOAD) == GH_SIGNATURE
    github = Signature("github", GH_SECRET)
    verify(github, {"X-Hub-Signature-256": GH_SIGNATURE}, GH_PAYLOAD, now=0)
    verify(
        github, {"X-Hub-Signature-256": GH_SIGNATURE.upper().replace("SHA256=", "sha256=")}, GH_PAYLOAD, now=0
    )
    for headers, body in [
        ({}, GH_PAYLOAD),
        ({"X-Hub-Signature-256": GH_SIGNATURE}, b"Hello, World?"),
        ({"X-Hub-Signature-256": GH_SIGNATURE[:-1] + "f"}, GH_PAYLOAD),
        ({"X-Hub-Signature-256": GH_SIGNATURE.removeprefix("sha256=")}, GH_PAYLOAD),
    ]:
        with pytest.raises(Unauthorized, match="X-Hub-Signature-256") as refused:
            verify(github, headers, body, now=0)
        assert GH_SECRET not in str(refused.value) and GH_SIGNATURE[7:] not in str(refused.value)


def test_standard_webhooks_vector() -> None:
    assert sw_sign(SW_SECRET, SW_MSG_ID, SW_TIMESTAMP, SW_PAYLOAD) == SW_SIGNATURE  # the test's own signer
    assert standard_webhooks_signature(SW_SECRET, SW_MSG_ID, SW_TIMESTAMP, SW_PAYLOAD) == SW_SIGNATURE
    standard = Signature("standard-webhooks", SW_SECRET)
    headers = {
        "webhook-id": SW_MSG_ID,
        "webhook-timestamp": str(SW_TIMESTAMP),
        "webhook-signature": SW_SIGNATURE,
    }
    for now in (SW_TIMESTAMP, SW_TIMESTAMP - TIMESTAMP_TOLERANCE_S, SW_TIMESTAMP + TIMESTAMP_TOLERANCE_S):
        verify(standard, headers, SW_PAYLOAD, now=now)
    several = " ".join([*SW_DECOYS, SW_SIGNATURE, SW_DECOYS[0]])
    verify(standard, headers | {"webhook-signature": several}, SW_PAYLOAD, now=SW_TIMESTAMP)


@pytest.mark.parametrize(
    ("change", "now", "named"),
    [
        ({"webhook-id": None}, SW_TIMESTAMP, "webhook-id"),
        ({"webhook-timestamp": None}, SW_TIMESTAMP, "webhook-timestamp"),
        ({"webhook-signature": None}, SW_TIMESTAMP, "webhook-signature"),
        ({"webhook-timestamp": "hello"}, SW_TIMESTAMP, "webhook-timestamp"),
        ({}, SW_TIMESTAMP + TIMESTAMP_TOLERANCE_S + 1, "webhook-timestamp"),  # too old
        ({}, SW_TIMESTAMP - TIMESTAMP_TOLERANCE_S - 1, "webhook-timestamp"),  # from the future
        (
            {"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="},
            SW_TIMESTAMP,
            "webhook-signature",
        ),
        ({"webhook-signature": SW_SIGNATURE[:8]}, SW_TIMESTAMP, "webhook-signature"),  # cut short
        ({"webhook-signature": "v1,"}, SW_TIMESTAMP, "webhook-signature"),
        ({"webhook-signature": " ".join(SW_DECOYS)}, SW_TIMESTAMP, "webhook-signature"),
        ({"webhook-signature": "v2," + SW_SIGNATURE[3:]}, SW_TIMESTAMP, "webhook-signature"),
        ({"webhook-id": "msg_other"}, SW_TIMESTAMP, "webhook-signature"),  # the id is signed too
    ],
)
def test_standard_webhooks_refusals(change: dict[str, str | None], now: int, named: str) -> None:
    headers = {
        "webhook-id": SW_MSG_ID,
        "webhook-timestamp": str(SW_TIMESTAMP),
        "webhook-signature": SW_SIGNATURE,
    }
    headers = {k: v for k, v in (headers | change).items() if v is not None}
    with pytest.raises(Unauthorized, match=named) as refused:
        verify(Signature("standard-webhooks", SW_SECRET), headers, SW_PAYLOAD, now=now)
    message = str(refused.value)
    assert "nothing was stored" in message
    assert SW_SECRET[6:] not in message and SW_SIGNATURE[3:] not in message


@pytest.mark.parametrize(
    "value",
    [
        {"type": "standard-webhooks", "secret": "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},  # no whsec_
        {"type": "standard-webhooks", "secret": "whsec_not base64!"},
        {"type": "standard-webhooks", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"},  # bad padding
        {"type": "standard-webhooks", "secret": "whsec_" + base64.b64encode(b"k" * 16).decode()},  # too short
        {"type": "github", "secret": ""},
        {"type": "github", "secret": " padded "},
        {"type": "github", "secret": "x" * 1025},
        {"type": "github", "secret": "caf\u00e9"},  # printable, but not ASCII
        {"type": "github", "secret": "zero\u200bwidth"},
        {"type": "github"},
        {"type": "gitlab", "secret": "s"},
        {"type": "github", "secret": "s", "extra": 1},
        "github",
    ],
)
def test_malformed_secrets_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput, match="signature"):
        validate_signature(value)


# -- signatures, end to end ---------------------------------------------------------------


async def post(hookd: Hookd, agent: dict[str, Any], body: bytes, headers: dict[str, str]) -> ClientResponse:
    return await hookd.client.post(agent["webhook_path"], data=body, headers=headers)


async def refused(response: ClientResponse, status: int, *named: str) -> str:
    body = await response.json()
    assert response.status == status, body
    assert body["success"] is False
    for word in named:
        assert word in body["message"]
    return str(body["message"])


async def test_github_vector_through_a_webhook(hookd: Hookd) -> None:
    agent = await hookd.create_agent(signature={"type": "github", "secret": GH_SECRET})
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await post(hookd, agent, GH_PAYLOAD, form | {"X-Hub-Signature-256": GH_SIGNATURE})
    assert response.status == 200, await response.text()
    task_id = (await response.json())["task_id"]
    task = await hookd.client.get(f"/api/tasks/{task_id}", headers=hookd.admin)
    assert (await task.json())["payload"] == {"Hello, World!": ""}

    tampered = await post(hookd, agent, b"Hello, World?", form | {"X-Hub-Signature-256": GH_SIGNATURE})
    message = await refused(tampered, 401, "X-Hub-Signature-256", "does not match")
    assert GH_SECRET not in message
    await refused(await post(hookd, agent, GH_PAYLOAD, form), 401, "X-Hub-Signature-256", "missing")
    await refused(await hookd.client.get(agent["webhook_path"], params={"q": "1"}), 401, "POST")
    assert hookd.count_rows() == 1


async def test_standard_webhooks_through_a_webhook(hookd: Hookd) -> None:
    agent = await hookd.create_agent(signature={"type": "standard-webhooks", "secret": SW_SECRET})
    body = json.dumps({"type": "invoice.paid", "data": {"id": 7}}).encode()

    response = await post(hookd, agent, body, sw_headers(body))
    assert response.status == 200, await response.text()
    assert hookd.count_rows() == 1

    now = time.time()
    bad: list[tuple[dict[str, str], str]] = [
        ({k: v for k, v in sw_headers(body).items() if k != "webhook-signature"}, "webhook-signature"),
        (sw_headers(body) | {"webhook-signature": SW_DECOYS[0]}, "webhook-signature"),
        (sw_headers(body, at=now - TIMESTAMP_TOLERANCE_S - 30), "webhook-timestamp"),
        (sw_headers(body, at=now + TIMESTAMP_TOLERANCE_S + 30), "webhook-timestamp"),
        (sw_headers(body, secret="whsec_" + base64.b64encode(b"s" * 24).decode()), "webhook-signature"),
    ]
    for headers, named in bad:
        message = await refused(await post(hookd, agent, body, headers), 401, named, "nothing was stored")
        assert SW_SECRET[6:] not in message
    tampered = body.replace(b"7", b"8")
    await refused(await post(hookd, agent, tampered, sw_headers(body)), 401, "webhook-signature")
    assert hookd.count_rows() == 1

    several = sw_headers(body, msg_id="msg_2")
    several["webhook-signature"] = " ".join([SW_DECOYS[0], several["webhook-signature"], SW_DECOYS[1]])
    assert (await post(hookd, agent, body, several)).status == 200
    assert hookd.count_rows() == 2


async def test_the_secret_is_never_shown_or_logged(hookd: Hookd, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    agent = await hookd.create_agent(signature={"type": "standard-webhooks", "secret": SW_SECRET})
    assert agent["signature"] == {"type": "standard-webhooks"}
    shown = await hookd.client.get(f"/api/agents/{agent['id']}", headers=hookd.admin)
    listed = await hookd.client.get("/api/agents", headers=hookd.admin)
    await post(
        hookd, agent, b"{}", JSON | {"webhook-id": "m", "webhook-timestamp": "1", "webhook-signature": "v1,x"}
    )
    for text in (await shown.text(), await listed.text(), caplog.text):
        assert SW_SECRET[6:] not in text
    assert (await shown.json())["signature"] == {"type": "standard-webhooks"}


async def test_signature_settings_are_validated_and_can_be_removed(hookd: Hookd) -> None:
    bad = {"type": "standard-webhooks", "secret": "whsec_short"}
    response = await hookd.client.post(
        "/api/agents", json={"name": "x", "signature": bad}, headers=hookd.admin
    )
    await refused(response, 400, "whsec_")
    assert hookd.count_rows("agents") == 0

    agent = await hookd.create_agent(signature={"type": "github", "secret": GH_SECRET})
    path = f"/api/agents/{agent['id']}"
    await refused(await hookd.client.patch(path, json={"signature": bad}, headers=hookd.admin), 400, "whsec_")
    assert (await (await hookd.client.get(path, headers=hookd.admin)).json())["signature"] == {
        "type": "github"
    }

    removed = await hookd.client.patch(path, json={"signature": None}, headers=hookd.admin)
    assert (await removed.json())["signature"] is None
    with sqlite3.connect(hookd.settings.db) as conn:
        assert conn.execute("SELECT signature_type, signature_secret FROM agents").fetchall() == [
            (None, None)
        ]


async def test_a_new_secret_applies_at_once(hookd: Hookd) -> None:
    """The limiter remembers an agent for a second; the insert still checks the secret."""
    agent = await hookd.create_agent()
    await hookd.trigger(agent)  # the lookup (no signature needed) is now cached
    patch = {"signature": {"type": "github", "secret": GH_SECRET}}
    await hookd.client.patch(f"/api/agents/{agent['id']}", json=patch, headers=hookd.admin)
    response = await hookd.client.post(agent["webhook_path"], json={"unsigned": True})
    assert response.status in (401, 409), await response.text()  # 409: "send it again", then 401
    assert hookd.count_rows() == 1


# -- idempotency --------------------------------------------------------------------------


async def send(hookd: Hookd, agent: dict[str, Any], payload: Any, **headers: str) -> ClientResponse:
    headers = {name.replace("_", "-"): value for name, value in headers.items()}
    return await hookd.client.post(agent["webhook_path"], data=json.dumps(payload), headers=JSON | headers)


async def test_a_repeated_key_gets_the_first_task(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    first = await send(hookd, agent, {"n": 1}, Idempotency_Key="order-42")
    again = await send(hookd, agent, {"n": 1}, Idempotency_Key="order-42")
    assert first.status == again.status == 200
    assert await first.json() == await again.json()
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert hookd.count_rows() == 1 and hookd.count_rows("idempotency_keys") == 1
    await hookd.wait_for((await first.json())["task_id"])


async def test_a_repeated_key_with_another_body_is_422(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    first = await send(hookd, agent, {"n": 1}, Idempotency_Key="order-42")
    task_id = (await first.json())["task_id"]
    other = await send(hookd, agent, {"n": 2}, Idempotency_Key="order-42")
    await refused(other, 422, "Idempotency-Key", "different body", task_id, "nothing was stored")
    # Bytes, not meaning: the same JSON spaced differently is another body.
    spaced = await hookd.client.post(
        agent["webhook_path"], data=b'{"n":  1}', headers=JSON | {"Idempotency-Key": "order-42"}
    )
    assert spaced.status == 422
    assert hookd.count_rows() == 1


async def test_keys_are_per_agent(hookd: Hookd) -> None:
    one, two = await hookd.create_agent(), await hookd.create_agent()
    first = await send(hookd, one, {}, Idempotency_Key="k")
    second = await send(hookd, two, {}, Idempotency_Key="k")
    assert (await first.json())["task_id"] != (await second.json())["task_id"]
    assert "Idempotent-Replayed" not in second.headers
    assert hookd.count_rows() == 2


async def test_concurrent_duplicates_make_one_task(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    responses = await asyncio.gather(*(send(hookd, agent, {"n": 1}, webhook_id="msg_1") for _ in range(20)))
    assert {r.status for r in responses} == {200}
    assert len({(await r.json())["task_id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert hookd.count_rows() == 1


async def test_which_header_is_the_key(hookd: Hookd) -> None:
    agent = await hookd.create_agent()

    async def task_id(**headers: str) -> str:
        response = await send(hookd, agent, {}, **headers)
        assert response.status == 200, await response.text()
        return str((await response.json())["task_id"])

    github = await task_id(X_GitHub_Delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958")
    assert await task_id(X_GitHub_Delivery="72d3162e-cc78-11e3-81ab-4c9367dc0958") == github
    by_id = await task_id(webhook_id="msg_1", X_GitHub_Delivery="other")
    assert await task_id(webhook_id="msg_1") == by_id  # webhook-id comes before X-GitHub-Delivery
    own = await task_id(Idempotency_Key="mine", webhook_id="msg_1")
    assert own != by_id  # Idempotency-Key comes first
    assert hookd.count_rows() == 3


async def test_get_compares_query_strings(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    key = {"Idempotency-Key": "get-1"}
    first = await hookd.client.get(agent["webhook_path"], params={"q": "a"}, headers=key)
    again = await hookd.client.get(agent["webhook_path"], params={"q": "a"}, headers=key)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await first.json())["task_id"] == (await again.json())["task_id"]
    await refused(await hookd.client.get(agent["webhook_path"], params={"q": "b"}, headers=key), 422)
    assert hookd.count_rows() == 1


@pytest.mark.parametrize("key", ["", "k" * 256, "tab\there"])
async def test_unusable_keys_are_400(hookd: Hookd, key: str) -> None:
    agent = await hookd.create_agent()
    await refused(await send(hookd, agent, {}, Idempotency_Key=key), 400, "Idempotency-Key", "255")
    assert hookd.count_rows() == 0


@pytest.mark.parametrize(
    "headers",
    [
        {"Idempotency-Key": "k", "X-GitHub-Delivery": ""},
        {"Idempotency-Key": "k", "webhook-id": "tab\there"},
        {"webhook-id": "msg_1", "X-GitHub-Delivery": "k" * 256},
    ],
    ids=["empty-delivery", "tab-in-webhook-id", "long-delivery"],
)
async def test_every_idempotency_header_is_checked_not_only_the_key(
    hookd: Hookd, headers: dict[str, str]
) -> None:
    agent = await hookd.create_agent()
    bad = next(name for name, value in headers.items() if value not in ("k", "msg_1"))
    await refused(await send(hookd, agent, {}, **headers), 400, f"The {bad} header", "255")
    assert hookd.count_rows() == 0


async def test_a_signed_agent_checks_the_headers_it_does_not_count(hookd: Hookd) -> None:
    agent = await hookd.create_agent(signature={"type": "standard-webhooks", "secret": SW_SECRET})
    body = b"{}"
    unusable = sw_headers(body, msg_id="msg_1") | {"Idempotency-Key": ""}
    await refused(await post(hookd, agent, body, unusable), 400, "Idempotency-Key")
    assert hookd.count_rows() == 0


def multipart(fields: dict[str, str]) -> FormData:
    return FormData(fields, default_to_multipart=True)  # a new random boundary each time


async def test_a_multipart_form_with_a_key_is_compared_by_its_fields(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    key = {"Idempotency-Key": "form-1"}
    first = await hookd.client.post(agent["webhook_path"], data=multipart({"question": "hi"}), headers=key)
    assert first.status == 200, await first.text()
    # The same fields in a new body (another boundary): the same request again.
    again = await hookd.client.post(agent["webhook_path"], data=multipart({"question": "hi"}), headers=key)
    assert again.status == 200, await again.text()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["task_id"] == (await first.json())["task_id"]
    other = await hookd.client.post(agent["webhook_path"], data=multipart({"question": "bye"}), headers=key)
    await refused(other, 422, "Idempotency-Key", "different body")
    assert hookd.count_rows() == 1
    assert (await hookd.wait_for((await first.json())["task_id"]))["status"] == "SUCCESS"


async def test_a_signed_agent_takes_no_multipart_body(hookd: Hookd) -> None:
    agent = await hookd.create_agent(signature={"type": "github", "secret": GH_SECRET})
    response = await hookd.client.post(agent["webhook_path"], data=multipart({"question": "hi"}))
    await refused(response, 400, "Signature checks need the raw body", "multipart/form-data")
    assert hookd.count_rows() == 0


def age_keys(hookd: Hookd, by_s: float) -> None:
    with sqlite3.connect(hookd.settings.db) as conn:
        conn.execute("UPDATE idempotency_keys SET created_at = created_at - ?", (by_s,))


async def test_an_expired_key_makes_a_new_task(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    first = (await (await send(hookd, agent, {"n": 1}, Idempotency_Key="k")).json())["task_id"]
    age_keys(hookd, IDEMPOTENCY_WINDOW_S - 60)
    assert (await (await send(hookd, agent, {"n": 1}, Idempotency_Key="k")).json())["task_id"] == first
    age_keys(hookd, 120)  # now past the window, and not purged yet
    later = await send(hookd, agent, {"n": 2}, Idempotency_Key="k")  # another body is fine too
    assert later.status == 200 and "Idempotent-Replayed" not in later.headers
    second = (await later.json())["task_id"]
    assert second != first and hookd.count_rows() == 2
    # The key now stands for the new task, for another 24 hours.
    again = await send(hookd, agent, {"n": 2}, Idempotency_Key="k")
    assert (await again.json())["task_id"] == second
    assert hookd.count_rows("idempotency_keys") == 1


async def test_retention_forgets_expired_keys(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    for key in ("old-1", "old-2"):
        await send(hookd, agent, {}, Idempotency_Key=key)
    age_keys(hookd, IDEMPOTENCY_WINDOW_S + 1)
    await send(hookd, agent, {}, Idempotency_Key="fresh")
    assert await purge_idempotency_keys(hookd.client.app[store_key]) == 2
    with sqlite3.connect(hookd.settings.db) as conn:
        assert conn.execute("SELECT key FROM idempotency_keys").fetchall() == [("fresh",)]
    assert hookd.count_rows() == 3  # tasks are not the keys' to delete


async def test_deleting_an_agent_forgets_its_keys(hookd: Hookd) -> None:
    agent = await hookd.create_agent()
    await send(hookd, agent, {}, Idempotency_Key="k")
    await hookd.client.delete(f"/api/agents/{agent['id']}", headers=hookd.admin)
    assert hookd.count_rows("idempotency_keys") == 0


async def test_a_signed_repeat_is_still_checked(hookd: Hookd) -> None:
    """A key never lets an unsigned request through: the signature is checked first."""
    agent = await hookd.create_agent(signature={"type": "standard-webhooks", "secret": SW_SECRET})
    body = b'{"n": 1}'
    first = await post(hookd, agent, body, sw_headers(body, msg_id="msg_9"))
    again = await post(hookd, agent, body, sw_headers(body, msg_id="msg_9"))
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await first.json())["task_id"] == (await again.json())["task_id"]
    forged = sw_headers(body, msg_id="msg_9") | {"webhook-signature": SW_DECOYS[0]}
    await refused(await post(hookd, agent, body, forged), 401, "webhook-signature")
    assert hookd.count_rows() == 1


async def test_a_signed_request_replayed_with_fresh_keys_is_still_one_task(hookd: Hookd) -> None:
    """The signed webhook-id is the key: Idempotency-Key, which no signature covers, cannot
    make a captured request new again within the timestamp's tolerance."""
    agent = await hookd.create_agent(signature={"type": "standard-webhooks", "secret": SW_SECRET})
    body = b'{"question": "pay invoice 42"}'
    signed = sw_headers(body, msg_id="msg_1")
    first = await post(hookd, agent, body, signed)
    assert first.status == 200, await first.text()
    task_id = (await first.json())["task_id"]
    for extra in ({"Idempotency-Key": "attacker-1"}, {"Idempotency-Key": "attacker-2"}, {}):
        again = await post(hookd, agent, body, signed | extra)
        assert again.status == 200, await again.text()
        assert (await again.json())["task_id"] == task_id
        assert again.headers["Idempotent-Replayed"] == "true"
    assert hookd.count_rows() == 1
    # The sender's next message, with its own id, is a new task as ever.
    assert (await post(hookd, agent, body, sw_headers(body, msg_id="msg_2"))).status == 200
    assert hookd.count_rows() == 2


async def test_unsigned_junk_does_not_use_up_the_signed_senders_rate_limit(hookd: Hookd) -> None:
    agent = await hookd.create_agent(signature={"type": "github", "secret": GH_SECRET}, rate_limit="2/hour")
    for _ in range(5):  # anyone who knows the URL, without the secret
        await refused(await post(hookd, agent, b"{}", JSON), 401, "X-Hub-Signature-256")
    signed = JSON | {"X-Hub-Signature-256": github_signature(GH_SECRET, b"{}")}
    assert [(await post(hookd, agent, b"{}", signed)).status for _ in range(3)] == [200, 200, 429]
    assert hookd.count_rows() == 2


async def test_an_idempotent_replay_does_not_use_up_the_rate_limit(hookd: Hookd) -> None:
    agent = await hookd.create_agent(rate_limit="2/hour")
    first = await send(hookd, agent, {"n": 1}, Idempotency_Key="k1")
    for _ in range(3):  # a sender's retries: nothing new is stored, nothing is charged
        again = await send(hookd, agent, {"n": 1}, Idempotency_Key="k1")
        assert again.status == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert (await send(hookd, agent, {"n": 2}, Idempotency_Key="k2")).status == 200
    await refused(await send(hookd, agent, {"n": 3}, Idempotency_Key="k3"), 429, "2/hour")
    assert hookd.count_rows() == 2
    await hookd.wait_for((await first.json())["task_id"])


def test_an_ingress_never_shows_its_secret() -> None:
    assert SW_SECRET not in repr(Ingress(signature_secret=SW_SECRET, key_header="webhook-id", key="m"))


# -- the CLI ------------------------------------------------------------------------------


def test_cli_flags(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "hookd.db")
    out = cli("agents", "create", "--name", "gh", "--signature", "github")
    ((secret,),) = cli.rows("SELECT signature_secret FROM agents")
    assert re.fullmatch("[0-9a-f]{64}", secret)  # generated, and shown this once
    assert out.splitlines()[-1] == f"  {secret}" and "signing secret" in out
    assert cli.json("agents", "show", "gh")["signature"] == {"type": "github"}

    # An existing secret comes from an environment variable, never from a flag.
    flags = ("agents", "update", "gh", "--signature", "standard-webhooks", "--signature-secret-env")
    updated = json.loads(cli(*flags, "HOOKD_SW", sw=SW_SECRET))
    assert updated["signature"] == {"type": "standard-webhooks"}
    assert cli.rows("SELECT signature_type, signature_secret FROM agents") == [
        ("standard-webhooks", SW_SECRET)
    ]
    assert "HOOKD_SW is not set" in cli.fails(*flags, "HOOKD_SW")
    result = cli.run(*flags, "HOOKD_SW", settings={"sw": "whsec_short"})
    assert result.returncode != 0 and "whsec_" in result.stderr and "whsec_short" not in result.stderr

    assert cli.json("agents", "update", "gh", "--signature", "none")["signature"] is None
    assert cli.rows("SELECT signature_type, signature_secret FROM agents") == [(None, None)]
