"""One incident written into a history database through opsdash's own repositories (and the
runbook tables as the executor writes them), at fixed times: what the incident CLI, ops and the
Timeline pane tests read. A verify-deploy of 2026.12.1, then `payments-api` fails twice (threshold
2) and goes down, an alert fires and is delivered, an operator runs a rollback runbook, the check
answers again twice and recovers, the alert resolves. A canary secret is planted in a summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from opsdash.core.findings import Report, Severity
from opsdash.core.health.model import CheckResult
from opsdash.storage.history import History

T0 = datetime(2026, 12, 1, 14, 0, tzinfo=UTC).timestamp()
TARGET = "BetaSkill"


@dataclass(frozen=True)
class Written:
    first_failure: float
    opened: float
    alert: float
    step: float
    mitigated: float
    recovered: float


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def result(name: str, at: float, severity: Severity, summary: str) -> CheckResult:
    return CheckResult(name, "http", "https://api.example.test/health", severity, summary, iso(at), 12.0)


def write_incident(history: History, t0: float = T0, *, canary: str = "", run: str = "watch") -> Written:
    checks = history.checks
    deploy = Report(
        "verify-deploy",
        TARGET,
        f"deploy-{int(t0)}",
        iso(t0 - 600),
        900,
        (),
        {"versions": {"current": "2026.12.1", "source": "https://app.example.test/version"}},
    )
    history.runs.record(deploy, operator="ana")
    sweeps = [  # (seconds after t0, severity, sustained)
        (0, Severity.OK, Severity.OK),
        (30, Severity.CRIT, Severity.OK),  # failing 1 of 2
        (60, Severity.CRIT, Severity.CRIT),  # down: the incident opens
        (90, Severity.CRIT, Severity.CRIT),
        (400, Severity.OK, Severity.CRIT),  # recovering 1 of 2
        (430, Severity.OK, Severity.OK),  # recovered
        (460, Severity.OK, Severity.OK),
    ]
    for offset, severity, sustained in sweeps:
        summary = (
            "HTTP 200 in 12 ms" if severity is Severity.OK else f"HTTP 503 from upstream {canary}".strip()
        )
        checks.record(
            run, [result("payments-api", t0 + offset, severity, summary)], {"payments-api": sustained}
        )
        checks.record(run, [result("web", t0 + offset, Severity.OK, "HTTP 200")], {"web": Severity.OK})
    alert = history.alerts.record(
        "check-critical",
        "payments-api",
        "CRIT",
        "payments-api is failing",
        "HTTP 503",
        t0 + 61,
        sent_at=t0 + 61,
    )
    assert alert is not None
    history.alerts.record_delivery(alert, "ops-webhook", "firing", True, 1, "", t0 + 62)
    history.alerts.mark(alert, status="resolved", resolved_at=t0 + 431)
    history.alerts.record_delivery(alert, "ops-webhook", "resolved", True, 1, "", t0 + 432)
    conn = history.conn
    with conn:
        conn.execute(
            "INSERT INTO runbook_sessions (id, runbook_id, runbook_path, title, params, operator, status, "
            "current_step, started_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                f"sess-{run}",
                "rollback",
                "runbooks/rollback.md",
                "Rollback",
                json.dumps({}),
                "ana",
                "done",
                2,
                iso(t0 + 180),
                iso(t0 + 390),
            ],
        )
        for at, step, event, detail in [
            (180, None, "started", "rollback to 2026.11.3"),
            (200, 0, "command-started", "opsdash deploy --version 2026.11.3"),
            (380, 0, "done", "exit 0"),
            (390, None, "done", "session done"),
        ]:
            conn.execute(
                "INSERT INTO runbook_events (session_id, at, step_index, event, detail, operator) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [f"sess-{run}", iso(t0 + at), step, event, detail, "ana"],
            )
    return Written(t0 + 30, t0 + 60, t0 + 61, t0 + 200, t0 + 400, t0 + 431)
