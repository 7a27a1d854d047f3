"""HTTP probes: one request with phase timings, a hard deadline and a body cap; TLS facts for https."""

from __future__ import annotations

import ssl
from datetime import datetime

from opsdash.core.health import conditions as cond
from opsdash.core.health.errors import (
    ErrorClass,
    classify_exception,
    classify_status,
)
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes.base import (
    Attempt,
    PerCheck,
    ProbeContext,
    ProbeFailed,
    Resolver,
    compiled_conditions,
    evaluate_conditions,
)
from opsdash.core.health.probes.net import earliest_days, expiry_findings, tls_facts
from opsdash.core.health.probes.wire import (
    BadRedirect,
    BadRequest,
    BadResponse,
    Exchange,
    Request,
    Timeline,
    TooLarge,
    fetch,
)
from opsdash.core.profile import HttpCheck


def exchange_failure(
    exc: BaseException, timeline: Timeline, facts: dict[str, str], timeout: float
) -> ProbeFailed:
    """Why an exchange failed, named by the phase it stopped in."""
    stage = timeline.stage
    phases = timeline.close()
    error: ErrorClass
    if isinstance(exc, TimeoutError):
        error, reason = {
            "dns": (ErrorClass.DNS, "no DNS answer"),
            "connect": (ErrorClass.CONNECT_TIMEOUT, "no answer to the connection attempt"),
            "tls": (ErrorClass.TLS_HANDSHAKE, "no TLS handshake"),
            "body": (ErrorClass.READ_TIMEOUT, "body not finished"),
        }.get(stage or "", (ErrorClass.READ_TIMEOUT, "no response"))
        reason = f"{reason} within {timeout:.3g}s"
    elif isinstance(exc, TooLarge):
        error, reason = ErrorClass.TOO_LARGE, str(exc)
    elif isinstance(exc, BadRedirect):
        error, reason = ErrorClass.TOO_MANY_REDIRECTS, str(exc)
    elif isinstance(exc, BadResponse):
        error, reason = ErrorClass.PROTOCOL, f"malformed response: {exc}"
    elif isinstance(exc, BadRequest):
        error, reason = ErrorClass.CONFIG, f"cannot send this request: {exc}"
    else:
        error, reason = classify_exception(exc)
    return ProbeFailed(error, reason, phases=phases, facts=facts)


async def exchange(request: Request, *, resolve: Resolver, ssl_context: ssl.SSLContext) -> Exchange:
    """One HTTP request on a fresh connection, timed at the socket; every failure raises
    ProbeFailed with its error class (probes, and the ops layer's outbound calls, share this)."""
    timeline = Timeline()
    facts: dict[str, str] = {}
    try:
        return await fetch(request, resolve=resolve, ssl_context=ssl_context, timeline=timeline, facts=facts)
    except TooLarge:
        too_large = TooLarge(f"body larger than {request.max_body_bytes:,} bytes")
        raise exchange_failure(too_large, timeline, facts, request.timeout) from None
    except (TimeoutError, OSError, ssl.SSLError, BadRequest, BadResponse, BadRedirect) as exc:
        raise exchange_failure(exc, timeline, facts, request.timeout) from None


async def http_exchange(ctx: ProbeContext, request: Request) -> Exchange:
    """`exchange` for a probe: its context's resolver and trust, and the TLS facts of the answer."""
    answer = await exchange(request, resolve=ctx.resolver, ssl_context=ctx.ssl_context)
    answer.facts.update(tls_facts(answer.ssl_object, ctx.now()))
    return answer


@PerCheck
def _request(check: HttpCheck) -> Request:
    """The request an http check describes, made once per check (its bytes with it)."""
    return Request(
        check.method,
        check.url,
        check.timeout,
        check.headers,
        check.body.encode(),
        check.max_body_bytes,
        check.follow_redirects,
        check.max_redirects,
    )


async def probe_http(check: HttpCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    at = Attempt(check, check.url, started, t0)
    try:
        ex = await http_exchange(ctx, _request(check))
    except ProbeFailed as exc:
        return at.probe_failed(exc)
    if not compiled_conditions(check).names_status and ex.status not in check.expect_status:
        error = classify_status(ex.status) or ErrorClass.HTTP_STATUS
        reason = f"HTTP {ex.status}, expected {' or '.join(map(str, check.expect_status))}"
        if 300 <= ex.status < 400 and ex.location:
            reason += f" (redirect to {ex.location}; follow_redirects is off)"
        return at.failed(error, reason, phases=ex.phases, facts=ex.facts)
    days = earliest_days(ex.facts)
    facts = cond.Facts(
        status=ex.status,
        response_time_ms=ex.response_time_ms,
        body=ex.body,
        certificate_expiration_s=days * 86400 if days is not None else None,
        ip=ex.facts.get("ip"),
    )
    expiring = expiry_findings(check, check.url, ex.facts, check.warn_days, check.crit_days)
    try:
        results, metrics = evaluate_conditions(check, facts)
    except cond.BodyUnparseable as exc:
        # Status before body: a 5xx page in HTML is the server failing, not a parsing problem.
        by_status = classify_status(ex.status)
        return at.failed(
            by_status or ErrorClass.BODY_UNPARSEABLE,
            f"HTTP {ex.status}; {exc}" if by_status else str(exc),
            phases=ex.phases,
            facts=ex.facts,
            extra=expiring,
        )
    metrics["response_time_ms"] = round(ex.response_time_ms, 2)
    if days is not None:
        metrics["cert_days_left"] = round(days, 1)
    summary = f"HTTP {ex.status} in {ex.response_time_ms:.0f} ms"
    if expiring:
        summary += f"; {expiring[0].detail.removeprefix(check.name + ': ')}"
    return at.concluded(
        results,
        summary,
        status=ex.status,
        phases=ex.phases,
        facts=ex.facts,
        metrics=metrics,
        findings=expiring,
    )
