"""Runbook sessions, their steps and events (`history.sessions`): every transition committed before
it is acted on, so a session killed at any moment resumes at the right step. It is the executor's
`Store` (core/runbooks/executor.py)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdash.core.errors import InputError
from opsdash.core.findings import Severity
from opsdash.core.runbooks.exclusive import ExclusiveConflict, Holder
from opsdash.core.runbooks.executor import ESCALATION, SessionState, SessionStatus, StepState, StepStatus
from opsdash.core.secrets import redactor
from opsdash.storage.coordination import (
    Busy,
    SessionLock,
    forget_session_lock,
    session_driven,
    take_session_lock,
)
from opsdash.storage.repository import Repository
from opsdash.storage.rows import SessionEvent, SessionRow, rows_as

VERDICTS = {SessionStatus.ACTIVE: Severity.UNKNOWN, SessionStatus.ABORTED: Severity.CRIT}
_HOLDERS = (
    "SELECT s.id, s.runbook_id, s.runbook_path, s.title, s.operator, s.started_at, s.current_step, "
    "(SELECT COUNT(*) FROM runbook_steps WHERE session_id = s.id), s.exclusive_group, s.target, s.driver "
    "FROM runbook_sessions s WHERE s.status = 'active' AND s.exclusive_group IS NOT NULL AND s.target = ?"
)
# a PostgreSQL server that started less than this ago: the drivers of its sessions may not have
# taken their locks again yet (a keeper does within KEEP_EVERY s), so none is taken over
RESTART_GRACE_S = 20
ABANDONED = "abandoned"  # the event recorded on a session whose driver died, when another takes over


def driver_name() -> str:
    """Who drives a session: `host:pid`, for the record and for messages (the lock decides)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class RunbookSessions(Repository):
    """Exclusive groups are held by an active session of the group in the record. Every process
    that drives such a session (the one that started it, and each that resumed it: co-driving is
    allowed, the step claims keep two drivers from running one step twice) holds the session's lock
    in shared mode (storage/coordination.SessionLock) for as long as it drives it. A session paused
    cleanly (`driver` NULL: the last of its drivers let go on purpose) keeps the group; one whose
    drivers all died (its lock free, `driver` still set) is taken over by the next start, and
    recorded as abandoned, unless it died while a command ran (that command may still be running).
    Every decision about a group is made inside `history.writing()`, the one database-wide write
    lock, so of two processes (two hosts on one PostgreSQL database) deciding at once one waits."""

    def __init__(self, history: Any) -> None:
        super().__init__(history)
        self._locks: dict[str, SessionLock] = {}  # session id -> its lock, held here in shared mode
        self.taken_over: list[Holder] = []  # what the last create took over from a dead driver

    def create(self, state: SessionState) -> None:
        """Insert a new session. One that declares an exclusive group is refused while another
        session holds that group for its target: a living process drives it (this one or another:
        its lock cannot be taken), it was paused on purpose, or it died while a command ran. The
        look and the insert are one write transaction; the new session's lock is taken before its
        row is committed, so nobody ever sees it without a living driver."""
        self._fresh()
        if state.exclusive is None:
            self._insert_session(state)
            return
        self.taken_over = []
        lock = self._take(state.id)
        taken: list[Holder] = []
        try:
            with self.history.writing():
                for holder in self.holders(state.target, state.exclusive):
                    if session_driven(self.history, holder.session_id):  # this process, or another
                        raise ExclusiveConflict(holder, f"it is being driven now, by {holder.driver or '?'}")
                    if holder.driver is None:
                        raise ExclusiveConflict(holder, "paused: resume it and finish or abort it")
                    if self._command_running(holder.session_id, holder.step):
                        raise ExclusiveConflict(
                            holder,
                            f"its opsdash ({holder.driver}) has gone while step {(holder.step or 0) + 1}'s "
                            "command was running, and that command may still be running: resume it to "
                            "collect the result, or abort it",
                        )
                    restarted = self._server_restarted(holder.session_id)
                    if restarted is not None:
                        raise ExclusiveConflict(
                            holder,
                            f"the database server restarted {restarted:.0f} s ago and its opsdash "
                            f"({holder.driver}) may not have taken its lock again yet: try again in "
                            f"{max(1, round(RESTART_GRACE_S - restarted))} s",
                        )
                    self._abandon(holder.session_id, state)
                    taken.append(holder)
                self._insert_session(state, driver=driver_name())
        except BaseException:
            lock.release()  # taken for this start: given back with the refusal
            raise
        self.taken_over = taken
        self._locks[state.id] = lock
        for holder in taken:  # ended: its lock file is needed no more (SQLite)
            forget_session_lock(self.history, holder.session_id)

    def _server_restarted(self, session_id: str) -> float | None:
        """Seconds since the PostgreSQL server started, when that is less than RESTART_GRACE_S and
        the session was last recorded before it: its driver's lock went with the old server, and
        its keeper may not have taken it again yet. (A session recorded since took its lock on this
        server: its lock free means its drivers are gone.)"""
        if self.history.dialect != "postgresql":
            return None
        age, began = self.history.conn.execute(
            "SELECT EXTRACT(EPOCH FROM now() - pg_postmaster_start_time()), pg_postmaster_start_time()"
        ).fetchone()
        if float(age) >= RESTART_GRACE_S:
            return None
        row = self.history.conn.execute(
            "SELECT updated_at FROM runbook_sessions WHERE id = ?", [session_id]
        ).fetchone()
        updated = datetime.fromisoformat(row[0]) if row and row[0] else None
        return float(age) if updated is None or updated < began else None

    def _take(self, session_id: str) -> SessionLock:
        """The session's lock in shared mode, for this process (one a database error explains)."""
        try:
            return take_session_lock(self.history, session_id)
        except Busy:
            raise InputError(
                f"session {session_id}'s lock stayed busy; try again (another opsdash was deciding about it)"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise self.history.explain(exc) from None

    def _fresh(self) -> None:
        """A PostgreSQL history connection that died (a server restart, a failover) is opened again
        before the next transition, outside a transaction: nothing half-done is lost by it."""
        conn = self.history.conn
        if self.history.dialect != "postgresql" or conn.in_transaction:
            return
        try:
            conn.execute("SELECT 1")
            return
        except sqlite3.DatabaseError:
            pass
        from opsdash.storage.postgres import PgConnection

        try:
            fresh = PgConnection.connect(conn.url)  # type: ignore[attr-defined]
        except sqlite3.DatabaseError as exc:
            raise self.history.explain(exc) from None
        with contextlib.suppress(Exception):
            conn.close()
        self.history.conn = fresh  # type: ignore[assignment]

    def _insert_session(self, state: SessionState, driver: str | None = None) -> None:
        with self.history.writing():
            self._insert("runbook_sessions", [{**self._session_row(state), "driver": driver}])
            self._insert(
                "runbook_steps",
                [
                    {"session_id": state.id, "step_index": i, **self._step_row(s)}
                    for i, s in enumerate(state.steps)
                ],
            )
            self._insert("runs", [self._run_row(state)])

    def _command_running(self, session_id: str, step: int | None) -> bool:
        row = self.history.conn.execute(
            "SELECT status FROM runbook_steps WHERE session_id = ? AND step_index = ?", [session_id, step]
        ).fetchone()
        return row is not None and row[0] == StepStatus.RUNNING.value

    def _abandon(self, session_id: str, by: SessionState) -> None:
        """A session whose driver died with no command running: it ends (aborted), and says why."""
        at = datetime.now(UTC).isoformat(timespec="milliseconds")
        detail = (
            f"its opsdash died (its lock was free); the group {by.exclusive!r} was taken over by "
            f"session {by.id} of {by.runbook_id}, started by {by.operator}"
        )
        conn = self.history.conn
        conn.execute(
            "UPDATE runbook_sessions SET status = 'aborted', updated_at = ?, driver = NULL WHERE id = ? "
            "AND status = 'active'",
            [at, session_id],
        )
        conn.execute(
            "INSERT INTO runbook_events (session_id, at, step_index, event, detail, operator) "
            "VALUES (?, ?, NULL, ?, ?, ?)",
            [session_id, at, ABANDONED, detail, by.operator],
        )
        row = conn.execute("SELECT summary FROM runs WHERE run_id = ?", [session_id]).fetchone()
        summary = json.loads(row[0]) if row and row[0] else {}
        conn.execute(
            "UPDATE runs SET verdict = ?, summary = ? WHERE run_id = ?",
            [Severity.CRIT.value, json.dumps({**summary, "status": "aborted"}), session_id],
        )

    def _refuse_if_taken_over(self, state: SessionState) -> None:
        """A session another process took over (its drivers seemed dead: this process lost its lock,
        a network cut longer than the server's keepalives, a DBA ending its connection) is not
        brought back to life by a late save: the transition is refused, saying so. Nor is one that
        another driver ended meanwhile (completed or aborted from another terminal)."""
        row = self.history.conn.execute(
            "SELECT detail FROM runbook_events WHERE session_id = ? AND event = ? ORDER BY id DESC LIMIT 1",
            [state.id, ABANDONED],
        ).fetchone()
        if row is not None:
            raise InputError(
                f"session {state.id} was taken over while this opsdash had lost its lock ({row[0]}); "
                "nothing more is recorded for it here"
            )
        row = self.history.conn.execute(
            "SELECT status FROM runbook_sessions WHERE id = ?", [state.id]
        ).fetchone()
        if row is not None and row[0] != SessionStatus.ACTIVE.value and row[0] != state.status.value:
            raise InputError(
                f"session {state.id} ended meanwhile ({row[0]}, in another opsdash); nothing more is "
                "recorded for it here"
            )

    def _hold_lock(self, state: SessionState) -> None:
        """Inside the write transaction of a transition: this process's lock on the session is
        alive (taken again if its connection died with a server restart; taken now on a first
        transition after a resume). The caller has checked that it was not taken over meanwhile."""
        lock = self._locks.get(state.id)
        if lock is not None:
            try:
                lock.ensure()
                return
            except Busy:
                lock = None
            except sqlite3.DatabaseError as exc:
                raise InputError(
                    f"session {state.id}: this opsdash lost its lock on it and cannot take it again "
                    f"({exc}); nothing is recorded: resume it when the database is back"
                ) from None
        self._locks[state.id] = self._take(state.id)

    def hold(self, state: SessionState) -> bool:
        """This process drives `state` now (a resume): take the session's lock in shared mode (other
        processes may drive it too) and name this process as its driver in the record. False for a
        session that is not of a group, or has ended."""
        if state.exclusive is None or state.status is not SessionStatus.ACTIVE:
            return False
        self._fresh()
        with self.history.writing():
            self._refuse_if_taken_over(state)
            self._hold_lock(state)
            self.history.conn.execute(
                "UPDATE runbook_sessions SET driver = ? WHERE id = ? AND status = 'active'",
                [driver_name(), state.id],
            )
        return True

    def release(self, session_id: str | None = None) -> None:
        """Let go of the session locks this process holds (all, or one). A session still active
        whose last living driver this was is parked (its driver cleared in the record), so it keeps
        its group until resumed; one another living process drives keeps its driver."""
        failed: Exception | None = None
        for sid in [session_id] if session_id is not None else list(self._locks):
            lock = self._locks.pop(sid, None)
            if lock is None:
                continue
            try:
                self._fresh()
                # one write transaction: no start decides about the session between the letting
                # go and the record saying "paused"
                with self.history.writing():
                    lock.release()
                    if not session_driven(self.history, sid):
                        self.history.conn.execute(
                            "UPDATE runbook_sessions SET driver = NULL WHERE id = ? AND status = 'active'",
                            [sid],
                        )
            except Exception as exc:  # the database is gone: the other locks are let go all the same
                failed = failed or exc
            finally:
                lock.release()
        if failed is not None:
            raise failed

    def close(self) -> None:
        """History.close: park what this process drives, then release the locks."""
        self.release()

    def save(self, state: SessionState, index: int | None, event: str, detail: str) -> None:
        """Record a transition: the session, the step and the event in one write transaction, under
        the write lock a start decides under, so a takeover lands wholly before it (and the save is
        refused) or wholly after it. Refused when the session was taken over or ended elsewhere;
        for a session of a group, this process's lock on it is checked (taken again) first."""
        self._fresh()
        grouped = state.exclusive is not None
        with self.history.writing():
            if grouped and state.status is not SessionStatus.ABORTED:
                self._refuse_if_taken_over(state)  # only a session of a group is ever taken over
            if grouped and state.status is SessionStatus.ACTIVE:
                self._hold_lock(state)
            self._update("runbook_sessions", "id", state.id, self._session_row(state))
            if index is not None:
                self.history.conn.execute(
                    "UPDATE runbook_steps SET status = ?, started_at = ?, finished_at = ?, exit_code = ?, "
                    "output = ?, note = ?, detail = ?, pid = ? WHERE session_id = ? AND step_index = ?",
                    [*self._step_row(state.steps[index]).values(), state.id, index],
                )
            self._insert(
                "runbook_events",
                [
                    {
                        "session_id": state.id,
                        "at": state.updated_at,
                        "step_index": index,
                        "event": event,
                        "detail": detail,
                        "operator": state.operator,
                    }
                ],
            )
            self._update("runs", "run_id", state.id, self._run_row(state))
            if grouped and state.status is not SessionStatus.ACTIVE:
                self.history.conn.execute(  # ended: nobody drives it any more
                    "UPDATE runbook_sessions SET driver = NULL WHERE id = ?", [state.id]
                )
        if grouped and state.status is not SessionStatus.ACTIVE:
            lock = self._locks.pop(state.id, None)
            if lock is not None:  # ended: its lock is of no use any more
                lock.release()
                forget_session_lock(self.history, state.id)

    def holders(self, target: str, group: str | None = None) -> list[Holder]:
        """The active session holding each exclusive group (or only `group`) for `target`, one per
        group, in the order they started."""
        sql, args = _HOLDERS, [target]
        if group is not None:
            sql, args = f"{sql} AND s.exclusive_group = ?", [target, group]
        held: dict[str, Holder] = {}
        for row in self.history.conn.execute(f"{sql} ORDER BY s.started_at", args):
            holder = Holder(*row)
            held.setdefault(holder.group, holder)  # the first: two can only predate the group
        return list(held.values())

    def output_path(self, session_id: str, index: int) -> Path:
        return self.history.path.parent / "runbook-output" / f"{session_id}-{index}.out"

    def claim(self, session_id: str, index: int, expected: StepStatus, step: StepState) -> bool:
        """Move a step from `expected` to `step` only if no one else has moved it: of two processes
        that try to run the same step, exactly one wins."""
        self._fresh()
        with self.history.conn:
            cursor = self.history.conn.execute(
                "UPDATE runbook_steps SET status = ?, started_at = ?, finished_at = ?, exit_code = ?, "
                "output = ?, note = ?, detail = ?, pid = ? "
                "WHERE session_id = ? AND step_index = ? AND status = ?",
                [*self._step_row(step).values(), session_id, index, expected.value],
            )
        return cursor.rowcount == 1

    def load(self, session_id: str) -> SessionState | None:
        rows = self._dicts("SELECT * FROM runbook_sessions WHERE id = ?", [session_id])
        if not rows:
            return None
        row = rows[0]
        steps = [
            StepState(
                StepStatus(r["status"]),
                r["started_at"],
                r["finished_at"],
                r["exit_code"],
                r["output"] or "",
                r["note"] or "",
                r["detail"] or "",
                r.get("pid"),
            )
            for r in self._dicts(
                "SELECT * FROM runbook_steps WHERE session_id = ? ORDER BY step_index", [session_id]
            )
        ]
        events = self._event_dicts(session_id)  # SessionState keeps them as the executor reads them
        return SessionState(
            id=row["id"],
            runbook_id=row["runbook_id"],
            runbook_path=row["runbook_path"],
            title=row["title"],
            params=json.loads(row["params"]),
            operator=row["operator"],
            status=SessionStatus(row["status"]),
            current=row["current_step"],
            steps=steps,
            started_at=row["started_at"],
            updated_at=row["updated_at"],
            events=events,
            escalated=any(ESCALATION in (e.get("detail") or "") for e in events),
            exclusive=row.get("exclusive_group"),
            target=row.get("target") or "",
        )

    def events(self, session_id: str) -> list[SessionEvent]:
        """Every transition of a session, in the order they happened."""
        return rows_as(SessionEvent, self._event_dicts(session_id))

    def _event_dicts(self, session_id: str) -> list[dict[str, Any]]:
        return self._dicts("SELECT * FROM runbook_events WHERE session_id = ? ORDER BY id", [session_id])

    def recent(self, runbook_id: str | None = None, limit: int = 20) -> list[SessionRow]:
        """The newest sessions first (of one runbook)."""
        where, args = ("WHERE runbook_id = ?", [runbook_id]) if runbook_id else ("", [])
        return rows_as(
            SessionRow,
            self._dicts(
                f"SELECT * FROM runbook_sessions {where} ORDER BY started_at DESC LIMIT ?",  # noqa: S608
                [*args, limit],
            ),
        )

    def last(self, runbook_id: str) -> SessionRow | None:
        """The newest session of a runbook (None: never run)."""
        return next(iter(self.recent(runbook_id, limit=1)), None)

    def latest_active(self, runbook_id: str | None = None) -> str | None:
        row = self.latest_active_row(runbook_id)
        return row.id if row else None

    def latest_active_row(self, runbook_id: str | None = None) -> SessionRow | None:
        """The most recently updated session that has not ended (of one runbook, or of any)."""
        clauses, args = ["status = ?"], ["active"]
        if runbook_id:
            clauses.append("runbook_id = ?")
            args.append(runbook_id)
        rows = self._dicts(
            f"SELECT * FROM runbook_sessions WHERE {' AND '.join(clauses)} "  # noqa: S608 - fixed clauses
            "ORDER BY updated_at DESC LIMIT 1",
            args,
        )
        return next(iter(rows_as(SessionRow, rows)), None)

    @staticmethod
    def _session_row(state: SessionState) -> dict[str, Any]:
        return {
            "id": state.id,
            "runbook_id": state.runbook_id,
            "runbook_path": state.runbook_path,
            "title": state.title,
            "params": json.dumps({k: redactor.redact(v) for k, v in state.params.items()}),  # never a secret
            "operator": state.operator,
            "status": state.status.value,
            "current_step": state.current,
            "started_at": state.started_at,
            "updated_at": state.updated_at,
            "exclusive_group": state.exclusive,
            "target": state.target,
        }

    @staticmethod
    def _step_row(step: StepState) -> dict[str, Any]:
        return {
            "status": step.status.value,
            "started_at": step.started_at,
            "finished_at": step.finished_at,
            "exit_code": step.exit_code,
            "output": redactor.redact(step.output),
            "note": redactor.redact(step.note),  # typed by the operator: may hold a secret
            "detail": redactor.redact(step.detail),
            "pid": step.pid,
        }

    @staticmethod
    def _run_row(state: SessionState) -> dict[str, Any]:
        """Sessions appear in `opsdash history list` as runs of kind 'runbook'."""
        failed = sum(s.status in (StepStatus.FAILED, StepStatus.INTERRUPTED) for s in state.steps)
        done = sum(s.status is StepStatus.DONE for s in state.steps)
        verdict = VERDICTS.get(state.status, Severity.WARN if failed else Severity.OK)
        return {
            "run_id": state.id,
            "kind": "runbook",
            "target": state.runbook_id,
            "operator": state.operator,
            "started_at": state.started_at,
            "duration_ms": 0,
            "verdict": verdict.value,
            "counts": json.dumps({"steps": len(state.steps), "done": done, "failed": failed}),
            "summary": json.dumps({"title": state.title, "status": state.status.value}),
        }
