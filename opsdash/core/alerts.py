"""Alert rules and the dedupe/reminder/resolve decisions. Sending happens in ops/alerts.py.

Rules: a check failing critically (with --watch, after its failure threshold), the provider
rejecting our credentials, a certificate nearing expiry, a NO-GO preflight, and (raised by the
webhook verifier) a burst of failed verifications from one source.

One incident, one alert: a check that is down is one incident, whichever of `check-critical` and
`credentials-rejected` opened it. The rule that fits the first failure names the alert; a later
failure of the other kind, and the sweeps on which the check is recovering (down, but answering
again until `success_threshold` successes), keep that same alert open instead of raising another.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.profile import Silence

CHECK_CRITICAL = "check-critical"
CREDENTIALS_REJECTED = "credentials-rejected"
CERTIFICATE_EXPIRY = "certificate-expiry"
PREFLIGHT_NO_GO = "preflight-no-go"
VALIDATION_NO_GO = "validation-no-go"
WEBHOOK_BURST = "webhook-failure-burst"
CHECK_RULES = (CHECK_CRITICAL, CREDENTIALS_REJECTED, CERTIFICATE_EXPIRY)
INCIDENT_RULES = (CHECK_CRITICAL, CREDENTIALS_REJECTED)  # a check being down: one incident per check


@dataclass(frozen=True)
class Candidate:
    rule: str
    key: str
    severity: Severity
    title: str
    detail: str
    runbook: str | None = None
    opens: bool = True  # False: keeps an open incident open (a recovering check), never raises one
    # when the evidence was seen (a probe's start, epoch seconds): an incident another process
    # resolved after that is not re-opened by it (two replicas' results arrive in any order)
    observed_at: float | None = None


@dataclass(frozen=True)
class OpenAlert:
    id: int
    rule: str
    key: str
    raised_at: float
    last_sent_at: float | None


@dataclass(frozen=True)
class Action:
    kind: str  # fire | remind | resolve; a fire with `alert` set is an alert first sent late (silenced)
    rule: str
    key: str
    candidate: Candidate | None = None
    alert: OpenAlert | None = None


def check_candidates(
    results: Iterable[CheckResult], sustained: Mapping[str, Severity] | None = None
) -> list[Candidate]:
    out = []
    for r in results:
        status = sustained.get(r.name, r.severity) if sustained is not None else r.severity
        down = status in (Severity.CRIT, Severity.WARN)  # after the failure threshold, when watched
        if r.ok and down:  # recovering: the incident stays open until the check has recovered
            out.append(
                Candidate(
                    CHECK_CRITICAL,
                    r.name,
                    Severity.CRIT,
                    f"{r.name} is recovering",
                    r.summary,
                    r.runbook,
                    opens=False,
                )
            )
        elif r.kind == "provider" and r.error_class is ErrorClass.HTTP_AUTH and down:
            out.append(
                Candidate(
                    CREDENTIALS_REJECTED,
                    r.name,
                    Severity.CRIT,
                    f"iKhokha rejected our credentials ({r.name})",
                    r.summary,
                    r.runbook,
                    observed_at=_epoch(r.started_at),
                )
            )
        elif status is Severity.CRIT:
            out.append(
                Candidate(
                    CHECK_CRITICAL,
                    r.name,
                    Severity.CRIT,
                    f"{r.name} is failing",
                    r.summary,
                    r.runbook,
                    observed_at=_epoch(r.started_at),
                )
            )
        for f in r.findings:
            if f.rule in ("tls-expiring-soon", "tls-expired"):
                out.append(
                    Candidate(
                        CERTIFICATE_EXPIRY,
                        r.name,
                        f.severity,
                        f"Certificate of {r.target} "
                        f"{'has expired' if f.rule == 'tls-expired' else 'expires soon'}",
                        f.detail,
                        f.runbook,
                    )
                )
    return out


def _epoch(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def check_scope(
    results: Iterable[CheckResult], sustained: Mapping[str, Severity] | None = None
) -> set[tuple[str, str]]:
    """The (rule, key) pairs these results can resolve: only a check seen healthy. A check failing
    before its threshold, or whose state a process that has just started does not know yet
    (UNKNOWN), resolves nothing: its incident is not over because this process has not yet seen
    it fail often enough. A certificate alert ends with a result that no longer warns of expiry."""
    out: set[tuple[str, str]] = set()
    for r in results:
        status = sustained.get(r.name, r.severity) if sustained is not None else r.severity
        if status is Severity.OK:
            out.update((rule, r.name) for rule in INCIDENT_RULES)
        if r.severity is not Severity.UNKNOWN:
            out.add((CERTIFICATE_EXPIRY, r.name))
    return out


def preflight_candidate(report: Report) -> Candidate | None:
    if report.verdict is not Severity.CRIT:
        return None
    reasons = sorted({f.rule for f in report.findings if f.severity is Severity.CRIT})
    return Candidate(
        PREFLIGHT_NO_GO,
        report.target,
        Severity.CRIT,
        f"Preflight NO-GO for {report.target}",
        f"{len(reasons)} blocking reason(s): {', '.join(reasons)} (run {report.run_id})",
        "pre-deploy-checklist",
    )


def validation_candidate(report: Report) -> Candidate | None:
    """`opsdash serve`'s environment validation found critical problems: one alert per target,
    resolved by the first validation without any (its text names rules, never values)."""
    crit = [f for f in report.findings if f.severity is Severity.CRIT]
    if not crit:
        return None
    reasons = sorted({f.rule for f in crit})
    return Candidate(
        VALIDATION_NO_GO,
        report.target,
        Severity.CRIT,
        f"Environment validation NO-GO for {report.target}",
        f"{len(crit)} critical finding(s): {', '.join(reasons)} (run {report.run_id})",
        next((f.runbook for f in crit if f.runbook), "pre-deploy-checklist"),
    )


def gate_cause_gone(
    blocking: Iterable[Finding],
    check_names: Iterable[str],
    healthy_since: Iterable[str],
    validation: Report | None,
) -> bool:
    """Whether every blocking reason of a NO-GO preflight is gone without running the gate again:
    a failing check's reason when that check has since been seen healthy (`healthy_since`), an
    environment finding when a later `validation` no longer has it. A rollback-readiness reason
    (category `deploy`) is the gate's own question: only the next preflight answers it."""
    checks, healthy = set(check_names), set(healthy_since)
    later = (
        {(f.rule, f.subject) for f in validation.findings if f.severity is Severity.CRIT}
        if validation
        else None
    )
    for f in blocking:
        if f.subject in checks:
            if f.subject not in healthy:
                return False
        elif f.category == "deploy" or later is None or (f.rule, f.subject) in later:
            return False
    return True


def active_silence(rule: str, silences: Sequence[Silence], now: datetime) -> Silence | None:
    return next((s for s in silences if s.start <= now <= s.end and (not s.rules or rule in s.rules)), None)


def plan(
    candidates: Sequence[Candidate],
    open_alerts: Mapping[tuple[str, str], OpenAlert],
    scope: set[tuple[str, str]],
    now: float,
    reminder_s: float,
) -> list[Action]:
    """Fire new alerts, remind about old ones after the interval, resolve what has recovered.

    An open alert that was never sent (it was raised inside a silence) is fired, late, rather than
    reminded about: a pager that opens incidents on `firing` must still open this one."""
    actions = []
    firing = set()
    for c in candidates:
        existing = incident_of(c, open_alerts)
        pair = (existing.rule, existing.key) if existing is not None else (c.rule, c.key)
        if pair in firing:
            continue  # two candidates of one incident in one batch: one action
        firing.add(pair)
        if existing is None:
            if c.opens:
                actions.append(Action("fire", c.rule, c.key, candidate=c))
        elif existing.last_sent_at is None:
            actions.append(Action("fire", existing.rule, existing.key, candidate=c, alert=existing))
        elif now - existing.last_sent_at >= reminder_s:
            actions.append(Action("remind", existing.rule, existing.key, candidate=c, alert=existing))
    for pair, alert in sorted(open_alerts.items()):
        if pair in scope and pair not in firing:
            actions.append(Action("resolve", alert.rule, alert.key, alert=alert))
    return actions


def incident_of(c: Candidate, open_alerts: Mapping[tuple[str, str], OpenAlert]) -> OpenAlert | None:
    """The open alert this candidate belongs to: its own rule's, or for a check being down, the
    alert of whichever incident rule opened it."""
    rules = INCIDENT_RULES if c.rule in INCIDENT_RULES else (c.rule,)
    return next((a for r in rules if (a := open_alerts.get((r, c.key))) is not None), None)
