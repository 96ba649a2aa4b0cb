"""The benchmark's processes: start them on chosen cores, watch their CPU and memory, stop them.

Linux only: CPU time and memory come from /proc/<pid>/stat and /proc/<pid>/status.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def split_cores(pin: bool) -> tuple[set[int] | None, set[int] | None]:
    """(server cores, load cores): the server under test alone on one core, the rest for load.

    The load side holds the load generator, the fake model and this script: everything
    that stands for the outside world. Without two cores (or with pin=False) nothing is pinned.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if not pin or len(allowed) < 2:
        return None, None
    return {allowed[0]}, set(allowed[1:])


def pin(pid: int, cores: set[int] | None) -> None:
    """Pin every thread the process has now; threads it starts later inherit the mask."""
    if cores is None:
        return
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(tid), cores)


def cpu_jiffies(cores: set[int] | None) -> tuple[int, int, int]:
    """(busy, steal, total) clock ticks so far, summed over `cores` (all when None).

    Busy is user + nice + system time: what processes used. Interrupt time (loopback
    networking) and steal (other virtual machines on the host) are left out of it.
    """
    busy = steal = total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cores is not None and int(name[3:]) not in cores:
            continue
        ticks = [int(f) for f in fields[:8]]
        busy += ticks[0] + ticks[1] + ticks[2]
        steal += ticks[7]
        total += sum(ticks)
    return busy, steal, total


def wait_quiet(max_wait_s: float, busy_pct: float = 10.0, window_s: float = 1.0) -> float:
    """Wait up to `max_wait_s` for a `window_s` in which the machine is less than `busy_pct`
    busy (between measurements, the benchmark's own processes are idle: the rest is others).
    Returns how busy the last window was."""
    deadline_s = time.monotonic() + max_wait_s
    while True:
        busy, _, total = cpu_jiffies(None)
        time.sleep(window_s)
        busy_after, _, total_after = cpu_jiffies(None)
        pct = 100 * (busy_after - busy) / max(1, total_after - total)
        if pct < busy_pct or time.monotonic() >= deadline_s:
            return pct


def listen_overflows() -> int:
    """Connections the kernel dropped, machine-wide, because a listen queue was full."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["ListenOverflows"])
    return 0


def children_cpu_s() -> float:
    """CPU time of the child processes that have ended and been waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Proc:
    """One child process, its log file, and what /proc says about it."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        log_path: Path,
        cores: set[int] | None,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.log_path = log_path
        self.cores = cores
        self._last_cpu_s = 0.0
        with log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                list(argv), cwd=cwd, env=dict(env) if env is not None else None, stdout=log, stderr=log
            )
        pin(self.popen.pid, cores)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def wait_listening(self, timeout_s: float = 20.0) -> None:
        """Wait until the port accepts connections; raise with the log's tail if it never does."""
        assert self.port is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                pin(self.pid, self.cores)  # catch threads started during start-up too
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.name} is not listening after {timeout_s:g} s:\n{self.log_tail()}")

    def cpu_s(self) -> float:
        """User + system CPU time of all its threads so far (the last seen, once it has ended)."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except FileNotFoundError:
            return self._last_cpu_s
        fields = stat.rsplit(")", 1)[1].split()  # the command name may hold spaces
        self._last_cpu_s = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S
        return self._last_cpu_s

    def memory_kb(self, field: str) -> int | None:
        """A line of /proc/<pid>/status in kB: VmRSS is now, VmHWM is the peak so far."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except FileNotFoundError:
            return None
        for line in status.splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `grace_s` (a stuck event loop never handles SIGTERM)."""
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.alive():
            self.popen.kill()
        self.popen.wait()


class Meter:
    """Over a span: how much CPU everything else on the machine took from the benchmark.

    Other processes on the benchmark's cores (or steal by other virtual machines) make
    every figure lower and noisier; the report shows how much of that there was.
    """

    def __init__(self, cores: set[int], procs: Sequence[Proc]) -> None:
        self.cores = cores
        self.procs = list(procs)
        self._start = self._sample()

    def _sample(self) -> tuple[float, tuple[int, int, int], int]:
        ours_s = sum(p.cpu_s() for p in self.procs) + time.process_time() + children_cpu_s()
        return ours_s, cpu_jiffies(self.cores), listen_overflows()

    def stop(self) -> dict[str, float]:
        ours_s, (busy, steal, total), overflows = self._sample()
        start_ours_s, (start_busy, start_steal, start_total), start_overflows = self._start
        total = max(1, total - start_total)
        others = (busy - start_busy) - (ours_s - start_ours_s) * CLOCK_TICKS_PER_S
        return {
            "other_cpu_pct": max(0.0, 100 * others / total),
            "steal_pct": 100 * (steal - start_steal) / total,
            "listen_overflows": overflows - start_overflows,
        }


class Fleet:
    """Every process the benchmark started, so that all of them stop however the run ends."""

    def __init__(self) -> None:
        self.procs: list[Proc] = []

    def start(self, proc: Proc) -> Proc:
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            try:
                proc.stop(grace_s=3.0)
            except Exception:
                proc.kill()
        self.procs.clear()

    @contextlib.contextmanager
    def running(self) -> Iterator[Fleet]:
        # SIGTERM to the benchmark unwinds like Ctrl-C, so the finally below still runs.
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            yield self
        finally:
            self.stop_all()
            signal.signal(signal.SIGTERM, previous)
