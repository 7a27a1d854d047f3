"""The last verdict known for a target, for the dashboard's first frame: read from the history
database with nothing but sqlite3 (no sqlite-utils, no migration, no lock file, no settings), so
the header can show it before the profile's models are even imported.

What counts as a verdict, newest first: the one the dashboard last settled on for the target in
its environment (kept in `meta` as `gate:<target> (<environment>)` by `remember`), or any run of
the target that found something critical (CRIT anywhere is NO-GO). A run never gives a GO: runs
record the target's name, not its environment, so a passing staging preflight must not paint GO
on production (and a validate or check run that passed says nothing about the rest). Anything
unclear (no database, another schema, a corrupt file, a locked one) is no verdict, never a guess."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from opsdash.core.errors import OpsdashError
from opsdash.storage.history import DB_NAME, History

LABELS = ("GO", "NO-GO", "UNKNOWN")
DEFAULT_ENVIRONMENT = "production"  # as the profile's [target] environment defaults
BUSY_TIMEOUT = 0.2  # seconds the first frame may wait for a locked database


@dataclass(frozen=True)
class LastVerdict:
    """A verdict recorded earlier: GO | NO-GO | UNKNOWN, why, when (ISO 8601, UTC) and what
    recorded it ("dashboard", "preflight", "validate", ...)."""

    label: str
    reason: str
    at: str
    source: str


def gate_key(target: str, environment: str) -> str:
    return f"gate:{target} ({environment})"


def _from_meta(conn: sqlite3.Connection, target: str, environment: str) -> LastVerdict | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (gate_key(target, environment),)).fetchone()
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
    row = conn.execute(
        "SELECT kind, started_at FROM runs WHERE target = ? AND verdict = 'CRIT' "
        "ORDER BY started_at DESC LIMIT 1",
        (target,),
    ).fetchone()
    if row is None:
        return None
    kind, started_at = row
    if not isinstance(started_at, str):
        return None
    return LastVerdict("NO-GO", f"{kind} run: CRIT", started_at, str(kind))


def read_last_verdict(
    data_dir: Path, target: str, environment: str = DEFAULT_ENVIRONMENT, *, database: str | None = None
) -> LastVerdict | None:
    """The newest verdict recorded for `target` (in `environment`) in `data_dir`'s history (or the
    team `database`, a postgresql:// URL: a second at most to connect), or None (none recorded, or
    the database could not be read as it is: never created, migrated or locked here)."""
    path = data_dir / DB_NAME
    try:
        if database:
            history = History(path, read_only=True, busy_timeout=1, database=database)
        elif not path.is_file():
            return None
        else:
            # a moment at most: a file locked by `history compact`'s VACUUM is no verdict, not a stall
            history = History(path, read_only=True, busy_timeout=BUSY_TIMEOUT)
    except (OpsdashError, OSError, ValueError):
        return None
    try:
        kept = _from_meta(history.conn, target, environment)
        found = [v for v in (kept, _from_runs(history.conn, target)) if v]
    except (sqlite3.Error, ValueError, TypeError):  # corrupt, locked, another shape: no verdict
        return None
    finally:
        history.conn.close()
    return max(found, key=lambda v: v.at) if found else None


def remember(
    history: History, target: str, label: str, reason: str, at: str, environment: str = DEFAULT_ENVIRONMENT
) -> None:
    """Keep the verdict the dashboard settled on, for the next start's first frame."""
    value = json.dumps({"label": label, "reason": reason, "at": at})
    with history.conn:
        history.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (gate_key(target, environment), value)
        )
