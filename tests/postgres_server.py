"""A PostgreSQL server of the tests' own: Debian's initdb and pg_ctl, in a temporary directory.

It listens on 127.0.0.1 on a free port, with its unix socket in that directory, and lives for
the test session. Each test that needs it gets an empty database (`fresh_database`).
PostgreSQL refuses to run as root, and CI runs as root: then the directory is handed to the
`postgres` system user (the Debian package creates it) and the server runs as that user.
Without initdb the tests that need it skip, except under CI (`CI` set), where they fail:
.ci/run installs the `postgresql` package.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

START_TIMEOUT_S = 30
# Users the tests log in as with a password (scram), to see that a wrong one is refused and
# never shown; every other user is trusted on this throwaway server.
PASSWORD_USER = "hookd_pw"
PASSWORD = "pw-never-shown-4c1d"
SERVER_USER = "postgres"  # Debian's system user, who runs the server when the tests run as root

_databases = itertools.count(1)


def postgres_bin() -> Path | None:
    """The newest PostgreSQL's bin folder (/usr/lib/postgresql/<version>/bin), else initdb's
    folder on the PATH, else None."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        newest = max(found, key=lambda path: [int(n) for n in re.findall(r"\d+", path.split("/")[4])])
        return Path(newest).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One initdb'd cluster in `root`, started by `start` and stopped by `stop`."""

    def __init__(self, bin_dir: Path, root: Path) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log_path = root / "postgres.log"
        self.port = 0
        self.as_root = os.geteuid() == 0
        self._idle: list[str] = []  # emptied databases, for the next tests

    def _run(self, *args: str) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        if self.as_root:
            # The server's user must own its folder; the parent (the system temp dir) is world-readable.
            server = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, server.pw_uid, server.pw_gid)
        # C.UTF-8 rather than C: the text-search parser classifies letters by the locale, and
        # in C a non-ASCII letter would break a word in two.
        self._run(
            "initdb", "-D", str(self.data), "--no-sync", "-E", "UTF8", "--locale=C.UTF-8", "-U", "postgres"
        )
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
        )
        for attempt in range(3):  # the free port may be taken by someone else before we bind it
            self.port = _free_port()
            with (self.data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"\nport = {self.port}\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.root}'\n"
                    # A throwaway cluster: no need to survive a power cut. synchronous_commit
                    # keeps its default, so commits behave as in production.
                    "fsync = off\n"
                    "full_page_writes = off\n"
                    "max_connections = 200\n"
                )
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log_path),
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "start",
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        self._run(
            "psql", "-h", str(self.root), "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-qAt",
            "-v", "ON_ERROR_STOP=1", "-c", f"CREATE ROLE {PASSWORD_USER} LOGIN SUPERUSER PASSWORD '{PASSWORD}'",
        )  # fmt: skip

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def url(self, database: str = "postgres", *, user: str = "postgres", password: str | None = None) -> str:
        login = user if password is None else f"{user}:{password}"
        return f"postgresql://{login}@127.0.0.1:{self.port}/{database}"

    async def _admin(self, database: str = "postgres") -> Any:
        import asyncpg  # the test extra has it; the SQLite-only tests never import it

        return await asyncpg.connect(host=str(self.root), port=self.port, user="postgres", database=database)

    @contextlib.asynccontextmanager
    async def fresh_database(self) -> AsyncIterator[str]:
        """An empty database's URL, emptied again afterwards for a later test.

        CREATE DATABASE copies template1, about 0.3 s on a busy two-core machine; emptying a
        used database (every schema dropped, its settings reset) takes about 0.04 s, so
        databases are made once and reused. One that cannot be emptied is dropped instead.
        """
        admin = await self._admin()
        try:
            if self._idle:
                name = self._idle.pop()
            else:
                name = f"test_{os.getpid()}_{next(_databases)}"
                await admin.execute(f"CREATE DATABASE {name}")
            try:
                yield self.url(name)
            finally:
                if await self._emptied(admin, name):
                    self._idle.append(name)
                else:
                    await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            await admin.close()

    async def _emptied(self, admin: Any, name: str) -> bool:
        """Whether the database is as CREATE DATABASE makes it again: nobody connected, no
        setting of its own, no schema but an empty public."""
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE datname = $1", name
            )
            await admin.execute(f"ALTER DATABASE {name} RESET ALL")
            conn = await self._admin(name)
            try:
                schemas = await conn.fetch(
                    "SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'"
                )
                drops = "".join(f'DROP SCHEMA "{schema}" CASCADE; ' for (schema,) in schemas)
                await conn.execute(f"{drops}CREATE SCHEMA public AUTHORIZATION pg_database_owner")
            finally:
                await conn.close()
        except Exception:
            return False
        return True


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A started server for the `with` block; skips (fails under CI) without initdb."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the PostgreSQL tests: initdb is missing (.ci/run installs postgresql)")
        pytest.skip("PostgreSQL's initdb is not installed (apt-get install postgresql)")
    root = Path(tempfile.mkdtemp(prefix="hookd-pg-"))
    server = PostgresServer(bin_dir, root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
