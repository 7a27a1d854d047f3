"""Deploy gates: `opsdash preflight` (go/no-go) and `opsdash verify-deploy` (did it land well?)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opsdash.core.alerts import PREFLIGHT_NO_GO, check_candidates, check_scope, preflight_candidate
from opsdash.core.errors import ConfigError, InputError
from opsdash.core.findings import Finding, Report, Severity, new_run_id, worst
from opsdash.core.health.model import CheckResult
from opsdash.core.health.runner import run_once, run_sync
from opsdash.core.profile import Profile
from opsdash.core.readiness import (
    CERT_DAYS,
    Baseline,
    Versions,
    baseline_from,
    compare,
    rollback_findings,
)
from opsdash.core.rules import rule
from opsdash.core.runbooks.lint import lint
from opsdash.core.secrets import fingerprint
from opsdash.core.validators import validate
from opsdash.ops.base import Ops
from opsdash.ops.runbooks import find_runbook
from opsdash.ops.versions import read_versions
from opsdash.storage.history import History
from opsdash.storage.rows import RunRow

GREEN_KINDS = ("preflight", "verify-deploy")
BASELINE_KINDS = ("check", *GREEN_KINDS)  # runs that recorded check results to compare with


def baseline_run(history: History, spec: str = "last-ok", target: str | None = None) -> RunRow | None:
    """The run verify-deploy compares with. `last-ok`: the newest preflight or verify-deploy of
    `target` whose verdict was OK (a run that ended in WARN is not a baseline: its warnings would
    become the norm; another profile's run in the same record is not this target's baseline);
    `last`: the newest of them whatever its verdict; else a run reference (id, prefix, latest~N)
    of a check, preflight or verify-deploy run. None when history has no such run."""
    if spec == "last-ok":
        found = history.runs.last(GREEN_KINDS, ("OK", "INFO"), target=target)
    elif spec == "last":
        found = history.runs.last(GREEN_KINDS, target=target)
    else:
        run = history.runs.resolve(spec)
        if run.kind not in BASELINE_KINDS:
            raise InputError(
                f"baseline {run.run_id} is a {run.kind} run: pick a check, preflight or verify-deploy run "
                "(they record check results to compare with)"
            )
        return run
    return None if found is None else history.runs.resolve(found)


def rollback_readiness(profile: Profile, history: History, versions: Versions | None) -> list[Finding]:
    runbook_id = profile.deploy.rollback_runbook
    try:
        book = find_runbook(runbook_id, profile)
        problems: list[str] | None = [str(p) for p in lint(book, [c.name for c in profile.checks])]
    except InputError:
        problems = None
    green = history.runs.last_green(GREEN_KINDS)
    return rollback_findings(versions, problems, green, runbook_id)


def _env_fingerprints(history: History, run_id: str) -> dict[str, tuple[str, bool]]:
    return {k.key: (k.fingerprint, k.secret) for k in history.runs.env_keys(run_id)}


def _record(ops: Ops, history: History, report: Report, env: Any, results: Sequence[CheckResult]) -> None:
    history.runs.record(
        report, operator=ops.operator, env=env, is_secret=ops.profile.is_secret, results=results
    )
    ops.audit.report(report, history)
    candidates = check_candidates(results)
    scope = check_scope(results) | {(PREFLIGHT_NO_GO, report.target)}
    if report.kind == "preflight":
        extra = preflight_candidate(report)
        candidates += [extra] if extra else []
    ops.alerts.process(history, candidates, scope)


def preflight(
    ops: Ops,
    *,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    record: bool = True,
    live: bool = True,
    progress: Callable[[str], None] = lambda _m: None,
) -> Report:
    """Environment validation + every live check (TLS and the webhook self-test among them) + the
    live site traced for the target's secrets (unless `live` is False) + rollback readiness, as one
    go/no-go report."""
    profile = ops.profile
    started, t0 = ops.now(), time.perf_counter()
    progress("validating the environment")
    validation = validate(profile, env_files=env_files, from_env=from_env)
    results: list[CheckResult] = []
    if profile.checks:
        progress(f"running {len(profile.checks)} live checks")
        ctx = ops.probe_context(env_files=env_files, from_env=from_env)
        results = run_sync(run_once(profile.checks, ctx, concurrency=profile.health.concurrency))
    else:
        results = []
    traced: Report | None = None
    if live:
        progress(
            f"tracing the target's secrets: the live site {profile.target.base_url} (and new git objects)"
        )
        traced = credential_trace(ops, env_files=env_files, from_env=from_env)
    progress("checking rollback readiness")
    versions = read_versions(profile)
    with ops.history() as history:
        readiness = rollback_readiness(profile, history, versions)
        findings = [*validation.report.findings, *(f for r in results for f in r.findings), *readiness]
        findings += traced.findings if traced else ()
        if not profile.checks:
            findings.append(
                rule("check-failed").finding(
                    "checks",
                    "The profile has no [[checks]]: live health was not evaluated.",
                    severity=Severity.UNKNOWN,
                )
            )
        summary = {
            "validation": validation.report.verdict.value,
            "checks": [r.to_dict() for r in results],
            "versions": None if versions is None else versions.__dict__,
            "rollback_ready": not readiness or all(f.severity is not Severity.CRIT for f in readiness),
        }
        if traced is not None:
            summary["trace"] = dict(traced.summary)
        report = Report.timed("preflight", profile.target.name, started, t0, findings, summary)
        if record:
            _record(ops, history, report, validation.env, results)
    return report


def credential_trace(
    ops: Ops, *, env_files: Sequence[Path] | None = None, from_env: bool | None = None
) -> Report:
    """The fast parts of the credential trace, for a gate: the live site, and the git objects new
    since the last trace of the profile's repository ([target.trace]); previous values found are
    tried at the provider. Not recorded on its own: the gate's run holds its findings. A trace that
    cannot run is an UNKNOWN finding, so the gate says it was not evaluated."""
    from opsdash.ops import trace_live

    try:
        return trace_live.run(ops, env_files=env_files, from_env=from_env, record=False, live=True).report
    except (ConfigError, InputError) as exc:
        finding = rule("secret-served-live").finding(
            ops.profile.target.base_url,
            f"The credential trace could not run: {exc}",
            severity=Severity.UNKNOWN,
            title="The credential trace could not run",
            runbook=None,
        )
        return Report.timed("trace", ops.profile.target.name, ops.now(), time.perf_counter(), [finding])


@dataclass
class Sweep:
    number: int
    results: list[CheckResult]

    @property
    def ok(self) -> bool:
        return all(r.severity.rank < Severity.UNKNOWN.rank for r in self.results)


def verify_deploy(
    ops: Ops,
    *,
    window: float,
    interval: float,
    stable: int,
    expect_version: str | None = None,
    baseline: str = "last-ok",
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> Report:
    """Poll every check until `stable` consecutive all-good sweeps or the window ends, then compare
    with the baseline run (see baseline_run)."""
    profile = ops.profile
    if not profile.checks:
        raise ConfigError("the profile has no [[checks]] to verify a deploy with")
    with ops.history() as history:  # a baseline that does not exist is a usage error, found before the wait
        base = baseline_run(history, baseline, profile.target.name)
    started, t0 = ops.now(), time.perf_counter()
    ctx = ops.probe_context(env_files=env_files, from_env=from_env)
    sweeps: list[Sweep] = []
    streak = 0
    deadline = time.monotonic() + window
    while True:
        results = run_sync(run_once(profile.checks, ctx, concurrency=profile.health.concurrency))
        sweep = Sweep(len(sweeps) + 1, results)
        sweeps.append(sweep)
        streak = streak + 1 if sweep.ok else 0
        bad = [r.name for r in results if r.severity.rank >= Severity.UNKNOWN.rank]
        left = max(0.0, deadline - time.monotonic())
        progress(
            f"sweep {sweep.number}: {len(results) - len(bad)}/{len(results)} passing"
            + (f" (failing: {', '.join(bad)})" if bad else "")
            + f"; stable {streak}/{stable}; {left:.0f}s left"
        )
        if streak >= stable or time.monotonic() + interval > deadline:
            break
        time.sleep(interval)
    final = sweeps[-1].results
    findings: list[Finding] = [f for r in final for f in r.findings]
    if streak < stable:
        findings.append(
            rule("deploy-unstable").finding(
                profile.target.name,
                f"Only {streak} consecutive passing sweep(s) of {stable} within {window:g}s "
                f"({len(sweeps)} sweeps).",
                evidence={"sweeps": str(len(sweeps))},
            )
        )
    versions = read_versions(profile)
    if expect_version is not None:
        if versions is None or versions.current is None:
            why = (
                "the profile has no [deploy] version source"
                if versions is None
                else (versions.error or "no value")
            )
            findings.append(
                rule("version-mismatch").finding(
                    "deploy.version_url",
                    f"Cannot confirm release {expect_version}: {why}.",
                    severity=Severity.UNKNOWN,
                )
            )
        elif versions.current != expect_version:
            findings.append(
                rule("version-mismatch").finding(
                    versions.source,
                    f"Serving {versions.current}, expected {expect_version}.",
                    evidence={"served": versions.current, "expected": expect_version},
                )
            )
    env = None
    with contextlib.suppress(ConfigError, InputError):  # no env files here: skip the env comparison only
        env = validate(profile, env_files=env_files, from_env=from_env).env
    stable_sweeps = [s.results for s in sweeps[-max(streak, 1) :]]
    now_env = {k: (fingerprint(v.value), profile.is_secret(k)) for k, v in env.values.items()} if env else {}
    run_id = new_run_id(started)
    current = baseline_from(run_id, stable_sweeps, now_env)
    with ops.history() as history:
        if base is not None:
            green = Baseline(
                base.run_id, *_baseline_rows(history, base.run_id), _env_fingerprints(history, base.run_id)
            )
            elapsed = (started - datetime.fromisoformat(base.started_at)).total_seconds() / 86400
            findings += compare(green, current, profile.deploy, elapsed)
        else:
            findings.append(
                rule("rollback-no-green-run").finding(
                    "history",
                    "No OK preflight or verify-deploy run to compare with: this run becomes the baseline "
                    "if it ends OK."
                    if baseline == "last-ok"
                    else "No preflight or verify-deploy run to compare with.",
                    severity=Severity.INFO,
                )
            )
        summary: dict[str, Any] = {
            "sweeps": len(sweeps),
            "stable": streak,
            "baseline": None if base is None else base.run_id,
            "versions": None if versions is None else versions.__dict__,
            "checks": [r.to_dict() for r in final],
            "latency_ms": dict(current.latency_ms),
        }
        if worst(f.severity for f in findings) is Severity.CRIT:
            summary["next"] = f"opsdash runbook run {profile.deploy.rollback_runbook}"
        report = Report.timed(
            "verify-deploy", profile.target.name, started, t0, findings, summary, run_id=run_id
        )
        _record(ops, history, report, env, [r for s in stable_sweeps for r in s])
    return report


def _baseline_rows(history: History, run_id: str) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    latencies: dict[str, list[float]] = {}
    metrics: dict[str, dict[str, float]] = {}
    for row in history.checks.of_run(run_id):
        values = row.metrics_dict()
        if row.severity in ("OK", "INFO", "WARN"):
            if "response_time_ms" in values:
                latencies.setdefault(row.check_name, []).append(values["response_time_ms"])
            metrics[row.check_name] = {k: v for k, v in values.items() if k != "response_time_ms"}
        if CERT_DAYS in values:  # every result: a certificate expiring soon is still a certificate
            metrics.setdefault(row.check_name, {})[CERT_DAYS] = values[CERT_DAYS]
    return {k: statistics.median(v) for k, v in latencies.items()}, metrics
