"""Operations shared by the CLI and the dashboard: core work plus recording it in history."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from opsdash.config import Check, LoadedConfig, OpsdashSettings, Profile
from opsdash.core.findings import Report
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes import ProbeContext, make_ssl_context
from opsdash.core.health.runner import Watcher, report_for, run_once
from opsdash.core.validators import ValidationRun, load_target_env, validate
from opsdash.errors import ConfigError
from opsdash.storage.history import History


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
    report = report_for(results, profile.target.name, started, round((time.perf_counter() - t0) * 1000))
    if record:
        with History.open(settings.resolved_data_dir()) as history:
            history.record(report, operator=operator)
            history.record_checks(report.run_id, results)
            history.purge(settings.history_retention_days)
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
