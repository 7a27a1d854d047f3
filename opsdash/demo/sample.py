"""Fixed sample data shaped like the demo target, for deterministic screenshots and snapshot tests.

Everything here is constant: the findings of BetaSkill's plan-shaped env file, one round of check
results with the iKhokha API down, a short audit log and a few runs in history. Fake values only.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from opsdash.core.audit.log import LOG_NAME, line_bytes, mac_of
from opsdash.core.envfiles import EnvSnapshot, EnvValue
from opsdash.core.findings import Report, Severity
from opsdash.core.health.conditions import ConditionResult
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.profile import Profile
from opsdash.core.validators import ALL_CHECKS
from opsdash.core.validators.context import Context
from opsdash.storage.history import History

STARTED = "2026-11-26T08:00:00.000+00:00"
AUDIT_KEY = "sample-audit-key-0000000000000000000000"
ENV = {
    "VITE_IKHOKHA_API_KEY": "IK0123456789ABCDEF0123456789ABCDEF",
    "VITE_IKHOKHA_API_SECRET": "fedcba98765432100123456789abcdef",
    "VITE_IKHOKHA_WEBHOOK_SECRET": "fedcba98765432100123456789abcdef",
    "VITE_NODE_ENV": "production",
    "VITE_IKHOKHA_TEST_MODE": "false",
}


def sample_report(profile: Profile) -> Report:
    values = {k: EnvValue(k, v, f".env.production:{i}") for i, (k, v) in enumerate(ENV.items(), start=1)}
    env = EnvSnapshot(values, sources=(".env.production",))
    ctx = Context(profile=profile, env=env)
    findings = tuple(f for check in ALL_CHECKS for f in check(ctx))
    return Report(
        "validate",
        profile.target.name,
        "20261126T080000-a1b2c3",
        STARTED,
        4,
        findings,
        {"sources": [".env.production"], "variables": len(values), "secrets": 3},
    )


def _result(
    name: str, kind: str, target: str, severity: Severity, summary: str, latency: float, **extra: Any
) -> CheckResult:
    return CheckResult(
        name=name,
        kind=kind,
        target=target,
        severity=severity,
        summary=summary,
        started_at=STARTED,
        duration_ms=latency,
        metrics={"response_time_ms": latency, **extra.pop("metrics", {})},
        **extra,
    )


def sample_results() -> list[tuple[CheckResult, SustainedState]]:
    app, api = "https://app.betaskill.com", "https://api.ikhokha.com/public-api/v1/api"
    results = [
        _result(
            "app-health",
            "http",
            f"{app}/health",
            Severity.OK,
            "HTTP 200 in 42 ms",
            42.0,
            phases={"connect": 3.1, "tls": 9.8, "request": 0.4, "first_byte": 27.2, "body": 1.5},
            metrics={"payments.success_rate": 0.987, "payments.pending": 3},
            conditions=(ConditionResult("[STATUS] == 200", True, "200"),),
        ),
        _result(
            "app-tls",
            "tls",
            "app.betaskill.com:443",
            Severity.OK,
            "TLSv1.3 TLS_AES_256_GCM_SHA384, certificate valid 64 more days",
            21.0,
            facts={
                "tls_version": "TLSv1.3",
                "cert_days_left": "64.0",
                "cert_not_after": "2027-01-29T00:00:00+00:00",
            },
        ),
        _result(
            "payment-return-page", "http", f"{app}/payments/success", Severity.OK, "HTTP 200 in 35 ms", 35.0
        ),
        _result(
            "ikhokha-api",
            "provider",
            api,
            Severity.CRIT,
            "Server error (5xx): HTTP 503: provider is failing",
            118.0,
            error_class=ErrorClass.HTTP_5XX,
            runbook="payment-provider-outage",
            hint=ErrorClass.HTTP_5XX.info.hint,
        ),
        _result(
            "ikhokha-tls",
            "tls",
            "api.ikhokha.com:443",
            Severity.OK,
            "TLSv1.3 TLS_AES_256_GCM_SHA384, certificate valid 201 more days",
            30.0,
        ),
        _result(
            "webhook-endpoint",
            "webhook",
            f"{app}/api/payments/ikhokha/webhook",
            Severity.OK,
            "rejects unsigned and wrongly signed deliveries",
            64.0,
        ),
        _result("app-port", "tcp", "app.betaskill.com:443", Severity.OK, "connected in 4 ms", 4.0),
    ]
    return [(r, SustainedState(status=r.severity, since=STARTED, last=r)) for r in results]


def _audit_records(key: bytes) -> list[dict[str, Any]]:
    rows = [
        ("system", "genesis", "", "", {}),
        ("operator_action", "validate", "BetaSkill", "CRIT", {"CRIT": 6, "WARN": 1}),
        (
            "security_event",
            "secret-exposure",
            "VITE_IKHOKHA_API_SECRET",
            "CRIT",
            {"rule": "secret-client-exposed"},
        ),
        (
            "check_result",
            "ikhokha-api",
            "https://api.ikhokha.com/public-api/v1/api",
            "CRIT",
            {"error_class": "http-5xx"},
        ),
        (
            "security_event",
            "webhook-verification-failed",
            "198.51.100.9",
            "bad-signature",
            {"scheme": "ikhokha"},
        ),
        ("operator_action", "runbook-session-started", "payment-provider-outage", "active", {}),
    ]
    records, prev = [], ""
    for seq, (kind, action, subject, outcome, details) in enumerate(rows):
        record: dict[str, Any] = {
            "seq": seq,
            "ts": f"2026-11-26T08:0{seq}:00.000+00:00",
            "log_id": "5a3f1e9c0b7d2468",
            "operator": "alice",
            "host": "deploy-01",
            "kind": kind,
            "action": action,
            "subject": subject,
            "outcome": outcome,
            "details": details,
            "prev": prev,
        }
        mac = mac_of(key, record)
        record["mac"] = mac
        prev = mac
        records.append(record)
    return records


def write_sample_data(data_dir: Path) -> None:
    """A data directory with a short audit log and a few runs in history (fixed ids and times)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / LOG_NAME).write_bytes(b"".join(line_bytes(r) for r in _audit_records(AUDIT_KEY.encode())))
    with History.open(data_dir) as history:
        for i, (kind, verdict) in enumerate(
            (
                ("validate", Severity.OK),
                ("preflight", Severity.WARN),
                ("check", Severity.CRIT),
                ("validate", Severity.CRIT),
            )
        ):
            report = Report(
                kind, "BetaSkill", f"20261126T07{i}000-00000{i}", f"2026-11-26T07:{i}0:00.000+00:00", 5, ()
            )
            history.runs.record(report, operator="alice")
            history.runs.set_verdict(report.run_id, verdict)


INCIDENT_RUN = "20261126T071100-watch01"


def _at(minute: int, second: int = 0) -> str:
    return f"2026-11-26T07:{minute:02d}:{second:02d}.000+00:00"


def write_sample_incident(data_dir: Path) -> None:
    """A provider outage in the record, at fixed times: the preflight at 07:10 (write_sample_data)
    before it; ikhokha-api failing from 07:12 and down at 07:12:40 (threshold 3); an alert fired
    and delivered; webhook-endpoint flapping to WARN meanwhile; alice running the rollback runbook
    from 07:18; the provider answering again at 07:26 and recovered at 07:26:20. What the Timeline
    pane's snapshots and the screenshots show."""
    from opsdash.core.runbooks.state import SessionState, SessionStatus, StepState, StepStatus

    api = "https://api.ikhokha.com/public-api/v1/api"
    hook = "https://app.betaskill.com/api/payments/ikhokha/webhook"
    down = "Server error (5xx): HTTP 503: provider is failing"
    sweeps: list[tuple[str, str, Severity, Severity, str, float]] = []  # check, at, severity, sustained
    for at, severity, sustained in (
        (_at(11), Severity.OK, Severity.OK),
        (_at(12), Severity.CRIT, Severity.OK),
        (_at(12, 20), Severity.CRIT, Severity.OK),
        (_at(12, 40), Severity.CRIT, Severity.CRIT),
        (_at(13, 40), Severity.CRIT, Severity.CRIT),
        (_at(16), Severity.CRIT, Severity.CRIT),
        (_at(20), Severity.CRIT, Severity.CRIT),
        (_at(24), Severity.CRIT, Severity.CRIT),
        (_at(26), Severity.OK, Severity.CRIT),
        (_at(26, 20), Severity.OK, Severity.OK),
    ):
        ok = severity is Severity.OK
        sweeps.append(("ikhokha-api", at, severity, sustained, "HTTP 200 in 96 ms" if ok else down, 96.0))
    for at, severity, sustained in (
        (_at(14), Severity.WARN, Severity.WARN),
        (_at(15), Severity.WARN, Severity.WARN),
        (_at(16), Severity.OK, Severity.OK),
    ):
        ok = severity is Severity.OK
        text = (
            "rejects unsigned and wrongly signed deliveries"
            if ok
            else "slow: 2.4 s to reject an unsigned call"
        )
        sweeps.append(("webhook-endpoint", at, severity, sustained, text, 64.0 if ok else 2400.0))
    with History.open(data_dir) as history:
        for name, at, severity, sustained, summary, latency in sweeps:
            kind, target = ("provider", api) if name == "ikhokha-api" else ("webhook", hook)
            result = CheckResult(
                name, kind, target, severity, summary, at, latency, metrics={"response_time_ms": latency}
            )
            history.checks.record(INCIDENT_RUN, [result], {name: sustained})
        raised = datetime.fromisoformat(_at(12, 41)).timestamp()
        alert = history.alerts.record(
            "check-critical", "ikhokha-api", "CRIT", "ikhokha-api is failing", down, raised, sent_at=raised
        )
        assert alert is not None
        history.alerts.record_delivery(alert, "ops-slack", "firing", True, 1, "", raised + 1)
        resolved = datetime.fromisoformat(_at(26, 21)).timestamp()
        history.alerts.mark(alert, status="resolved", resolved_at=resolved)
        history.alerts.record_delivery(alert, "ops-slack", "resolved", True, 1, "", resolved + 1)
        state = SessionState(
            id="20261126T071800-rollback",
            operator="alice",
            runbook_id="rollback",
            title="Roll back a release",
            runbook_path="runbooks/rollback.md",
            params={"version": "2026.11.2"},
            status=SessionStatus.ACTIVE,
            current=0,
            steps=[StepState(), StepState()],
            started_at=_at(18),
            updated_at=_at(18),
        )
        sessions = history.sessions
        sessions.create(state)
        sessions.save(state, None, "started", "rollback to 2026.11.2")
        for index, (begin, end, command) in enumerate(
            (
                ((18, 30), (19, 10), "opsdash check --json ikhokha-api"),
                ((21, 0), (24, 30), "./deploy.sh --version 2026.11.2"),
            )
        ):
            state.steps[index] = StepState(StepStatus.RUNNING, _at(*begin))
            state.updated_at = _at(*begin)
            sessions.save(state, index, "command-started", command)
            state.steps[index] = StepState(StepStatus.DONE, _at(*begin), _at(*end), 0)
            state.updated_at = _at(*end)
            state.current = index + 1 if index == 0 else None
            sessions.save(state, index, "done", "exit 0")
        state.status = SessionStatus.COMPLETED
        state.updated_at = _at(25)
        sessions.save(state, None, "completed", "every step done")
