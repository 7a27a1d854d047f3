"""What one probe of one check produced."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opsdash.core.findings import Finding, Severity
from opsdash.core.health.conditions import ConditionResult
from opsdash.core.health.errors import ErrorClass


@dataclass(frozen=True)
class CheckResult:
    name: str
    kind: str
    target: str
    severity: Severity
    summary: str  # one line an operator reads first
    started_at: str
    duration_ms: float
    error_class: ErrorClass | None = None
    hint: str | None = None
    runbook: str | None = None
    attempts: int = 1
    phases: Mapping[str, float] = field(default_factory=dict)  # milliseconds
    conditions: tuple[ConditionResult, ...] = ()
    metrics: Mapping[str, float] = field(default_factory=dict)
    facts: Mapping[str, str] = field(default_factory=dict)  # status, ip, tls version, certificate ...
    findings: tuple[Finding, ...] = ()
    # Milliseconds from when the probe was due to when it began (waiting for a concurrency slot):
    # reported apart, never part of duration_ms, the phases or [RESPONSE_TIME]
    queue_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.severity in (Severity.OK, Severity.INFO)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "target": self.target,
            "severity": self.severity.value,
            "summary": self.summary,
            "error_class": self.error_class.value if self.error_class else None,
            "hint": self.hint,
            "runbook": self.runbook,
            "started_at": self.started_at,
            "duration_ms": round(self.duration_ms, 1),
            "queue_ms": round(self.queue_ms, 1),
            "attempts": self.attempts,
            "phases": {k: round(v, 2) for k, v in self.phases.items()},
            "conditions": [c.to_dict() for c in self.conditions],
            "metrics": dict(self.metrics),
            "facts": dict(self.facts),
            "findings": [f.to_dict() for f in self.findings],
        }
