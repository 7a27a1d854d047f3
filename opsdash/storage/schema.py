"""The history database's schema, versioned: MIGRATIONS[n] takes a database from version n to n + 1.

A migration only ever adds tables, columns and indexes (or drops an index no query uses); it never
rewrites a row an older opsdash wrote. History runs every pending migration in one transaction, so a
failure part-way (a full disk) leaves the database as it was and the next open completes the work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported by History only when a migration is pending
    import sqlite_utils
    from sqlite_utils.db import Table


def _add_column(table: Table, name: str, kind: type) -> None:
    """Every step is idempotent (tables and indexes `if_not_exists`, columns added once), so a
    database an older opsdash left half-made by a failed first creation is completed, not refused."""
    if name not in table.columns_dict:
        table.add_column(name, kind)


def _v1(db: sqlite_utils.Database) -> None:
    db.table("runs").create(
        {
            "run_id": str,
            "kind": str,
            "target": str,
            "operator": str,
            "started_at": str,
            "duration_ms": int,
            "verdict": str,
            "counts": str,
            "summary": str,
        },
        pk="run_id",
        if_not_exists=True,
    )
    db.table("findings").create(
        {
            "id": int,
            "run_id": str,
            "rule": str,
            "severity": str,
            "category": str,
            "subject": str,
            "title": str,
            "detail": str,
            "remediation": str,
            "runbook": str,
            "evidence": str,
        },
        pk="id",
        foreign_keys=[("run_id", "runs", "run_id")],
        if_not_exists=True,
    )
    db.table("env_keys").create(
        {"run_id": str, "key": str, "source": str, "fingerprint": str, "secret": int},
        pk=("run_id", "key"),
        foreign_keys=[("run_id", "runs", "run_id")],
        if_not_exists=True,
    )
    db.table("runs").create_index(["kind", "started_at"], if_not_exists=True)
    db.table("runs").create_index(["target", "started_at"], if_not_exists=True)
    db.table("findings").create_index(["run_id"], if_not_exists=True)


def _v2(db: sqlite_utils.Database) -> None:
    """Health check results: one row per probe, read as "latest per check" and "last N of a check"."""
    table = db.table("check_results")
    table.create(
        {
            "id": int,
            "run_id": str,
            "check_name": str,
            "kind": str,
            "target": str,
            "started_at": str,
            "severity": str,
            "sustained": str,
            "error_class": str,
            "summary": str,
            "latency_ms": float,
            "phases": str,
            "metrics": str,
            "facts": str,
        },
        pk="id",
        if_not_exists=True,
    )
    table.create_index(["check_name", "started_at"], if_not_exists=True)
    table.create_index(["run_id"], if_not_exists=True)
    table.create_index(["started_at"], if_not_exists=True)


def _v3(db: sqlite_utils.Database) -> None:
    """Audit anchors: the audit log's head after each run, so truncating the log is detectable."""
    db.table("audit_anchors").create(
        {"id": int, "run_id": str, "log_id": str, "seq": int, "mac": str, "recorded_at": str},
        pk="id",
        if_not_exists=True,
    )


def _v4(db: sqlite_utils.Database) -> None:
    """Webhook replay store (seen delivery ids with expiry), failed verifications, and alerts."""
    db.table("webhook_seen").create(
        {"scheme": str, "delivery_id": str, "seen_at": float, "expires_at": float},
        pk=("scheme", "delivery_id"),
        if_not_exists=True,
    )
    db.table("webhook_seen").create_index(["expires_at"], if_not_exists=True)
    db.table("webhook_failures").create(
        {"id": int, "source": str, "at": float, "outcome": str}, pk="id", if_not_exists=True
    )
    db.table("webhook_failures").create_index(["source", "at"], if_not_exists=True)
    db.table("alerts").create(
        {
            "id": int,
            "rule": str,
            "key": str,
            "severity": str,
            "title": str,
            "detail": str,
            "raised_at": float,
            "resolved_at": float,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("alerts").create_index(["rule", "key", "raised_at"], if_not_exists=True)


def _v5(db: sqlite_utils.Database) -> None:
    """Runbook sessions, their steps and every transition (the executor writes before it acts)."""
    db.table("runbook_sessions").create(
        {
            "id": str,
            "runbook_id": str,
            "runbook_path": str,
            "title": str,
            "params": str,
            "operator": str,
            "status": str,
            "current_step": int,
            "started_at": str,
            "updated_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("runbook_sessions").create_index(["runbook_id", "started_at"], if_not_exists=True)
    db.table("runbook_steps").create(
        {
            "session_id": str,
            "step_index": int,
            "status": str,
            "started_at": str,
            "finished_at": str,
            "exit_code": int,
            "output": str,
            "note": str,
            "detail": str,
        },
        pk=("session_id", "step_index"),
        if_not_exists=True,
    )
    db.table("runbook_events").create(
        {
            "id": int,
            "session_id": str,
            "at": str,
            "step_index": int,
            "event": str,
            "detail": str,
            "operator": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("runbook_events").create_index(["session_id"], if_not_exists=True)


def _v6(db: sqlite_utils.Database) -> None:
    """Alert lifecycle (firing/resolved, reminders, silences) and every delivery attempt per channel."""
    alerts = db.table("alerts")
    for name, kind in (("status", str), ("last_sent_at", float), ("silenced", int), ("runbook", str)):
        _add_column(alerts, name, kind)
    db.execute("UPDATE alerts SET status = 'firing', last_sent_at = raised_at, silenced = 0")
    db.table("alert_deliveries").create(
        {
            "id": int,
            "alert_id": int,
            "channel": str,
            "event": str,
            "ok": int,
            "attempts": int,
            "error": str,
            "at": float,
        },
        pk="id",
        if_not_exists=True,
    )
    db.table("alert_deliveries").create_index(["alert_id"], if_not_exists=True)


def _v7(db: sqlite_utils.Database) -> None:
    """The process group a running command step started, so a restart can tell it still runs."""
    _add_column(db.table("runbook_steps"), "pid", int)


def _v8(db: sqlite_utils.Database) -> None:
    """A year of runs: a check result row carries everything its report showed (a run's summary no
    longer copies them), every query the CLI and dashboard make has an index, and `meta` remembers
    when the file was last integrity-checked."""
    results = db.table("check_results")
    for name, kind in (
        ("duration_ms", float),
        ("attempts", int),
        ("hint", str),
        ("runbook", str),
        ("conditions", str),  # JSON list, NULL when the check has none
        ("findings", str),  # JSON list of the check's own findings, NULL when none
    ):
        _add_column(results, name, kind)
    # retention deletes per check through (check_name, started_at); this index cost 37 bytes a row
    db.execute("DROP INDEX IF EXISTS idx_check_results_started_at")
    db.table("runs").create_index(
        ["started_at"], if_not_exists=True
    )  # history list, latest~N, the history pane
    db.table("alerts").create_index(["status", "raised_at"], if_not_exists=True)
    db.table("alert_deliveries").create_index(["at"], if_not_exists=True)
    db.table("webhook_failures").create_index(["at"], if_not_exists=True)
    db.table("audit_anchors").create_index(["recorded_at"], if_not_exists=True)
    db.table("runbook_sessions").create_index(["status", "updated_at"], if_not_exists=True)
    # the facts a check's results share (a certificate's subject, issuer, dates, chain: ~550 bytes
    # that change when the certificate does), stored once; a row keeps only what changes each probe
    _add_column(results, "facts_id", int)
    db.table("shared_facts").create(
        {"id": int, "digest": bytes, "body": str, "last_used": str}, pk="id", if_not_exists=True
    )
    db.table("shared_facts").create_index(["digest"], unique=True, if_not_exists=True)
    db.table("shared_facts").create_index(["last_used"], if_not_exists=True)
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)


def _v9(db: sqlite_utils.Database) -> None:
    """A runbook session's exclusive group and target: one active session per (group, target)
    (rows written before have neither, and never block)."""
    sessions = db.table("runbook_sessions")
    _add_column(sessions, "exclusive_group", str)
    _add_column(sessions, "target", str)
    sessions.create_index(["exclusive_group", "target", "status"], if_not_exists=True)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9]
SCHEMA_VERSION = len(MIGRATIONS)
