"""One server per database: `<db>.lock`, held with flock for as long as hookd serves it.

Two servers on one file would each take the other's running tasks for interrupted ones at
start-up and run them twice. The CLI's admin commands don't take the lock: their writes
are ordinary SQLite transactions, safe beside a running server.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from errors import AlreadyServed, StorageUnavailable


def lock_path(db: str) -> Path:
    path = Path(db).expanduser()
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def serving(db: str) -> Iterator[None]:
    """Hold the database's serve lock; StorageUnavailable naming the holder if it is taken."""
    path = lock_path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageUnavailable(f"{path} cannot be created to guard {db}: {exc.strerror}.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            raise AlreadyServed(
                f"Another hookd (pid {holder}) is already serving {db}. Two servers on one"
                " database would run each other's tasks twice; stop the other one first."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays, empty locks are harmless
