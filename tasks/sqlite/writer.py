"""SQLite's one writer: group commit on a dedicated thread.

Every write is a plain function of a `sqlite3.Connection`. Writes submitted while the
previous transaction was committing are applied together in the next `BEGIN IMMEDIATE …
COMMIT`, in one hop to the writer thread, and each caller is answered only after that
commit. (aiosqlite, used for reads, costs one thread hop per statement; a whole transaction
of many small writes per hop is what makes group commit pay, so the writer owns its thread.)
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from errors import StorageUnavailable

log = logging.getLogger("hookd.store")

T = TypeVar("T")
WriteOp = Callable[[sqlite3.Connection], T]

MAX_BATCH_OPS = 512  # bounds how long one transaction holds the write lock


_CANNOT_WRITE = {sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN}
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def storage_error(exc: sqlite3.Error) -> StorageUnavailable | None:
    """The domain error for a database that cannot take writes, if that is what `exc` is."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF  # extended codes carry the primary one
    if primary in _CANNOT_WRITE:
        return StorageUnavailable(
            "hookd cannot write to its database right now (disk full or read-only);"
            " nothing was stored. Try again later."
        )
    if primary in _BUSY:  # another process (e.g. the CLI) held the write lock past busy_timeout
        return StorageUnavailable("hookd's database is busy; nothing was stored. Try again in a moment.")
    return None


class Writer:
    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hookd-sqlite-writer")
        self._conn: sqlite3.Connection | None = None
        self._pending: list[tuple[WriteOp[Any], asyncio.Future[Any]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    async def open(self, setup: WriteOp[None]) -> None:
        """Connect on the writer thread and run `setup` (outside any transaction) there."""

        def connect_and_set_up() -> sqlite3.Connection:
            conn = self._connect()
            try:
                setup(conn)
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            self._conn = await self._in_thread(connect_and_set_up)
        except BaseException:
            self._executor.shutdown(wait=False)
            raise
        self._task = asyncio.create_task(self._run(), name="hookd-sqlite-writer")

    async def close(self) -> None:
        """Apply what was submitted, then close the connection and the thread."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        if self._conn is not None:
            await self._in_thread(self._conn.close)
        self._executor.shutdown(wait=True)

    async def submit(self, op: WriteOp[T]) -> T:
        if self._closing:
            raise StorageUnavailable("hookd is shutting down; nothing was stored.")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._wakeup.set()
        # A caller cancelled meanwhile cancels only its future: the write stays queued and
        # is applied all the same (the writer skips answering a cancelled future).
        return await future

    async def data_version(self) -> int:
        """PRAGMA data_version of the writer's connection: it changes when another connection,
        in this process or another, commits to the file. This process writes only through this
        connection, so a change means another process wrote."""
        conn = self._conn
        assert conn is not None
        return int(await self._in_thread(lambda: conn.execute("PRAGMA data_version").fetchone()[0]))

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            # One more turn of the event loop first: the callbacks already due in it (other
            # requests, a run that just ended and the claim of the next task) submit their
            # writes into this transaction rather than the next one.
            await asyncio.sleep(0)
            while self._pending:
                batch = self._pending[:MAX_BATCH_OPS]
                del self._pending[:MAX_BATCH_OPS]
                outcomes = await self._in_thread(partial(self._apply, [op for op, _ in batch]))
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.done():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
            if self._closing:
                return

    # -- on the writer thread ----------------------------------------------------------

    def _apply(self, ops: list[WriteOp[Any]]) -> list[tuple[bool, Any]]:
        try:
            return [(True, result) for result in self._transaction(ops)]
        except Exception as exc:
            if len(ops) == 1:
                return [(False, self._domain_error(exc))]
        # One operation failed and took the shared transaction with it: apply each on
        # its own, so the others still commit and only the culprit gets its error.
        outcomes: list[tuple[bool, Any]] = []
        for op in ops:
            try:
                (result,) = self._transaction([op])
            except Exception as exc:
                outcomes.append((False, self._domain_error(exc)))
            else:
                outcomes.append((True, result))
        return outcomes

    def _transaction(self, ops: list[WriteOp[Any]]) -> list[Any]:
        conn = self._conn
        assert conn is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
            results = [op(conn) for op in ops]
            conn.execute("COMMIT")
            return results
        except BaseException:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("rollback failed")
            raise

    @staticmethod
    def _domain_error(exc: Exception) -> Exception:
        if isinstance(exc, sqlite3.Error) and (storage := storage_error(exc)) is not None:
            log.error("database write failed: %s", exc)
            return storage
        return exc
