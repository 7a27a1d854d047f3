"""What every probe shares: its context, and how a result or failure is built."""

from __future__ import annotations

import asyncio
import functools
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from opsdash.core.envfiles import EnvSnapshot
from opsdash.core.findings import Finding, Severity, worst
from opsdash.core.health import conditions as cond
from opsdash.core.health.errors import (
    ErrorClass,
    classify_status,
    runbook_for,
)
from opsdash.core.health.model import CheckResult
from opsdash.core.profile import Check, HttpCheck, Profile
from opsdash.core.rules import rule

Resolver = Callable[[str, int], Awaitable[list[str]]]
T = TypeVar("T")


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def make_ssl_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The verifying context every probe shares: system trust store plus the profile's CA file."""
    ctx = ssl.create_default_context()
    if ca_file:
        ctx.load_verify_locations(cafile=ca_file)
    return ctx


@dataclass
class ProbeContext:
    profile: Profile
    env: EnvSnapshot | None = None
    ssl_context: ssl.SSLContext = field(default_factory=make_ssl_context)
    resolver: Resolver = system_resolver
    now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def env_value(self, name: str | None) -> str | None:
        if not name or self.env is None:
            return None
        value = self.env.get(name)
        return value or None


class ProbeFailed(Exception):
    def __init__(
        self,
        error: ErrorClass,
        reason: str,
        *,
        phases: Mapping[str, float] | None = None,
        facts: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.phases = dict(phases or {})
        self.facts = dict(facts or {})


_TLS_RULES = {
    ErrorClass.TLS_EXPIRED: "tls-expired",
    ErrorClass.TLS_NOT_YET_VALID: "tls-not-yet-valid",
    ErrorClass.TLS_UNTRUSTED: "tls-untrusted",
    ErrorClass.TLS_HOSTNAME: "tls-hostname-mismatch",
}


def _severity(check: Check) -> Severity:
    return Severity.CRIT if check.severity == "crit" else Severity.WARN


@dataclass(frozen=True)
class Attempt:
    """One probe of one check at one target, begun at `started` (`t0` on the perf counter): what
    builds its result, passed or failed, with the duration measured from then."""

    check: Check
    target: str
    started: datetime
    t0: float

    def failed(
        self,
        error: ErrorClass,
        reason: str,
        *,
        rule_id: str | None = None,
        severity: Severity | None = None,
        phases: Mapping[str, float] | None = None,
        facts: Mapping[str, str] | None = None,
        conditions: tuple[cond.ConditionResult, ...] = (),
        metrics: Mapping[str, float] | None = None,
        extra: tuple[Finding, ...] = (),
    ) -> CheckResult:
        """A failed probe. The finding's rule follows the error class (TLS trouble gets its tls-* rule)
        unless `rule_id` names a more specific one, whose own remediation and runbook then apply."""
        check = self.check
        severity = severity or (Severity.UNKNOWN if error is ErrorClass.CONFIG else _severity(check))
        specific = rule(rule_id) if rule_id else None
        the_rule = specific or rule(_TLS_RULES.get(error, "check-failed"))
        hint = specific.remediation if specific else error.info.hint
        runbook = check.runbook or (specific.runbook if specific else runbook_for(error, check.kind))
        summary = reason if specific else f"{error.info.title}: {reason}"
        finding = the_rule.finding(
            check.name,
            f"{check.name}: {summary}",
            severity=severity,
            remediation=hint,
            runbook=runbook,
            evidence={"check": check.name, "target": self.target, "error_class": error.value},
        )
        return self.passed(
            summary,
            phases=phases,
            facts=facts,
            conditions=conditions,
            metrics=metrics,
            severity=severity,
            findings=(finding, *extra),
            error=error,
        )

    def probe_failed(self, exc: ProbeFailed, context: str = "") -> CheckResult:
        """The result of a ProbeFailed: its error class, its reason (after `context`), and the phases
        and facts of as far as it got."""
        return self.failed(exc.error, context + exc.reason, phases=exc.phases, facts=exc.facts)

    def passed(
        self,
        summary: str,
        *,
        phases: Mapping[str, float] | None = None,
        facts: Mapping[str, str] | None = None,
        conditions: tuple[cond.ConditionResult, ...] = (),
        metrics: Mapping[str, float] | None = None,
        severity: Severity = Severity.OK,
        findings: tuple[Finding, ...] = (),
        error: ErrorClass | None = None,
    ) -> CheckResult:
        """A probe's result; the hint and runbook shown with it are those of its first finding."""
        return CheckResult(
            name=self.check.name,
            kind=self.check.kind,
            target=self.target,
            severity=severity,
            summary=summary,
            started_at=self.started.isoformat(timespec="milliseconds"),
            duration_ms=(time.perf_counter() - self.t0) * 1000,
            error_class=error,
            phases=dict(phases or {}),
            conditions=conditions,
            metrics=dict(metrics or {}),
            facts=dict(facts or {}),
            findings=findings,
            runbook=findings[0].runbook if findings else None,
            hint=findings[0].remediation if findings else None,
        )

    def concluded(
        self,
        results: tuple[cond.ConditionResult, ...],
        summary: str,
        *,
        status: int | None = None,
        phases: Mapping[str, float] | None = None,
        facts: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        findings: tuple[Finding, ...] = (),
    ) -> CheckResult:
        """How a probe that got its answer ends: failed on the first condition that does not hold,
        else passed with `summary`, as severe as its worst finding (a certificate nearing expiry)."""
        failure = self.condition_failure(
            results, status=status, phases=phases, facts=facts, metrics=metrics, extra=findings
        )
        if failure is not None:
            return failure
        return self.passed(
            summary,
            phases=phases,
            facts=facts,
            conditions=results,
            metrics=metrics,
            severity=worst(f.severity for f in findings),
            findings=findings,
        )

    def condition_failure(
        self,
        results: tuple[cond.ConditionResult, ...],
        *,
        status: int | None = None,
        phases: Mapping[str, float] | None = None,
        facts: Mapping[str, str] | None = None,
        metrics: Mapping[str, float] | None = None,
        extra: tuple[Finding, ...] = (),
    ) -> CheckResult | None:
        """The failed result for the first condition that does not hold, or None when all hold. Status
        comes before body: on a 503 (or 401, 404, 429) any failed condition is classified by the status."""
        bad = next((r for r in results if not r.ok), None)
        if bad is None:
            return None
        error = classify_status(status) if status is not None else None
        reason = f"{bad.text} (actual {bad.actual})" + (f": {bad.error}" if bad.error else "")
        return self.failed(
            error or ErrorClass.CONDITION,
            reason,
            phases=phases,
            facts=facts,
            conditions=results,
            metrics=metrics,
            extra=extra,
        )


class PerCheck(Generic[T]):
    """A value worked out once per check and kept across its polls: checks are frozen, so what
    they say never changes under the cache. Keyed by the check itself (identity: two checks never
    share an entry, however alike), and bounded."""

    def __init__(self, build: Callable[[Any], T], size: int = 8192) -> None:
        self._build = build
        self._size = size
        self._cache: dict[int, tuple[object, T]] = {}

    def __call__(self, check: Any) -> T:
        entry = self._cache.get(id(check))
        if entry is not None and entry[0] is check:  # the check is held, so its id is not reused
            return entry[1]
        value = self._build(check)
        if len(self._cache) >= self._size:
            self._cache.clear()
        self._cache[id(check)] = (check, value)
        return value


@dataclass(frozen=True)
class CompiledConditions:
    """A check's conditions parsed and compiled, and the [BODY] paths its metrics read."""

    conditions: tuple[cond.Compiled, ...]
    metric_operands: tuple[tuple[str, cond.Operand], ...]
    names_status: bool  # a condition reads [STATUS], which then replaces expect_status


@functools.lru_cache(maxsize=4096)
def _compile(texts: tuple[str, ...], extra: tuple[str, ...]) -> CompiledConditions:
    """Conditions are parsed and compiled once per distinct list, not on every poll (the profile
    already validated them at load)."""
    parsed = cond.parse_all(list(texts))
    return CompiledConditions(
        tuple(cond.Compiled(c) for c in parsed),
        cond.metric_operands(parsed, extra),
        any("[STATUS]" in t.upper() for t in texts),
    )


compiled_conditions: PerCheck[CompiledConditions] = PerCheck(
    lambda check: _compile(
        tuple(check.conditions), tuple(check.metrics if isinstance(check, HttpCheck) else ())
    )
)


def evaluate_conditions(
    check: Check, facts: cond.Facts
) -> tuple[tuple[cond.ConditionResult, ...], dict[str, float]]:
    compiled = compiled_conditions(check)
    results = tuple(c.evaluate(facts) for c in compiled.conditions)
    return results, cond.metrics_at(compiled.metric_operands, facts)


async def resolve(ctx: ProbeContext, host: str, port: int, timeout: float) -> tuple[list[str], float]:
    t = time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            addresses = await ctx.resolver(host, port)
    except TimeoutError:
        raise ProbeFailed(ErrorClass.DNS, f"no answer for {host} within {timeout:g}s") from None
    except socket.gaierror as exc:
        raise ProbeFailed(ErrorClass.DNS, f"{host}: {exc.strerror or exc}") from None
    if not addresses:
        raise ProbeFailed(ErrorClass.DNS, f"{host} has no addresses")
    return addresses, (time.perf_counter() - t) * 1000
