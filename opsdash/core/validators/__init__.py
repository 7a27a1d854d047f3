"""Environment validation: pure functions of the profile and the target's environment (no network)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opsdash.core.envfiles import EnvSnapshot, load_environment, read_env_file
from opsdash.core.errors import ConfigError
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.profile import Profile
from opsdash.core.rules import rule
from opsdash.core.secrets import redactor, url_credentials
from opsdash.core.validators import credentials, environment, policy, urls
from opsdash.core.validators.context import Context

Check = Callable[[Context], Iterator[Finding]]
ALL_CHECKS: tuple[Check, ...] = (*environment.CHECKS, *credentials.CHECKS, *urls.CHECKS, *policy.CHECKS)


@dataclass(frozen=True)
class ValidationRun:
    report: Report
    env: EnvSnapshot


def _optional_snapshot(path: Path | None, what: str, notes: list[Finding]) -> EnvSnapshot | None:
    if path is None:
        return None
    if not path.exists():
        notes.append(
            rule("example-drift" if what == "example" else "secret-matches-dev").finding(
                str(path),
                f"The {what} env file {path} does not exist, so it was not compared.",
                severity=Severity.UNKNOWN,
                title=f"{what.capitalize()} env file not found",
                runbook=None,
                remediation=f"Create {path.name} or remove env.{what} from the profile.",
            )
        )
        return None
    return load_environment([path])


def register_secrets(profile: Profile, env: EnvSnapshot) -> None:
    """Teach the redactor every secret in the env: secret variables, and the credentials inside any
    variable's URL (`DATABASE_URL=postgres://app:PASS@db`)."""
    for item in env.values.values():
        if item.value and profile.is_secret(item.key):
            redactor.register(item.value)
        for credential in url_credentials(item.value or ""):
            redactor.register(credential)


def load_target_env(
    profile: Profile,
    *,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    process_env: Mapping[str, str] | None = None,
    required: bool = True,
) -> EnvSnapshot | None:
    """The target's environment as the app sees it: --env-file (or the profile's files), plus the
    process environment when asked. With required=False, absent profile files are skipped and
    None is returned when there is nothing to read (checks that need no credentials still run)."""
    files = list(env_files) if env_files else profile.env.env_files()
    use_process = profile.env.from_process if from_env is None else from_env
    if (not required or use_process) and not env_files:
        # A pipeline that keeps its configuration in environment variables has no env files to read:
        # with --from-env the process environment is the environment.
        files = [f for f in files if f.exists()]
    if not files and not use_process:
        if not required:
            return None
        raise ConfigError(
            "no env files to validate: set env.files (or env.framework) in the profile, pass --env-file, "
            "or use --from-env"
        )
    env = load_environment(
        files,
        process_env=(os.environ if process_env is None else process_env) if use_process else None,
        process_keys=profile.variables_named(),
        process_prefixes=profile.target.client_prefixes,
        framework=profile.env.framework,
    )
    register_secrets(profile, env)
    return env


def validate(
    profile: Profile,
    *,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    process_env: Mapping[str, str] | None = None,
    checks: Iterable[Check] | None = None,
) -> ValidationRun:
    """Validate the target's environment. Env files and input errors raise; findings never do."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    env = load_target_env(profile, env_files=env_files, from_env=from_env, process_env=process_env)
    notes: list[Finding] = []
    development = _optional_snapshot(profile.env.development, "development", notes)
    example_keys = None
    if profile.env.example is not None:
        if profile.env.example.exists():
            values, _problems = read_env_file(profile.env.example)
            example_keys = {v.key: v.source for v in values}
        else:
            _optional_snapshot(profile.env.example, "example", notes)
    if development is not None:
        register_secrets(profile, development)
    assert env is not None  # required=True never returns None
    ctx = Context(profile=profile, env=env, development=development, example_keys=example_keys)
    findings = [*notes]
    for check in ALL_CHECKS if checks is None else checks:
        findings.extend(check(ctx))
    summary = {
        "sources": list(env.sources),
        "variables": len(env.values),
        "secrets": len(ctx.secret_items()),
        "rules_checked": len(ALL_CHECKS),
    }
    report = Report.timed("validate", profile.target.name, started, t0, findings, summary)
    return ValidationRun(report=report, env=env)
