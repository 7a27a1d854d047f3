"""Policy settings the profile requires: HTTPS only, webhook validation, security logging ..."""

from __future__ import annotations

from collections.abc import Iterator

from opsdash.core.findings import Finding, Severity
from opsdash.core.rules import rule
from opsdash.core.validators.context import Context, parse_bool


def _matches(actual: str, expected: str) -> bool:
    want = parse_bool(expected)
    if want is not None:
        return parse_bool(actual) is want
    return actual.strip() == expected.strip()


def check_policy(ctx: Context) -> Iterator[Finding]:
    r = rule("policy-violation")
    for policy in ctx.profile.policy:
        what = policy.description or f"{policy.variable}={policy.expected}"
        value = ctx.env.get(policy.variable)
        severity = Severity.parse(policy.severity)
        runbook = policy.runbook or r.runbook
        if value is None:
            detail = f"{policy.variable} is not set; the policy '{what}' requires {policy.expected!r}."
        elif not _matches(value, policy.expected):
            detail = (
                f"{policy.variable} is {ctx.shown(policy.variable)!r}; the policy '{what}' requires "
                f"{policy.expected!r}."
            )
        else:
            continue
        yield r.finding(
            policy.variable,
            detail,
            severity=severity,
            runbook=runbook,
            evidence=ctx.evidence(policy.variable, expected=policy.expected),
        )


CHECKS = (check_policy,)
