"""Production mode, test mode, required variables, env-file hygiene and drift from .env.example."""

from __future__ import annotations

from collections.abc import Iterator

from opsdash.core.findings import Finding, Severity
from opsdash.core.rules import rule
from opsdash.core.validators.context import Context, must_be_off


def check_mode(ctx: Context) -> Iterator[Finding]:
    var = ctx.profile.env.mode_variable
    if not var:
        return
    expected = ctx.profile.env.mode_expected
    value = ctx.env.get(var)
    if value is None:
        yield rule("env-not-production").finding(
            var,
            f"{var} is not set, so the app falls back to its default mode (expected {expected!r}).",
            evidence=ctx.evidence(var, expected=expected),
        )
    elif value.strip() != expected:
        yield rule("env-not-production").finding(
            var,
            f"{var} is {value.strip()!r}; production requires {expected!r}.",
            evidence=ctx.evidence(var, expected=expected),
        )


def check_test_mode(ctx: Context) -> Iterator[Finding]:
    var = ctx.profile.env.test_mode_variable
    if not var:
        return
    value = ctx.env.get(var)
    r = rule("test-mode-enabled")
    if value is None:
        yield r.finding(
            var,
            f"{var} is not set; the app's built-in default decides whether payments are real.",
            severity=Severity.WARN,
            title="Test-mode setting is missing",
            remediation=f"Set {var}=false explicitly in the production env file.",
            evidence=ctx.evidence(var),
        )
        return
    yield from must_be_off(
        ctx,
        r,
        var,
        value,
        on=f"{var} is {value!r}: payments go to the provider's test mode and are not real.",
        not_boolean=f"{var} is {value!r}, which is not a boolean (true/false/1/0/yes/no/on/off); "
        "many apps treat any non-empty string as true.",
    )


def check_required(ctx: Context) -> Iterator[Finding]:
    for var in ctx.profile.env.required:
        value = ctx.env.get(var)
        if value is None:
            detail = f"{var} is not set in {', '.join(ctx.env.sources) or 'any source'}."
            exposed = [p + var for p in ctx.profile.target.client_prefixes if p + var in ctx.env.values]
            if exposed:
                detail += (
                    f" {exposed[0]} is set instead; its client prefix makes the bundler ship it to browsers."
                )
            yield rule("required-missing").finding(
                var, detail, evidence={"sources": ", ".join(ctx.env.sources)}
            )
        elif value.strip() == "":
            yield rule("required-empty").finding(var, f"{var} is set but empty.", evidence=ctx.evidence(var))


def check_dotenv_hygiene(ctx: Context) -> Iterator[Finding]:
    for problem in ctx.env.problems:
        if problem.kind == "parse-error":
            yield rule("dotenv-parse-error").finding(
                problem.source, f"{problem.source}: {problem.message}.", evidence={"source": problem.source}
            )
        elif problem.kind == "reads-differently":
            yield rule("env-value-altered").finding(
                problem.key or problem.source,
                f"{problem.source}: {problem.message}.",
                severity=Severity.CRIT if problem.key and ctx.is_secret(problem.key) else None,
                evidence={"source": problem.source},
            )
        else:
            yield rule("dotenv-duplicate-key").finding(
                problem.key or problem.source,
                f"{problem.source}: {problem.message}.",
                evidence={"source": problem.source},
            )


def check_example_drift(ctx: Context) -> Iterator[Finding]:
    if ctx.example_keys is None:
        return
    required = set(ctx.profile.env.required)
    r = rule("example-drift")
    for key, where in sorted(ctx.example_keys.items()):
        if key not in ctx.env.values and key not in required:  # required-missing already says so
            yield r.finding(
                key,
                f"{key} is in the example ({where}) but not in the environment.",
                evidence={"example": where},
            )
    for key in sorted(set(ctx.env.values) - set(ctx.example_keys)):
        yield r.finding(
            key,
            f"{key} is set ({ctx.env.source_of(key)}) but not documented in the example.",
            severity=Severity.INFO,
            title="Variable not in .env.example",
            remediation="Add the variable (with a fake value) to .env.example so the next deploy sets it.",
            evidence={"source": ctx.env.source_of(key)},
        )


CHECKS = (check_mode, check_test_mode, check_required, check_dotenv_hygiene, check_example_drift)
