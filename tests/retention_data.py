"""A year of history for the retention tests, the purge as it was (one transaction: the reference
the batched purge must agree with), and a dump of every table to compare two files by.

The year holds a row of every kind retention treats differently: check runs (some sharing one
start time), their findings, env key fingerprints and results; a watch run older than the window
whose results run on into it (more of one check than a batch takes); runbook sessions ended and
still active, old and new, with their steps, events and output files; alerts resolved and still
firing, with deliveries; two audit logs' anchors; webhook failures and replay ids, expired or not,
some without a time. No time falls within a day of the cutoff, so a purge a few seconds later
removes the same rows.
"""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from opsdash.core.findings import Report
from opsdash.storage.history import History
from opsdash.storage.repository import day_before
from opsdash.storage.retention import _remove_outputs, reclaim
from tests.unit.storage.conftest import report, result

DAYS = 90


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def _clear_of(at: datetime, cutoff: datetime) -> datetime:
    """`at`, moved out of the day either side of the cutoff (and of the facts' cutoff before it)."""
    for edge in (cutoff, cutoff - timedelta(days=1)):
        if abs(at - edge) < timedelta(days=1, hours=1):
            at = edge + timedelta(days=1, hours=2) if at >= edge else edge - timedelta(days=1, hours=2)
    return at


def fill_year(data: Path, now: datetime, *, runs: int = 240, checks: int = 6, seed: int = 31) -> None:
    """`runs` check runs over the year before `now` and the other rows the module says, in one
    transaction (a year recorded one run at a time would take the test seconds)."""
    rng = random.Random(seed)
    cutoff = now - timedelta(days=DAYS)
    start = now - timedelta(days=365)
    outputs = data / "runbook-output"
    outputs.mkdir(parents=True, exist_ok=True)
    with History.open(data) as history:
        conn = history.conn
        with history.writing():
            at = start
            for i in range(runs):
                if i % 10 != 3:  # every tenth run starts when the one before did
                    at = _clear_of(start + (now - start) * i / runs, cutoff)
                results = [
                    _renamed(result(f"c{n}", _iso(at), failing=rng.random() < 0.1), month=at.month)
                    for n in range(checks)
                ]
                run_id = f"run-{i:05d}"
                kind = "preflight" if i % 7 == 0 else "check"
                history.runs.record(report(kind, run_id, _iso(at), results), operator="op", results=results)
                conn.execute(
                    "INSERT INTO env_keys (run_id, key, source, fingerprint, secret) VALUES (?, 'K', 'f', ?, 1)",
                    [run_id, f"fp{i}"],
                )
                for log in ("log-a", "log-b") if i % 2 else ("log-a",):
                    conn.execute(
                        "INSERT INTO audit_anchors (run_id, log_id, seq, mac, recorded_at) VALUES (?, ?, ?, 'm', ?)",
                        [run_id, log, i, at.isoformat(timespec="seconds")],
                    )
            # a watch started 200 days ago: one run, results of one check every 6 hours up to now
            watch_at = _clear_of(now - timedelta(days=200), cutoff)
            history.runs.record(Report("watch", "BetaSkill", "watch-1", _iso(watch_at), 1, ()), operator="op")
            t = watch_at
            watch = []
            while t < now:
                watch.append(result("watch-probe", _iso(_clear_of(t, cutoff))))
                t += timedelta(hours=6)
            history.checks.record("watch-1", watch)
            _sessions(conn, outputs, now, cutoff)
            _alerts_and_webhooks(history, now, cutoff)


def _renamed(r: Any, month: int) -> Any:
    """The result with its certificate renewed each month (a new shared facts body)."""
    return dataclasses.replace(r, facts={**r.facts, "cert_subject": f"CN=app.example/{month}"})


def _sessions(conn: sqlite3.Connection, outputs: Path, now: datetime, cutoff: datetime) -> None:
    for tag, age in (("old", 300), ("older", 200), ("new", 10)):
        for status in ("completed", "aborted", "active"):
            at = _clear_of(now - timedelta(days=age), cutoff)
            sid = f"s-{tag}-{status}"
            conn.execute(
                "INSERT INTO runbook_sessions (id, runbook_id, runbook_path, title, params, operator, status, "
                "current_step, started_at, updated_at) VALUES (?, 'rb', 'p', 't', '{}', 'op', ?, 0, ?, ?)",
                [sid, status, _iso(at), _iso(at)],
            )
            for step in range(3):
                conn.execute(
                    "INSERT INTO runbook_steps (session_id, step_index, status) VALUES (?, ?, 'done')",
                    [sid, step],
                )
                conn.execute(
                    "INSERT INTO runbook_events (session_id, at, event) VALUES (?, ?, 'x')", [sid, _iso(at)]
                )
                (outputs / f"{sid}-{step}.out").write_text(f"output of {sid}")
            conn.execute(
                "INSERT INTO runs (run_id, kind, target, operator, started_at, duration_ms, verdict, counts, "
                "summary) VALUES (?, 'runbook', 'rb', 'op', ?, 0, 'OK', '{}', '{}')",
                [sid, _iso(at)],
            )


def _alerts_and_webhooks(history: History, now: datetime, cutoff: datetime) -> None:
    for tag, age in (("old", 250), ("new", 5)):
        ts = _clear_of(now - timedelta(days=age), cutoff).timestamp()
        resolved = history.alerts.record("check-critical", f"resolved-{tag}", "CRIT", "t", "d", ts)
        firing = history.alerts.record("check-critical", f"firing-{tag}", "CRIT", "t", "d", ts)
        assert resolved is not None and firing is not None
        history.alerts.mark(resolved, status="resolved", resolved_at=ts + 60)
        for alert in (resolved, firing):
            for n in range(3):
                history.alerts.record_delivery(alert, "ops", "firing", True, 1, "", ts + n)
        for n in range(4):
            history.webhooks.record_failure(f"src-{tag}", "bad signature", ts + n)
        history.conn.execute(
            "INSERT INTO webhook_seen (scheme, delivery_id, seen_at, expires_at) VALUES ('s', ?, ?, ?)",
            [f"d-{tag}", ts, ts + 86400],
        )
    history.conn.execute("INSERT INTO webhook_failures (source, at, outcome) VALUES ('nan', NULL, 'x')")
    history.conn.execute(
        "INSERT INTO webhook_seen (scheme, delivery_id, seen_at, expires_at) VALUES ('s', 'nan', 0, NULL)"
    )


def one_transaction_purge(history: History, older_than_days: int, now: datetime) -> int:
    """The purge as it was before it went in batches (opsdash 1d6cc6a): the reference."""
    cutoff_dt = now - timedelta(days=older_than_days)
    cutoff, cutoff_ts = cutoff_dt.isoformat(timespec="seconds"), cutoff_dt.timestamp()
    active = "SELECT id FROM runbook_sessions WHERE status = 'active'"
    old_runs = f"SELECT run_id FROM runs WHERE started_at < ? AND run_id NOT IN ({active})"
    ended = "SELECT id FROM runbook_sessions WHERE status != 'active' AND updated_at < ?"
    with history.writing():
        execute = history.conn.execute
        for table in ("findings", "env_keys"):
            execute(f"DELETE FROM {table} WHERE run_id IN ({old_runs})", [cutoff])
        for name in history.checks.names():
            execute("DELETE FROM check_results WHERE check_name = ? AND started_at < ?", [name, cutoff])
        sessions = [str(r[0]) for r in execute(ended, [cutoff])]
        for table, column in (
            ("runbook_events", "session_id"),
            ("runbook_steps", "session_id"),
            ("runbook_sessions", "id"),
        ):
            execute(f"DELETE FROM {table} WHERE {column} IN ({ended})", [cutoff])
        gone = int(execute(f"DELETE FROM runs WHERE run_id IN ({old_runs})", [cutoff]).rowcount)
        execute(
            "DELETE FROM audit_anchors WHERE recorded_at < ? "
            "AND id NOT IN (SELECT MAX(id) FROM audit_anchors GROUP BY log_id)",
            [cutoff],
        )
        resolved = "SELECT id FROM alerts WHERE status = 'resolved' AND COALESCE(resolved_at, raised_at) < ?"
        execute(f"DELETE FROM alert_deliveries WHERE at < ? OR alert_id IN ({resolved})", [cutoff_ts] * 2)
        execute(f"DELETE FROM alerts WHERE id IN ({resolved})", [cutoff_ts])
        execute("DELETE FROM shared_facts WHERE last_used < ?", [day_before(cutoff)])
        execute("DELETE FROM webhook_failures WHERE at < ? OR at IS NULL", [cutoff_ts])
        execute("DELETE FROM webhook_seen WHERE expires_at < ? OR expires_at IS NULL", [now.timestamp()])
    history.checks.forget_shared()
    _remove_outputs(history, sessions)
    reclaim(history)
    return gone


TABLES = (
    "runs",
    "findings",
    "env_keys",
    "check_results",
    "shared_facts",
    "audit_anchors",
    "alerts",
    "alert_deliveries",
    "webhook_failures",
    "webhook_seen",
    "runbook_sessions",
    "runbook_steps",
    "runbook_events",
)


def dump(data: Path) -> dict[str, Any]:
    """Every row of every table retention touches, and the runbook output files, to compare."""
    conn = sqlite3.connect(f"{(data / 'history.db').resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {t: sorted(map(repr, conn.execute(f"SELECT * FROM {t}"))) for t in TABLES}
    finally:
        conn.close()
    folder = data / "runbook-output"
    files = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return {**tables, "runbook-output": files}


def count(data: Path, table: str, where: str = "1", args: tuple[Any, ...] = ()) -> int:
    conn = sqlite3.connect(f"{(data / 'history.db').resolve().as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", args).fetchone()[0])
    finally:
        conn.close()


def old_runs(data: Path, now: datetime) -> int:
    """Runs older than the window that retention will take (an active session's run stays)."""
    cutoff = (now - timedelta(days=DAYS)).isoformat(timespec="seconds")
    return count(
        data,
        "runs",
        "started_at < ? AND run_id NOT IN (SELECT id FROM runbook_sessions WHERE status = 'active')",
        (cutoff,),
    )


def copy_data(source: Path, into: Path) -> Path:
    """A copy of a data directory (history.db checkpointed first, runbook outputs with it)."""
    import shutil

    with History.open(source) as history:
        history.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(source, into, ignore=shutil.ignore_patterns("history.db-*", "history.db.lock"))
    return into


def assert_purged_as_one_transaction(
    original: dict[str, Any], kept: dict[str, Any], current: dict[str, Any], *, skip: tuple[str, ...] = ()
) -> None:
    """`current` (a file other writers also wrote to) lost what the one-transaction purge took of
    `original` and kept all it kept. `skip`: tables the other writers change rows of."""
    for table, rows in original.items():
        if table in skip:
            continue
        now = set(current[table])
        assert not (set(rows) - set(kept[table])) & now, f"{table}: rows older than the window are left"
        assert set(kept[table]) <= now, f"{table}: rows the purge keeps are gone"
