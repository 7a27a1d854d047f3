"""Provider probes: a signed read-only iKhokha request, and the webhook endpoint self-test."""

from __future__ import annotations

import json
import secrets
from datetime import datetime

from opsdash.core.findings import Severity
from opsdash.core.health import conditions as cond
from opsdash.core.health.errors import (
    ErrorClass,
    classify_status,
)
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes.base import Attempt, ProbeContext, ProbeFailed, evaluate_conditions
from opsdash.core.health.probes.http import http_exchange
from opsdash.core.health.probes.wire import Request
from opsdash.core.profile import ProviderCheck, WebhookCheck
from opsdash.core.providers import ikhokha

SELFTEST_HEADER = "X-Opsdash-Test"


def _credentials(ctx: ProbeContext, secret_var: str | None) -> tuple[str | None, str | None, str]:
    provider = ctx.profile.provider
    if provider is None:
        return None, None, "the profile has no [provider] section"
    app_id = ctx.env_value(provider.app_id_variable)
    secret = ctx.env_value(secret_var)
    if ctx.env is None:
        return app_id, secret, "no env files were read (pass --env-file or --from-env)"
    missing = [v for v, val in ((provider.app_id_variable, app_id), (secret_var, secret)) if v and not val]
    return app_id, secret, f"{', '.join(missing)} not set in {', '.join(ctx.env.sources)}" if missing else ""


async def probe_provider(
    check: ProviderCheck, ctx: ProbeContext, started: datetime, t0: float
) -> CheckResult:
    provider = ctx.profile.provider
    base = (check.base_url or (provider.api_base if provider else "")).rstrip("/")
    at = Attempt(check, base, started, t0)
    if check.endpoint == "history":
        day = ctx.now().strftime("%Y-%m-%d")
        url = f"{base}/payments/history?startDate={day}&endDate={day}"
    else:
        url = f"{base}/getStatus/opsdash-probe-{secrets.token_hex(6)}"
    app_id, secret, problem = _credentials(ctx, provider.secret_variable if provider else None)
    if not app_id or not secret:
        return at.failed(ErrorClass.CONFIG, f"cannot sign a request: {problem}")
    try:
        ex = await http_exchange(
            ctx, Request("GET", url, check.timeout, ikhokha.headers(app_id, secret, url))
        )
    except ProbeFailed as exc:
        return at.probe_failed(exc, "provider unreachable: ")
    ok = 200 <= ex.status < 300 or (
        check.endpoint == "status" and ex.status == 404 and ex.body.startswith(b"{")
    )
    if not ok:
        error = classify_status(ex.status) or ErrorClass.HTTP_STATUS
        meaning = {
            ErrorClass.HTTP_AUTH: "credentials rejected",
            ErrorClass.HTTP_NOT_FOUND: "endpoint not found: is the API base right?",
            ErrorClass.HTTP_RATE_LIMITED: "rate limited",
            ErrorClass.HTTP_5XX: "provider is failing",
        }.get(error, "unexpected answer")
        severity = Severity.WARN if error is ErrorClass.HTTP_RATE_LIMITED else None
        return at.failed(
            error,
            f"HTTP {ex.status}: {meaning}",
            severity=severity,
            phases=ex.phases,
            facts=ex.facts,
        )
    facts = cond.Facts(status=ex.status, response_time_ms=ex.response_time_ms, body=ex.body)
    try:
        facts.json_body()  # an API answer cut short is not "credentials accepted"
    except cond.BodyUnparseable as exc:
        return at.failed(
            ErrorClass.BODY_UNPARSEABLE,
            f"HTTP {ex.status}, but {exc}: cannot tell whether the credentials were accepted",
            phases=ex.phases,
            facts=ex.facts,
        )
    results, metrics = evaluate_conditions(check, facts)
    return at.concluded(
        results,
        f"reachable, credentials accepted (HTTP {ex.status} in {ex.response_time_ms:.0f} ms)",
        phases=ex.phases,
        facts=ex.facts,
        metrics={**metrics, "response_time_ms": round(ex.response_time_ms, 2)},
    )


def selftest_body() -> str:
    """A synthetic callback, clearly marked so the app (and its operators) can tell it is a test."""
    return json.dumps(
        {
            "paylinkID": f"opsdash-selftest-{secrets.token_hex(6)}",
            "status": "TEST",
            "externalTransactionID": "opsdash-selftest",
            "responseCode": "TEST",
            "opsdashTestEvent": True,
        },
        separators=(",", ":"),
    )


async def probe_webhook(check: WebhookCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    at = Attempt(check, check.url, started, t0)
    provider = ctx.profile.provider
    secret_var = (provider.webhook_secret_variable or provider.secret_variable) if provider else None
    app_id, secret, problem = _credentials(ctx, secret_var)
    base_headers = {"Content-Type": "application/json", SELFTEST_HEADER: "true"}
    deliveries: list[tuple[str, dict[str, str], str, bool]] = []
    body = selftest_body()
    deliveries.append(
        ("unsigned", {**base_headers, **({ikhokha.APP_ID_HEADER: app_id} if app_id else {})}, body, False)
    )
    deliveries.append(
        (
            "wrongly signed",
            {
                **base_headers,
                ikhokha.APP_ID_HEADER: app_id or "opsdash-selftest",
                ikhokha.SIGN_HEADER: secrets.token_hex(32),
            },
            body,
            False,
        )
    )
    if check.signed_delivery:
        if not app_id or not secret:
            return at.failed(ErrorClass.CONFIG, f"cannot sign the test delivery: {problem}")
        signed_body = selftest_body()
        deliveries.append(
            (
                "signed",
                {**base_headers, **ikhokha.headers(app_id, secret, check.url, signed_body)},
                signed_body,
                True,
            )
        )
    facts: dict[str, str] = {}
    phases: dict[str, float] = {}
    for label, headers, payload, should_accept in deliveries:
        try:
            request = Request(
                "POST", check.url, check.timeout, headers, payload.encode(), max_body_bytes=100_000
            )
            ex = await http_exchange(ctx, request)
        except ProbeFailed as exc:
            return at.probe_failed(exc, f"{label} delivery: ")
        facts[f"{label} delivery"] = f"HTTP {ex.status}"
        phases[label.replace(" ", "_")] = ex.response_time_ms
        accepted = 200 <= ex.status < 300
        if 300 <= ex.status < 400:  # not a rejection: the handler was never reached
            where = f" to {ex.location}" if ex.location else ""
            return at.failed(
                ErrorClass.HTTP_STATUS,
                f"{label} delivery answered HTTP {ex.status} (a redirect{where}): a provider does not "
                "follow redirects with a delivery, so the handler is not at this URL; point the check "
                "and the provider at the final one",
                phases=phases,
                facts=facts,
            )
        if ex.status >= 500:
            return at.failed(
                ErrorClass.HTTP_5XX,
                f"{label} delivery answered HTTP {ex.status}",
                phases=phases,
                facts=facts,
            )
        if accepted != should_accept:
            verdict = (
                ("webhook-rejects-signed", f"rejects correctly signed deliveries (HTTP {ex.status})")
                if should_accept
                else ("webhook-accepts-unsigned", f"accepts {label} deliveries (HTTP {ex.status})")
            )
            return at.failed(
                ErrorClass.CONDITION,
                verdict[1],
                rule_id=verdict[0],
                severity=Severity.CRIT,
                phases=phases,
                facts=facts,
            )
    kinds = " and ".join(label for label, *_ in deliveries if label != "signed")
    summary = f"rejects {kinds} deliveries" + (
        ", accepts a signed test delivery" if check.signed_delivery else ""
    )
    return at.passed(summary, phases=phases, facts=facts)
