"""Where hookd's CPU goes under load: its threads' CPU time, and py-spy samples of its Python code.

    pip install py-spy
    python bench/profile.py accepts        # webhooks, runs held back (as the accept figures)
    python bench/profile.py status         # GET /api/task_status on 1,000 tasks
    python bench/profile.py runs           # the worker pool draining 30,000 tasks, instant model

hookd, the fake model and the load (the raw client, 64 connections) are started and pinned
as by bench/run.py. Two views of the same seconds:

- CPU per answer (or per run) of each of hookd's threads, from /proc: the event loop, the
  SQLite writer (inserts, commits; SQLite's C code runs there without the GIL), the reader.
- py-spy's samples of whichever thread holds the GIL (100 a second): the
  Python functions that cost the CPU, "self" for a function's own code, "total" with what it
  calls. The raw samples stay in bench/results/profile-<what>.txt (speedscope reads them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dbs
from procs import CLOCK_TICKS_PER_S, Fleet, pin
from run import HELD_MODEL, INSTANT_MODEL, REPO, WEBHOOK_PATH, Bench, parse_args

RESULTS = REPO / "bench" / "results"
RUNS_QUEUED = 30_000
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*)\)$")
_DUMP_THREAD = re.compile(r'^Thread (?P<tid>\d+) \([^)]*\): "(?P<name>[^"]*)"', re.MULTILINE)


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of `pid`."""
    found = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(FileNotFoundError):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            found[int(task.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S
    return found


def thread_names(pid: int) -> dict[int, str]:
    """Native thread id -> what the thread is, from `py-spy dump`."""
    dump = subprocess.run(["py-spy", "dump", "--pid", str(pid)], capture_output=True, text=True).stdout
    names = {}
    for match in _DUMP_THREAD.finditer(dump):
        name = match["name"]
        if name == "MainThread":
            name = "event loop"
        elif "sqlite-writer" in name:
            name = "SQLite writer"
        elif "connection_worker" in name:
            name = "SQLite reader (aiosqlite)"
        names[int(match["tid"])] = name
    return names


def short(frame: str) -> str:
    """'function (file)', the file cut to the part after site-packages or the repository."""
    match = _FRAME.match(frame)
    if not match:
        return frame
    path = match["file"].split("site-packages/")[-1].removeprefix(str(REPO) + "/")
    return f"{match['function']} ({path})"


def area(name: str) -> str:
    """Which code a function belongs to: one of hookd's files, or the library it comes from."""
    path = name.rpartition("(")[2].rstrip(")").rpartition(":")[0]
    top = path.split("/")[0]
    if top in ("api", "tasks", "agents") or path in ("server.py", "settings.py", "errors.py", "cli.py"):
        return f"hookd: {path}"
    if top in ("aiohttp", "yarl", "multidict", "aiosqlite"):
        return top
    return "Python's standard library (asyncio, json, threads, …)"


def python_profile(raw: Path, top: int) -> list[str]:
    own: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        frames = stack.split(";")[1:]  # [0] is the thread
        if frames:
            count = int(count_text)
            samples += count
            own[short(frames[-1])] += count
    if not samples:
        return ["py-spy took no samples"]
    # Only each sample's innermost frame is used: sampling without pausing hookd sometimes
    # reads just the top of a stack, so time "with what a function calls" is not reliable.
    by_area: Counter[str] = Counter()
    for name, n in own.items():
        by_area[area(name)] += n
    lines = [f"Python code running, {samples} samples of the thread holding the GIL; by where it is:"]
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in by_area.most_common(top)]
    lines.append(f"by function (top {top}):")
    lines += [f"  {100 * n / samples:5.1f}%  {name}" for name, n in own.most_common(top)]
    return lines


def finished(db: Path) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
        ((count,),) = conn.execute("SELECT count(*) FROM tasks WHERE status = 'SUCCESS'").fetchall()
        return int(count)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("what", choices=("accepts", "status", "runs"))
    parser.add_argument("--seconds", type=int, default=8, help="how long to sample")
    parser.add_argument("--top", type=int, default=20, help="functions to list")
    parser.add_argument("--sync", choices=("full", "normal"), default="full", help="HOOKD_SYNC")
    args = parser.parse_args(argv)
    if shutil.which("py-spy") is None:
        sys.exit("py-spy is not installed: pip install py-spy")
    RESULTS.mkdir(parents=True, exist_ok=True)
    raw = RESULTS / f"profile-{args.what}.txt"
    tmp = Path(tempfile.mkdtemp(prefix="hookd-profile-"))
    try:
        with Fleet().running() as fleet:
            bench = Bench(parse_args([]), fleet, tmp)  # bench/run.py's processes, pinned the same way
            bench.start_fake()
            tasks, status, model = {
                "accepts": (0, "SUCCESS", HELD_MODEL),
                "status": (1_000, "SUCCESS", HELD_MODEL),
                "runs": (RUNS_QUEUED, "PENDING", INSTANT_MODEL),
            }[args.what]
            db = dbs.prepared(tmp / f"{args.what}.db", tasks, status, model)
            hookd = bench.start_hookd(args.what, db.path, workers=8, sync=args.sync, max_pending=10_000_000)
            load = None
            if args.what != "runs":
                url = hookd.proc.url + (
                    WEBHOOK_PATH + dbs.TOKEN if args.what == "accepts" else "/api/task_status"
                )
                options = ["--duration-s", str(args.seconds + 2), "--warmup-s", "1"]
                if args.what == "status":
                    ids = tmp / "ids.txt"
                    ids.write_text("\n".join(dbs.sample_ids(db.path, 1_000)) + "\n")
                    options += ["--get-ids", str(ids)]
                load = subprocess.Popen(
                    [sys.executable, "bench/load.py", url, *options],
                    cwd=REPO,
                    stdout=subprocess.PIPE,
                    text=True,
                )
                pin(load.pid, bench.load_cores)
            time.sleep(1.5)  # past the warm-up (and, for runs, the first claims)
            names = thread_names(hookd.proc.pid)
            cpu_before, done_before, started_s = (
                thread_cpu_s(hookd.proc.pid),
                finished(db.path),
                time.monotonic(),
            )
            subprocess.run(
                ["py-spy", "record", "--pid", str(hookd.proc.pid), "--duration", str(args.seconds),
                 "--rate", "100", "--nonblocking", "--gil", "--function", "--threads", "--format", "raw",
                 "--output", str(raw)],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            cpu_after, done_after, elapsed_s = (
                thread_cpu_s(hookd.proc.pid),
                finished(db.path),
                time.monotonic(),
            )
            elapsed_s -= started_s
            if load is not None:
                out, _ = load.communicate()
                answers = json.loads(out)["rps"] * elapsed_s
                unit = "answer"
            else:
                answers, unit = done_after - done_before, "run"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    total_s = sum(cpu_after.get(t, 0) - cpu_before.get(t, 0) for t in cpu_after)
    print(
        f"{args.what}: {answers / elapsed_s:,.0f} {unit}s/s; hookd's CPU {100 * total_s / elapsed_s:.0f}% of a core,"
    )
    print(f"{1e6 * total_s / max(answers, 1):.0f} µs per {unit}, by thread:")
    by_name: Counter[str] = Counter()
    for tid, cpu_s in cpu_after.items():
        by_name[names.get(tid, "other")] += cpu_s - cpu_before.get(tid, 0)
    for name, cpu_s in by_name.most_common():
        print(f"  {1e6 * cpu_s / max(answers, 1):6.1f} µs  {name}")
    print()
    print("\n".join(python_profile(raw, args.top)))
    print(f"\nraw samples: {raw.relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
