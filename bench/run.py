"""hookd's benchmark, in one command: `python bench/run.py` (a few minutes; --phases picks some).

It starts the fake model (tests/fake_llm.py), then, each as its own process on 127.0.0.1:

accepts  the bare aiohttp handler (bench/bare.py) and hookd's webhook, side by side under the
         same load (bench/load.py, --connections at once, --duration-s), in alternating
         order, --rounds each; hookd on an empty database and on one of 1,000,000 tasks.
status   GET /api/task_status against the bare GET handler, and hookd on a database of
         1,000 tasks and on the one of 1,000,000, the same way.
e2e      --e2e-tasks webhooks to a fresh hookd whose agent's model answers at once, timed
         from the first request until every task is final.
slow     --slow-runs webhooks as fast as hookd takes them, --slow-workers workers, the
         model answering after 2 s; wall time until all are final, and hookd's peak RSS.
startup  hookd started on a database holding 100,000 PENDING tasks: time until
         /api/health answers, and its memory then, against an empty database.

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
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any

import dbs
from procs import Fleet, Meter, Proc, free_port, pin, split_cores, wait_quiet
from report import (
    Row,
    accept_rows,
    baseline_rows,
    end_to_end_rows,
    format_table,
    latencies,
    machine,
    noise_rows,
    per_s,
    save,
    seconds,
    slow_rows,
    startup_rows,
    status_rows,
    summary,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS_PATH = REPO / "bench" / "results" / "latest.json"
ADMIN_KEY = "bench-admin-key-not-a-secret"
WEBHOOK_PATH = "/api/webhooks/agents/"

INSTANT_MODEL = "ok"  # tests/fake_llm.py: the model name picks the behaviour
SLOW_MODEL_S = 2.0
HELD_MODEL = "sleep=3600"  # runs that never finish during a measurement: workers stay out of it
BIG_TASKS = 1_000_000
SMALL_TASKS = 1_000
QUEUED_TASKS = 100_000
STATUS_IDS = 10_000
ACCEPT_MAX_PENDING = 10_000_000  # the accept rounds queue more than the default 100,000

POLL_S = 0.05
STALL_S = 5.0  # no task finished for this long: check whether hookd still answers
PHASES = ("accepts", "status", "e2e", "slow", "startup")

# urllib would send 127.0.0.1 through an http_proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_json(method: str, url: str, timeout_s: float = 5.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    try:
        with _opener.open(request, timeout=timeout_s) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@dataclass
class Hookd:
    proc: Proc
    db: Path

    @property
    def webhook_url(self) -> str:
        return self.proc.url + WEBHOOK_PATH + dbs.TOKEN

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
        self._big: dbs.BenchDb | None = None

    def say(self, text: str) -> None:
        print(text, flush=True)

    # -- databases ---------------------------------------------------------------------

    def fresh_db(self, label: str, model: str, tasks: int = 0, status: str = "SUCCESS") -> dbs.BenchDb:
        path = self.tmp_dir / f"{next(self._serial):02d}-{label}.db"
        return dbs.prepared(path, tasks, status, model, say=self.say)

    def big_db(self) -> dbs.BenchDb:
        """The 1,000,000-task database, copied once per run and trimmed back after each use."""
        if self._big is None:
            self._big = dbs.prepared(self.tmp_dir / "big.db", BIG_TASKS, "SUCCESS", HELD_MODEL, say=self.say)
        return self._big

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

    def spawn_hookd(
        self,
        label: str,
        db: Path,
        *,
        workers: int,
        sync: str,
        max_pending: int | None = None,
        root: Path = REPO,
    ) -> Proc:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKD_")}
        env |= {
            "HOOKD_ADMIN_KEY": ADMIN_KEY,
            "HOOKD_LOG_LEVEL": "warning",
            "HOOKD_LLM_BASE_URL": self.fake_url,
            "HOOKD_SHUTDOWN_GRACE_S": "0",  # between phases, stop at once
        }
        port = free_port()
        argv = [sys.executable, "server.py", "--port", str(port), "--db", str(db)]
        argv += ["--workers", str(workers), "--sync", sync]
        if max_pending is not None:
            argv += ["--max-pending", str(max_pending)]
        proc = Proc(
            f"hookd {label}", argv, cwd=root, env=env, log_path=db.with_suffix(".log"),
            cores=self.server_cores, port=port,
        )  # fmt: skip
        return self.fleet.start(proc)

    def start_hookd(self, label: str, db: Path, **options: Any) -> Hookd:
        """`spawn_hookd`, once it listens."""
        proc = self.spawn_hookd(label, db, **options)
        proc.wait_listening()
        return Hookd(proc, db)

    def start_bare(self, commit_sync: str | None = None, read_db: Path | None = None) -> Proc:
        """The bare handlers; with `commit_sync`, the webhook commits a row first; with `read_db`,
        task status reads its row from that database."""
        port = free_port()
        serial = next(self._serial)
        floor = (
            []
            if commit_sync is None
            else ["--commit", str(self.tmp_dir / f"{serial:02d}-bare.db"), commit_sync]
        )
        floor += [] if read_db is None else ["--read", str(read_db)]
        proc = Proc(
            "bare",
            [sys.executable, "bench/bare.py", str(port), "warning", *floor],
            cwd=REPO,
            log_path=self.tmp_dir / f"{serial:02d}-bare.log",
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

    def sustained(self, url: str, server: Proc, client: str, get_ids: Path | None = None) -> dict[str, Any]:
        a = self.args
        options = ["--client", client, "--connections", str(a.connections)]
        options += ["--duration-s", str(a.duration_s), "--warmup-s", str(a.warmup_s)]
        if get_ids is not None:
            options += ["--get-ids", str(get_ids)]
        meter = self.meter(server)
        result = self.load(url, server, *options)
        return result | meter.stop()

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

    def settle(self) -> None:
        """Before a measurement: with --quiet-wait-s, wait for other processes to calm down."""
        if self.args.quiet_wait_s > 0:
            started_s = time.monotonic()
            busy_pct = wait_quiet(self.args.quiet_wait_s)
            if time.monotonic() - started_s > 1.5:
                self.say(
                    f"  (waited {time.monotonic() - started_s:.0f} s for a quiet machine: {busy_pct:.0f}% busy)"
                )

    def rounds(self, targets: dict[str, Callable[[], dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        """--rounds of each target, in alternating order (a, b, c, c, b, a, …)."""
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
        names = list(targets)
        for round_ in range(self.args.rounds):
            for name in names if round_ % 2 == 0 else reversed(names):
                self.settle()
                results[name].append(result := targets[name]())
                self.say(
                    f"  {name:18} {per_s(result['rps']):>9}  {latencies(result)}  errors {result['errors']}"
                    f"  (CPU: server {result['server_cpu_pct']:.0f}%,"
                    f" {result['server_cpu_us_per_ok'] or 0:.0f} µs per answer;"
                    f" load client {result['client_cpu_pct']:.0f}%; {machine(result)})"
                    + (f"  !! {result['server_note']}" if result["server_note"] else "")
                )
        return results

    # -- phases ------------------------------------------------------------------------

    def bare_round(
        self,
        path: str,
        client: str,
        get_ids: Path | None = None,
        commit_sync: str | None = None,
        read_db: Path | None = None,
    ) -> dict[str, Any]:
        proc = self.start_bare(commit_sync, read_db)
        result = self.sustained(proc.url + path, proc, client, get_ids)
        self.stop(proc)
        return result

    def hookd_round(
        self, label: str, db: Path, sync: str, client: str, get_ids: Path | None = None, root: Path = REPO
    ) -> dict[str, Any]:
        """One measurement of a hookd on `db`; its agent's runs are held (the model never answers
        in time), so the 8 workers take no CPU from the requests measured."""
        hookd = self.start_hookd(label, db, workers=8, sync=sync, max_pending=ACCEPT_MAX_PENDING, root=root)
        url = hookd.webhook_url if get_ids is None else hookd.proc.url + "/api/task_status"
        result = self.sustained(url, hookd.proc, client, get_ids)
        stuck = bool(result["server_note"]) or not hookd.proc.alive() or not hookd.answers()
        if stuck and not result["server_note"]:
            result["server_note"] = "hookd stopped answering (/api/health timed out)"
        self.stop(hookd.proc, stuck=stuck)
        return result

    def accepts(self, client: str) -> dict[str, list[dict[str, Any]]]:
        a = self.args
        self.say(
            f"[accepts] webhooks at {a.connections} connections, {client} client, {a.duration_s:g} s each,"
            f" {a.rounds} rounds; hookd's runs held back"
        )
        big = self.big_db()

        def on_big() -> dict[str, Any]:
            try:
                return self.hookd_round("accepts-1m", big.path, a.sync[0], client)
            finally:
                dbs.trim(big.path, keep_rowids=BIG_TASKS)  # the next round finds 1,000,000 again

        targets: dict[str, Callable[[], dict[str, Any]]] = {
            "bare": partial(self.bare_round, WEBHOOK_PATH + "x" * 43, client),
            # The floor for a durable accept: the bare handler plus hookd's group commit.
            f"bare+commit sync={a.sync[0]}": partial(
                self.bare_round, WEBHOOK_PATH + "x" * 43, client, commit_sync=a.sync[0]
            ),
        }
        for sync in a.sync:
            targets[f"hookd sync={sync}"] = partial(self.accepts_on_empty, sync, client)
        targets[f"hookd 1M sync={a.sync[0]}"] = on_big
        return self.rounds(targets)

    def accepts_on_empty(self, sync: str, client: str) -> dict[str, Any]:
        db = self.fresh_db(f"accepts-{sync}", HELD_MODEL)
        return self.hookd_round(f"accepts-{sync}", db.path, sync, client)

    def status(self, client: str) -> dict[str, list[dict[str, Any]]]:
        a = self.args
        self.say(
            f"[status] GET /api/task_status at {a.connections} connections, {client} client,"
            f" {a.duration_s:g} s each, {a.rounds} rounds"
        )
        big = self.big_db()
        small = self.fresh_db("status-small", HELD_MODEL, SMALL_TASKS)
        big_ids, small_ids = self.tmp_dir / "big-ids.txt", self.tmp_dir / "small-ids.txt"
        big_ids.write_text("\n".join(dbs.sample_ids(big.path, STATUS_IDS)) + "\n")
        small_ids.write_text("\n".join(dbs.sample_ids(small.path, STATUS_IDS)) + "\n")
        sync = a.sync[0]
        return self.rounds(
            {
                "bare GET": partial(self.bare_round, "/api/task_status", client, small_ids),
                # The floor for an answer read from the database: the bare handler plus the row.
                "bare+read 1M": partial(
                    self.bare_round, "/api/task_status", client, big_ids, read_db=big.path
                ),
                f"hookd {SMALL_TASKS:,} tasks": partial(
                    self.hookd_round, "status-small", small.path, sync, client, small_ids
                ),
                "hookd 1M tasks": partial(self.hookd_round, "status-1m", big.path, sync, client, big_ids),
            }
        )

    def baseline_db(self, label: str, tasks: int) -> Path:
        """A database built by the baseline checkout's own bench/dbs.py, in its own schema."""
        path = self.tmp_dir / f"{next(self._serial):02d}-baseline-{label}.db"
        build = (
            "import sys; from pathlib import Path; sys.path.insert(0, '.'); from bench import dbs;"
            " dbs.build(Path(sys.argv[1]), int(sys.argv[2]), 'SUCCESS', sys.argv[3])"
        )
        argv = [sys.executable, "-c", build, str(path), str(tasks), HELD_MODEL]
        subprocess.run(argv, cwd=self.args.baseline, check=True, capture_output=True)
        return path

    def against_baseline(self, client: str) -> dict[str, list[dict[str, Any]]]:
        """This checkout's hookd and the --baseline checkout's, in alternating rounds of the same
        load: webhook accepts on an empty database, and task status on 1,000 tasks."""
        a, base = self.args, Path(self.args.baseline)
        self.say(f"[baseline] this hookd against {base}, {client} client, {a.rounds} rounds each")
        small = self.fresh_db("ab-status", HELD_MODEL, SMALL_TASKS)
        small_ids = self.tmp_dir / "ab-ids.txt"
        small_ids.write_text("\n".join(dbs.sample_ids(small.path, STATUS_IDS)) + "\n")
        base_small = self.baseline_db("status", SMALL_TASKS)
        base_ids = self.tmp_dir / "ab-base-ids.txt"
        base_ids.write_text("\n".join(dbs.sample_ids(base_small, STATUS_IDS)) + "\n")
        sync = a.sync[0]

        def accepts(root: Path) -> dict[str, Any]:
            db = (
                self.fresh_db("ab-accepts", HELD_MODEL).path
                if root == REPO
                else self.baseline_db("accepts", 0)
            )
            return self.hookd_round("ab-accepts", db, sync, client, root=root)

        return self.rounds(
            {
                "hookd accepts": partial(accepts, REPO),
                "baseline accepts": partial(accepts, base),
                "hookd status": partial(self.hookd_round, "ab-status", small.path, sync, client, small_ids),
                "baseline status": partial(
                    self.hookd_round, "ab-status", base_small, sync, client, base_ids, root=base
                ),
            }
        )

    def end_to_end(self, sync: str) -> dict[str, Any]:
        a = self.args
        self.say(f"[e2e] sync={sync}: {a.e2e_tasks} webhooks, instant model, {a.e2e_workers} workers")
        result = self._burst(
            f"e2e-{sync}", sync, workers=a.e2e_workers, model=INSTANT_MODEL, connections=a.connections,
            requests=a.e2e_tasks, deadline_s=60, timeout_s=10, final_within_s=120,
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
            f"[slow] sync={sync}: {a.slow_runs} webhooks over {a.slow_connections} connections,"
            f" model answers after {SLOW_MODEL_S:g} s, {a.slow_workers} workers"
        )
        ideal_s = SLOW_MODEL_S * -(-a.slow_runs // a.slow_workers)
        result = self._burst(
            f"slow-{sync}", sync, workers=a.slow_workers, model=f"sleep={SLOW_MODEL_S:g}",
            connections=a.slow_connections, requests=a.slow_runs, deadline_s=ideal_s + 60, timeout_s=ideal_s + 30,
            final_within_s=ideal_s + 60,
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
        db = self.fresh_db(name, model)
        self.settle()
        hookd = self.start_hookd(name, db.path, workers=workers, sync=sync)
        idle_rss_kb = hookd.proc.memory_kb("VmRSS")
        meter = self.meter(hookd.proc)
        result = self.load(
            hookd.webhook_url, hookd.proc, "--connections", str(connections), "--requests", str(requests),
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

    def startup(self) -> dict[str, list[dict[str, Any]]]:
        a = self.args
        self.say(f"[startup] hookd on {QUEUED_TASKS:,} PENDING tasks and on none, {a.rounds} rounds")
        results: dict[str, list[dict[str, Any]]] = {"empty": [], "queued": []}
        for round_ in range(a.rounds):
            for label in ("empty", "queued") if round_ % 2 == 0 else ("queued", "empty"):
                tasks = QUEUED_TASKS if label == "queued" else 0
                db = self.fresh_db(f"startup-{label}", HELD_MODEL, tasks, "PENDING")
                self.settle()
                results[label].append(result := self.start_once(label, db.path))
                self.say(
                    f"  {label:7} /api/health after {seconds(result['ready_s'])},"
                    f" RSS then {result['rss_mb']:.0f} MB, peak {result['peak_rss_mb']:.0f} MB"
                    f" ({machine(result)})"
                )
        return results

    def start_once(self, label: str, db: Path) -> dict[str, Any]:
        """Start hookd on `db`; seconds until /api/health answers, and its memory then and a second on."""
        started_s = time.monotonic()
        proc = self.spawn_hookd(f"startup-{label}", db, workers=8, sync=self.args.sync[0])
        meter = Meter(self.cores, [proc])
        ready_s = None
        while time.monotonic() - started_s < 30 and proc.alive():
            with contextlib.suppress(OSError, ValueError):
                if http_json("GET", f"http://127.0.0.1:{proc.port}/api/health", timeout_s=1.0)[0] == 200:
                    ready_s = time.monotonic() - started_s
                    break
            time.sleep(0.005)
        rss_kb = proc.memory_kb("VmRSS") or 0
        time.sleep(1.0)  # the dispatcher's first claims, the first safety poll
        peak_kb = proc.memory_kb("VmHWM") or 0
        result = {"ready_s": ready_s, "rss_mb": rss_kb / 1024, "peak_rss_mb": peak_kb / 1024}
        result |= meter.stop()
        self.stop(proc)
        return result


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
    parser.add_argument(
        "--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}"
    )
    parser.add_argument("--duration-s", type=float, default=4.0, help="per accept and status measurement")
    parser.add_argument("--warmup-s", type=float, default=1.0, help="before each of those")
    parser.add_argument("--connections", type=int, default=64, help="for accepts, status and e2e")
    parser.add_argument(
        "--rounds", type=int, default=3, help="of accepts, status and startup; the median counts"
    )
    parser.add_argument(
        "--clients",
        nargs="+",
        choices=("aiohttp", "raw"),
        default=["aiohttp", "raw"],
        help="load clients for accepts and status, each a full set of rounds",
    )
    parser.add_argument(
        "--sync", nargs="+", choices=("full", "normal"), default=["full"], help="HOOKD_SYNC values to run"
    )
    parser.add_argument("--repeats", type=int, default=1, help="of e2e and slow; the median counts")
    parser.add_argument("--e2e-tasks", type=int, default=5000)
    parser.add_argument("--e2e-workers", type=int, default=8, help="HOOKD_WORKERS end to end")
    parser.add_argument("--slow-runs", type=int, default=10_000)
    parser.add_argument("--slow-workers", type=int, default=1000, help="HOOKD_WORKERS for slow runs")
    parser.add_argument("--slow-connections", type=int, default=1000)
    parser.add_argument(
        "--quiet-wait-s",
        type=float,
        default=0.0,
        help="before each measurement, wait up to this long for the machine to be under 10%% busy",
    )
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="another checkout of hookd (e.g. `git worktree add /tmp/base HEAD~5`): its hookd is"
        " measured against this one in alternating rounds of accepts and status, on databases its own"
        " bench/dbs.py builds",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--rss-limit-mb", type=int, default=1024, help="kill a server growing past this")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the databases and server logs")
    args = parser.parse_args(argv)
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {', '.join(PHASES)}")
    return args


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
            for client in args.clients if "accepts" in phases else []:
                raw[f"accepts-{client}"] = result = bench.accepts(client)
                rows += accept_rows(result, args.connections, client)
            for client in args.clients if "status" in phases else []:
                raw[f"status-{client}"] = result = bench.status(client)
                rows += status_rows(result, args.connections, client)
            for client in args.clients if args.baseline else []:
                raw[f"baseline-{client}"] = result = bench.against_baseline(client)
                rows += baseline_rows(result, client)
            for sync in args.sync:
                if "e2e" in phases:
                    raw[f"e2e-{sync}"] = results = [bench.end_to_end(sync) for _ in range(args.repeats)]
                    rows += end_to_end_rows(results, sync, args.e2e_tasks)
                if "slow" in phases:
                    raw[f"slow-{sync}"] = results = [bench.slow_runs(sync) for _ in range(args.repeats)]
                    rows += slow_rows(results, sync, args.slow_runs, args.slow_workers, SLOW_MODEL_S)
            if "startup" in phases:
                raw["startup"] = bench.startup()
                rows += startup_rows(raw["startup"], QUEUED_TASKS)
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
