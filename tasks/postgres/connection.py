"""The PostgreSQL store's connections: an asyncpg pool, and the errors hookd makes of its failures.

Every store method borrows a connection for one statement or one transaction
(`_connection`, `_transaction`). A server that cannot be reached, that is shutting down,
out of disk or connections, or that refuses writes (a read-only standby,
default_transaction_read_only) becomes StorageUnavailable, whose message names the server
without its password. Everything else is a bug and stays what asyncpg raised.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import asyncpg
from asyncpg import exceptions as pg

from errors import InvalidInput, StorageUnavailable
from tasks.postgres.listen import Listener
from tasks.store import Store

# Advisory locks are (class, key) pairs; hookd's two classes spell "hook" and "hoom" in ASCII.
SCHEMA_LOCK = (0x686F6F6B, 0)  # held while one node creates or migrates the schema
BACKGROUND_LOCK = (0x686F6F6B, 2)  # held by the one node sending callbacks and applying retention
CLAIM_LOCK_CLASS = 0x686F6F6D  # with hashtext(agent id): one node at a time claims for a limited agent

CONNECT_TIMEOUT_S = 10.0

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, no such host
    TimeoutError,  # no answer within CONNECT_TIMEOUT_S
    pg.PostgresConnectionError,  # class 08, and a connection lost mid-statement
    pg.InvalidAuthorizationSpecificationError,  # class 28: wrong password, no such role
    pg.InvalidCatalogNameError,  # no such database
    pg.InsufficientResourcesError,  # class 53: disk full, out of memory, too many connections
    pg.OperatorInterventionError,  # class 57: shutting down, cannot connect now, statement timeout
    pg.PostgresSystemError,  # class 58: an I/O error on the server
    pg.ReadOnlySQLTransactionError,  # a standby, or default_transaction_read_only
    pg.ClientConfigurationError,  # a URL asyncpg cannot read
    pg.InternalClientError,  # asyncpg's state after the server dropped an idle connection (asyncpg#784)
)
# After these a connection is not fit to go back to the pool: it is closed, and the pool opens
# a new one for the next caller.
_BROKEN: tuple[type[BaseException], ...] = (
    OSError,
    pg.PostgresConnectionError,
    pg.InternalClientError,
    pg.AdminShutdownError,
    pg.CrashShutdownError,
)
# A URL asyncpg cannot read (a bad port, an unknown option) is a ValueError at connect.
_UNAVAILABLE_AT_CONNECT: tuple[type[BaseException], ...] = (*_UNAVAILABLE, ValueError)
# PostgreSQL's text cannot hold NUL (U+0000), which hookd's validation lets through in a few
# free-text fields that SQLite stores as given.
_UNSTORABLE_TEXT: tuple[type[BaseException], ...] = (
    pg.CharacterNotInRepertoireError,
    pg.UntranslatableCharacterError,
)


def shown_url(url: str) -> str:
    """The URL as logs and errors may show it: the password replaced by ***."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user = quote(unquote(parts.username or ""), safe="")
            host = netloc.rpartition("@")[2]
            netloc = f"{user}:***@{host}"
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)])
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return "(a PostgreSQL URL hookd cannot read)"


def _secrets(url: str) -> list[str]:
    """The password in the URL, in every form it may be quoted back in an error."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""] + [v for k, v in parse_qsl(parts.query) if k == "password"]
    except ValueError:
        return [url]  # unreadable: show none of it
    return [form for secret in found if secret for form in {secret, unquote(secret), quote(secret)}]


class PostgresBase(Store):
    """The pool, and the two ways the store methods use it."""

    def __init__(self, url: str, *, min_connections: int = 1, max_connections: int = 10) -> None:
        super().__init__()
        self.url = url
        self.shown_url = shown_url(url)
        self.min_connections = min_connections
        self.max_connections = max_connections
        self._pool: Any = None
        self._closing = False
        self._listener: Listener | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.shown_url!r})"

    @property
    def where(self) -> str:
        return self.shown_url

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[None]:
        """Any number of nodes serve one database. While serving, a connection of its own
        listens for the others' task changes and holds the background lock (listen.py)."""
        listener = Listener(self._connect_one, self.events, self.node_id, BACKGROUND_LOCK, self.shown_url)
        await listener.start()
        self._listener = listener
        try:
            yield
        finally:
            self._listener = None
            await listener.stop()

    async def leads_background_work(self) -> bool:
        listener = self._listener
        return listener is not None and await listener.leads_background_work()

    async def _connect_one(self) -> Any:
        """One connection outside the pool; StorageUnavailable if it cannot be made."""
        try:
            return await asyncpg.connect(
                self.url,
                timeout=CONNECT_TIMEOUT_S,
                server_settings={"application_name": "hookd listen", "hookd.node": self.node_id},
            )
        except _UNAVAILABLE_AT_CONNECT as exc:
            raise self.unavailable(exc) from None

    def unavailable(self, exc: BaseException) -> StorageUnavailable:
        """StorageUnavailable for `exc`, its text cleared of the URL's password."""
        reason = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
        for secret in _secrets(self.url):
            reason = reason.replace(secret, "***")
        if isinstance(exc, pg.ReadOnlySQLTransactionError):
            what = "refuses writes (it is read-only)"
        else:
            what = "cannot be reached or cannot take requests right now"
        return StorageUnavailable(
            f"hookd's PostgreSQL database {self.shown_url} {what}; nothing was stored. Try again later."
            f" ({reason})"
        )

    async def _create_pool(self) -> Any:
        try:
            return await asyncpg.create_pool(
                self.url,
                min_size=self.min_connections,
                max_size=self.max_connections,
                timeout=CONNECT_TIMEOUT_S,
                # jit off: it adds tens of milliseconds to short queries the planner misjudges.
                # hookd.node: whose change a task's notification reports (listen.py).
                server_settings={"application_name": "hookd", "jit": "off", "hookd.node": self.node_id},
            )
        except _UNAVAILABLE_AT_CONNECT as exc:
            raise self.unavailable(exc) from None

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        """A pooled connection for one or more statements, each its own transaction."""
        pool = self._pool
        assert pool is not None, "store is not open"
        try:
            async with pool.acquire() as conn:
                try:
                    yield conn
                except _BROKEN:
                    # asyncpg may have let go of it already (then it says "released").
                    with contextlib.suppress(pg.InterfaceError):
                        conn.terminate()
                    raise
        except _UNAVAILABLE as exc:
            raise self.unavailable(exc) from None
        except _UNSTORABLE_TEXT:
            raise InvalidInput(
                "PostgreSQL cannot store NUL characters (U+0000) in text; remove them and send it again."
            ) from None
        except pg.InterfaceError as exc:
            if self._closing:  # the pool is closing: hookd is shutting down
                raise StorageUnavailable("hookd is shutting down; nothing was stored.") from None
            raise exc

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        """A pooled connection inside one transaction, committed when the block ends."""
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._connection() as conn:
            rows: list[Any] = await conn.fetch(sql, *args)
            return rows

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one statement; how many rows it changed."""
        async with self._connection() as conn:
            return changed(await conn.execute(sql, *args))


def changed(status: str) -> int:
    """The row count of a command status such as 'UPDATE 3' or 'INSERT 0 1'."""
    return int(status.rpartition(" ")[2])
