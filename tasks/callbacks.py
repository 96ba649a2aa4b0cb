"""Callbacks: POST each final result to its agent's callback_url, signed, until it is delivered.

The store queues a delivery in the same transaction that stores a task's final result; this
loop sends the due ones, signed the Standard Webhooks way (https://www.standardwebhooks.com):

    webhook-id         the delivery's id, the same on every attempt (receivers dedupe on it)
    webhook-timestamp  unix seconds of this attempt
    webhook-signature  v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}" keyed with the
                       base64-decoded part of the agent's secret after "whsec_">

The body is the task's status, as GET /api/task_status serves it. Any 2xx answer delivers it;
410 Gone stops; anything else (another status, a refused connection, a timeout) is tried
again with exponential backoff and jitter, for at most MAX_AGE_S and MAX_ATTEMPTS. Nothing
lives only in memory, so after a restart the pending deliveries go on where they stopped
(at least once: a delivery cut off mid-send by a crash is sent again).

The host is resolved here, and unless HOOKD_CALLBACK_ALLOW_PRIVATE is on, every address it
resolves to must be public. The request then goes to a checked address (so the name cannot
resolve elsewhere in between), with the name as Host and as the TLS server name.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import random
import socket
import time
from dataclasses import dataclass

import aiohttp
from yarl import URL

from agents.tokens import SIGNING_SECRET_PREFIX
from agents.tools.addresses import IPAddress, address_refusal, host_refusal
from errors import NotFound
from tasks.events import TaskEvent
from tasks.json_text import json_text
from tasks.store import Delivery, Store

log = logging.getLogger("hookd.callbacks")

MAX_ATTEMPTS = 50
MAX_AGE_S = 24 * 3600.0  # no attempt is planned later than this after the result
MAX_BACKOFF_S = 3600.0
SEND_TIMEOUT_S = 10.0
MAX_IN_FLIGHT = 4  # deliveries share the model calls' HTTP connections: leave them most
IDLE_CHECK_S = 60.0  # a safety look at the table, for deliveries queued by another process
# How often a node that does not send callbacks asks to: one that sent them and stopped is
# followed within this long, and its unfinished deliveries (still pending) are sent again.
FOLLOWER_CHECK_S = 2.0
RECORD_RETRY_S = 5.0
MAX_ADDRESSES = 4  # of a name's addresses, the ones tried in turn when a connection fails
USER_AGENT = "hookd-callbacks"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header for one attempt (Standard Webhooks, v1 = HMAC-SHA256)."""
    key = base64.b64decode(secret.removeprefix(SIGNING_SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def backoff_s(attempts: int, base_s: float) -> float:
    """After `attempts` failed attempts: base·2^(attempts-1), capped, between half and all of it."""
    ceiling: float = min(base_s * 2.0 ** min(attempts - 1, 40), MAX_BACKOFF_S)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered, failed (for good) or pending (try again)
    status_code: int | None = None
    error: str | None = None


class Refused(Exception):
    """The delivery cannot be sent, and will not be by trying again; the message says why."""


class CallbackSender:
    """The delivery loop: sends due deliveries, at most MAX_IN_FLIGHT at once."""

    def __init__(
        self,
        store: Store,
        session: aiohttp.ClientSession,
        *,
        allow_private: bool,
        backoff_s: float,
    ) -> None:
        self._store = store
        self._session = session
        self._allow_private = allow_private
        self._backoff_s = backoff_s
        self._wakeup = asyncio.Event()
        self._sending: dict[str, asyncio.Task[None]] = {}

    def wake(self) -> None:
        """Look for due deliveries now (another process may have queued some)."""
        self._wakeup.set()

    def on_event(self, event: TaskEvent) -> None:
        """A pool listener: a final result may have queued a delivery (not looked for when the
        result's commit is known to have queued none: most agents have no callback_url)."""
        if event.final and event.delivery_queued is not False:
            self._wakeup.set()

    async def run(self) -> None:
        """Send deliveries as they fall due, until cancelled (sends cut off go again next start)."""
        try:
            while True:
                # Clear before looking, or a wake-up landing during the look would be lost.
                self._wakeup.clear()
                try:
                    sleep_s = await self._send_due()
                except Exception:
                    log.exception("looking for due callbacks failed; trying again in %g s", IDLE_CHECK_S)
                    sleep_s = IDLE_CHECK_S
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(sleep_s):
                        await self._wakeup.wait()
        finally:
            for sending in self._sending.values():
                sending.cancel()
            await asyncio.gather(*self._sending.values(), return_exceptions=True)

    async def _send_due(self) -> float:
        """Start the due deliveries there is room for; how long to sleep until the next one.
        Only on the server that leads the background work: one node at a time sends."""
        if not await self._store.leads_background_work():
            return FOLLOWER_CHECK_S
        free = MAX_IN_FLIGHT - len(self._sending)
        if free > 0:
            for delivery in await self._store.due_deliveries(time.time(), free, exclude=list(self._sending)):
                sending = asyncio.create_task(self._deliver(delivery), name=f"hookd-callback-{delivery.id}")
                self._sending[delivery.id] = sending
            if len(self._sending) >= MAX_IN_FLIGHT:
                return IDLE_CHECK_S  # a finished send wakes the loop
        due_at = await self._store.next_delivery_at(exclude=list(self._sending))
        return IDLE_CHECK_S if due_at is None else min(max(due_at - time.time(), 0.0), IDLE_CHECK_S)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            try:
                outcome = await self._attempt(delivery)
            except Refused as exc:
                outcome = Outcome("failed", error=str(exc))
            except Exception:
                log.exception("callback %s (task %s): unexpected error", delivery.id, delivery.task_id)
                outcome = Outcome("pending", error="hookd hit an unexpected error sending it; see its log.")
            attempts = delivery.attempts + 1
            next_at = time.time() + backoff_s(attempts, self._backoff_s)
            if outcome.status == "pending" and (
                attempts >= MAX_ATTEMPTS or next_at > delivery.created_at + MAX_AGE_S
            ):
                outcome = Outcome(
                    "failed", outcome.status_code, f"Gave up after {attempts} attempts. Last: {outcome.error}"
                )
            await self._store.record_delivery_attempt(
                delivery.id,
                status=outcome.status,
                status_code=outcome.status_code,
                error=outcome.error,
                next_attempt_at=next_at if outcome.status == "pending" else None,
            )
            self._log(delivery, outcome)
        except Exception:  # e.g. the database refuses writes: the delivery stays due, and goes again
            log.exception("callback %s: recording the attempt failed", delivery.id)
            await asyncio.sleep(RECORD_RETRY_S)  # held back meanwhile, so it is not resent at once
        finally:
            self._sending.pop(delivery.id, None)
            self._wakeup.set()

    async def _attempt(self, delivery: Delivery) -> Outcome:
        task = await self._store.get_task(delivery.task_id)
        if task is None:
            raise Refused("The task no longer exists.")
        try:
            agent = await self._store.get_agent(delivery.agent_id) if delivery.agent_id else None
        except NotFound:
            agent = None
        if agent is None or not agent.callback_secret:
            raise Refused("The agent was deleted, and with it the secret to sign the callback with.")
        body = json_text(task.status_json()).encode()
        url = URL(delivery.url)
        name = url.raw_host or ""  # IDNA-encoded, as it goes on the wire
        host = f"[{name}]" if ":" in name else name  # an IPv6 literal keeps its brackets in Host
        try:
            addresses = await self._addresses(url)
        except OSError as exc:  # the name does not resolve (now): like a refused connection
            return Outcome("pending", error=f"Could not resolve {url.host}: {_describe(exc)}.")
        timestamp = int(time.time())
        headers = {
            # The name, not the address the request goes to: what virtual hosts and TLS expect.
            "Host": host if url.is_default_port() else f"{host}:{url.port}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(agent.callback_secret, delivery.id, timestamp, body),
        }
        unreachable: Exception | None = None
        for address in addresses:  # the checked addresses only, in the resolver's order
            try:
                async with self._session.post(
                    url.with_host(str(address)),
                    data=body,
                    headers=headers,
                    server_hostname=name if url.scheme == "https" else None,
                    allow_redirects=False,  # a redirect could lead anywhere, past the address check
                    timeout=aiohttp.ClientTimeout(total=SEND_TIMEOUT_S),
                ) as response:
                    code = response.status
                break
            except aiohttp.ClientConnectorError as exc:  # refused, unroutable: the next address
                unreachable = exc
            except TimeoutError:
                return Outcome("pending", error=f"No answer within {SEND_TIMEOUT_S:g} s.")
            except (aiohttp.ClientError, OSError) as exc:
                return Outcome("pending", error=f"Could not reach the receiver: {_describe(exc)}.")
        else:
            error = _describe(unreachable) if unreachable else "no address"
            return Outcome("pending", error=f"Could not reach the receiver: {error}.")
        if 200 <= code < 300:
            return Outcome("delivered", code)
        if code == 410:
            return Outcome("failed", code, "The receiver answered 410 Gone: no more attempts.")
        return Outcome("pending", code, f"The receiver answered HTTP {code}.")

    async def _addresses(self, url: URL) -> list[IPAddress]:
        """The addresses to send to: the host's, resolved now, each of them checked unless
        private addresses are allowed. Sending to these (not to the name) keeps the name from
        resolving elsewhere between the check and the connection."""
        host = url.host or ""
        reason = None if self._allow_private else host_refusal(host)
        if reason is not None:  # before the lookup: "localhost." may not resolve, and be retried for a day
            raise Refused(
                f"The callback URL points at {host}, {reason}; hookd refuses callbacks there"
                " unless HOOKD_CALLBACK_ALLOW_PRIVATE is true."
            )
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, url.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))
        for address in addresses if not self._allow_private else ():
            reason = address_refusal(address)
            if reason is not None:
                raise Refused(
                    f"{host} resolves to {address}, {reason}; hookd refuses callbacks there"
                    " unless HOOKD_CALLBACK_ALLOW_PRIVATE is true."
                )
        return addresses[:MAX_ADDRESSES]

    def _log(self, delivery: Delivery, outcome: Outcome) -> None:
        # The host only: a callback URL may carry a credential in its path or query.
        where = URL(delivery.url).host
        if outcome.status == "delivered":
            log.info("callback %s for task %s delivered to %s", delivery.id, delivery.task_id, where)
        else:
            level = logging.WARNING if outcome.status == "failed" else logging.INFO
            verdict = "failed for good" if outcome.status == "failed" else "will be tried again"
            log.log(
                level,
                "callback %s for task %s to %s %s: %s",
                delivery.id,
                delivery.task_id,
                where,
                verdict,
                outcome.error,
            )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
