"""hookd's benchmark, in one command: `python bench/run.py` (about 80 s, plus 50 s per extra --sync).

It starts the fake model (tests/fake_llm.py), then, each as its own process on 127.0.0.1:

1. accepts: the bare aiohttp handler (bench/bare.py) and hookd's webhook, side by side,
   under the same load (bench/load.py, --connections at once, --duration-s), in
   alternating order (bare, hookd, hookd, bare, …); each keeps its best round;
2. end to end: --e2e-tasks webhooks to a fresh hookd whose agent's model answers at once,
   timed from the first request until every task is final;
3. slow model: --slow-runs webhooks at once to a fresh hookd with --slow-workers workers,
   the model answering after 2 s; wall time until all are final, and hookd's peak RSS.

hookd's server process gets one core to itself; the load generator, the fake model and this
script share the other(s). The table goes to stdout, everything measured to
bench/results/latest.json. The exit code is 0 even when a target is missed: it is a report.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from procs import Fleet, Meter, Proc, free_port, pin, split_cores
from report import (
    Row,
    accept_rows,
    end_to_end_rows,
    format_table,
    latencies,
    machine,
    noise_rows,
    per_s,
    save,
    seconds,
    slow_rows,
    summary,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS_PATH = REPO / "bench" / "results" / "latest.json"
ADMIN_KEY = "bench-admin-key-not-a-secret"

INSTANT_MODEL = "ok"  # tests/fake_llm.py: the model name picks the behaviour
SLOW_MODEL_S = 2.0

POLL_S = 0.05
STALL_S = 5.0  # no task finished for this long: check whether hookd still answers

# urllib would send 127.0.0.1 through an http_proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(method: str, url: str, body: Any = None, timeout_s: float = 5.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_KEY}"}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class Hookd:
    proc: Proc
    db: Path

    def create_agent(self, model: str) -> str:
        """The webhook URL of a new agent using `model`."""
        body = {"name": "bench", "prompt": "Be brief.", "llm": {"model": model}}
        status, agent = http_json("POST", self.proc.url + "/api/agents", body)
        if status != 201:
            raise RuntimeError(f"creating the agent answered {status}: {agent}")
        return str(agent["webhook_url"])

    def answers(self) -> bool:
        """Whether /api/health answers within 3 s: a stuck event loop answers nothing."""
        try:
            status, _ = http_json("GET", self.proc.url + "/api/health", timeout_s=3.0)
        except (OSError, ValueError):
            return False
        return status == 200

    def query_one(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
        """One row, read from the database file as another process sees it (read-only)."""
        with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)) as conn:
            row: tuple[Any, ...] = conn.execute(sql, params).fetchone()
            return row

    def task_totals(self) -> dict[str, Any]:
        count, succeeded, failed, first_started, last_started, last_finished = self.query_one(
            "SELECT count(*), total(status = 'SUCCESS'), total(status = 'FAILURE'),"
            " min(started_at), max(started_at), max(finished_at) FROM tasks"
        )
        (failure,) = self.query_one("SELECT result FROM tasks WHERE status = 'FAILURE' LIMIT 1") or (None,)
        return {
            "tasks": count,
            "success": int(succeeded),
            "failure": int(failed),
            "first_started_epoch_s": first_started,
            "last_started_epoch_s": last_started,
            "last_finished_epoch_s": last_finished,
            "a_failure": failure,
        }


class Bench:
    def __init__(self, args: argparse.Namespace, fleet: Fleet, tmp_dir: Path) -> None:
        self.args = args
        self.fleet = fleet
        self.tmp_dir = tmp_dir
        self.cores = set(os.sched_getaffinity(0))
        self.server_cores, self.load_cores = split_cores(pin=not args.no_pin)
        self.fake: Proc | None = None
        self._serial = itertools.count(1)
        self.fake_url = ""
        self.rss_limit_kb = args.rss_limit_mb * 1024

    def say(self, text: str) -> None:
        print(text, flush=True)

    # -- processes ---------------------------------------------------------------------

    def start_fake(self) -> None:
        port = free_port()
        proc = Proc(
            "fake model",
            [sys.executable, "tests/fake_llm.py", str(port)],
            cwd=REPO,
            log_path=self.tmp_dir / "fake_llm.log",
            cores=self.load_cores,
            port=port,
        )
        self.fleet.start(proc).wait_listening()
        self.fake = proc
        self.fake_url = proc.url + "/v1"

    def start_hookd(self, label: str, *, workers: int, sync: str) -> Hookd:
        name = f"{next(self._serial):02d}-{label}"
        port, db = free_port(), self.tmp_dir / f"{name}.db"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
        env |= {
            "HOOKD_ADMIN_KEY": ADMIN_KEY,
            "HOOKD_LOG_LEVEL": "warning",
            "HOOKD_LLM_BASE_URL": self.fake_url,
            "HOOKD_SHUTDOWN_GRACE_S": "0",  # between phases, stop at once
        }
        argv = [sys.executable, "server.py", "--port", str(port), "--db", str(db)]
        argv += ["--workers", str(workers), "--sync", sync]
        proc = Proc(
            f"hookd {label}", argv, cwd=REPO, env=env, log_path=db.with_suffix(".log"),
            cores=self.server_cores, port=port,
        )  # fmt: skip
        self.fleet.start(proc).wait_listening()
        return Hookd(proc, db)

    def start_bare(self) -> Proc:
        port = free_port()
        proc = Proc(
            "bare",
            [sys.executable, "bench/bare.py", str(port), "warning"],
            cwd=REPO,
            log_path=self.tmp_dir / f"{next(self._serial):02d}-bare.log",
            cores=self.server_cores,
            port=port,
        )
        self.fleet.start(proc).wait_listening()
        return proc

    def meter(self, server: Proc) -> Meter:
        assert self.fake is not None
        return Meter(self.cores, [server, self.fake])

    def stop(self, proc: Proc, *, stuck: bool = False) -> None:
        proc.kill() if stuck else proc.stop()

    def guard_rss(self, proc: Proc) -> str:
        """Kill a server whose memory runs away (a stuck event loop can grow by 100 MB/s)."""
        rss_kb = proc.memory_kb("VmRSS")
        if rss_kb is not None and rss_kb > self.rss_limit_kb:
            proc.kill()
            return f"killed by the benchmark at {rss_kb / 1024:,.0f} MB RSS (--rss-limit-mb)"
        if not proc.alive():
            return f"exited with {proc.popen.returncode}: {proc.log_tail(5)}"
        return ""

    def load(self, url: str, server: Proc, *options: str) -> dict[str, Any]:
        """Run bench/load.py against `url`, watching the server; its JSON plus the server's CPU %."""
        argv = [sys.executable, "bench/load.py", url, *options]
        cpu_start_s, wall_start_s = server.cpu_s(), time.monotonic()
        popen = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pin(popen.pid, self.load_cores)
        server_note = ""
        try:
            while True:
                try:
                    out, err = popen.communicate(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    server_note = server_note or self.guard_rss(server)
        finally:
            if popen.poll() is None:
                popen.kill()
                popen.wait()
        if popen.returncode != 0:
            raise RuntimeError(f"the load generator failed:\n{err}")
        result: dict[str, Any] = json.loads(out)
        result["server_cpu_s"] = server.cpu_s() - cpu_start_s
        result["server_cpu_pct"] = 100 * result["server_cpu_s"] / (time.monotonic() - wall_start_s)
        # CPU per answer varies much less with a busy machine than answers per second do.
        ok = result["ok_total"]
        result["server_cpu_us_per_ok"] = 1e6 * result["server_cpu_s"] / ok if ok else None
        result["server_note"] = server_note
        return result

    def wait_final(self, hookd: Hookd, timeout_s: float) -> str:
        """Wait until every task in the database is final; "" then, else why it stopped waiting."""
        deadline_s = time.monotonic() + timeout_s
        last_count, last_change_s = -1, time.monotonic()
        with contextlib.closing(sqlite3.connect(f"file:{hookd.db}?mode=ro", uri=True, timeout=10)) as conn:
            (expected,) = conn.execute("SELECT count(*) FROM tasks").fetchone()
            while True:
                if note := self.guard_rss(hookd.proc):
                    return note
                (count,) = conn.execute(
                    "SELECT count(*) FROM tasks WHERE status IN ('SUCCESS', 'FAILURE')"
                ).fetchone()
                now_s = time.monotonic()
                if count >= expected:
                    return ""
                if count != last_count:
                    last_count, last_change_s = count, now_s
                elif now_s - last_change_s > STALL_S and not hookd.answers():
                    return f"hookd stopped answering (/api/health) with {count} of {expected} tasks final"
                if now_s > deadline_s:
                    return f"gave up after {timeout_s:g} s with {count} of {expected} tasks final"
                time.sleep(POLL_S)

    # -- phases ------------------------------------------------------------------------

    def accept_round(self, target: str) -> dict[str, Any]:
        a = self.args
        options = ["--connections", str(a.connections), "--duration-s", str(a.duration_s)]
        options += ["--warmup-s", str(a.warmup_s)]
        if target == "bare":
            proc = self.start_bare()
            meter = self.meter(proc)
            result = self.load(proc.url + "/api/webhooks/agents/" + "x" * 43, proc, *options)
            result |= meter.stop()
            self.stop(proc)
        else:
            sync = target.removeprefix("hookd-")
            hookd = self.start_hookd(target, workers=a.accept_workers, sync=sync)
            url = hookd.create_agent(INSTANT_MODEL)
            meter = self.meter(hookd.proc)
            result = self.load(url, hookd.proc, *options)
            result |= meter.stop()
            stuck = bool(result["server_note"]) or not hookd.proc.alive() or not hookd.answers()
            if stuck and not result["server_note"]:
                result["server_note"] = "hookd stopped answering (/api/health timed out)"
            window_start = result["window_start_epoch_s"]
            (result["runs_finished_in_window"],) = hookd.query_one(
                "SELECT count(*) FROM tasks WHERE finished_at BETWEEN ? AND ?",
                (window_start, window_start + a.duration_s),
            )
            self.stop(hookd.proc, stuck=stuck)
        self.say(
            f"  {target:12} {per_s(result['rps']):>9}  {latencies(result)}  errors {result['errors']}"
            f"  (CPU: server {result['server_cpu_pct']:.0f}%, load client {result['client_cpu_pct']:.0f}%;"
            f" {machine(result)})" + (f"  !! {result['server_note']}" if result["server_note"] else "")
        )
        return result

    def accepts(self) -> dict[str, list[dict[str, Any]]]:
        targets = ["bare", *(f"hookd-{mode}" for mode in self.args.sync)]
        self.say(
            f"[1/3] webhook accepts at {self.args.connections} connections,"
            f" {self.args.duration_s:g} s each, {self.args.rounds} rounds"
        )
        results: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
        for round_ in range(self.args.rounds):
            for target in targets if round_ % 2 == 0 else reversed(targets):
                results[target].append(self.accept_round(target))
        return results

    def end_to_end(self, sync: str) -> dict[str, Any]:
        a = self.args
        self.say(
            f"[2/3] end to end, sync={sync}: {a.e2e_tasks} webhooks, instant model, {a.e2e_workers} workers"
        )
        result = self._burst(
            f"e2e-{sync}", sync, workers=a.e2e_workers, model=INSTANT_MODEL, connections=a.connections,
            requests=a.e2e_tasks, deadline_s=30, timeout_s=10, final_within_s=120,
        )  # fmt: skip
        self.say(
            f"  accepts {per_s(result['rps'])}, tasks {per_s(result['tasks_per_s'])}:"
            f" {result['success']} SUCCESS, {result['failure']} FAILURE of {a.e2e_tasks}"
            f"  ({machine(result)})" + (f"  !! {result['wait_note']}" if result["wait_note"] else "")
        )
        return result

    def slow_runs(self, sync: str) -> dict[str, Any]:
        a = self.args
        self.say(
            f"[3/3] slow model, sync={sync}: {a.slow_runs} webhooks at once ({a.slow_connections}"
            f" connections), model answers after {SLOW_MODEL_S:g} s, {a.slow_workers} workers"
        )
        result = self._burst(
            f"slow-{sync}", sync, workers=a.slow_workers, model=f"sleep={SLOW_MODEL_S:g}",
            connections=a.slow_connections, requests=a.slow_runs, deadline_s=20, timeout_s=20,
            final_within_s=60,
        )  # fmt: skip
        self.say(
            f"  wall {seconds(result['wall_s'])}, peak RSS {result['peak_rss_mb'] or 0:.0f} MB:"
            f" {result['success']} SUCCESS, {result['failure']} FAILURE of {a.slow_runs}"
            f"  ({machine(result)})" + (f"  !! {result['wait_note']}" if result["wait_note"] else "")
        )
        return result

    def _burst(
        self, name: str, sync: str, *, workers: int, model: str, connections: int, requests: int,
        deadline_s: float, timeout_s: float, final_within_s: float,
    ) -> dict[str, Any]:  # fmt: skip
        """A fresh hookd whose agent uses `model`, sent `requests` webhooks as fast as it takes
        them; measured until every task is final, then stopped."""
        hookd = self.start_hookd(name, workers=workers, sync=sync)
        url = hookd.create_agent(model)
        idle_rss_kb = hookd.proc.memory_kb("VmRSS")
        meter = self.meter(hookd.proc)
        result = self.load(
            url, hookd.proc, "--connections", str(connections), "--requests", str(requests),
            "--deadline-s", str(deadline_s), "--timeout-s", str(timeout_s),
        )  # fmt: skip
        result["wait_note"] = result["server_note"] or self.wait_final(hookd, timeout_s=final_within_s)
        result |= meter.stop()
        result["idle_rss_mb"] = idle_rss_kb / 1024 if idle_rss_kb else None
        return result | self._finish(hookd, result)

    def _finish(self, hookd: Hookd, load: dict[str, Any]) -> dict[str, Any]:
        """Totals from the database, wall time, peak RSS; then stop this hookd."""
        peak_rss_kb = hookd.proc.memory_kb("VmHWM")
        totals = hookd.task_totals()
        first_send = load["first_send_epoch_s"]
        last_finished = totals["last_finished_epoch_s"]
        wall_s = last_finished - first_send if first_send and last_finished else float("nan")
        self.stop(hookd.proc, stuck=bool(load["wait_note"]))
        return totals | {
            "wall_s": wall_s,
            "tasks_per_s": totals["success"] / wall_s if wall_s == wall_s and wall_s > 0 else None,
            "peak_rss_mb": peak_rss_kb / 1024 if peak_rss_kb else None,
            "last_start_after_s": (totals["last_started_epoch_s"] or first_send) - first_send,
        }


def environment(tmp_dir: Path, bench: Bench) -> dict[str, Any]:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    mounts = [line.split() for line in Path("/proc/mounts").read_text().splitlines()]
    tmp = str(tmp_dir.resolve())
    fs = max((m for m in mounts if tmp.startswith(m[1])), key=lambda m: len(m[1]), default=["?", "?", "?"])
    return {
        "git_commit": git("rev-parse", "--short", "HEAD"),
        "git_dirty_files": len(git("status", "--porcelain", "--", ".", ":!bench").splitlines()),
        "python": platform.python_version(),
        "aiohttp": metadata.version("aiohttp"),
        "aiosqlite": metadata.version("aiosqlite"),
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "server_cores": sorted(bench.server_cores) if bench.server_cores else "any",
        "load_cores": sorted(bench.load_cores) if bench.load_cores else "any",
        "db_filesystem": f"{fs[2]} ({fs[1]})",
        "loadavg_at_start": os.getloadavg(),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=10.0, help="per accept measurement")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="before each accept measurement")
    parser.add_argument("--connections", type=int, default=64, help="for accepts and end to end")
    parser.add_argument("--rounds", type=int, default=3, help="accept rounds, alternating the order")
    parser.add_argument(
        "--sync", nargs="+", choices=("full", "normal"), default=["full"], help="HOOKD_SYNC values to run"
    )
    parser.add_argument("--accept-workers", type=int, default=8, help="HOOKD_WORKERS for accepts")
    parser.add_argument("--e2e-tasks", type=int, default=5000)
    parser.add_argument("--e2e-workers", type=int, default=8, help="HOOKD_WORKERS end to end")
    parser.add_argument("--slow-runs", type=int, default=1000)
    parser.add_argument("--slow-workers", type=int, default=1000, help="HOOKD_WORKERS for slow runs")
    parser.add_argument("--slow-connections", type=int, default=1000)
    parser.add_argument(
        "--phases", default="accepts,e2e,slow", help="comma-separated subset of accepts,e2e,slow"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--rss-limit-mb", type=int, default=1024, help="kill a server growing past this")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the databases and server logs")
    return parser.parse_args(argv)


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    phases = set(args.phases.split(","))
    tmp_dir = Path(tempfile.mkdtemp(prefix="hookd-bench-"))
    rows: list[Row] = []
    raw: dict[str, Any] = {"args": vars(args)}
    started_s = time.monotonic()
    try:
        with Fleet().running() as fleet:
            bench = Bench(args, fleet, tmp_dir)
            meta = environment(tmp_dir, bench)
            if bench.load_cores:
                os.sched_setaffinity(0, bench.load_cores)  # this script polls from the load side
            bench.say(
                f"hookd {meta['git_commit']} (+{meta['git_dirty_files']} uncommitted files outside bench/),"
                f" Python {meta['python']}, aiohttp {meta['aiohttp']},"
                f" hookd on core(s) {meta['server_cores']}, load on {meta['load_cores']},"
                f" databases on {meta['db_filesystem']}, load average {meta['loadavg_at_start'][0]:.2f}"
            )
            bench.start_fake()
            if "accepts" in phases:
                raw["accepts"] = bench.accepts()
                rows += accept_rows(raw["accepts"], args.connections)
            for sync in args.sync:
                if "e2e" in phases:
                    raw[f"e2e-{sync}"] = result = bench.end_to_end(sync)
                    rows += end_to_end_rows(result, sync, args.e2e_tasks)
                if "slow" in phases:
                    raw[f"slow-{sync}"] = result = bench.slow_runs(sync)
                    rows += slow_rows(result, sync, args.slow_runs, SLOW_MODEL_S)
            rows += noise_rows(raw)
    finally:
        if args.keep_tmp:
            print(f"databases and logs kept in {tmp_dir}")
        else:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    meta["runtime_s"] = round(time.monotonic() - started_s, 1)
    meta["loadavg_at_end"] = os.getloadavg()
    save(RESULTS_PATH, meta, rows, raw)
    print()
    print(format_table(rows))
    print()
    print(summary(rows))
    print(f"Took {meta['runtime_s']:.0f} s; all figures in {RESULTS_PATH.relative_to(REPO)}.")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit("interrupted; every process the benchmark started has been stopped")
