"""What the repositories return: frozen dataclasses, one per table row kind, never bare dicts."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from opsdash.core.findings import Severity

T = TypeVar("T")


def rows_as(cls: type[T], rows: Iterable[Mapping[str, Any]]) -> list[T]:
    """Rows as dataclasses; columns the dataclass does not name are dropped (older schemas added some)."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    return [cls(**{k: v for k, v in row.items() if k in names}) for row in rows]


@dataclass(frozen=True)
class RunRow:
    run_id: str
    kind: str
    target: str
    operator: str
    started_at: str
    duration_ms: int
    verdict: Severity
    counts: dict[str, int]
    summary: dict[str, Any]


@dataclass(frozen=True)
class EnvKey:
    key: str
    source: str
    fingerprint: str
    secret: bool


@dataclass(frozen=True)
class Anchor:
    """The audit log's head right after a run was recorded."""

    id: int
    run_id: str
    log_id: str
    seq: int
    mac: str
    recorded_at: str


@dataclass(frozen=True)
class AuditHost:
    """One host's audit chain in the shared database: its head (the last record published) and
    how much of its local stream of log files has been copied (`stream_bytes`, `lines`)."""

    host_id: str
    hostname: str
    data_dir: str
    log_id: str
    seq: int
    mac: str
    stream_bytes: int
    lines: int
    updated_at: str


@dataclass(frozen=True)
class CheckRow:
    """One probe's result, its columns in the table's order. Rows an older opsdash wrote have NULL
    in the columns v8 added (duration_ms to findings), and no shared facts."""

    id: int
    run_id: str
    check_name: str
    kind: str
    target: str
    started_at: str
    severity: str
    sustained: str
    error_class: str | None
    summary: str
    latency_ms: float
    phases: str | None
    metrics: str | None
    facts: str | None  # with shared facts: only this row's own (the days left)
    duration_ms: float | None
    attempts: int | None
    hint: str | None
    runbook: str | None
    conditions: str | None
    findings: str | None
    facts_id: int | None
    shared_facts: str | None  # the body facts_id names

    def metrics_dict(self) -> dict[str, float]:
        return dict(json.loads(self.metrics or "{}"))

    def facts_dict(self) -> dict[str, Any]:
        """Every fact the probe recorded: the shared ones, then this row's own in their places."""
        return {**json.loads(self.shared_facts or "{}"), **json.loads(self.facts or "{}")}

    def as_result(self) -> dict[str, Any]:
        """The check result as its report showed it (CheckResult.to_dict())."""
        return {
            "name": self.check_name,
            "kind": self.kind,
            "target": self.target,
            "severity": self.severity,
            "summary": self.summary,
            "error_class": self.error_class,
            "hint": self.hint,
            "runbook": self.runbook,
            "started_at": self.started_at,
            "duration_ms": self.latency_ms if self.duration_ms is None else self.duration_ms,
            "attempts": 1 if self.attempts is None else self.attempts,
            "phases": json.loads(self.phases or "{}"),
            "conditions": json.loads(self.conditions or "[]"),
            "metrics": json.loads(self.metrics or "{}"),
            "facts": self.facts_dict(),
            "findings": json.loads(self.findings or "[]"),
        }


@dataclass(frozen=True)
class AlertRow:
    id: int
    rule: str
    key: str
    severity: str
    title: str
    detail: str
    raised_at: float
    resolved_at: float | None
    status: str
    last_sent_at: float | None
    silenced: int
    runbook: str | None
    posted_at: float | None = None  # the last re-post to Alertmanager (by any process)

    @property
    def level(self) -> Severity:
        """The severity a verdict reads (UNKNOWN for a value this opsdash does not know)."""
        try:
            return Severity(self.severity)
        except ValueError:
            return Severity.UNKNOWN

    def contribution(self) -> tuple[Severity, str]:
        """What this open alert adds to a verdict (`readiness.dashboard_verdict`'s alerts)."""
        return self.level, self.title


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    alert_id: int
    channel: str
    event: str
    ok: int
    attempts: int
    error: str
    at: float


@dataclass(frozen=True)
class SessionRow:
    """One runbook session as listed (its steps and events load with `history.sessions.load`)."""

    id: str
    runbook_id: str
    runbook_path: str
    title: str
    params: str
    operator: str
    status: str
    current_step: int
    started_at: str
    updated_at: str


@dataclass(frozen=True)
class SessionEvent:
    """One transition of a runbook session, as recorded before it was acted on."""

    id: int
    session_id: str
    at: str
    step_index: int | None
    event: str
    detail: str | None
    operator: str
