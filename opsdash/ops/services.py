"""Operations shared by the CLI and the dashboard: core work plus recording it in history."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdash.core.alerts import WEBHOOK_BURST, check_candidates, check_scope
from opsdash.core.envfiles import EnvSnapshot
from opsdash.core.errors import ConfigError, InputError
from opsdash.core.findings import Report, Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes import ProbeContext, make_ssl_context
from opsdash.core.health.runner import Watcher, report_for, run_once
from opsdash.core.profile import Check, Profile, WebhookSection
from opsdash.core.runbooks.executor import AuditHook, GateResult, GateRunner
from opsdash.core.runbooks.gates import Gate
from opsdash.core.runbooks.model import Runbook
from opsdash.core.runbooks.parser import Problem as RunbookProblem
from opsdash.core.runbooks.parser import parse as parse_runbook
from opsdash.core.secrets import redactor
from opsdash.core.validators import ValidationRun, load_target_env, validate
from opsdash.core.webhooks import BurstRule, Delivery, SchemeOptions, Verdict, Verifier
from opsdash.ops import alerts as alerting
from opsdash.ops.audit import audit_event, audit_report
from opsdash.ops.config import LoadedConfig, OpsdashSettings
from opsdash.storage.history import History

# ---------------------------------------------------------------- validation and checks


def validate_and_record(
    loaded: LoadedConfig,
    settings: OpsdashSettings,
    operator: str,
    *,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    record: bool = True,
) -> ValidationRun:
    run = validate(loaded.profile, env_files=env_files, from_env=from_env)
    if record:
        with History.open(settings.resolved_data_dir()) as history:
            history.record(run.report, operator=operator, env=run.env, is_secret=loaded.profile.is_secret)
            history.purge(settings.history_retention_days)
            audit_report(settings, operator, run.report, history)
    return run


def select_checks(profile: Profile, names: Sequence[str] = ()) -> list[Check]:
    if not profile.checks:
        raise ConfigError("the profile has no [[checks]]; add some (see 'opsdash config schema')")
    if not names:
        return list(profile.checks)
    known = {c.name: c for c in profile.checks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"no check named {', '.join(unknown)}; the profile has: {', '.join(known)}")
    return [known[n] for n in names]


def probe_context(
    profile: Profile, *, env_files: Sequence[Path] | None = None, from_env: bool | None = None
) -> ProbeContext:
    """Credentials come from the env files when they are there; checks that need none run anyway."""
    env = load_target_env(profile, env_files=env_files, from_env=from_env, required=False)
    ca_file = profile.health.ca_file
    try:
        ssl_context = make_ssl_context(str(ca_file) if ca_file else None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"health.ca_file {ca_file}: cannot load it as a CA bundle ({exc})") from None
    return ProbeContext(profile=profile, env=env, ssl_context=ssl_context)


async def check_and_record(
    loaded: LoadedConfig,
    settings: OpsdashSettings,
    operator: str,
    *,
    names: Sequence[str] = (),
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    record: bool = True,
    on_result: Callable[[CheckResult], None] | None = None,
) -> tuple[Report, list[CheckResult]]:
    profile = loaded.profile
    checks = select_checks(profile, names)
    ctx = probe_context(profile, env_files=env_files, from_env=from_env)
    started, t0 = datetime.now(UTC), time.perf_counter()
    results = await run_once(checks, ctx, concurrency=profile.health.concurrency, on_result=on_result)
    report = report_for(results, profile.target.name, started, t0)
    if record:
        with History.open(settings.resolved_data_dir()) as history:
            history.record(report, operator=operator)
            history.record_checks(report.run_id, results)
            history.purge(settings.history_retention_days)
            for r in results:
                audit_event(
                    settings,
                    operator,
                    "check_result",
                    r.name,
                    subject=r.target,
                    outcome=r.severity.value,
                    details={
                        "error_class": r.error_class.value if r.error_class else None,
                        "run_id": report.run_id,
                    },
                )
            audit_report(settings, operator, report, history)
            alerting.process(
                settings, operator, profile, history, check_candidates(results), check_scope(results)
            )
    return report, results


def watcher(
    loaded: LoadedConfig,
    *,
    names: Sequence[str] = (),
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    interval: float | None = None,
) -> Watcher:
    profile = loaded.profile
    checks = select_checks(profile, names)
    ctx = probe_context(profile, env_files=env_files, from_env=from_env)
    return Watcher(checks, ctx, concurrency=profile.health.concurrency, interval_override=interval)


# ---------------------------------------------------------------- webhooks


def _env_or_process(name: str, env: EnvSnapshot | None, process_env: Mapping[str, str]) -> str | None:
    value = env.get(name) if env is not None else None
    return value or process_env.get(name) or None


def webhook_verifier(
    profile: Profile | None,
    *,
    scheme: str | None = None,
    secret_envs: Sequence[str] = (),
    env: EnvSnapshot | None = None,
    process_env: Mapping[str, str] | None = None,
    seen: Callable[[str, str, int], bool] | None = None,
) -> Verifier:
    """A verifier from the profile's [webhook] section; secrets come only from environment variables
    named by --secret-env or by the profile, never from the command line."""
    process_env = os.environ if process_env is None else process_env
    cfg = profile.webhook if profile is not None else WebhookSection()
    provider = profile.provider if profile is not None else None
    chosen = scheme or cfg.scheme
    if secret_envs:
        missing = [v for v in secret_envs if not process_env.get(v)]
        if missing:
            raise ConfigError(f"--secret-env {', '.join(missing)}: not set in the environment")
        secrets_ = [process_env[v] for v in secret_envs]
    else:
        names = cfg.secret_variables or [v for v in [provider and provider.webhook_secret_variable] if v]
        if not names:
            raise ConfigError("no webhook secret: pass --secret-env VAR, or set webhook.secret_variables")
        secrets_ = [s for s in (_env_or_process(n, env, process_env) for n in names) if s]
        if not secrets_:
            raise ConfigError(f"webhook secret {', '.join(names)} is not set in the env files or environment")
    for value in secrets_:
        redactor.register(value)
    app_id = None
    if chosen == "ikhokha":
        app_id_var = cfg.app_id_variable or (provider.app_id_variable if provider else None)
        app_id = _env_or_process(app_id_var, env, process_env) if app_id_var else None
    # SchemeOptions' fields are the [webhook] section's names: everything but app_id comes across as is
    tunables = {f.name for f in dataclasses.fields(SchemeOptions)} - {"app_id"}
    options = SchemeOptions(app_id=app_id, **cfg.model_dump(include=tunables))
    try:
        return Verifier(chosen, secrets_, options, cfg.allowed_sources, seen)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def verify_delivery(
    settings: OpsdashSettings,
    operator: str,
    verifier: Verifier,
    delivery: Delivery,
    now: float,
    history: History,
    burst: BurstRule | None = None,
) -> tuple[Verdict, dict[str, Any] | None]:
    """Verify, audit, and count failures toward the burst rule; returns the verdict and any alert."""
    verdict = verifier.verify(delivery, now)
    source = delivery.source_ip or "unknown"
    details = {
        "scheme": verdict.scheme,
        "message": verdict.message,
        "delivery_id": verdict.delivery_id,
        "clock_skew_s": verdict.skew_s,
    }
    if verdict.ok:
        audit_event(
            settings,
            operator,
            "operator_action",
            "webhook-verify",
            subject=source,
            outcome=verdict.outcome.value,
            details=details,
        )
        return verdict, None
    audit_event(
        settings,
        operator,
        "security_event",
        "webhook-verification-failed",
        subject=source,
        outcome=verdict.outcome.value,
        details=details,
    )
    failures = history.record_webhook_failure(source, verdict.outcome.value, now)
    rule = burst or BurstRule()
    if not rule.should_alert(failures, history.last_alert(WEBHOOK_BURST, source), now):
        return verdict, None
    recent = sum(1 for t in failures if now - t <= rule.window_s)
    title = f"Burst of failed webhook verifications from {source}"
    window = f"{rule.window_s:.0f} s"
    detail = f"{recent} failed verifications from {source} within {window} (latest: {verdict.outcome})"
    alert_id = history.record_alert(WEBHOOK_BURST, source, "CRIT", title, detail, now)
    audit_event(
        settings,
        operator,
        "security_event",
        "alert",
        subject=source,
        outcome="CRIT",
        details={"rule": WEBHOOK_BURST, "alert_id": alert_id, "detail": detail},
    )
    return verdict, {
        "id": alert_id,
        "rule": WEBHOOK_BURST,
        "source": source,
        "title": title,
        "detail": detail,
    }


# ---------------------------------------------------------------- runbooks

_PACKAGE = Path(__file__).resolve().parents[1]
_SHIPPED = [_PACKAGE / "runbooks", _PACKAGE.parent / "runbooks"]


def shipped_runbooks_dir() -> Path | None:
    """The runbooks that ship with opsdash: in the wheel, or in a checkout."""
    return next((d for d in _SHIPPED if d.is_dir()), None)


def runbook_dirs(profile: Profile | None) -> list[Path]:
    dirs = [d for d in (profile.runbooks.dirs if profile else []) if d.is_dir()]
    shipped = shipped_runbooks_dir()
    if shipped is not None and (profile is None or profile.runbooks.shipped) and shipped not in dirs:
        dirs.append(shipped)
    return dirs


def load_runbooks(dirs: Sequence[Path]) -> tuple[list[Runbook], list[RunbookProblem]]:
    """Every runbook in the directories, first one wins for a duplicate id."""
    books: dict[str, Runbook] = {}
    problems: list[RunbookProblem] = []
    for directory in dirs:
        for path in sorted(directory.glob("*.md")):
            book, found = parse_runbook(path)
            problems.extend(found)
            if book is not None and book.id not in books:
                books[book.id] = book
    return sorted(books.values(), key=lambda b: b.id), problems


def find_runbook(ref: str, profile: Profile | None) -> Runbook:
    """A runbook by id (from the profile's dirs and the shipped ones) or by path."""
    path = Path(ref)
    if path.suffix == ".md" or path.exists():
        book, problems = parse_runbook(path)
        if book is None:
            raise InputError(
                str(problems[0]) + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
            )
        return book
    books, _problems = load_runbooks(runbook_dirs(profile))
    for book in books:
        if book.id == ref:
            return book
    known = ", ".join(b.id for b in books) or "none found"
    raise InputError(f"no runbook {ref!r} (known: {known}); see 'opsdash runbook list'")


def gate_runner(
    loaded: LoadedConfig | None,
    settings: OpsdashSettings,
    operator: str,
    *,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
) -> GateRunner:
    """Check blocks run the profile's health checks, environment validation, or ad-hoc http checks."""
    import asyncio

    from pydantic import TypeAdapter, ValidationError

    def run(gates: Sequence[Gate]) -> list[GateResult]:
        results: list[GateResult] = []
        if loaded is None and any(g.kind in ("check", "validate") for g in gates):
            return [GateResult(g.label(), False, "no profile loaded: pass --config") for g in gates]
        checks: list[Any] = []
        for gate in gates:
            if gate.kind == "check":
                assert loaded is not None
                check = loaded.profile.check(gate.target)
                if check is None:
                    results.append(GateResult(gate.label(), False, "no such check in the profile"))
                else:
                    checks.append((gate, check))
            elif gate.kind == "http":
                try:
                    checks.append(
                        (
                            gate,
                            TypeAdapter(Check).validate_python(
                                {
                                    "name": "runbook-gate",
                                    "kind": "http",
                                    "url": gate.target,
                                    "conditions": list(gate.conditions),
                                    "retries": 0,
                                    "timeout": 10,
                                }
                            ),
                        )
                    )
                except ValidationError as exc:
                    results.append(GateResult(gate.label(), False, f"invalid: {exc.errors()[0]['msg']}"))
            else:
                assert loaded is not None
                try:
                    report = validate(loaded.profile, env_files=env_files, from_env=from_env).report
                except (ConfigError, InputError) as exc:
                    results.append(GateResult(gate.label(), False, str(exc)))
                    continue
                passed = report.verdict.rank < Severity.UNKNOWN.rank
                counts = report.counts()
                results.append(
                    GateResult(
                        gate.label(),
                        passed,
                        f"{report.verdict.value}: {counts['CRIT']} critical, {counts['WARN']} warning",
                    )
                )
        if checks:
            profile = (
                loaded.profile
                if loaded
                else Profile.model_validate({"target": {"name": "runbook", "base_url": "https://localhost"}})
            )
            ctx = probe_context(profile, env_files=env_files, from_env=from_env)
            outcomes = asyncio.run(run_once([c for _g, c in checks], ctx))
            for (gate, _check), outcome in zip(checks, outcomes, strict=True):
                ok = outcome.severity.rank < Severity.UNKNOWN.rank
                results.append(GateResult(gate.label(), ok, f"{outcome.severity.value}: {outcome.summary}"))
        order = {g.label(): i for i, g in enumerate(gates)}
        return sorted(results, key=lambda r: order.get(r.label, 0))

    return run


def runbook_audit(settings: OpsdashSettings, operator: str) -> AuditHook:
    def hook(action: str, subject: str, outcome: str, details: Mapping[str, Any]) -> None:
        audit_event(
            settings,
            operator,
            "operator_action",
            action,
            subject=subject,
            outcome=outcome,
            details=dict(details),
        )

    return hook
