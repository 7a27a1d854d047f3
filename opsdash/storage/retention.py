"""Retention: what is older than the retention period goes from every table, and the freed pages go
back to the file system (`history.purge_batch`, `.purge`, `.vacuum_step`, `.compact`).

It goes in small batches, oldest first, each its own short `BEGIN IMMEDIATE` transaction, so the
writes of other processes (a `validate`, a dashboard's watch, `serve`) wait at most one batch for
the write lock, never for a year's backlog. A batch is the whole purge at an earlier cutoff: it
deletes, with the very statements of a purge at the retention cutoff, what is older than a slice
end chosen so that the batch holds at most `runs` runs and `per_check` results of each check. The
slice end only moves forward, and the last batch runs at the cutoff itself, so when a purge says
it is done the tables hold exactly what one transaction at the cutoff would have left. Kept
whatever their age: runbook sessions still active (and their runs), firing alerts, each audit
log's newest anchor, a watch (`watches`: whose target a watch's run id is) with a check result
still kept; a shared facts body goes with the last row that could use it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from opsdash.storage.repository import day_before

if TYPE_CHECKING:
    from opsdash.storage.history import History

# A database an older opsdash made without auto_vacuum is converted by one full VACUUM; retention
# does that itself below this size (about a second), above it `opsdash history compact` does.
AUTO_COMPACT_BYTES = 64 * 1024 * 1024
# One batch: at most this many runs and this many results of each check (benchmarks/history.py
# measures the longest batch: the time another writer may wait for the lock).
BATCH_RUNS = 50
BATCH_PER_CHECK = 50
BATCH_ROWS = 5000  # webhook replay ids and failures, watches, a batch deletes at most (a flood of them)
VACUUM_PAGES = 512  # pages one vacuum step gives back (2 MiB of 4 KiB pages)

_ACTIVE = "SELECT id FROM runbook_sessions WHERE status = 'active'"
_OLD_RUNS = f"SELECT run_id FROM runs WHERE started_at < ? AND run_id NOT IN ({_ACTIVE})"  # noqa: S608
_ENDED = "SELECT id FROM runbook_sessions WHERE status != 'active' AND updated_at < ?"
_RESOLVED = "SELECT id FROM alerts WHERE status = 'resolved' AND COALESCE(resolved_at, raised_at) < ?"
# a watch that started before the slice end and has no check result left (its results went above,
# or it recorded none): a watch that runs on, or whose newer results are kept, stays
_GONE_WATCHES = (
    "started_at < ? AND NOT EXISTS (SELECT 1 FROM check_results c WHERE c.run_id = watches.run_id)"
)


@dataclass(frozen=True)
class Batch:
    """What one batch did: `runs` deleted, `done` when nothing older than the cutoff is left,
    `held` seconds it held the write lock, `checkpoint` seconds copying its pages from the WAL
    into the file afterwards (without the lock: others read and write meanwhile)."""

    runs: int
    done: bool
    held: float
    checkpoint: float = 0.0


def purge_batch(
    history: History,
    older_than_days: int,
    now: datetime | None = None,
    *,
    runs: int = BATCH_RUNS,
    per_check: int = BATCH_PER_CHECK,
    rows: int = BATCH_ROWS,
) -> Batch:
    """Delete the oldest slice of what is older than the retention period, in one transaction."""
    now = now or datetime.now(UTC)
    cutoff_dt = now - timedelta(days=older_than_days)
    cutoff = cutoff_dt.isoformat(timespec="seconds")
    with _checkpointed(history) as clock, history.writing():
        t0 = time.perf_counter()
        end = _slice_end(history, cutoff, runs, per_check)
        end_ts = cutoff_dt.timestamp() if end == cutoff else _timestamp(end)
        execute = history.conn.execute
        for table in ("findings", "env_keys"):
            execute(f"DELETE FROM {table} WHERE run_id IN ({_OLD_RUNS})", [end])  # noqa: S608
        for name in history.checks.names():  # one index range per check (no index on started_at alone)
            execute("DELETE FROM check_results WHERE check_name = ? AND started_at < ?", [name, end])
        sessions = [str(r[0]) for r in execute(_ENDED, [end])]
        for table, column in (
            ("runbook_events", "session_id"),
            ("runbook_steps", "session_id"),
            ("runbook_sessions", "id"),
        ):
            execute(f"DELETE FROM {table} WHERE {column} IN ({_ENDED})", [end])  # noqa: S608
        gone = int(execute(f"DELETE FROM runs WHERE run_id IN ({_OLD_RUNS})", [end]).rowcount)  # noqa: S608
        execute(
            "DELETE FROM audit_anchors WHERE recorded_at < ? "
            "AND id NOT IN (SELECT MAX(id) FROM audit_anchors GROUP BY log_id)",
            [end],
        )
        execute(f"DELETE FROM alert_deliveries WHERE at < ? OR alert_id IN ({_RESOLVED})", [end_ts] * 2)  # noqa: S608
        execute(f"DELETE FROM alerts WHERE id IN ({_RESOLVED})", [end_ts])  # noqa: S608
        # a body's last_used is at most a day older than the newest row using it (checks._share_facts)
        execute("DELETE FROM shared_facts WHERE last_used < ?", [day_before(end)])
        full = _bounded_delete(history, "watches", _GONE_WATCHES, end, rows)
        full |= _bounded_delete(history, "webhook_failures", "at < ? OR at IS NULL", end_ts, rows)
        full |= _bounded_delete(
            history, "webhook_seen", "expires_at < ? OR expires_at IS NULL", now.timestamp(), rows
        )
    history.checks.forget_shared()
    _remove_outputs(history, sessions)
    done = end == cutoff and not full
    if done:
        _sweep_outputs(history)
    return Batch(gone, done, clock.committed - t0, clock.checkpointed - clock.committed)


@dataclass
class _Clock:
    committed: float = 0.0
    checkpointed: float = 0.0


@contextlib.contextmanager
def _checkpointed(history: History, *, always: bool = False) -> Iterator[_Clock]:
    """The transaction inside commits without the automatic checkpoint (which would run while
    the caller still waits on the commit), then a passive one copies its pages into the file with
    the lock released: what a batch holds the lock for is the batch alone. A batch that deleted
    nothing (the usual case once caught up) writes nothing and needs no checkpoint."""
    conn = history.conn
    clock = _Clock()
    if history.dialect != "sqlite":  # PostgreSQL checkpoints on its own
        yield clock
        clock.committed = clock.checkpointed = time.perf_counter()
        return
    changes = conn.total_changes
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    try:
        yield clock
    finally:
        conn.execute("PRAGMA wal_autocheckpoint = 1000")
    clock.committed = clock.checkpointed = time.perf_counter()
    if always or conn.total_changes != changes:
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        clock.checkpointed = time.perf_counter()


def _slice_end(history: History, cutoff: str, runs: int, per_check: int) -> str:
    """The cutoff, or an earlier end past the `runs` oldest runs to purge and the `per_check`
    oldest results of each check (with every row that shares the last one's time: a slice never
    ends inside a tie, so each batch moves on)."""
    conn = history.conn
    end = cutoff
    nth = conn.execute(
        f"SELECT started_at FROM runs WHERE started_at < ? AND run_id NOT IN ({_ACTIVE}) "  # noqa: S608
        "ORDER BY started_at LIMIT 1 OFFSET ?",
        [cutoff, runs - 1],
    ).fetchone()
    if nth is not None:
        after = conn.execute("SELECT MIN(started_at) FROM runs WHERE started_at > ?", [nth[0]]).fetchone()
        if after[0] is not None:
            end = min(end, str(after[0]))
    for name in history.checks.names():
        nth = conn.execute(
            "SELECT started_at FROM check_results WHERE check_name = ? AND started_at < ? "
            "ORDER BY started_at LIMIT 1 OFFSET ?",
            [name, end, per_check - 1],
        ).fetchone()
        if nth is None:
            continue
        after = conn.execute(
            "SELECT MIN(started_at) FROM check_results WHERE check_name = ? AND started_at > ?",
            [name, nth[0]],
        ).fetchone()
        if after[0] is not None:
            end = min(end, str(after[0]))
    return end


def _timestamp(at: str) -> float:
    """The slice end as a time for the tables that keep seconds; a time that does not read leaves
    them to a later batch (the last one ends at the cutoff)."""
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        return 0.0
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _bounded_delete(history: History, table: str, where: str, value: float | str, limit: int) -> bool:
    """Delete at most `limit` rows; True when it hit the limit (more may be left)."""
    cursor = history.conn.execute(
        f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE {where} LIMIT ?)",  # noqa: S608
        [value, limit],
    )
    return int(cursor.rowcount) >= limit


def purge(
    history: History,
    older_than_days: int,
    now: datetime | None = None,
    *,
    runs: int = BATCH_RUNS,
    on_batch: Callable[[Batch], None] | None = None,
) -> int:
    """Every batch until nothing older than the retention period is left, then the space back to
    the file system; how many runs went."""
    gone = 0
    while True:
        batch = purge_batch(history, older_than_days, now, runs=runs)
        gone += batch.runs
        if on_batch is not None:
            on_batch(batch)
        if batch.done:
            break
    reclaim(history)
    return gone


def _output_folder(history: History) -> Path:
    return history.path.parent / "runbook-output"


def _remove_outputs(history: History, sessions: Iterable[str]) -> None:
    folder = _output_folder(history)
    for session in sessions:
        for file in folder.glob(f"{_glob_escape(session)}-*.out"):
            file.unlink(missing_ok=True)


def _sweep_outputs(history: History) -> None:
    """Output files of sessions that are gone: left by a process killed between a batch's commit
    and its removing them. A file made after the sessions were read (a session started meanwhile)
    is newer than that, and stays."""
    folder = _output_folder(history)
    if not folder.is_dir():
        return
    read_at = time.time() - 1.0
    sessions = {str(r[0]) for r in history.conn.execute("SELECT id FROM runbook_sessions")}
    for file in folder.glob("*-*.out"):
        session, _, step = file.name.removesuffix(".out").rpartition("-")
        try:
            settled = file.stat().st_mtime < read_at
        except OSError:
            continue
        if step.isdigit() and settled and session not in sessions:
            file.unlink(missing_ok=True)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


@dataclass(frozen=True)
class Vacuumed:
    """What one vacuum step did: `left` free pages still to give back (0: none, or a file without
    incremental vacuum), `held` seconds of its transaction (waiting for the lock included),
    `checkpoint` seconds copying its pages into the file afterwards, without the lock."""

    left: int
    held: float = 0.0
    checkpoint: float = 0.0


def vacuum_step(history: History, pages: int = VACUUM_PAGES) -> Vacuumed:
    """Give at most `pages` free pages back to the file system, in one short transaction.
    (PostgreSQL: its autovacuum reuses the space; nothing to do here.)"""
    conn = history.conn
    if history.dialect != "sqlite":
        return Vacuumed(0)
    if int(conn.execute("PRAGMA auto_vacuum").fetchone()[0]) != 2:
        return Vacuumed(0)
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    if not free:
        return Vacuumed(0)
    with _checkpointed(history, always=True) as clock:  # moving pages changes no row
        t0 = time.perf_counter()
        try:
            # executescript steps the pragma to the end (execute() frees one page)
            conn.executescript(f"BEGIN IMMEDIATE; PRAGMA incremental_vacuum({min(pages, free)}); COMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
    left = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    return Vacuumed(left, clock.committed - t0, clock.checkpointed - clock.committed)


def reclaim(history: History, pages: int = VACUUM_PAGES) -> None:
    """Give freed pages back to the file system: incremental vacuum in steps of `pages` when the
    file has it; a file an older opsdash made without it is converted once if small (else:
    history compact)."""
    conn = history.conn
    if history.dialect != "sqlite":
        return
    mode = int(conn.execute("PRAGMA auto_vacuum").fetchone()[0])
    try:
        if mode == 2:
            while vacuum_step(history, pages).left:
                pass
            # a passive checkpoint lets the file shrink without waiting on readers
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        elif history.path.stat().st_size <= AUTO_COMPACT_BYTES:
            compact(history)
    except sqlite3.OperationalError:  # another process holds the file: the next purge does it
        if conn.in_transaction:
            conn.rollback()


def compact(history: History) -> int:
    """Rebuild the file with incremental auto-vacuum (a full VACUUM: needs free space of the
    file's size, and takes a while on a large file); returns the bytes given back. On PostgreSQL
    a plain VACUUM (space reused, not given back: 0)."""
    if history.dialect != "sqlite":
        history.conn.execute("VACUUM")
        return 0
    before = history.path.stat().st_size
    history.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    history.conn.execute("VACUUM")
    history.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return before - history.path.stat().st_size
