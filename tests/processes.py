"""hookd as a real subprocess: `python server.py` on a free loopback port, its output in a file.

Used where a test needs what only a process can show: a kill -9, a SIGTERM, the CLI next to
a running server. `HookdProcesses` starts them and kills whatever is still running when the
test ends.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.conftest import ADMIN_KEY

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def limit_open_files(limits: tuple[int, int]) -> None:
    """In the child, before it runs hookd."""
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def clean_environ(**settings: str) -> dict[str, str]:
    """This process's environment without the caller's HOOKD_* variables, plus `settings`
    given by setting name (`public_url="…"` becomes HOOKD_PUBLIC_URL)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
    return env | {"HOOKD_" + name.upper(): value for name, value in settings.items()}


@dataclass
class HookdProcess:
    popen: subprocess.Popen[bytes]
    port: int
    db: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    def log(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would, and reap the process."""
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def terminate(self) -> None:
        """SIGTERM, as systemd or `docker stop` would; see `wait_exit`."""
        self.popen.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s: float) -> int:
        """The exit code; fails if the process is still running after `timeout_s`."""
        try:
            return self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"hookd still running {timeout_s} s later; its log:\n{self.log()}") from None

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Block until GET /api/health answers 200."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.popen.poll()
            assert code is None, f"hookd exited with {code} while starting; its log:\n{self.log()}"
            try:
                with urllib.request.urlopen(self.url + "/api/health", timeout=1.0) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            assert time.monotonic() < deadline, f"hookd not healthy after {timeout_s} s:\n{self.log()}"
            time.sleep(0.02)


class HookdProcesses:
    """Starts hookd servers in `tmp_path`; `close()` kills the ones still running."""

    def __init__(self, tmp_path: Path, **settings: str) -> None:
        self._tmp_path = tmp_path
        self._settings = {
            "admin_key": ADMIN_KEY,
            "retry_backoff_s": "0.05",
            "shutdown_grace_s": "1",
            "log_level": "info",
        } | settings
        self._started: list[HookdProcess] = []

    def start(
        self,
        db: Path | None = None,
        *,
        port: int | None = None,
        workers: int = 8,
        command: Sequence[str] = (sys.executable, "server.py"),
        cwd: Path = REPO_ROOT,
        open_files: tuple[int, int] | None = None,
        **settings: str,
    ) -> HookdProcess:
        """Start `python server.py` (or `command`, run in `cwd`, e.g. a built hookd's `serve`)
        and return once it answers /api/health.

        `settings` override the HOOKD_* environment by setting name; `open_files` is the
        (soft, hard) RLIMIT_NOFILE it starts with, as systemd's LimitNOFILE= would set it.
        Blocking: from a test's event loop, call it through `asyncio.to_thread` so
        loop-served fakes keep answering.
        """
        db = self._tmp_path / "hookd.db" if db is None else db
        port = free_port() if port is None else port
        log_path = self._tmp_path / f"hookd-{len(self._started) + 1}.log"
        argv = [*command, "--port", str(port), "--db", str(db), "--workers", str(workers)]
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=cwd,
                env=clean_environ(**(self._settings | settings)),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=None if open_files is None else partial(limit_open_files, open_files),
            )
        process = HookdProcess(popen, port, db, log_path)
        self._started.append(process)
        process.wait_ready()
        return process

    def close(self) -> None:
        for process in self._started:
            if process.popen.poll() is None:
                process.kill()

    def __enter__(self) -> HookdProcesses:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


async def start(processes: HookdProcesses, **options: Any) -> HookdProcess:
    """`processes.start`, from a test's event loop (off it, so loop-served fakes keep answering)."""
    return await asyncio.to_thread(processes.start, **options)
