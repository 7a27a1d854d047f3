"""Runbook sessions, their steps and events (`history.sessions`): every transition committed before
it is acted on, so a session killed at any moment resumes at the right step. It is the executor's
`Store` (core/runbooks/executor.py)."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdash.core.errors import InputError
from opsdash.core.findings import Severity
from opsdash.core.runbooks.exclusive import ExclusiveConflict, Holder
from opsdash.core.runbooks.executor import ESCALATION, SessionState, SessionStatus, StepState, StepStatus
from opsdash.core.secrets import redactor
from opsdash.storage.coordination import Busy, GroupLock, take_group_lock
from opsdash.storage.repository import Repository
from opsdash.storage.rows import SessionEvent, SessionRow, rows_as

VERDICTS = {SessionStatus.ACTIVE: Severity.UNKNOWN, SessionStatus.ABORTED: Severity.CRIT}
_HOLDERS = (
    "SELECT s.id, s.runbook_id, s.runbook_path, s.title, s.operator, s.started_at, s.current_step, "
    "(SELECT COUNT(*) FROM runbook_steps WHERE session_id = s.id), s.exclusive_group, s.target, s.driver "
    "FROM runbook_sessions s WHERE s.status = 'active' AND s.exclusive_group IS NOT NULL AND s.target = ?"
)
# How long a start waits for a holder whose lock it cannot take to show in the record (the holder
# takes the lock, then commits its session: a start between the two sees the lock, not the row)
LOCK_SETTLE_S = 10.0
ABANDONED = "abandoned"  # the event recorded on a session whose driver died, when another takes over


def driver_name() -> str:
    """Who drives a session: `host:pid`, for the record and for messages (the lock decides)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class RunbookSessions(Repository):
    """Exclusive groups are held at two levels: an active session of the group in the record, and
    the group's lock (storage/coordination.GroupLock) held by the process driving it. A session
    paused cleanly (its process closed its history: `driver` NULL) keeps the group; one whose
    driver died (its lock free, `driver` still set) is taken over by the next start, and recorded
    as abandoned, unless it died while a command step ran (that command may still be running)."""

    def __init__(self, history: Any) -> None:
        super().__init__(history)
        self._locks: dict[tuple[str, str], tuple[str, GroupLock]] = {}  # (group, target) -> session, lock
        self.taken_over: list[Holder] = []  # what the last create took over from a dead driver

    def create(self, state: SessionState) -> None:
        """Insert a new session. One that declares an exclusive group is refused while another
        session holds that group for its target: its driver is alive (it holds the group's lock),
        it was paused on purpose, or it died while a command ran. The look and the insert are one
        write transaction, made while this process holds the group's lock, so of two processes
        (two hosts on one PostgreSQL database) starting at once exactly one wins."""
        if state.exclusive is None:
            self._insert_session(state)
            return
        key = (state.exclusive, state.target)
        self.taken_over = []
        lock = self._take(key)
        taken: list[Holder] = []
        try:
            with self.history.writing():
                for holder in self.holders(state.target, state.exclusive):
                    mine = self._locks.get(key)
                    if mine is not None and mine[0] == holder.session_id:
                        raise ExclusiveConflict(holder)  # driven by this very process
                    if holder.driver is None:
                        raise ExclusiveConflict(holder, "paused: resume it and finish or abort it")
                    if self._command_running(holder.session_id, holder.step):
                        raise ExclusiveConflict(
                            holder,
                            f"its opsdash ({holder.driver}) has gone while step {(holder.step or 0) + 1}'s "
                            "command was running, and that command may still be running: resume it to "
                            "collect the result, or abort it",
                        )
                    self._abandon(holder.session_id, state)
                    taken.append(holder)
                self._insert_session(state, driver=driver_name())
        except BaseException:
            if key not in self._locks:  # taken for this start: given back with the refusal
                lock.release()
            raise
        self.taken_over = taken
        old = self._locks.get(key)
        self._locks[key] = (state.id, lock)
        if old is not None and old[1] is not lock:
            old[1].release()

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

    def _take(self, key: tuple[str, str]) -> GroupLock:
        """The group's lock: the one this process already holds (for a session of its own that
        ended, or that it still drives: the caller looks), else taken now. Busy means a living
        process drives a session of the group: refused, naming it once its row is visible."""
        mine = self._locks.get(key)
        if mine is not None:
            return mine[1]
        group, target = key
        deadline = time.monotonic() + LOCK_SETTLE_S
        while True:
            try:
                return take_group_lock(self.history, group, target)
            except Busy:
                held = self.holders(target, group)
                if held:
                    raise ExclusiveConflict(held[0]) from None
            if time.monotonic() > deadline:
                raise InputError(
                    f"the exclusive group {group!r} for {target or '(no profile)'} is held by another "
                    "opsdash process, but no active session of it is in the record; try again"
                )
            time.sleep(0.05)

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
        """A session another process took over (its driver seemed dead: this process lost its lock,
        a network cut longer than the server's keepalives, a DBA ending its connection) is not
        brought back to life by a late save: the transition is refused, saying so."""
        row = self.history.conn.execute(
            "SELECT detail FROM runbook_events WHERE session_id = ? AND event = ? ORDER BY id DESC LIMIT 1",
            [state.id, ABANDONED],
        ).fetchone()
        if row is not None:
            raise InputError(
                f"session {state.id} was taken over while this opsdash had lost its lock ({row[0]}); "
                "nothing more is recorded for it here"
            )

    def hold(self, state: SessionState) -> bool:
        """This process drives `state` now (a resume): take its group's lock if it is free and mark
        the session as driven here. False when another living process holds the lock (it drives
        this session too, or another one of the group); the step claims still keep the two apart."""
        if state.exclusive is None or state.status is not SessionStatus.ACTIVE:
            return False
        key = (state.exclusive, state.target)
        mine = self._locks.get(key)
        if mine is not None and mine[0] == state.id:
            return True
        try:
            lock = mine[1] if mine is not None else take_group_lock(self.history, *key)
        except Busy:
            return False
        self._locks[key] = (state.id, lock)
        with self.history.writing():
            self.history.conn.execute(
                "UPDATE runbook_sessions SET driver = ? WHERE id = ?", [driver_name(), state.id]
            )
        return True

    def release(self, key: tuple[str, str] | None = None) -> None:
        """Let go of the group locks this process holds (all, or one): a session still active is
        parked (its driver cleared in the record first), so it keeps its group until resumed."""
        for k in [key] if key is not None else list(self._locks):
            held = self._locks.pop(k, None)
            if held is None:
                continue
            session_id, lock = held
            try:
                with self.history.writing():
                    self.history.conn.execute(
                        "UPDATE runbook_sessions SET driver = NULL WHERE id = ? AND status = 'active'",
                        [session_id],
                    )
            finally:
                lock.release()

    def close(self) -> None:
        """History.close: park what this process drives, then release the locks."""
        self.release()

    def save(self, state: SessionState, index: int | None, event: str, detail: str) -> None:
        with self.history.conn:  # one transaction: the session, the step and the event land together
            if state.exclusive is not None and state.status is not SessionStatus.ABORTED:
                self._refuse_if_taken_over(state)  # only a session of a group is ever taken over
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
        if state.exclusive is not None and state.status is not SessionStatus.ACTIVE:
            key = (state.exclusive, state.target)
            if self._locks.get(key, ("",))[0] == state.id:  # ended: the group is free at once
                self._locks.pop(key)[1].release()

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
