"""Runbook sessions, their steps and events (`history.sessions`): every transition committed before
it is acted on, so a session killed at any moment resumes at the right step. It is the executor's
`Store` (core/runbooks/executor.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from opsdash.core.findings import Severity
from opsdash.core.runbooks.exclusive import ExclusiveConflict, Holder
from opsdash.core.runbooks.executor import ESCALATION, SessionState, SessionStatus, StepState, StepStatus
from opsdash.core.secrets import redactor
from opsdash.storage.repository import Repository
from opsdash.storage.rows import SessionEvent, SessionRow, rows_as

VERDICTS = {SessionStatus.ACTIVE: Severity.UNKNOWN, SessionStatus.ABORTED: Severity.CRIT}
_HOLDERS = (
    "SELECT s.id, s.runbook_id, s.runbook_path, s.title, s.operator, s.started_at, s.current_step, "
    "(SELECT COUNT(*) FROM runbook_steps WHERE session_id = s.id), s.exclusive_group, s.target "
    "FROM runbook_sessions s WHERE s.status = 'active' AND s.exclusive_group IS NOT NULL AND s.target = ?"
)


class RunbookSessions(Repository):
    def create(self, state: SessionState) -> None:
        """Insert a new session. One that declares an exclusive group is refused while another
        active session holds that group for its target: the look and the insert are one write
        transaction (BEGIN IMMEDIATE), so of two processes starting at once exactly one wins."""
        with self.history.writing():
            if state.exclusive is not None:
                held = self.holders(state.target, state.exclusive)
                if held:
                    raise ExclusiveConflict(held[0])
            self._insert("runbook_sessions", [self._session_row(state)])
            self._insert(
                "runbook_steps",
                [
                    {"session_id": state.id, "step_index": i, **self._step_row(s)}
                    for i, s in enumerate(state.steps)
                ],
            )
            self._insert("runs", [self._run_row(state)])

    def save(self, state: SessionState, index: int | None, event: str, detail: str) -> None:
        with self.history.conn:  # one transaction: the session, the step and the event land together
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
