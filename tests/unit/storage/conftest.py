"""Helpers for the storage tests: check results and reports shaped like a real sweep's, to record."""

from __future__ import annotations

from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.health.conditions import ConditionResult
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult


def result(
    name: str, at: str, *, days: float = 365.0, failing: bool = False, latency: float = 18.76
) -> CheckResult:
    finding = Finding(
        "check-failed", Severity.CRIT, "checks", name, f"{name} is failing", "HTTP 503", "Fix it.", "outage"
    )
    return CheckResult(
        name=name,
        kind="http",
        target=f"https://{name}.example/health",
        severity=Severity.CRIT if failing else Severity.OK,
        summary="HTTP 503 in 19 ms" if failing else "HTTP 200 in 19 ms",
        started_at=at,
        duration_ms=20.94,
        error_class=ErrorClass.HTTP_5XX if failing else None,
        hint="up but unhealthy" if failing else None,
        runbook="outage" if failing else None,
        attempts=2 if failing else 1,
        phases={"connect": 2.571, "tls": 12.834},
        conditions=(ConditionResult("[STATUS] == 200", not failing, "503" if failing else "200"),),
        metrics={"response_time_ms": latency, "cert_days_left": days},
        facts={
            "ip": "127.0.0.1",
            "status": "503" if failing else "200",
            "cert_subject": "CN=app.example",
            "cert_days_left": f"{days:.1f}",
            "cert_not_after": "2027-11-26T17:51:12+00:00",
            "chain_earliest_days_left": f"{days:.1f}",
        },
        findings=(finding,) if failing else (),
    )


def report(kind: str, run_id: str, at: str, results: list[CheckResult]) -> Report:
    return Report(
        kind,
        "BetaSkill",
        run_id,
        at,
        5,
        tuple(f for r in results for f in r.findings),
        {"checks": [r.to_dict() for r in results], "validation": "OK"},
    )
