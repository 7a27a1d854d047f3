"""The live picture of `opsdash serve` on the wire: what its /events stream says and what an
attached dashboard reads back (`ops/attach.py`), in one place so the two cannot drift.

Each event is one Server-Sent Event: `event: NAME` and one `data:` line of JSON. The JSON of every
event passes the one redactor on its way out (`encode`), so a secret value opsdash knows is a
masked fingerprint on the wire as in every other output; an attached dashboard still sanitises
the text it shows (tui/safe.py), as it does its own.

Events (each names its `target`; `at` is when serve produced it, in epoch seconds):
- `snapshot`: everything at once, first on every connection and again after a client fell behind:
  `targets` (each: `checks`, `states` with their last results, `report`, `validated_at`,
  `validation_problem`, `alerts`, `verdict`), `sessions`, `at`;
- `check`: one result and the sustained state it leaves the check in;
- `validation`: a new report (or `problem`: validation could not run);
- `alerts`: the open alerts now, with what `fired` and `resolved` since the last;
- `sessions`: the runbook sessions of every operator, as the record has them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState

if TYPE_CHECKING:
    from opsdash.storage.rows import AlertRow, SessionRow

EVENTS = ("snapshot", "check", "validation", "alerts", "sessions")


def encode(event: str, data: Mapping[str, Any]) -> bytes:
    """One SSE frame, masked: the redactor sees every string before it is JSON-escaped (a secret
    with a quote or a backslash in it would not be recognised in its escaped form). One line of
    data: JSON escapes every newline."""
    text = json.dumps(masked(data), separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {text}\n\n".encode()


def masked(value: Any) -> Any:
    from opsdash.core.secrets import redactor

    if isinstance(value, str):
        return redactor.redact(value)
    if isinstance(value, Mapping):
        return {masked(str(k)): masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------- out


def result_out(result: CheckResult) -> dict[str, Any]:
    return result.to_dict()


def state_out(state: SustainedState) -> dict[str, Any]:
    return {
        "status": state.status.value,
        "since": state.since,
        "failures": state.failures,
        "successes": state.successes,
        "failure_threshold": state.failure_threshold,
        "success_threshold": state.success_threshold,
        "last": result_out(state.last) if state.last is not None else None,
    }


def report_out(report: Report | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "kind": report.kind,
        "target": report.target,
        "run_id": report.run_id,
        "started_at": report.started_at,
        "duration_ms": report.duration_ms,
        "summary": dict(report.summary),
        "findings": [f.to_dict() for f in report.findings],
    }


def alert_out(alert: AlertRow) -> dict[str, Any]:
    return {
        "id": alert.id,
        "rule": alert.rule,
        "key": alert.key,
        "severity": alert.severity,
        "title": alert.title,
        "detail": alert.detail,
        "raised_at": alert.raised_at,
        "silenced": alert.silenced,
        "runbook": alert.runbook,
    }


def session_out(row: SessionRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "runbook_id": row.runbook_id,
        "title": row.title,
        "operator": row.operator,
        "status": row.status,
        "current_step": row.current_step,
        "started_at": row.started_at,
        "updated_at": row.updated_at,
    }


# ----------------------------------------------------------------------------------------- in


def result_in(data: Mapping[str, Any]) -> CheckResult:
    from opsdash.core.health.conditions import ConditionResult
    from opsdash.core.health.errors import ErrorClass

    error = data.get("error_class")
    return CheckResult(
        name=str(data["name"]),
        kind=str(data.get("kind", "")),
        target=str(data.get("target", "")),
        severity=Severity(data["severity"]),
        summary=str(data.get("summary", "")),
        started_at=str(data.get("started_at", "")),
        duration_ms=float(data.get("duration_ms", 0.0)),
        error_class=ErrorClass(error) if error else None,
        hint=data.get("hint"),
        runbook=data.get("runbook"),
        attempts=int(data.get("attempts", 1)),
        phases={str(k): float(v) for k, v in (data.get("phases") or {}).items()},
        conditions=tuple(
            ConditionResult(str(c["condition"]), bool(c["ok"]), str(c["actual"]), c.get("error"))
            for c in data.get("conditions") or []
        ),
        metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
        facts={str(k): str(v) for k, v in (data.get("facts") or {}).items()},
        findings=tuple(Finding.from_dict(f) for f in data.get("findings") or []),
        queue_ms=float(data.get("queue_ms", 0.0)),
    )


def state_in(data: Mapping[str, Any]) -> SustainedState:
    last = data.get("last")
    return SustainedState(
        status=Severity(data["status"]),
        since=data.get("since"),
        failures=int(data.get("failures", 0)),
        successes=int(data.get("successes", 0)),
        last=result_in(last) if last else None,
        failure_threshold=int(data.get("failure_threshold", 1)),
        success_threshold=int(data.get("success_threshold", 1)),
    )


def report_in(data: Mapping[str, Any] | None) -> Report | None:
    if not data:
        return None
    return Report(
        kind=str(data["kind"]),
        target=str(data["target"]),
        run_id=str(data["run_id"]),
        started_at=str(data["started_at"]),
        duration_ms=int(data.get("duration_ms", 0)),
        findings=tuple(Finding.from_dict(f) for f in data.get("findings") or []),
        summary=dict(data.get("summary") or {}),
    )


def alert_in(data: Mapping[str, Any]) -> AlertRow:
    from opsdash.storage.rows import AlertRow

    return AlertRow(
        id=int(data.get("id", 0)),
        rule=str(data.get("rule", "")),
        key=str(data.get("key", "")),
        severity=str(data["severity"]),
        title=str(data.get("title", "")),
        detail=str(data.get("detail", "")),
        raised_at=float(data.get("raised_at", 0.0)),
        resolved_at=None,
        status="firing",
        last_sent_at=None,
        silenced=int(data.get("silenced", 0)),
        runbook=data.get("runbook"),
    )


def session_in(data: Mapping[str, Any]) -> SessionRow:
    from opsdash.storage.rows import SessionRow

    return SessionRow(
        id=str(data["id"]),
        runbook_id=str(data.get("runbook_id", "")),
        runbook_path="",
        title=str(data.get("title", "")),
        params="",
        operator=str(data.get("operator", "")),
        status=str(data.get("status", "")),
        current_step=int(data.get("current_step", 0)),
        started_at=str(data.get("started_at", "")),
        updated_at=str(data.get("updated_at", "")),
    )


@dataclass
class TargetPicture:
    """One target of the service, as an attached dashboard holds it."""

    name: str
    environment: str = ""
    checks: list[str] = field(default_factory=list)
    states: dict[str, SustainedState] = field(default_factory=dict)
    report: Report | None = None
    validated_at: float | None = None
    validation_problem: str | None = None
    alerts: list[AlertRow] = field(default_factory=list)
    verdict: str = "UNKNOWN"

    @classmethod
    def read(cls, data: Mapping[str, Any]) -> TargetPicture:
        return cls(
            name=str(data["name"]),
            environment=str(data.get("environment", "")),
            checks=[str(c) for c in data.get("checks") or []],
            states={str(k): state_in(v) for k, v in (data.get("states") or {}).items()},
            report=report_in(data.get("report")),
            validated_at=data.get("validated_at"),
            validation_problem=data.get("validation_problem"),
            alerts=[alert_in(a) for a in data.get("alerts") or []],
            verdict=str(data.get("verdict", "UNKNOWN")),
        )


def sessions_in(items: Sequence[Mapping[str, Any]]) -> list[SessionRow]:
    return [session_in(s) for s in items]
