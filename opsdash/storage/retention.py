"""Retention: what is older than the retention period goes from every table in one transaction,
and the freed pages go back to the file system (`history.purge`, `history.compact`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from opsdash.storage.repository import day_before

if TYPE_CHECKING:
    from opsdash.storage.history import History

# A database an older opsdash made without auto_vacuum is converted by one full VACUUM; retention
# does that itself below this size (about a second), above it `opsdash history compact` does.
AUTO_COMPACT_BYTES = 64 * 1024 * 1024


def purge(history: History, older_than_days: int, now: datetime | None = None) -> int:
    """Delete what is older than the retention period from every table, then give the space
    back to the file system; returns how many runs went. Kept whatever their age: runbook
    sessions still active (and their runs), firing alerts, and each audit log's newest anchor."""
    now = now or datetime.now(UTC)
    cutoff_dt = now - timedelta(days=older_than_days)
    cutoff, cutoff_ts = cutoff_dt.isoformat(timespec="seconds"), cutoff_dt.timestamp()
    active = "SELECT id FROM runbook_sessions WHERE status = 'active'"
    old_runs = f"SELECT run_id FROM runs WHERE started_at < ? AND run_id NOT IN ({active})"  # noqa: S608
    ended = "SELECT id FROM runbook_sessions WHERE status != 'active' AND updated_at < ?"
    with history.writing():
        execute = history.db.execute
        for table in ("findings", "env_keys"):
            execute(f"DELETE FROM {table} WHERE run_id IN ({old_runs})", [cutoff])  # noqa: S608
        for name in history.checks.names():  # one index range per check (no index on started_at alone)
            execute("DELETE FROM check_results WHERE check_name = ? AND started_at < ?", [name, cutoff])
        sessions = [str(r[0]) for r in execute(ended, [cutoff])]
        for table, column in (
            ("runbook_events", "session_id"),
            ("runbook_steps", "session_id"),
            ("runbook_sessions", "id"),
        ):
            execute(f"DELETE FROM {table} WHERE {column} IN ({ended})", [cutoff])  # noqa: S608
        gone = int(execute(f"DELETE FROM runs WHERE run_id IN ({old_runs})", [cutoff]).rowcount)  # noqa: S608
        execute(
            "DELETE FROM audit_anchors WHERE recorded_at < ? "
            "AND id NOT IN (SELECT MAX(id) FROM audit_anchors GROUP BY log_id)",
            [cutoff],
        )
        resolved = "SELECT id FROM alerts WHERE status = 'resolved' AND COALESCE(resolved_at, raised_at) < ?"
        execute(f"DELETE FROM alert_deliveries WHERE at < ? OR alert_id IN ({resolved})", [cutoff_ts] * 2)  # noqa: S608
        execute(f"DELETE FROM alerts WHERE id IN ({resolved})", [cutoff_ts])  # noqa: S608
        # a body's last_used is at most a day older than the newest row using it (checks._share_facts)
        execute("DELETE FROM shared_facts WHERE last_used < ?", [day_before(cutoff)])
        execute("DELETE FROM webhook_failures WHERE at < ? OR at IS NULL", [cutoff_ts])
        execute("DELETE FROM webhook_seen WHERE expires_at < ? OR expires_at IS NULL", [now.timestamp()])
    history.checks.forget_shared()
    _remove_outputs(history, sessions)
    reclaim(history)
    return gone


def _remove_outputs(history: History, sessions: Iterable[str]) -> None:
    folder = history.path.parent / "runbook-output"
    for session in sessions:
        for file in folder.glob(f"{_glob_escape(session)}-*.out"):
            file.unlink(missing_ok=True)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def reclaim(history: History) -> None:
    """Give freed pages back to the file system: incremental vacuum when the file has it; a
    file an older opsdash made without it is converted once if small (else: history compact)."""
    conn = history.conn
    mode = int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])
    try:
        if mode == 2:
            # executescript steps it to the end (execute() frees one page); a passive
            # checkpoint then lets the file shrink without waiting on readers
            conn.executescript("PRAGMA incremental_vacuum;")
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        elif history.path.stat().st_size <= AUTO_COMPACT_BYTES:
            compact(history)
    except sqlite3.OperationalError:  # another process holds the file: the next purge does it
        if conn.in_transaction:
            conn.rollback()


def compact(history: History) -> int:
    """Rebuild the file with incremental auto-vacuum (a full VACUUM: needs free space of the
    file's size, and takes a while on a large file); returns the bytes given back."""
    before = history.path.stat().st_size
    history.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    history.conn.execute("VACUUM")
    history.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return before - history.path.stat().st_size
