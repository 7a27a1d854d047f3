"""History at a year's scale: 10,000 runs x 100 check results, through opsdash's own storage API.

Prints, each beside its goal:
  - insert rate of history.runs.record(report, results=...) (one transaction a run, as opsdash records)
    vs raw sqlite3 `executemany` into a copy of the same schema, in alternating chunks so both
    see the same noise; "raw" builds the same row values from the same CheckResults (json.dumps,
    no layer); the pure-SQLite floor (tuples built before the clock starts) is printed too;
  - `opsdash history list`, `history show latest`, `history diff latest~1 latest`,
    `history list -n 500 --json` wall time and peak RSS, as a user runs them (subprocesses),
    beside `opsdash --version` (process start);
  - the history pane's time to fill: the HistoryPane mounted in a headless Textual app, from mount
    to its table holding 500 runs (and the ops call it makes, alone);
  - DB size per run (and per table, from dbstat), PRAGMA quick_check time, peak RSS of this process;
  - retention with the 90-day window just passed over the year (three copies of the same file):
    what a recording command spends on it (ops.retention.step: one batch and one vacuum step, the
    first few commands in a row); the background purge of the whole backlog (ops.retention.Background
    on its own thread, as the dashboard and serve run it) with its batches, total time and the
    longest batch (how long it held the write lock: the longest another process's write can wait),
    while a writer thread records a small run every 0.2 s on its own connection (its latency during
    the purge vs before it); and the old one-transaction purge on the third copy, for the ratio.

With --incidents, a year of its own instead: 10,000 runs of 100 checks holding 2,000 incidents
(1-3 checks down for 1-3 runs each, an alert fired and resolved for each, a rollback session in
every fourth, a preflight every 20 runs), and prints, each beside its goal:
  - `opsdash incident list` (unscoped, and `--target BetaSkill`: scoped to one target's runs,
    watches and alerts, as a profile reads it) and `opsdash incident show latest` wall time and peak
    RSS (subprocesses, as a user runs them), beside `opsdash --version` (process start);
  - `opsdash incident list -n 2000` (every incident of the year: the record read from its start);
  - the ops calls alone (ops.incidents.incidents for the newest 20, read from the last quiet cut
    before the last week, and for the whole year; ops.incidents.show) and, as the floor, raw
    sqlite3 reading every unhealthy check row of the year through the same partial index;
  - the Timeline pane's time to fill: TimelinePane mounted headless, mount to the 500 newest
    incidents in its table (it lists 500, as the History pane lists 500 runs).

With --database postgresql://...|auto, the year on PostgreSQL instead (benchmarks/history_pg.py):
opsdash's insert against raw psycopg executemany and COPY in the same run, history list with
OPSDASH_DATABASE_URL set, and `history migrate` of the same year from SQLite.

Usage: .venv/bin/python benchmarks/history.py [--runs 10000] [--checks 100] [--repeat 5] [--keep DIR]
                                              [--retention-only | --incidents [--incident-count 2000]
                                               | --database postgresql://...|auto]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytecode import compile_installed

from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.health.conditions import ConditionResult
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.storage.checks import CHECK_COLUMNS
from opsdash.storage.history import History

OPSDASH = str(Path(sys.executable).with_name("opsdash"))
CHUNK = 100  # runs per alternating chunk


# ---------------------------------------------------------------- data shaped like real results


def _tls_facts(host: int, days: float) -> dict[str, str]:
    """What the http and tls probes record about a certificate (as the demo's do, see
    core/health/probes/net.py)."""
    subject = f"CN=svc{host}.betaskill.example,O=BetaSkill (Pty) Ltd"
    expiry = "2027-06-30T23:59:59+00:00"
    return {
        "tls_version": "TLSv1.3",
        "tls_cipher": "TLS_AES_256_GCM_SHA384",
        "cert_subject": subject,
        "cert_issuer": "CN=R11,O=Let's Encrypt,C=US",
        "cert_not_before": "2026-04-01T00:00:00+00:00",
        "cert_not_after": expiry,
        "cert_days_left": f"{days:.1f}",
        "cert_names": f"svc{host}.betaskill.example, www.svc{host}.betaskill.example",
        "chain_length": "2",
        "chain_earliest_subject": subject,
        "chain_earliest_expiry": expiry,
        "chain_earliest_days_left": f"{days:.1f}",
        "verified_chain_expiry": expiry,
    }


def make_results(run: int, checks: int, started: datetime, rng: random.Random) -> list[CheckResult]:
    """`checks` results: 60% https (with TLS facts and body conditions), 15% tls, 10% provider,
    10% tcp, 5% dns; about 2% fail with a finding, an error class, a hint and a runbook."""
    out = []
    days = 400.0 - run * 0.035  # certificates age through the year
    at = started.isoformat(timespec="milliseconds")
    for i in range(checks):
        kind = ("http",) * 12 + ("tls",) * 3 + ("provider",) * 2 + ("tcp",) * 2 + ("dns",)
        k = kind[i % 20]
        latency = rng.lognormvariate(3.3, 0.4)
        failed = rng.random() < 0.02
        name = f"{k}-{i:03d}"
        phases: dict[str, float] = {}
        metrics: dict[str, float] = {"response_time_ms": round(latency, 2)}
        facts: dict[str, str] = {}
        conditions: tuple[ConditionResult, ...] = ()
        if k in ("http", "provider"):
            target = f"https://svc{i}.betaskill.example/health"
            phases = {"connect": 2.5, "tls": 12.8, "request": 0.01, "first_byte": latency - 16, "body": 0.05}
            facts = {"ip": f"10.0.{i}.7", "status": "503" if failed else "200", "http_version": "HTTP/1.1"}
            facts |= _tls_facts(i, days)
            metrics["cert_days_left"] = round(days, 1)
            if i % 4 == 0:
                conditions = (
                    ConditionResult("[STATUS] == 200", not failed, "503" if failed else "200"),
                    ConditionResult("[BODY].status == UP", not failed, "DOWN" if failed else "UP"),
                    ConditionResult("[RESPONSE_TIME] < 3000", True, f"{latency:.0f} ms"),
                )
                metrics["payments.success_rate"] = 0.987
        elif k == "tls":
            target = f"svc{i}.betaskill.example:443"
            phases = {"handshake": latency}
            facts = _tls_facts(i, days) | {"old_protocols": "refused below TLSv1.2"}
            metrics = {"cert_days_left": round(days, 1)}
        elif k == "tcp":
            target = f"db{i}.internal:5432"
            phases = {"connect": latency}
            facts = {"ip": f"10.1.{i}.9"}
        else:
            target = f"svc{i}.betaskill.example"
            phases = {"resolve": latency}
            facts = {"answers": f"10.0.{i}.7", "rcode": "NOERROR"}
        findings: tuple[Finding, ...] = ()
        if failed:
            findings = (
                Finding(
                    "check-failed",
                    Severity.CRIT,
                    "checks",
                    name,
                    f"{name} is failing",
                    f"HTTP 503 from {target}",
                    "See the runbook.",
                    "payment-provider-outage",
                    {"status": "503"},
                ),
            )
        out.append(
            CheckResult(
                name=name,
                kind=k,
                target=target,
                severity=Severity.CRIT if failed else Severity.OK,
                summary=f"HTTP 503 in {latency:.0f} ms" if failed else f"HTTP 200 in {latency:.0f} ms",
                started_at=at,
                duration_ms=latency + 1.3,
                error_class=ErrorClass.HTTP_5XX if failed else None,
                hint="the service answered 503: it is up but unhealthy" if failed else None,
                runbook="payment-provider-outage" if failed else None,
                phases=phases,
                conditions=conditions,
                metrics=metrics,
                facts=facts,
                findings=findings,
            )
        )
    return out


def make_report(run: int, results: list[CheckResult], started: datetime) -> Report:
    kind = "preflight" if run % 20 == 0 else "check"
    summary: dict[str, Any] = {"checks": [r.to_dict() for r in results]}
    if kind == "preflight":
        summary |= {"validation": "OK", "versions": {"current": "2026.11.3"}, "rollback_ready": True}
    return Report(
        kind,
        "BetaSkill",
        f"{started:%Y%m%dT%H%M%S}-{run:06x}",
        started.isoformat(timespec="milliseconds"),
        900,
        tuple(f for r in results for f in r.findings),
        summary,
    )


def workload(runs: int, checks: int) -> Iterator[tuple[int, Report, list[CheckResult]]]:
    rng = random.Random(18)
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / runs
    for run in range(runs):
        started = start + step * run
        results = make_results(run, checks, started, rng)
        yield run, make_report(run, results, started), results


# ---------------------------------------------------------------- raw sqlite3 on the same schema


def raw_rows(report: Report, results: list[CheckResult]) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
    """The same column values, built the plainest way (no redaction, no layer)."""

    def js(value: Any) -> str | None:
        return json.dumps(value, separators=(",", ":")) if value else None

    run = (
        report.run_id,
        report.kind,
        report.target,
        "bench",
        report.started_at,
        report.duration_ms,
        report.verdict.value,
        json.dumps(report.counts()),
        js({k: v for k, v in report.summary.items() if k != "checks"}) or "{}",
    )
    rows = [
        (
            report.run_id,
            r.name,
            r.kind,
            r.target,
            r.started_at,
            r.severity.value,
            r.severity.value,
            r.error_class.value if r.error_class else None,
            r.summary,
            r.metrics.get("response_time_ms", r.duration_ms),
            round(r.duration_ms, 1),
            r.attempts,
            r.hint,
            r.runbook,
            js({k: round(v, 2) for k, v in r.phases.items()}),
            js([c.to_dict() for c in r.conditions]),
            js(dict(r.metrics)),
            js(dict(r.facts)),  # every fact inline: raw shares nothing (see --help)
            None,
            js([f.to_dict() for f in r.findings]),
        )
        for r in results
    ]
    return run, rows


RAW_RUN = (
    "INSERT INTO runs (run_id, kind, target, operator, started_at, duration_ms, verdict, counts, summary) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
RAW_CHECKS = (
    f"INSERT INTO check_results ({', '.join(CHECK_COLUMNS)}) VALUES ({', '.join('?' * len(CHECK_COLUMNS))})"
)
RAW_FINDINGS = (
    "INSERT INTO findings (run_id, rule, severity, category, subject, title, detail, remediation, runbook, "
    "evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def raw_database(schema_from: Path, path: Path) -> sqlite3.Connection:
    source = sqlite3.connect(schema_from)
    ddl = [
        r[0]
        for r in source.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY rowid")
        if not r[0].startswith("CREATE TABLE sqlite_")
    ]
    source.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    for statement in ddl:
        conn.execute(statement)
    return conn


def raw_insert(
    conn: sqlite3.Connection, report: Report, run: tuple[Any, ...], rows: list[tuple[Any, ...]]
) -> None:
    conn.execute("BEGIN")
    conn.execute(RAW_RUN, run)
    conn.executemany(
        RAW_FINDINGS,
        [
            (
                report.run_id,
                f.rule,
                f.severity.value,
                f.category,
                f.subject,
                f.title,
                f.detail,
                f.remediation,
                f.runbook,
                json.dumps(dict(f.evidence)),
            )
            for f in report.findings
        ],
    )
    conn.executemany(RAW_CHECKS, rows)
    conn.execute("COMMIT")


# ---------------------------------------------------------------- measuring


def fill(data: Path, raw_path: Path, runs: int, checks: int, *, raw: bool = True) -> dict[str, list[float]]:
    """Alternate chunks of CHUNK runs: opsdash, raw (building rows inside the clock), raw floor
    (`raw=False`: opsdash's only)."""
    per_chunk: dict[str, list[float]] = {"opsdash": [], "raw": [], "floor": []}
    history = History.open(data)
    conn = raw_database(data / "history.db", raw_path)
    floor_conn = raw_database(data / "history.db", raw_path.with_name("floor.db"))
    work = workload(runs, checks)
    done = 0
    while done < runs:
        chunk = [next(work) for _ in range(min(CHUNK, runs - done))]
        done += len(chunk)
        t0 = time.perf_counter()
        for _run, report, results in chunk:
            history.runs.record(report, operator="bench", results=results)
        per_chunk["opsdash"].append(len(chunk) * checks / (time.perf_counter() - t0))
        print(f"  filled {done:,}/{runs:,} runs", end="\r", file=sys.stderr, flush=True)
        if not raw:
            continue
        t0 = time.perf_counter()
        for _run, report, results in chunk:
            run_row, rows = raw_rows(report, results)
            raw_insert(conn, report, run_row, rows)
        per_chunk["raw"].append(len(chunk) * checks / (time.perf_counter() - t0))
        prepared = [(report, *raw_rows(report, results)) for _run, report, results in chunk]
        t0 = time.perf_counter()
        for report, run_row, rows in prepared:
            raw_insert(floor_conn, report, run_row, rows)
        per_chunk["floor"].append(len(chunk) * checks / (time.perf_counter() - t0))
    print(file=sys.stderr)
    history.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    history.close()
    conn.close()
    floor_conn.close()
    raw_path.with_name("floor.db").unlink()
    return per_chunk


# Run from a small launcher process: a child forked from this one (grown by the fill) would
# report this process's size as its own peak RSS, which Linux carries across exec.
LAUNCHER = """
import json, os, subprocess, sys, time
args, repeat = json.loads(sys.argv[1]), int(sys.argv[2])
subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up, not timed
times, peak = [], 0
for _ in range(repeat):
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    times.append(time.perf_counter() - t0)
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):
        sys.exit(f"{' '.join(args)} exited {code}: {proc.stderr.read().decode()}")
    peak = max(peak, usage.ru_maxrss)
print(json.dumps([times, peak / 1024]))
"""


def wall(args: list[str], env: dict[str, str], repeat: int, cwd: Path) -> tuple[list[float], float]:
    """Wall times of a command run as a user runs it, and its largest peak RSS (MiB)."""
    out = subprocess.run(
        [sys.executable, "-c", LAUNCHER, json.dumps(args), str(repeat)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise SystemExit(out.stderr)
    times, peak = json.loads(out.stdout)
    return times, peak


def pane_fill(data: Path, repeat: int, rows: int) -> tuple[list[float], list[float]]:
    """The HistoryPane in a headless app: mount to `rows` rows in its table (it lists 500 at most);
    and the ops call it makes, alone."""
    import asyncio

    from textual.app import App
    from textual.widgets import DataTable

    from opsdash.ops import history as past
    from opsdash.ops.base import Ops
    from opsdash.tui.panes.history import HistoryPane
    from opsdash.tui.style import severity_variables

    ops = Ops.bare(data_dir=data)

    class Context:  # the one thing the pane reads from the dashboard's context
        def __init__(self) -> None:
            self.ops = ops

    class Harness(App[None]):  # the dashboard's severity colours are theme variables it adds
        def get_css_variables(self) -> dict[str, str]:
            variables = super().get_css_variables()
            return {**variables, **severity_variables(variables)}

    async def once() -> float:
        app = Harness()
        async with app.run_test(size=(160, 50)) as pilot:
            t0 = time.perf_counter()  # as the key that shows it: the pane mounts, loads, fills
            await app.mount(HistoryPane(Context()))  # type: ignore[arg-type]
            table = app.query_one("#runs", DataTable)
            for _ in range(20_000):  # bounded: a pane that never fills ends the benchmark, not hangs it
                if table.row_count >= rows:
                    break
                await pilot.pause(0.005)
            else:
                raise SystemExit(f"the history pane never showed {rows} runs")
            return time.perf_counter() - t0

    pane = [asyncio.run(once()) for _ in range(repeat)]
    call = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        past.runs(ops, limit=500)
        call.append(time.perf_counter() - t0)
    return pane, call


# ---------------------------------------------------------------- a year of incidents


def incident_year(data: Path, runs: int, checks: int, incidents: int) -> None:
    """`runs` runs of `checks` plain http results over a year; `incidents` of them start an incident
    (1-3 checks down for 1-3 runs; the run after it is healthy again), each with its alert fired and
    resolved and, every fourth, a rollback session of two steps."""
    from opsdash.core.runbooks.state import SessionState, SessionStatus, StepState, StepStatus

    rng = random.Random(33)
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / runs
    every = max(4, runs // max(incidents, 1))
    failing: dict[int, tuple[str, ...]] = {}
    for n in range(min(incidents, runs // every)):
        first = n * every
        names = tuple(f"http-{i:03d}" for i in rng.sample(range(checks), rng.randint(1, 3)))
        for k in range(rng.randint(1, 3)):
            failing[first + k] = names
    history = History.open(data)
    opened: dict[tuple[str, ...], tuple[int, float]] = {}
    for run in range(runs):
        at = start + step * run
        stamp = at.isoformat(timespec="milliseconds")
        down = failing.get(run, ())
        results = [
            CheckResult(
                name,
                "http",
                f"https://svc{i}.betaskill.example/health",
                Severity.CRIT if name in down else Severity.OK,
                "HTTP 503 from upstream" if name in down else "HTTP 200 in 41 ms",
                stamp,
                41.0,
                error_class=ErrorClass.HTTP_5XX if name in down else None,
            )
            for i, name in enumerate(f"http-{i:03d}" for i in range(checks))
        ]
        kind = "preflight" if run % 20 == 0 else "check"
        summary = {"versions": {"current": f"2026.{run // 1000}.{run % 7}"}} if kind == "preflight" else {}
        report = Report(kind, "BetaSkill", f"{at:%Y%m%dT%H%M%S}-{run:06x}", stamp, 900, (), summary)
        history.runs.record(report, operator="bench", results=results)
        when = at.timestamp()
        if down and down not in opened:
            alert = history.alerts.record(
                "check-critical",
                down[0],
                "CRIT",
                f"{down[0]} is failing",
                "HTTP 503",
                when + 1,
                sent_at=when + 1,
            )
            opened[down] = (alert or 0, when)
            if len(opened) % 4 == 0:
                begin = (at + timedelta(minutes=3)).isoformat(timespec="milliseconds")
                state = SessionState(
                    id=f"{at:%Y%m%dT%H%M%S}-rollback",
                    operator="bench",
                    runbook_id="rollback",
                    title="Roll back a release",
                    runbook_path="runbooks/rollback.md",
                    params={},
                    status=SessionStatus.ACTIVE,
                    current=0,
                    steps=[StepState(), StepState()],
                    started_at=begin,
                    updated_at=begin,
                )
                history.sessions.create(state)
                state.steps[0] = StepState(StepStatus.DONE, begin, begin, 0)
                history.sessions.save(state, 0, "command-finished", "exit 0")
                state.status = SessionStatus.COMPLETED
                history.sessions.save(state, None, "completed", "")
        for names, (alert_id, _since) in list(opened.items()):
            if names != down:
                history.alerts.mark(alert_id, status="resolved", resolved_at=when + 1)
                del opened[names]
        if run % 100 == 0:
            print(f"  filled {run:,}/{runs:,} runs", end="\r", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    history.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    history.close()


def timeline_fill(data: Path, repeat: int, rows: int) -> list[float]:
    """The TimelinePane in a headless app: mount to `rows` incidents in its table."""
    import asyncio

    from textual.app import App
    from textual.widgets import DataTable

    from opsdash.ops.base import Ops
    from opsdash.tui.panes.timeline import TimelinePane
    from opsdash.tui.style import severity_variables

    ops = Ops.bare(data_dir=data)

    class Context:  # the one thing the pane reads from the dashboard's context
        def __init__(self) -> None:
            self.ops = ops

    class Harness(App[None]):
        def get_css_variables(self) -> dict[str, str]:
            variables = super().get_css_variables()
            return {**variables, **severity_variables(variables)}

    async def once() -> float:
        app = Harness()
        async with app.run_test(size=(160, 50)) as pilot:
            t0 = time.perf_counter()
            await app.mount(TimelinePane(Context()))  # type: ignore[arg-type]
            table = app.query_one("#incidents", DataTable)
            for _ in range(20_000):
                if table.row_count >= rows:
                    break
                await pilot.pause(0.005)
            else:
                raise SystemExit(f"the timeline pane never showed {rows} incidents")
            return time.perf_counter() - t0

    return [asyncio.run(once()) for _ in range(repeat)]


def incident_benchmark(root: Path, data: Path, args: argparse.Namespace) -> None:
    from opsdash.ops import incidents as ops_incidents
    from opsdash.ops.base import Ops
    from opsdash.storage.timeline import iso

    print(
        f"incident benchmark: {args.runs:,} runs x {args.checks} checks over a year, "
        f"{args.incident_count:,} incidents, {os.cpu_count()} cores"
    )
    t0 = time.perf_counter()
    incident_year(data, args.runs, args.checks, args.incident_count)
    print(f"  fill took {time.perf_counter() - t0:.0f} s")
    ops = Ops.bare(data_dir=data)
    found = ops_incidents.incidents(ops)
    print(f"  incidents derived: {len(found):,}")
    env = {**os.environ, "OPSDASH_DATA_DIR": str(data), "XDG_CONFIG_HOME": str(root / "config")}
    for name in ("OPSDASH_DEBUG", "OPSDASH_CONFIG"):
        env.pop(name, None)
    os.sync()
    print(f"\nCLI as a user runs it ({args.repeat} runs each after a warm-up; medians, ranges; peak RSS)")
    start, _ = wall([OPSDASH, "--version"], env, args.repeat, root)
    print(f"  {'opsdash --version (start)':30} {spread(start)}")
    for label, command in {
        "incident list": [OPSDASH, "incident", "list"],
        # scoped to one target, as a profile reads it when others share the data directory
        "incident list --target BetaSkill": [OPSDASH, "incident", "list", "--target", "BetaSkill"],
        "incident show latest": [OPSDASH, "incident", "show", "latest"],
        # every incident of the year: read from the record's start (no goal: not what is asked daily)
        "incident list -n 2000": [OPSDASH, "incident", "list", "-n", "2000"],
    }.items():
        times, peak = wall(command, env, args.repeat, root)
        over = statistics.median(times) / statistics.median(start)
        met = "" if "2000" in label else goal(statistics.median(times) <= 0.2, "<= 0.2 s")
        print(f"  {label:30} {spread(times)}  {peak:5.0f} MiB  {over:.1f}x start {met}")
    print("\nin process (medians, ranges)")
    newest = ops_incidents.Query(limit=20)
    calls = {"ops.incidents.incidents (a year)": lambda: ops_incidents.incidents(ops)}
    calls["... the newest 20 (incident list)"] = lambda: ops_incidents.incidents(ops, newest)
    scoped = ops_incidents.Query(target="BetaSkill", limit=20)
    calls["... newest 20, scoped to its target"] = lambda: ops_incidents.incidents(ops, scoped)
    calls["ops.incidents.show latest"] = lambda: ops_incidents.show(ops, "latest")
    conn = sqlite3.connect(data / "history.db")

    def floor() -> None:
        conn.execute(
            "SELECT check_name, started_at, severity, sustained FROM check_results "
            "INDEXED BY idx_check_results_failing WHERE (severity != 'OK' OR sustained != 'OK') "
            "AND started_at >= ?",
            [iso(0)],
        ).fetchall()

    calls["raw sqlite3: the unhealthy rows (floor)"] = floor
    measured: dict[str, list[float]] = {}
    for label, call in calls.items():
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        measured[label] = times
        print(f"  {label:40} {spread(times)}")
    conn.close()
    ratio = statistics.median(measured["ops.incidents.incidents (a year)"]) / statistics.median(
        measured["raw sqlite3: the unhealthy rows (floor)"]
    )
    print(f"  ratio derivation / floor                 {ratio:.1f}x")
    from opsdash.tui.panes.timeline import LISTED

    shown = min(LISTED, len(found))
    pane = timeline_fill(data, args.repeat, shown)
    print(
        f"\ntimeline pane (TimelinePane mounted headless, mount to its {shown:,} newest incidents "
        "in its table)"
    )
    print(f"  pane filled              {spread(pane)} {goal(statistics.median(pane) <= 0.3, '<= 0.3 s')}")


def copy_database(source: Path, into: Path) -> Path:
    """The data directory `into` with a copy of the (checkpointed) history file."""
    into.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "history.db", into / "history.db")
    return into


def row_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: int(conn.execute(f"SELECT COUNT(*) FROM {n}").fetchone()[0]) for n in names}
    finally:
        conn.close()


def retention(data: Path, root: Path, *, days: int = 90) -> None:
    """The window just passed over a year: a command's share, the background purge under a
    writer, and the old one-transaction purge, each on its own copy of the same file."""
    import threading

    from opsdash.core.findings import Report
    from opsdash.ops import retention as background
    from opsdash.ops.base import Ops
    from opsdash.storage import retention as storage

    with History.open(data) as history:
        history.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        due = int(
            history.conn.execute(
                "SELECT COUNT(*) FROM runs WHERE started_at < ?",
                [(datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")],
            ).fetchone()[0]
        )
    size = (data / "history.db").stat().st_size
    step_dir = copy_database(data, root / "step")
    once_dir = copy_database(data, root / "once")
    os.sync()
    print(f"\nretention, {days}-day window just passed: {due:,} of the runs are older than it")

    # what a recording command pays: ops.retention.step after its run is recorded
    ops = Ops.bare(data_dir=step_dir)
    steps, purged = [], []
    for _ in range(5):
        with ops.history() as history:
            t0 = time.perf_counter()
            purged.append(background.step(ops, history))
            steps.append(time.perf_counter() - t0)
    print(
        f"  a recording command's share (one batch + one vacuum step; 5 commands in a row): "
        f"{spread(steps)}; runs purged by each: {purged} [goal: one batch, {storage.BATCH_RUNS} runs]"
    )

    # the background purge, with a writer recording a small run every 0.2 s on its own connection
    latencies: dict[str, list[float]] = {"before": [], "during": []}
    phase = ["before"]
    stop_writer = threading.Event()

    def writer() -> None:
        with History.open(data) as mine:
            n = 0
            while not stop_writer.wait(0.2):
                n += 1
                at = datetime.now(UTC).isoformat(timespec="milliseconds")
                t0 = time.perf_counter()
                mine.runs.record(Report("validate", "bench", f"writer-{n:06d}", at, 1, ()), operator="w")
                latencies[phase[0]].append(time.perf_counter() - t0)

    thread = threading.Thread(target=writer)
    thread.start()
    stop_writer.wait(5.0)  # the writer alone, for the figure to compare with
    phase[0] = "during"
    purge = background.Background(Ops.bare(data_dir=data), wait_for_recording=False)
    t0 = time.perf_counter()
    purge.start()
    while not purge.caught_up.wait(0.5):
        pass
    took = time.perf_counter() - t0 - background.GRACE
    purge.stop()
    stop_writer.set()
    thread.join()
    with History.open(data) as history:
        history.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    after = (data / "history.db").stat().st_size
    holds, vacuum = purge.holds, purge.vacuum_steps or [0.0]
    print(
        f"  background purge of the year: {purge.purged:,} runs in {purge.batches} batches, {took:.1f} s "
        f"(pausing max(0.1 s, the batch) between batches); "
        f"file {size / 2**20:,.0f} -> {after / 2**20:,.0f} MiB"
    )
    print(f"    batch lock hold ({len(holds):3})    {spread(holds)}; longest {max(holds):.3f} s")
    checkpoints = purge.checkpoints or [0.0]
    print(f"    vacuum steps ({len(vacuum):3})      {spread(vacuum)}; longest {max(vacuum):.3f} s")
    print(f"    checkpoints, lock free     {spread(checkpoints)}; longest {max(checkpoints):.3f} s")
    before, during = latencies["before"] or [0.0], latencies["during"] or [0.0]
    print(f"    writer's record, before    {spread(before)}; max {max(before):.3f} s")
    ratio = statistics.median(during) / max(statistics.median(before), 1e-9)
    print(
        f"    writer's record, during    {spread(during)}; max {max(during):.3f} s "
        f"(median {ratio:.2f}x before; its worst wait is about one batch)"
    )

    # the old way: one transaction for the whole backlog, on the third copy
    with History.open(once_dir) as history:
        t0 = time.perf_counter()
        once = storage.purge_batch(history, days, runs=10**9, per_check=10**9, rows=10**9)
        storage.reclaim(history)
        whole = time.perf_counter() - t0
    print(
        f"  one transaction (before this change): {once.runs:,} runs, lock held {once.held:.1f} s, "
        f"{whole:.1f} s with the vacuum"
    )
    longest = max(holds + purge.vacuum_steps)
    print(
        f"  longest lock hold (batch or vacuum step) / one-transaction hold: {longest:.3f} s / "
        f"{once.held:.1f} s = {longest / once.held:.4f}x "
        f"{goal(longest <= 0.25, 'longest <= 0.25 s: what another writer, or a start, may wait')}"
    )
    left = {k: v for k, v in row_counts(data / "history.db").items() if k != "runs"}
    same = left == {k: v for k, v in row_counts(once_dir / "history.db").items() if k != "runs"}
    print(f"  rows left as the one-transaction purge left them (writer aside): {'yes' if same else 'NO'}")
    shutil.rmtree(step_dir)
    shutil.rmtree(once_dir)


def table_sizes(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        return {str(name): int(size) for name, size in rows}
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()


def spread(values: list[float], unit: str = "s", scale: float = 1.0) -> str:
    med = statistics.median(values) * scale
    return f"{med:,.3f} {unit} (range {min(values) * scale:,.3f}-{max(values) * scale:,.3f})"


def goal(ok: bool, text: str) -> str:
    return f"[goal {text}: {'met' if ok else 'MISSED'}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--checks", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="build the data directory here and keep it")
    parser.add_argument(
        "--retention-only", action="store_true", help="fill opsdash's database only and measure retention"
    )
    parser.add_argument("--incidents", action="store_true", help="a year of incidents: incident list/show")
    parser.add_argument("--incident-count", type=int, default=2_000)
    parser.add_argument(
        "--database",
        metavar="URL",
        help="the year on PostgreSQL: a postgresql:// URL (schemas of its own), or auto (a temporary server)",
    )
    args = parser.parse_args()
    compile_installed()  # CLI timings below: start from bytecode, as after `pip install`
    root = args.keep or Path(tempfile.mkdtemp(prefix="opsdash-history-bench-"))
    data = root / "data"
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    try:
        if args.incidents:
            incident_benchmark(root, data, args)
            return
        if args.database:
            import history_pg

            history_pg.run(args, root)
            return
        print(f"history benchmark: {args.runs:,} runs x {args.checks} checks, {os.cpu_count()} cores")
        t0 = time.perf_counter()
        rates = fill(data, root / "raw.db", args.runs, args.checks, raw=not args.retention_only)
        print(f"  fill took {time.perf_counter() - t0:.0f} s")
        if args.retention_only:
            retention(data, root)
            return
        ratios = [o / r for o, r in zip(rates["opsdash"], rates["raw"], strict=True)]
        floor = [o / f for o, f in zip(rates["opsdash"], rates["floor"], strict=True)]
        print("\ninsert (one transaction a run, per chunk of 100 runs; medians and ranges)")
        print(f"  opsdash runs.record      {spread(rates['opsdash'], 'rows/s')}")
        print(f"  raw sqlite3 executemany  {spread(rates['raw'], 'rows/s')}")
        print(f"  pure SQLite floor        {spread(rates['floor'], 'rows/s')} (rows built before the clock)")
        met = goal(statistics.median(ratios) >= 0.7, ">= 0.7x")
        print(f"  ratio opsdash/raw        {spread(ratios, 'x')} {met}")
        print(f"  ratio opsdash/floor      {spread(floor, 'x')}")

        db = data / "history.db"
        size = db.stat().st_size
        per_run = size / args.runs
        print(
            f"\nsize  {size / 2**20:,.1f} MiB, {per_run / 1000:,.1f} kB per {args.checks}-check run "
            f"{goal(per_run <= 60_000 * args.checks / 100, '<= 60 kB per 100-check run')}"
        )
        for name, bytes_ in list(table_sizes(db).items())[:8]:
            print(f"  {name:45} {bytes_ / 2**20:8.1f} MiB")

        conn = sqlite3.connect(db)
        t0 = time.perf_counter()
        conn.execute("PRAGMA quick_check").fetchall()
        print(f"  PRAGMA quick_check       {time.perf_counter() - t0:.2f} s (run at most once a day)")
        conn.close()

        env = {**os.environ, "OPSDASH_DATA_DIR": str(data), "XDG_CONFIG_HOME": str(root / "config")}
        for name in ("OPSDASH_DEBUG", "OPSDASH_CONFIG"):
            env.pop(name, None)
        # the fill and the size checks leave hundreds of MiB of dirty pages: write them out first, or
        # the CLI timings measure the disk's writeback (SQLite's open and lock waiting on I/O)
        os.sync()
        print(f"\nCLI as a user runs it ({args.repeat} runs each after a warm-up; medians, ranges; peak RSS)")
        commands = {
            "opsdash --version (start)": [OPSDASH, "--version"],
            "history list": [OPSDASH, "history", "list"],
            "history list -n 500 --json": [OPSDASH, "history", "list", "-n", "500", "--json"],
            "history show latest": [OPSDASH, "history", "show", "latest"],
            "history show latest --json": [OPSDASH, "history", "show", "latest", "--json"],
            "history diff latest~1 latest": [OPSDASH, "history", "diff", "latest~1", "latest"],
        }
        peaks = []
        for label, command in commands.items():
            times, peak = wall(command, env, args.repeat, root)
            peaks.append(peak)
            extra = f" {goal(statistics.median(times) <= 0.2, '<= 0.2 s')}" if label == "history list" else ""
            print(f"  {label:30} {spread(times)}  {peak:5.0f} MiB{extra}")

        pane, call = pane_fill(data, args.repeat, min(500, args.runs))
        print("\nhistory pane (HistoryPane mounted headless, mount to 500 rows in its table)")
        print(f"  pane filled              {spread(pane)} {goal(statistics.median(pane) <= 0.3, '<= 0.3 s')}")
        print(f"  its ops call alone       {spread(call)} (ops.history.runs(limit=500))")

        retention(data, root)

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        worst = max([rss, *peaks])
        print(
            f"\npeak RSS: this process {rss:.0f} MiB; largest CLI {max(peaks):.0f} MiB "
            f"{goal(worst <= 150, '<= 150 MiB')}"
        )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
