"""Moving in: copy an SQLite history into a team's PostgreSQL database (`opsdash history migrate`).

What is copied: runs with their findings, env fingerprints and check results (shared facts mapped
to the database's own ids by digest), runbook sessions with their steps and events (and their
driver: a session whose driver holds no lock on the team's database is one whose driver died, as
on the laptop), alerts with their deliveries (and the target that opened each, and its last
re-post), audit anchors (with the host whose log each is), the watches that name a sweep's
target, the webhook replay cache and failure counts, the credential trace's record, and the
dashboard's settled verdicts (`meta`'s gate:* keys). Not copied: `audit_hosts` / `audit_lines`,
which only a shared database holds (a host publishes its own chain there on its next run).

Re-running it copies nothing twice: a run is copied with everything under it only when its run id
is not in the database yet; a session by its id; the rows that have no key of their own by what
names them (an alert by rule, key and time raised; an anchor by log and sequence number; a webhook
failure by source, time and outcome; a trace scan by repository). Ids are the database's own (two
operators' laptops both have an alert 1), so the copy never collides with what a team recorded.

Runs go in batches, each one transaction under the write lock; check results and findings by
COPY (a year of history is a million rows). A batch interrupted rolls back whole and a re-run
takes it again.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsdash.storage.checks import CHECK_COLUMNS
from opsdash.storage.sessions import ABANDONED

if TYPE_CHECKING:
    from opsdash.storage.history import History
    from opsdash.storage.postgres import PgConnection

BATCH_RUNS = 500
_RUN_COLUMNS = (
    "run_id",
    "kind",
    "target",
    "operator",
    "started_at",
    "duration_ms",
    "verdict",
    "counts",
    "summary",
)
_FINDING_COLUMNS = (
    "run_id",
    "rule",
    "severity",
    "category",
    "subject",
    "title",
    "detail",
    "remediation",
    "runbook",
    "evidence",
)
_ENV_COLUMNS = ("run_id", "key", "source", "fingerprint", "secret", "length")
_SESSION_COLUMNS = (
    "id",
    "runbook_id",
    "runbook_path",
    "title",
    "params",
    "operator",
    "status",
    "current_step",
    "started_at",
    "updated_at",
    "exclusive_group",
    "target",
    "driver",  # v14: who drives it (NULL: parked cleanly); a driver with no lock here has died
)
_STEP_COLUMNS = (
    "session_id",
    "step_index",
    "status",
    "started_at",
    "finished_at",
    "exit_code",
    "output",
    "note",
    "detail",
    "pid",
)
_EVENT_COLUMNS = ("session_id", "at", "step_index", "event", "detail", "operator")
_ALERT_COLUMNS = (
    "rule",
    "key",
    "severity",
    "title",
    "detail",
    "raised_at",
    "resolved_at",
    "status",
    "last_sent_at",
    "silenced",
    "runbook",
    "target",  # v13: the profile target whose process opened it
    "posted_at",  # v14: the last re-post to Alertmanager (a replica's claim)
)
_DELIVERY_COLUMNS = ("channel", "event", "ok", "attempts", "error", "at")
_ANCHOR_COLUMNS = ("run_id", "log_id", "seq", "mac", "recorded_at", "host_id")  # host_id: v14


@dataclass
class Moved:
    """What one copy added (rows already in the database are not counted)."""

    runs: int = 0
    runs_there: int = 0
    check_results: int = 0
    findings: int = 0
    sessions: int = 0
    alerts: int = 0
    anchors: int = 0
    webhooks: int = 0
    trace_scans: int = 0
    verdicts: int = 0
    total_runs: int = 0
    extra: dict[str, int] = field(default_factory=dict)


Progress = Callable[[int, int], None]  # (runs done, runs in all)


def copy_history(
    source: History, target: History, on_progress: Progress | None = None, *, batch: int = BATCH_RUNS
) -> Moved:
    """Copy `source` (SQLite) into `target` (PostgreSQL); see the module's docstring."""
    if source.dialect != "sqlite" or target.dialect != "postgresql":
        raise ValueError("history migrate copies an SQLite history into a PostgreSQL database")
    src: sqlite3.Connection = source.conn
    dst: PgConnection = target.conn  # type: ignore[assignment]
    moved = Moved(total_runs=int(src.execute("SELECT COUNT(*) FROM runs").fetchone()[0]))
    report = on_progress or (lambda _done, _total: None)
    report(0, moved.total_runs)
    facts: dict[bytes, int] = {}  # digest -> the database's shared_facts id
    done, last = 0, None
    while True:
        rows = src.execute(
            f"SELECT rowid, {', '.join(_RUN_COLUMNS)} FROM runs "  # noqa: S608 - fixed names
            + ("WHERE rowid > ? " if last is not None else "")
            + "ORDER BY rowid LIMIT ?",
            [*([last] if last is not None else []), batch],
        ).fetchall()
        if not rows:
            break
        last = rows[-1][0]
        with target.writing():
            _copy_runs(src, dst, [r[1:] for r in rows], facts, moved)
        done += len(rows)
        report(done, moved.total_runs)
    _copy_unattached_checks(src, dst, facts, moved)
    with target.writing():
        _copy_sessions(src, dst, moved)
    with target.writing():
        _copy_alerts(src, dst, moved)
    with target.writing():
        _copy_rest(src, dst, moved)
    return moved


def _copy_runs(
    src: sqlite3.Connection,
    dst: PgConnection,
    runs: Sequence[Sequence[Any]],
    facts: dict[bytes, int],
    moved: Moved,
) -> None:
    ids = [str(r[0]) for r in runs]
    there = {str(r[0]) for r in dst.execute("SELECT run_id FROM runs WHERE run_id = ANY(?)", [ids])}
    new = [r for r in runs if str(r[0]) not in there]
    moved.runs_there += len(there)
    if not new:
        return
    _copy_rows(dst, "runs", _RUN_COLUMNS, new)
    moved.runs += len(new)
    new_ids = [str(r[0]) for r in new]
    for part in _chunks(new_ids, 500):
        marks = ", ".join("?" * len(part))
        findings = src.execute(
            f"SELECT {', '.join(_FINDING_COLUMNS)} FROM findings WHERE run_id IN ({marks}) ORDER BY id",  # noqa: S608
            part,
        ).fetchall()
        moved.findings += _copy_rows(dst, "findings", _FINDING_COLUMNS, findings)
        env = src.execute(
            f"SELECT {', '.join(_ENV_COLUMNS)} FROM env_keys WHERE run_id IN ({marks})",  # noqa: S608
            part,
        ).fetchall()
        _copy_rows(dst, "env_keys", _ENV_COLUMNS, env)
        checks = src.execute(
            f"SELECT c.{', c.'.join(CHECK_COLUMNS)}, s.digest, s.body, s.last_used FROM check_results c "  # noqa: S608
            f"LEFT JOIN shared_facts s ON s.id = c.facts_id WHERE c.run_id IN ({marks}) ORDER BY c.id",
            part,
        ).fetchall()
        # the facts first (a statement cannot run while a COPY is under way on the connection)
        mapped = list(_with_facts(dst, checks, facts))
        moved.check_results += _copy_rows(dst, "check_results", CHECK_COLUMNS, mapped)


def _copy_unattached_checks(
    src: sqlite3.Connection, dst: PgConnection, facts: dict[bytes, int], moved: Moved, batch: int = 5000
) -> None:
    """Check results recorded under no run (a watching dashboard's or serve's sweeps): copied by
    what names one, its run id (the sweep), check and time, when not there yet."""
    columns = f"c.{', c.'.join(CHECK_COLUMNS)}, s.digest, s.body, s.last_used"
    run_at, name_at, started_at = (CHECK_COLUMNS.index(c) for c in ("run_id", "check_name", "started_at"))
    last = 0
    while True:
        rows = src.execute(
            f"SELECT c.id, {columns} FROM check_results c LEFT JOIN shared_facts s ON s.id = c.facts_id "  # noqa: S608
            "WHERE c.id > ? AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = c.run_id) "
            "ORDER BY c.id LIMIT ?",
            [last, batch],
        ).fetchall()
        if not rows:
            return
        last = int(rows[-1][0])
        with dst:
            sweeps = sorted({str(r[1 + run_at]) for r in rows})
            there = {
                (str(a), str(b), str(c))
                for a, b, c in dst.execute(
                    "SELECT run_id, check_name, started_at FROM check_results WHERE run_id = ANY(?)", [sweeps]
                )
            }
            new = [
                r[1:]
                for r in rows
                if (str(r[1 + run_at]), str(r[1 + name_at]), str(r[1 + started_at])) not in there
            ]
            mapped = list(_with_facts(dst, new, facts))
            moved.check_results += _copy_rows(dst, "check_results", CHECK_COLUMNS, mapped)


def _with_facts(
    dst: PgConnection, rows: list[tuple[Any, ...]], facts: dict[bytes, int]
) -> Iterator[tuple[Any, ...]]:
    """Check result rows with facts_id the database's id of the same body (by its digest)."""
    at = CHECK_COLUMNS.index("facts_id")
    width = len(CHECK_COLUMNS)
    for row in rows:
        digest, body, used = row[width:]
        facts_id = None
        if digest is not None:
            digest = bytes(digest)
            facts_id = facts.get(digest)
            if facts_id is None:
                found = dst.execute(
                    "INSERT INTO shared_facts (digest, body, last_used) VALUES (?, ?, ?) "
                    "ON CONFLICT (digest) DO UPDATE SET last_used = GREATEST(shared_facts.last_used, "
                    "EXCLUDED.last_used) RETURNING id",
                    [digest, body, used],
                ).fetchone()
                facts_id = facts[digest] = int(found[0])
        yield (*row[:at], facts_id, *row[at + 1 : width])


def _copy_rows(
    dst: PgConnection, table: str, columns: Sequence[str], rows: Iterator[Any] | Sequence[Any]
) -> int:
    """COPY the rows in (the database assigns ids); how many."""
    return dst.copy_rows(table, columns, rows)


def _copy_sessions(src: sqlite3.Connection, dst: PgConnection, moved: Moved) -> None:
    there = {str(r[0]) for r in dst.execute("SELECT id FROM runbook_sessions")}
    sessions = [
        r
        for r in src.execute(f"SELECT {', '.join(_SESSION_COLUMNS)} FROM runbook_sessions ORDER BY rowid")  # noqa: S608
        if str(r[0]) not in there
    ]
    if not sessions:
        return
    sessions, clashes = _one_holder_per_group(dst, sessions)
    _copy_rows(dst, "runbook_sessions", _SESSION_COLUMNS, sessions)
    moved.sessions += len(sessions)
    for part in _chunks([str(s[0]) for s in sessions], 500):
        marks = ", ".join("?" * len(part))
        steps = src.execute(
            f"SELECT {', '.join(_STEP_COLUMNS)} FROM runbook_steps WHERE session_id IN ({marks})",  # noqa: S608
            part,
        ).fetchall()
        _copy_rows(dst, "runbook_steps", _STEP_COLUMNS, steps)
        events = src.execute(
            f"SELECT {', '.join(_EVENT_COLUMNS)} FROM runbook_events "  # noqa: S608
            f"WHERE session_id IN ({marks}) ORDER BY id",
            part,
        ).fetchall()
        _copy_rows(dst, "runbook_events", _EVENT_COLUMNS, events)
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    for session_id, holder, operator in clashes:
        detail = (
            f"moved in by history migrate while session {holder} held its exclusive group in this "
            "database: recorded as aborted, so the group has one holder"
        )
        dst.execute(
            "INSERT INTO runbook_events (session_id, at, step_index, event, detail, operator) "
            "VALUES (?, ?, NULL, ?, ?, ?)",
            [session_id, at, ABANDONED, detail, operator],
        )
        row = dst.execute("SELECT summary FROM runs WHERE run_id = ?", [session_id]).fetchone()
        summary = {**(json.loads(row[0]) if row and row[0] else {}), "status": "aborted"}
        dst.execute(
            "UPDATE runs SET verdict = 'CRIT', summary = ? WHERE run_id = ?",
            [json.dumps(summary), session_id],
        )


def _one_holder_per_group(
    dst: PgConnection, sessions: list[Any]
) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, str]]]:
    """The sessions to copy, each active one of an exclusive group that already has an active
    session in the team database (or earlier in this copy) made aborted, driver cleared: two
    active sessions of one group would both be driven (the group is one holder's). Also
    (session, the holder it yielded to, its operator) for each, for the record's event."""
    active = {
        (str(group), str(target or "")): str(id_)
        for id_, group, target in dst.execute(
            "SELECT id, exclusive_group, target FROM runbook_sessions "
            "WHERE status = 'active' AND exclusive_group IS NOT NULL"
        )
    }
    out, clashes = [], []
    for values in sessions:
        row = dict(zip(_SESSION_COLUMNS, values, strict=True))
        if row["status"] == "active" and row["exclusive_group"] is not None:
            key = (str(row["exclusive_group"]), str(row["target"] or ""))
            if key in active:
                clashes.append((str(row["id"]), active[key], str(row["operator"])))
                row["status"], row["driver"] = "aborted", None
            else:
                active[key] = str(row["id"])
        out.append(tuple(row[c] for c in _SESSION_COLUMNS))
    return out, clashes


def _copy_alerts(src: sqlite3.Connection, dst: PgConnection, moved: Moved) -> None:
    there = {
        (str(rule), str(key), float(raised))
        for rule, key, raised in dst.execute("SELECT rule, key, raised_at FROM alerts")
        if raised is not None
    }
    for row in src.execute(f"SELECT id, {', '.join(_ALERT_COLUMNS)} FROM alerts ORDER BY id"):  # noqa: S608
        old_id, values = row[0], row[1:]
        rule, key, raised = values[0], values[1], values[5]
        if raised is not None and (str(rule), str(key), float(raised)) in there:
            continue
        new_id = dst.execute(
            f"INSERT INTO alerts ({', '.join(_ALERT_COLUMNS)}) "  # noqa: S608
            f"VALUES ({', '.join('?' * len(_ALERT_COLUMNS))})",
            list(values),
        ).lastrowid
        moved.alerts += 1
        deliveries = src.execute(
            f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM alert_deliveries WHERE alert_id = ? ORDER BY id",  # noqa: S608
            [old_id],
        ).fetchall()
        _copy_rows(
            dst, "alert_deliveries", ("alert_id", *_DELIVERY_COLUMNS), [(new_id, *d) for d in deliveries]
        )


def _copy_rest(src: sqlite3.Connection, dst: PgConnection, moved: Moved) -> None:
    anchors = {(str(log), int(seq)) for log, seq in dst.execute("SELECT log_id, seq FROM audit_anchors")}
    new = [
        r
        for r in src.execute(f"SELECT {', '.join(_ANCHOR_COLUMNS)} FROM audit_anchors ORDER BY id")  # noqa: S608
        if (str(r[1]), int(r[2])) not in anchors
    ]
    moved.anchors += _copy_rows(dst, "audit_anchors", _ANCHOR_COLUMNS, new)
    watches = src.execute("SELECT run_id, target, started_at FROM watches ORDER BY rowid").fetchall()
    if watches:  # whose sweeps a watch's check results are (v13): by run id, once
        dst.executemany(
            "INSERT OR IGNORE INTO watches (run_id, target, started_at) VALUES (?, ?, ?)", watches
        )
    seen = src.execute("SELECT scheme, delivery_id, seen_at, expires_at FROM webhook_seen").fetchall()
    if seen:
        before = _count(dst, "webhook_seen")
        dst.executemany(
            "INSERT OR IGNORE INTO webhook_seen (scheme, delivery_id, seen_at, expires_at) "
            "VALUES (?, ?, ?, ?)",
            seen,
        )
        moved.webhooks += _count(dst, "webhook_seen") - before
    failures = {
        (str(s), a, str(o), t)
        for s, a, o, t in dst.execute("SELECT source, at, outcome, target FROM webhook_failures")
    }
    new = [
        r
        for r in src.execute("SELECT source, at, outcome, target FROM webhook_failures ORDER BY id")
        if (str(r[0]), r[1], str(r[2]), r[3]) not in failures
    ]
    moved.webhooks += _copy_rows(dst, "webhook_failures", ("source", "at", "outcome", "target"), new)
    scans = {str(r[0]) for r in dst.execute("SELECT repo FROM trace_scans")}
    for scan_id, repo, needles, updated in src.execute(
        "SELECT id, repo, needles, updated_at FROM trace_scans ORDER BY id"
    ).fetchall():
        if str(repo) in scans:
            continue
        new_id = dst.execute(
            "INSERT INTO trace_scans (repo, needles, updated_at) VALUES (?, ?, ?)", [repo, needles, updated]
        ).lastrowid
        objects = src.execute("SELECT oid FROM trace_objects WHERE scan_id = ?", [scan_id]).fetchall()
        _copy_rows(dst, "trace_objects", ("scan_id", "oid"), [(new_id, bytes(o)) for (o,) in objects])
        places = src.execute(
            "SELECT oid, commit_id, path FROM trace_places WHERE scan_id = ?", [scan_id]
        ).fetchall()
        _copy_rows(
            dst, "trace_places", ("scan_id", "oid", "commit_id", "path"), [(new_id, *p) for p in places]
        )
        moved.trace_scans += 1
    verdicts = src.execute("SELECT key, value FROM meta WHERE key LIKE 'gate:%'").fetchall()
    for key, value in verdicts:
        cursor = dst.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", [key, value])
        moved.verdicts += max(cursor.rowcount, 0)


def _count(dst: PgConnection, table: str) -> int:
    return int(dst.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 - fixed names


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
