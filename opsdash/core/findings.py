"""The one severity model, findings and reports shared by every validator and output path."""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# The version of every JSON document opsdash prints (docs/schemas/): bumped on any change a script
# could notice; additions of optional fields do not bump it.
SCHEMA_VERSION = 1


class Severity(enum.StrEnum):
    OK = "OK"
    INFO = "INFO"
    WARN = "WARN"
    UNKNOWN = "UNKNOWN"
    CRIT = "CRIT"

    @property
    def rank(self) -> int:
        # UNKNOWN outranks WARN: "could not evaluate" must never read as better than a warning,
        # but a definite CRIT is still the more useful verdict to act on.
        return _RANK[self]

    @property
    def exit_code(self) -> int:
        """Monitoring-plugins convention: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN."""
        return _EXIT[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls(text.strip().upper())
        except ValueError:
            names = ", ".join(s.value.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of {names})") from None


_RANK = {Severity.OK: 0, Severity.INFO: 1, Severity.WARN: 2, Severity.UNKNOWN: 3, Severity.CRIT: 4}
_EXIT = {Severity.OK: 0, Severity.INFO: 0, Severity.WARN: 1, Severity.UNKNOWN: 3, Severity.CRIT: 2}


def worst(severities: Iterable[Severity]) -> Severity:
    return max(severities, key=lambda s: s.rank, default=Severity.OK)


@dataclass(frozen=True)
class Finding:
    """One thing a validator noticed. `evidence` holds only masked or non-secret values."""

    rule: str
    severity: Severity
    category: str
    subject: str
    title: str
    detail: str
    remediation: str
    runbook: str | None = None
    evidence: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str]:
        """What makes two runs' findings "the same finding" when diffing history."""
        return (self.rule, self.subject)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["severity"] = self.severity.value
        data["evidence"] = dict(self.evidence)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            rule=data["rule"],
            severity=Severity(data["severity"]),
            category=data["category"],
            subject=data["subject"],
            title=data["title"],
            detail=data["detail"],
            remediation=data["remediation"],
            runbook=data.get("runbook"),
            evidence=dict(data.get("evidence") or {}),
        )


@dataclass(frozen=True)
class Report:
    """The result of one run: what was looked at, what was found, and the verdict."""

    kind: str
    target: str
    run_id: str
    started_at: str
    duration_ms: int
    findings: tuple[Finding, ...]
    summary: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def timed(
        cls,
        kind: str,
        target: str,
        started: datetime,
        t0: float,
        findings: Iterable[Finding],
        summary: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Report:
        """The report of work that began at `started` (wall clock) and `t0` (time.perf_counter())."""
        return cls(
            kind=kind,
            target=target,
            run_id=run_id or new_run_id(started),
            started_at=started.isoformat(timespec="milliseconds"),
            duration_ms=round((time.perf_counter() - t0) * 1000),
            findings=tuple(findings),
            summary=dict(summary or {}),
        )

    @property
    def verdict(self) -> Severity:
        return worst(f.severity for f in self.findings)

    def counts(self) -> dict[str, int]:
        """How many things were evaluated at each severity: each check result once (a passing check
        counts as OK), and each finding that is not a check's own."""
        out = {s.value: 0 for s in Severity}
        for check in self.checks:
            out[check["severity"]] += 1
        for f in self.own_findings():
            out[f.severity.value] += 1
        return out

    @property
    def checks(self) -> list[Mapping[str, Any]]:
        """The check results of a check, preflight or verify-deploy run (as their to_dict())."""
        return list(self.summary.get("checks") or [])

    def own_findings(self) -> list[Finding]:
        """The findings that are not a check result's own (validation, readiness, ...), sorted."""
        owned = {(f["rule"], f["subject"]) for c in self.checks for f in c.get("findings", [])}
        return [f for f in self.sorted_findings() if f.key not in owned]

    def exit_code(self, fail_on: Severity = Severity.WARN) -> int:
        """Exit code for pipelines; with fail_on=CRIT a warning alone does not fail the gate."""
        verdict = self.verdict
        if verdict is Severity.WARN and fail_on is Severity.CRIT:
            return 0
        return verdict.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": self.kind,
            "verdict": self.verdict.value,
            "target": self.target,
            "run_id": self.run_id,
            "started_at": self.started_at,
            "duration_ms": self.duration_ms,
            "counts": self.counts(),
            "summary": dict(self.summary),
            "findings": [f.to_dict() for f in self.sorted_findings()],
        }

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (-f.severity.rank, f.category, f.rule, f.subject))


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and short enough to type: 20261126T040512-3fa9c1."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
