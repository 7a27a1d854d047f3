"""The history database's schema, versioned: MIGRATIONS[n] takes a database from version n to n + 1.

A migration only ever adds (tables, columns, indexes); it never rewrites what an older opsdash wrote.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlite_utils


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
    )
    db.table("env_keys").create(
        {"run_id": str, "key": str, "source": str, "fingerprint": str, "secret": int},
        pk=("run_id", "key"),
        foreign_keys=[("run_id", "runs", "run_id")],
    )
    db.table("runs").create_index(["kind", "started_at"])
    db.table("runs").create_index(["target", "started_at"])
    db.table("findings").create_index(["run_id"])


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
    )
    table.create_index(["check_name", "started_at"])
    table.create_index(["run_id"])
    table.create_index(["started_at"])


def _v3(db: sqlite_utils.Database) -> None:
    """Audit anchors: the audit log's head after each run, so truncating the log is detectable."""
    db.table("audit_anchors").create(
        {"id": int, "run_id": str, "log_id": str, "seq": int, "mac": str, "recorded_at": str}, pk="id"
    )


def _v4(db: sqlite_utils.Database) -> None:
    """Webhook replay store (seen delivery ids with expiry), failed verifications, and alerts."""
    db.table("webhook_seen").create(
        {"scheme": str, "delivery_id": str, "seen_at": float, "expires_at": float},
        pk=("scheme", "delivery_id"),
    )
    db.table("webhook_seen").create_index(["expires_at"])
    db.table("webhook_failures").create({"id": int, "source": str, "at": float, "outcome": str}, pk="id")
    db.table("webhook_failures").create_index(["source", "at"])
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
    )
    db.table("alerts").create_index(["rule", "key", "raised_at"])


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
    )
    db.table("runbook_sessions").create_index(["runbook_id", "started_at"])
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
    )
    db.table("runbook_events").create_index(["session_id"])


def _v6(db: sqlite_utils.Database) -> None:
    """Alert lifecycle (firing/resolved, reminders, silences) and every delivery attempt per channel."""
    alerts = db.table("alerts")
    alerts.add_column("status", str)
    alerts.add_column("last_sent_at", float)
    alerts.add_column("silenced", int)
    alerts.add_column("runbook", str)
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
    )
    db.table("alert_deliveries").create_index(["alert_id"])


def _v7(db: sqlite_utils.Database) -> None:
    """The process group a running command step started, so a restart can tell it still runs."""
    db.table("runbook_steps").add_column("pid", int)


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7]
SCHEMA_VERSION = len(MIGRATIONS)
