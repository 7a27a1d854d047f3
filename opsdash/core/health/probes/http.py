"""HTTP probes: one request with phase timings, a hard deadline and a body cap."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from opsdash.core.health import conditions as cond
from opsdash.core.health.errors import (
    ErrorClass,
    classify_exception,
    classify_status,
)
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes.base import (
    ProbeContext,
    ProbeFailed,
    condition_failure,
    evaluate_conditions,
    failed,
    is_ip,
    passed,
    resolve,
)
from opsdash.core.health.probes.net import tls_facts
from opsdash.core.profile import HttpCheck


@dataclass
class Exchange:
    status: int
    body: bytes
    response_time_ms: float
    phases: dict[str, float]
    facts: dict[str, str]
    location: str | None


class _TooLarge(Exception):
    pass


def _phases_from_trace(events: Mapping[str, float]) -> dict[str, float]:
    def span(start: str, end: str) -> float | None:
        if start in events and end in events:
            return (events[end] - events[start]) * 1000
        return None

    out: dict[str, float] = {}
    for name, start, end in (
        ("connect", "connection.connect_tcp.started", "connection.connect_tcp.complete"),
        ("tls", "connection.start_tls.started", "connection.start_tls.complete"),
        ("request", "http11.send_request_headers.started", "http11.send_request_body.complete"),
        ("first_byte", "http11.send_request_body.complete", "http11.receive_response_headers.complete"),
    ):
        value = span(start, end)
        if value is not None:
            out[name] = value
    return out


async def http_exchange(
    ctx: ProbeContext,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | str = b"",
    timeout: float,
    max_body_bytes: int = 1_000_000,
    follow_redirects: bool = False,
    max_redirects: int = 5,
) -> Exchange:
    """One HTTP request with timings, a hard deadline and a body cap; failures raise ProbeFailed."""
    # Imported here, not at module level: httpx imports rich for its own CLI when rich is installed,
    # and importing the core must not pull in UI libraries (nor their start-up cost).
    import httpx

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    phases: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    if not is_ip(host):
        _addresses, phases["dns"] = await resolve(ctx, host, port, timeout)
    events: dict[str, float] = {}

    async def trace(name: str, _info: Mapping[str, Any]) -> None:
        events[name] = time.perf_counter()

    facts: dict[str, str] = {}
    remaining = max(deadline - time.perf_counter(), 0.001)
    start = time.perf_counter()
    try:
        async with asyncio.timeout(remaining):
            async with (
                httpx.AsyncClient(
                    verify=ctx.ssl_context,
                    timeout=remaining,
                    follow_redirects=follow_redirects,
                    max_redirects=max_redirects,
                    trust_env=False,
                ) as client,
                client.stream(
                    method,
                    url,
                    headers=dict(headers or {}),
                    content=body or None,
                    extensions={"trace": trace},
                ) as response,
            ):
                stream = response.extensions.get("network_stream")
                if stream is not None:
                    peer = stream.get_extra_info("server_addr")
                    if peer:
                        facts["ip"] = str(peer[0])
                    facts.update(tls_facts(stream.get_extra_info("ssl_object"), ctx.now()))
                facts["status"] = str(response.status_code)
                facts["http_version"] = response.http_version
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data.extend(chunk)
                    if len(data) > max_body_bytes:
                        raise _TooLarge
                status, location = response.status_code, response.headers.get("location")
    except _TooLarge:
        raise ProbeFailed(
            ErrorClass.TOO_LARGE,
            f"body larger than {max_body_bytes:,} bytes",
            phases={**phases, **_phases_from_trace(events)},
            facts=facts,
        ) from None
    except TimeoutError:
        what = (
            "no response" if "http11.receive_response_headers.complete" not in events else "body not finished"
        )
        error = (
            ErrorClass.CONNECT_TIMEOUT
            if "connection.connect_tcp.complete" not in events and "connection.connect_tcp.started" in events
            else ErrorClass.READ_TIMEOUT
        )
        raise ProbeFailed(
            error, f"{what} within {timeout:g}s", phases={**phases, **_phases_from_trace(events)}, facts=facts
        ) from None
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        error, reason = classify_exception(exc)
        raise ProbeFailed(
            error, reason, phases={**phases, **_phases_from_trace(events)}, facts=facts
        ) from None
    elapsed = (time.perf_counter() - start) * 1000
    phases.update(_phases_from_trace(events))
    phases["total"] = elapsed + phases.get("dns", 0.0)
    return Exchange(status, bytes(data), elapsed, phases, facts, location)


async def probe_http(check: HttpCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    try:
        ex = await http_exchange(
            ctx,
            check.method,
            check.url,
            headers=check.headers,
            body=check.body,
            timeout=check.timeout,
            max_body_bytes=check.max_body_bytes,
            follow_redirects=check.follow_redirects,
            max_redirects=check.max_redirects,
        )
    except ProbeFailed as exc:
        return failed(
            check, check.url, started, t0, exc.error, exc.reason, phases=exc.phases, facts=exc.facts
        )
    names_status = any("[STATUS]" in c.upper() for c in check.conditions)
    if not names_status and ex.status not in check.expect_status:
        error = classify_status(ex.status) or ErrorClass.HTTP_STATUS
        reason = f"HTTP {ex.status}, expected {' or '.join(map(str, check.expect_status))}"
        if 300 <= ex.status < 400 and ex.location:
            reason += f" (redirect to {ex.location}; follow_redirects is off)"
        return failed(check, check.url, started, t0, error, reason, phases=ex.phases, facts=ex.facts)
    days = ex.facts.get("cert_days_left")
    facts = cond.Facts(
        status=ex.status,
        response_time_ms=ex.response_time_ms,
        body=ex.body,
        certificate_expiration_s=float(days) * 86400 if days else None,
        ip=ex.facts.get("ip"),
    )
    try:
        results, metrics = evaluate_conditions(check, facts)
    except cond.BodyUnparseable as exc:
        return failed(
            check,
            check.url,
            started,
            t0,
            ErrorClass.BODY_UNPARSEABLE,
            str(exc),
            phases=ex.phases,
            facts=ex.facts,
        )
    metrics["response_time_ms"] = round(ex.response_time_ms, 2)
    failure = condition_failure(
        check,
        check.url,
        started,
        t0,
        results,
        status=ex.status,
        phases=ex.phases,
        facts=ex.facts,
        metrics=metrics,
    )
    if failure is not None:
        return failure
    return passed(
        check,
        check.url,
        started,
        t0,
        f"HTTP {ex.status} in {ex.response_time_ms:.0f} ms",
        phases=ex.phases,
        facts=ex.facts,
        conditions=results,
        metrics=metrics,
    )
