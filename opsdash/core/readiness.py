"""Deploy decisions from results: rollback readiness, the preflight go/no-go, and what changed
since the last green run. Pure functions; ops gathers the inputs."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opsdash.core.diff import why_not_comparable as why_not_comparable  # its home is core/diff
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.rules import rule

if TYPE_CHECKING:  # annotations only: the verdict must not load the profile's pydantic models
    from opsdash.core.profile import DeploySection

CERT_DAYS = "cert_days_left"


@dataclass(frozen=True)
class Versions:
    current: str | None
    previous: str | None
    source: str
    error: str | None = None


def versions_from(data: Any, deploy: DeploySection, source: str) -> Versions:
    def pick(path: str) -> str | None:
        value = data
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return None if value is None or isinstance(value, dict | list) else str(value)

    if not isinstance(data, dict):
        return Versions(None, None, source, "the version source did not answer a JSON object")
    return Versions(pick(deploy.current_field), pick(deploy.previous_field), source)


def rollback_findings(
    versions: Versions | None, runbook_problems: Sequence[str] | None, green_run: str | None, runbook_id: str
) -> list[Finding]:
    """None for runbook_problems means the rollback runbook does not exist."""
    out = []
    if versions is None:
        out.append(
            rule("rollback-version-unknown").finding(
                "deploy.version_url", "The profile does not say how to read the running and previous release."
            )
        )
    elif versions.error or not versions.previous:
        why = versions.error or f"{versions.source} gave no previous release"
        out.append(
            rule("rollback-version-unknown").finding(
                "deploy.version_url",
                f"Previous release unknown: {why}.",
                evidence={"source": versions.source},
            )
        )
    if runbook_problems is None:
        out.append(
            rule("rollback-runbook-invalid").finding(runbook_id, f"There is no runbook {runbook_id!r}.")
        )
    elif runbook_problems:
        out.append(
            rule("rollback-runbook-invalid").finding(
                runbook_id,
                f"Runbook {runbook_id!r} has {len(runbook_problems)} problem(s): {runbook_problems[0]}",
            )
        )
    if green_run is None:
        out.append(
            rule("rollback-no-green-run").finding(
                "history", "History has no green preflight or verify-deploy run."
            )
        )
    return out


def gate(report: Report) -> str:
    verdict = report.verdict
    if verdict is Severity.UNKNOWN:
        return "UNKNOWN"
    return "NO-GO" if verdict is Severity.CRIT else "GO"


@dataclass(frozen=True)
class Verdict:
    """The dashboard's one verdict: GO | NO-GO | UNKNOWN, why (the worst contributor first), and
    whether it is stale (polling paused: the live half of it is no longer being refreshed)."""

    label: str
    reason: str
    worst: Severity = Severity.UNKNOWN
    stale: bool = False

    @property
    def headline(self) -> str:
        return f"{self.label} (stale)" if self.stale else self.label

    def __str__(self) -> str:
        return f"{self.headline}: {self.reason}"


def dashboard_verdict(
    report: Report | None,
    states: Mapping[str, SustainedState],
    expected_checks: int,
    alerts: Sequence[tuple[Severity, str]] = (),
    *,
    paused: bool = False,
    validation_failed: bool = False,
) -> Verdict:
    """The verdict the header and the overview show, from the latest validation, each check's
    state (failing-before-threshold counts as WARN) and the active alerts. CRIT anywhere is NO-GO;
    anything not yet evaluated is UNKNOWN, never GO; a GO with any WARN says so and names it.
    `validation_failed`: the validation could not run (report None for that reason, not yet)."""
    contributors: list[tuple[Severity, str]] = []
    if report is not None:
        counts = report.counts()
        by_severity = {
            s: sorted({f.rule for f in report.findings if f.severity is s})
            for s in (Severity.CRIT, Severity.WARN)
        }
        if counts["CRIT"]:
            contributors.append(
                (
                    Severity.CRIT,
                    f"{counts['CRIT']} critical finding(s) ({', '.join(by_severity[Severity.CRIT][:2])})",
                )
            )
        if counts["WARN"]:
            contributors.append(
                (
                    Severity.WARN,
                    f"{counts['WARN']} warning finding(s) ({', '.join(by_severity[Severity.WARN][:2])})",
                )
            )
    for name, state in sorted(states.items()):
        if state.shown in (Severity.CRIT, Severity.WARN):
            contributors.append((state.shown, f"{name} {state.label}"))
    for severity, title in alerts:
        if severity in (Severity.CRIT, Severity.WARN):
            contributors.append((severity, f"alert: {title}"))
    contributors.sort(key=lambda c: -c[0].rank)
    shown = [text for _s, text in contributors[:3]]
    if len(contributors) > 3:
        shown.append(f"+{len(contributors) - 3} more")
    named = "; ".join(shown)
    worst = contributors[0][0] if contributors else Severity.OK

    def verdict(label: str, reason: str, severity: Severity) -> Verdict:
        if paused:
            reason = f"polling paused, live checks not refreshed (p resumes) · {reason}"
        return Verdict(label, reason, severity, stale=paused)

    if worst is Severity.CRIT:
        return verdict("NO-GO", named, Severity.CRIT)
    if report is None:
        why = (
            "environment could not be validated (see Validation)"
            if validation_failed
            else "environment not validated yet"
        )
        return verdict("UNKNOWN", why + (f"; {named}" if named else ""), Severity.UNKNOWN)
    if report.verdict is Severity.UNKNOWN:
        return verdict("UNKNOWN", "environment could not be evaluated", Severity.UNKNOWN)
    pending = expected_checks - len(states) + sum(1 for s in states.values() if s.shown is Severity.UNKNOWN)
    if pending > 0:
        wait = f"{pending} check(s) still being evaluated"
        return verdict("UNKNOWN", wait + (f"; {named}" if named else ""), Severity.UNKNOWN)
    if worst is Severity.WARN:
        return verdict("GO", f"with warnings: {named}", Severity.WARN)
    return verdict("GO", "validation and live checks pass", Severity.OK)


@dataclass(frozen=True)
class Baseline:
    """What a run measured: per-check latency and metrics, and env key fingerprints."""

    run_id: str
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    env: Mapping[str, tuple[str, bool]] = field(default_factory=dict)  # key -> (fingerprint, secret)


def baseline_from(
    run_id: str, sweeps: Sequence[Sequence[CheckResult]], env: Mapping[str, tuple[str, bool]] | None = None
) -> Baseline:
    latencies: dict[str, list[float]] = {}
    metrics: dict[str, dict[str, float]] = {}
    for sweep in sweeps:
        for r in sweep:
            if r.ok and "response_time_ms" in r.metrics:
                latencies.setdefault(r.name, []).append(r.metrics["response_time_ms"])
            if r.ok:
                metrics[r.name] = {k: v for k, v in r.metrics.items() if k != "response_time_ms"}
            if CERT_DAYS in r.metrics:  # from every result: a certificate inside the warning window
                metrics.setdefault(r.name, {})[CERT_DAYS] = r.metrics[CERT_DAYS]  # is still compared
    return Baseline(run_id, {k: statistics.median(v) for k, v in latencies.items()}, metrics, dict(env or {}))


def compare(
    green: Baseline, now: Baseline, deploy: DeploySection, elapsed_days: float = 0.0
) -> list[Finding]:
    out: list[Finding] = []
    for check, before in sorted(green.latency_ms.items()):
        after = now.latency_ms.get(check)
        if after is None or before <= 0:
            continue
        if after > before * deploy.latency_regression and after - before > deploy.latency_floor_ms:
            out.append(
                rule("latency-regression").finding(
                    check,
                    f"{check}: median latency {after:.0f} ms, was {before:.0f} ms in run {green.run_id} "
                    f"({after / before:.1f}x).",
                    evidence={
                        "before_ms": f"{before:.1f}",
                        "after_ms": f"{after:.1f}",
                        "green_run": green.run_id,
                    },
                )
            )
    for check, values in sorted(green.metrics.items()):
        for name, before in sorted(values.items()):
            after = now.metrics.get(check, {}).get(name)
            if after is None:
                continue
            if name == CERT_DAYS:
                if after < before - elapsed_days - 1:
                    out.append(
                        rule("cert-days-dropped").finding(
                            check,
                            f"{check}: the certificate now has {after:.0f} days left, was {before:.0f}.",
                            evidence={"green_run": green.run_id},
                        )
                    )
            elif before > 0 and after < before * (1 - deploy.metric_drop):
                out.append(
                    rule("metric-dropped").finding(
                        f"{check}:{name}",
                        f"{check}: {name} is {after:g}, was {before:g} in run {green.run_id}.",
                        evidence={"green_run": green.run_id},
                    )
                )
    for key, (fingerprint, secret) in sorted(now.env.items()):
        old = green.env.get(key)
        if old is not None and old[0] != fingerprint:
            what = "secret" if secret else "value"
            out.append(
                rule("env-changed").finding(
                    key,
                    f"The {what} of {key} changed since run {green.run_id} "
                    f"(fingerprint {old[0]} → {fingerprint}).",
                    severity=Severity.WARN if secret else Severity.INFO,
                    evidence={"before": old[0], "after": fingerprint, "green_run": green.run_id},
                )
            )
    return out
