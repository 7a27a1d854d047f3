"""The last verdict known for a target, for the dashboard's first frame: read from the history
database with nothing but sqlite3 (no sqlite-utils, no migration, no lock file, no settings), so
the header can show it before the profile's models are even imported.

What counts as a verdict, newest first: the one the dashboard last settled on (kept in `meta` as
`gate:<target>` by `remember`), a preflight or verify-deploy run (they are the gate), or any run of
the target that found something critical (CRIT anywhere is NO-GO). A validate or check run that
passed is not a verdict (the checks or the environment may still have failed), so it is never
read as GO. Anything unclear (no database, another schema, a corrupt file, a locked one) is no
verdict, never a guess."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from opsdash.core.errors import OpsdashError
from opsdash.storage.history import DB_NAME, History

GATE_KINDS = ("preflight", "verify-deploy")
LABELS = ("GO", "NO-GO", "UNKNOWN")


@dataclass(frozen=True)
class LastVerdict:
    """A verdict recorded earlier: GO | NO-GO | UNKNOWN, why, when (ISO 8601, UTC) and what
    recorded it ("dashboard", "preflight", "validate", ...)."""

    label: str
    reason: str
    at: str
    source: str


def gate_key(target: str) -> str:
    return f"gate:{target}"


def _label(severity: str) -> str:
    if severity == "CRIT":
        return "NO-GO"
    if severity == "UNKNOWN":
        return "UNKNOWN"
    return "GO"


def _from_meta(conn: sqlite3.Connection, target: str) -> LastVerdict | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (gate_key(target),)).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    if not isinstance(data, dict):
        return None
    label, reason, at = data.get("label"), data.get("reason", ""), data.get("at")
    if label not in LABELS or not isinstance(reason, str) or not isinstance(at, str):
        return None
    return LastVerdict(label, reason, at, "dashboard")


def _from_runs(conn: sqlite3.Connection, target: str) -> LastVerdict | None:
    marks = ", ".join("?" for _ in GATE_KINDS)
    row = conn.execute(
        "SELECT kind, verdict, started_at FROM runs WHERE target = ? "  # noqa: S608 - placeholders only
        f"AND (kind IN ({marks}) OR verdict = 'CRIT') ORDER BY started_at DESC LIMIT 1",
        (target, *GATE_KINDS),
    ).fetchone()
    if row is None:
        return None
    kind, verdict, started_at = row
    if not isinstance(started_at, str) or not isinstance(verdict, str):
        return None
    return LastVerdict(_label(verdict), f"{kind} run: {verdict}", started_at, str(kind))


def read_last_verdict(data_dir: Path, target: str) -> LastVerdict | None:
    """The newest verdict recorded for `target` in `data_dir`'s history, or None (none recorded,
    or the database could not be read as it is: never created, migrated or locked here)."""
    path = data_dir / DB_NAME
    try:
        if not path.is_file():
            return None
        history = History(path, read_only=True)
    except (OpsdashError, OSError, ValueError):
        return None
    try:
        found = [v for v in (_from_meta(history.conn, target), _from_runs(history.conn, target)) if v]
    except (sqlite3.Error, ValueError, TypeError):  # corrupt, locked, another shape: no verdict
        return None
    finally:
        history.conn.close()
    return max(found, key=lambda v: v.at) if found else None


def remember(history: History, target: str, label: str, reason: str, at: str) -> None:
    """Keep the verdict the dashboard settled on, for the next start's first frame."""
    value = json.dumps({"label": label, "reason": reason, "at": at})
    with history.conn:
        history.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (gate_key(target), value)
        )
