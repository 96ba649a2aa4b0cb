"""Moving hookd's data to another database (`hookd db copy`): from SQLite into PostgreSQL, or
back. One store's `dump` goes into the other's `load` (tasks/dump.py), so this module knows
neither backend.

Nothing is lost or half-copied: the destination must be empty, the copy is one transaction of
the destination's, and it commits only once every table holds as many rows as the source's.
The copy holds both databases' `serving()`, which a SQLite file's one server holds too: a server
on the source would go on writing what the copy has already read, and one on the destination
would hold copied runs it never claimed. PostgreSQL's nodes share a database, so they do not
make the copy refuse: into PostgreSQL that is safe (a node takes over a copied run once its
lease expires), but from PostgreSQL the copy misses what they write after its snapshot; stop
them first.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from errors import AlreadyServed, Conflict
from tasks.store import Store


@dataclass(frozen=True)
class Copied:
    source: str  # where, as Store.where shows it (never a password)
    destination: str
    rows: dict[str, int]  # by table, as the destination holds them after the commit


async def copy_database(source: Store, destination: Store) -> Copied:
    """Copy every row of `source` into `destination` (neither opened yet; both closed after).
    Conflict if the destination holds agents or tasks, or if the counts differ (nothing is
    then written); AlreadyServed if a hookd server holds either database alone (SQLite's)."""
    if source.where == destination.where:
        raise Conflict(f"{source.where} is the database hookd uses already; copy it somewhere else.")
    async with contextlib.AsyncExitStack() as stack:
        for role, store in (("source", source), ("destination", destination)):
            try:
                await stack.enter_async_context(store.serving())
            except AlreadyServed:
                raise AlreadyServed(
                    f"A hookd server is serving the {role}, {store.where}; stop the server first, then copy."
                ) from None
        for store in (source, destination):
            await store.open()
            stack.push_async_callback(store.close)
        expected = await source.row_counts()
        async with contextlib.aclosing(source.dump()) as batches:
            rows = await destination.load(batches, expected)
    return Copied(source.where, destination.where, rows)
