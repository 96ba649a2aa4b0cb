"""The benchmark's report: one row per figure with its target and verdict, printed and saved as JSON."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PASS, FAIL, INFO = "PASS", "FAIL", ""

# The targets, from the issue that asked for this benchmark.
ACCEPT_RATIO_TARGET = 0.8  # hookd's webhook accepts/s over the bare handler's
P99_RATIO_TARGET = 1.2  # hookd's p99 latency over the bare handler's, same load
STATUS_RATIO_TARGET = 0.8  # hookd's GET /api/task_status over a bare GET handler's, on 1M tasks
BIG_DB_RATIO_TARGET = 0.9  # on 1,000,000 tasks: within 10 % of the small database's figure
SLOW_WALL_TARGET_RATIO = 1.25  # 10,000 runs of 2 s on 1,000 workers: 20 s ideal, 25 s target
SLOW_RSS_TARGET_MB = 250.0  # hookd's peak RSS meanwhile
STARTUP_TARGET_S = 2.0  # from process start to /api/health answering, 100,000 tasks queued
QUEUED_RSS_TARGET_MB = 25.0  # extra memory with 100,000 tasks queued (loaded, they would take ~100 MB)
SERVER_BOUND_CPU_PCT = 90.0  # a server busier than this was the limit, not the load client


@dataclass(frozen=True)
class Row:
    figure: str
    value: str
    target: str = ""
    verdict: str = INFO  # PASS, FAIL, or "" for a figure without a target
    note: str = ""


def check(ok: bool) -> str:
    return PASS if ok else FAIL


def per_s(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}/s"


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def seconds(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.2f} s"  # NaN: never finished


def latencies(result: dict[str, Any]) -> str:
    return f"p50 {ms(result.get('p50_ms'))}, p99 {ms(result.get('p99_ms'))}"


def format_table(rows: list[Row]) -> str:
    header = Row("Figure", "Value", "Target", "Result")
    widths = [max(len(getattr(r, name)) for r in [header, *rows]) for name in ("figure", "value", "target")]
    lines = []
    for row in [header, *rows]:
        marker = "  <-- MISSED" if row.verdict == FAIL else ""
        cells = (row.figure.ljust(widths[0]), row.value.rjust(widths[1]), row.target.ljust(widths[2]))
        lines.append(f"{cells[0]}  {cells[1]}  {cells[2]}  {row.verdict or '':4}{marker}".rstrip())
        if row is header:
            lines.append("-" * len(lines[0]))
        elif row.note:
            lines.append(f"    {row.note}")
    return "\n".join(lines)


def summary(rows: list[Row]) -> str:
    missed = [r.figure.strip() for r in rows if r.verdict == FAIL]
    passed = sum(r.verdict == PASS for r in rows)
    if not missed:
        return f"All {passed} targets met."
    return f"{len(missed)} of {len(missed) + passed} targets MISSED: " + "; ".join(missed)


def save(path: Path, meta: dict[str, Any], rows: list[Row], raw: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"meta": meta, "rows": [asdict(r) for r in rows], "raw": raw}
    path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")


# -- the rows of each measurement -----------------------------------------------------------

NOISY_OTHER_CPU_PCT = 10.0


def machine(result: dict[str, Any]) -> str:
    """What else happened on the machine meanwhile."""
    text = f"other processes {result['other_cpu_pct']:.0f}% of the CPUs"
    if result["steal_pct"] >= 1:
        text += f", steal {result['steal_pct']:.0f}%"
    if result["listen_overflows"]:
        text += f", {result['listen_overflows']} listen queue overflows"
    return text


def noise_rows(raw: dict[str, Any]) -> list[Row]:
    """How busy the rest of the machine was: above ~10%, every figure is lower and noisier."""
    measured = [r for key, value in raw.items() if key != "args" for r in _results(value)]
    if not measured:
        return []
    worst = max(measured, key=lambda r: r["other_cpu_pct"] + r["steal_pct"])
    value = worst["other_cpu_pct"] + worst["steal_pct"]
    note = "worst span of the run; taken by other processes and other VMs (steal)"
    if value > NOISY_OTHER_CPU_PCT:
        note = "WARNING: the machine was busy; figures are low and noisy. " + note
    return [Row("CPU taken by others (noise)", f"{value:.0f}%", note=note)]


def _results(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict) and "other_cpu_pct" in value:
        return [value]
    if isinstance(value, dict):
        return [r for v in value.values() for r in _results(v)]
    if isinstance(value, list):
        return [r for v in value for r in _results(v)]
    return []


def problems(result: dict[str, Any], expected: int | None = None) -> str:
    """What makes a measurement suspect: errors, a killed or stuck server, missing tasks."""
    found = []
    if result.get("errors"):
        found.append(f"{result['errors']} errors {result['error_kinds']}")
    if result.get("unsent"):
        found.append(f"{result['unsent']} never sent")
    for key in ("server_note", "wait_note"):
        if result.get(key) and result[key] not in found:
            found.append(result[key])
    if expected is not None and result.get("success") != expected:
        found.append(f"{result.get('success')} of {expected} tasks SUCCESS")
        if result.get("a_failure"):
            found.append(f"a failure: {result['a_failure']}")
    return "; ".join(found)


def median(results: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None


def ratio_text(value: float | None) -> str:
    # Rounded towards the target's wrong side, so that a miss never shows as the target itself.
    return "—" if value is None else f"{math.floor(100 * value) / 100:.2f}x"


def rounds(results: list[dict[str, Any]]) -> str:
    return f"median of {len(results)} rounds: " + ", ".join(per_s(r["rps"]) for r in results)


def cpu_note(results: list[dict[str, Any]]) -> str:
    per_answer_us = median(results, "server_cpu_us_per_ok")
    per_answer = f" ({per_answer_us:,.0f} µs per answer)" if per_answer_us is not None else ""
    return (
        f"server CPU {median(results, 'server_cpu_pct') or 0:.0f}%{per_answer},"
        f" load client CPU {median(results, 'client_cpu_pct') or 0:.0f}%"
    )


def all_problems(results: list[dict[str, Any]]) -> str:
    return "; ".join(dict.fromkeys(p for r in results if (p := problems(r))))


def limit_note(base: list[dict[str, Any]], client: str) -> str:
    """Who set the ceiling: the bare server, or the load client (then ratios flatter hookd)."""
    if (median(base, "server_cpu_pct") or 0) >= SERVER_BOUND_CPU_PCT:
        return f"the bare server was the limit (its core busy), with the {client} load client"
    return (
        f"the bare server idled part of the time: the {client} load client or other processes were the"
        " limit, so the true ceiling is higher and hookd / bare flatters hookd (see CPU per answer)"
    )


def sustained_rows(
    results: dict[str, list[dict[str, Any]]], what: str, base: str, connections: int, client: str
) -> list[Row]:
    """The baseline's figures, then each other target's figures, as medians of their rounds."""
    rows = [
        Row(
            f"  {base} {what} @{connections}",
            per_s(median(results[base], "rps")),
            note=f"{rounds(results[base])}; {cpu_note(results[base])}\n    {limit_note(results[base], client)}",
        ),
        Row(f"    latency p50 / p99 ({base})", p50_p99(results[base])),
    ]
    if bad := all_problems(results[base]):
        rows.append(Row(f"    {base} errors", "some", "none", FAIL, bad))
    for target, target_results in results.items():
        if target != base:
            rows += [
                Row(
                    f"  {target} {what} @{connections}",
                    per_s(median(target_results, "rps")),
                    note=f"{rounds(target_results)}; {cpu_note(target_results)}",
                ),
                Row(f"    latency p50 / p99 ({target})", p50_p99(target_results)),
            ]
    return rows


def p50_p99(results: list[dict[str, Any]]) -> str:
    return f"{ms(median(results, 'p50_ms'))} / {ms(median(results, 'p99_ms'))}"


def compare(
    figure: str, results: dict[str, list[dict[str, Any]]], top: str, bottom: str, target: float,
    key: str = "rps", at_most: bool = False, note: str = "",
) -> Row:  # fmt: skip
    """`top` over `bottom` (medians of `key`) against a target ratio, FAIL on any error."""
    top_value, bottom_value = median(results[top], key), median(results[bottom], key)
    value = top_value / bottom_value if top_value is not None and bottom_value else None
    bad = all_problems(results[top]) or all_problems(results[bottom])
    ok = value is not None and (value <= target if at_most else value >= target)
    return Row(
        figure,
        (f"{math.ceil(100 * value) / 100:.2f}x" if at_most else ratio_text(value))
        if value is not None
        else "—",
        f"{'<=' if at_most else '>='} {target}x",
        check(ok and not bad),
        bad or note,
    )


def share_row(figure: str, results: dict[str, list[dict[str, Any]]], top: str, bottom: str, why: str) -> Row:
    """`top` over `bottom` (medians of rps), a figure without a target, with the CPU view."""
    top_value, bottom_value = median(results[top], "rps"), median(results[bottom], "rps")
    value = top_value / bottom_value if top_value is not None and bottom_value else None
    cpu = cpu_ratio_note(results, bottom, top)
    return Row(figure, ratio_text(value), note=why + (f"\n    {cpu}" if cpu else ""))


def cpu_ratio_note(results: dict[str, list[dict[str, Any]]], base: str, target: str) -> str:
    """The same comparison by server CPU per answer: what each could do with a whole core,
    whatever limits the load client or a busy machine put on answers per second."""
    base_us = median(results[base], "server_cpu_us_per_ok")
    target_us = median(results[target], "server_cpu_us_per_ok")
    if not base_us or not target_us:
        return ""
    return (
        f"by server CPU per answer: {base_us / target_us:.2f}x ({base_us:.0f} vs {target_us:.0f} µs;"
        f" one full core: {base} ~{per_s(1e6 / base_us)}, {target} ~{per_s(1e6 / target_us)})"
    )


CLIENT_NOTES = {
    "aiohttp": "the client a webhook sender would use; it costs more CPU per request than the bare server",
    "raw": "bench/load.py's minimal client, cheap enough that the server under test is the limit",
}


def heading(text: str, client: str) -> Row:
    return Row(f"{text}, {client} load client:", "", note=CLIENT_NOTES.get(client, ""))


def accept_rows(accepts: dict[str, list[dict[str, Any]]], connections: int, client: str) -> list[Row]:
    rows = [heading("Webhook accepts", client)]
    rows += sustained_rows(accepts, "accepts/s", "bare", connections, client)
    empties = [t for t in accepts if t.startswith("hookd sync=")]
    for target in empties:
        rows += [
            compare(f"  {target} / bare: accepts/s ({client})", accepts, target, "bare", ACCEPT_RATIO_TARGET,
                    note=cpu_ratio_note(accepts, "bare", target)),
            compare(f"  {target} / bare: p99 latency ({client})", accepts, target, "bare", P99_RATIO_TARGET,
                    key="p99_ms", at_most=True),
        ]  # fmt: skip
    for floor in (t for t in accepts if t.startswith("bare+commit")):
        rows.append(share_row(f"  {floor} / bare: accepts/s ({client})", accepts, floor, "bare",
                              "the price of durability alone: the bare handler plus hookd's group commit"))  # fmt: skip
        for target in empties:
            rows.append(share_row(f"  {target} / {floor}: accepts/s ({client})", accepts, target, floor,
                                  "the price of hookd's own request handling, beyond the commit"))  # fmt: skip
    for target in (t for t in accepts if t.startswith("hookd 1M")):
        empty = target.replace("1M ", "")
        rows.append(
            compare(f"  {target} / {empty}: accepts/s ({client})", accepts, target, empty, BIG_DB_RATIO_TARGET,
                    note="the 1,000,000-task database against an empty one")
        )  # fmt: skip
    return rows


def status_rows(status: dict[str, list[dict[str, Any]]], connections: int, client: str) -> list[Row]:
    base, floor, small, big = list(status)
    return [
        heading("GET /api/task_status", client),
        *sustained_rows(status, "task_status/s", base, connections, client),
        compare(f"  {big} / {base}: task_status/s ({client})", status, big, base, STATUS_RATIO_TARGET,
                note=cpu_ratio_note(status, base, big)),
        compare(f"  {big} / {small}: task_status/s ({client})", status, big, small, BIG_DB_RATIO_TARGET),
        share_row(f"  {floor} / {base}: task_status/s ({client})", status, floor, base,
                  "the price of reading the row alone: the bare handler plus the same primary-key read"),
        share_row(f"  {big} / {floor}: task_status/s ({client})", status, big, floor,
                  "the price of hookd's own handling, beyond the read"),
    ]  # fmt: skip


def median_result(results: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The run whose `key` is the median (the lower middle one of an even count); unfinished last."""
    ordered = sorted(
        results, key=lambda r: r[key] if r.get(key) is not None and r[key] == r[key] else math.inf
    )
    return ordered[(len(ordered) - 1) // 2]


def runs_note(results: list[dict[str, Any]], key: str, show: Any) -> str:
    if len(results) == 1:
        return ""
    return f"median of {len(results)} runs: " + ", ".join(show(r[key]) for r in results) + "; "


def end_to_end_rows(results: list[dict[str, Any]], sync: str, tasks: int) -> list[Row]:
    result = median_result(results, "tasks_per_s")
    bad = "; ".join(dict.fromkeys(p for r in results if (p := problems(r, expected=tasks))))
    return [
        Row(
            f"e2e webhook accepts/s, instant model (sync={sync})",
            per_s(result["rps"]),
            note=f"{latencies(result)}; {result['ok_total']} of {tasks} accepted",
        ),
        Row(
            f"  tasks/s, first request to last finish (sync={sync})",
            per_s(result["tasks_per_s"]),
            f"all {tasks} SUCCESS",
            check(not bad),
            bad
            or runs_note(results, "tasks_per_s", per_s)
            + f"{tasks} tasks in {result['wall_s']:.2f} s; {machine(result)}",
        ),
    ]


def slow_rows(results: list[dict[str, Any]], sync: str, runs: int, workers: int, model_s: float) -> list[Row]:
    result = median_result(results, "wall_s")
    bad = "; ".join(dict.fromkeys(p for r in results if (p := problems(r, expected=runs))))
    wall_s, peak_mb = result["wall_s"], max((r["peak_rss_mb"] or 0 for r in results), default=0)
    ideal_s = model_s * -(-runs // workers)
    target_s = SLOW_WALL_TARGET_RATIO * ideal_s
    return [
        Row(
            f"{runs:,} x {model_s:g} s runs, {workers:,} workers: wall (sync={sync})",
            seconds(wall_s),
            f"<= {target_s:g} s",
            check(wall_s <= target_s and not bad),
            bad
            or runs_note(results, "wall_s", seconds)
            + f"ideal {ideal_s:g} s; accepts {per_s(result['rps'])} ({latencies(result)}); last run started"
            f" {result['last_start_after_s']:.2f} s after the first request; {machine(result)}",
        ),
        Row(
            f"  peak RSS (sync={sync})",
            f"{peak_mb:.0f} MB" if peak_mb else "—",
            f"<= {SLOW_RSS_TARGET_MB:g} MB",
            check(
                bool(peak_mb) and peak_mb <= SLOW_RSS_TARGET_MB and not any(r["server_note"] for r in results)
            ),
            ("the highest of the runs; " if len(results) > 1 else "")
            + f"idle before the burst: {result['idle_rss_mb'] or 0:.0f} MB",
        ),
    ]


def startup_rows(startup: dict[str, list[dict[str, Any]]], queued: int) -> list[Row]:
    ready_s, empty_ready_s = median(startup["queued"], "ready_s"), median(startup["empty"], "ready_s")
    never = sum(r["ready_s"] is None for r in startup["queued"])
    extra_mb = (median(startup["queued"], "peak_rss_mb") or 0) - (
        median(startup["empty"], "peak_rss_mb") or 0
    )
    return [
        Row(
            f"start-up to /api/health, {queued:,} tasks queued",
            seconds(ready_s),
            f"<= {STARTUP_TARGET_S:g} s",
            check(ready_s is not None and ready_s <= STARTUP_TARGET_S and not never),
            f"{never} starts never answered"
            if never
            else f"median of {len(startup['queued'])}; with no tasks: {seconds(empty_ready_s)}",
        ),
        Row(
            f"  peak RSS, {queued:,} queued vs none",
            f"+{extra_mb:.0f} MB",
            f"<= +{QUEUED_RSS_TARGET_MB:g} MB",
            check(extra_mb <= QUEUED_RSS_TARGET_MB),
            f"{median(startup['queued'], 'peak_rss_mb') or 0:.0f} vs {median(startup['empty'], 'peak_rss_mb') or 0:.0f} MB"
            " in the first second; the queue stays in SQLite, claimed a batch at a time",
        ),
    ]


def baseline_rows(results: dict[str, list[dict[str, Any]]], client: str) -> list[Row]:
    """This hookd against --baseline's: the medians' ratios, by answers/s and by CPU per answer."""
    rows = []
    for what in ("accepts", "status"):
        ours, theirs = results[f"hookd {what}"], results[f"baseline {what}"]
        rps, base_rps = median(ours, "rps"), median(theirs, "rps")
        cpu, base_cpu = median(ours, "server_cpu_us_per_ok"), median(theirs, "server_cpu_us_per_ok")
        note = ""
        if cpu and base_cpu:
            note = f"by server CPU per answer: {base_cpu / cpu:.2f}x ({base_cpu:.0f} µs before, {cpu:.0f} µs now)"
        value = ratio_text(rps / base_rps if rps and base_rps else None)
        rows.append(
            Row(f"hookd / baseline: {what}/s ({client}; {per_s(base_rps)} → {per_s(rps)})", value, note=note)
        )
    return rows
