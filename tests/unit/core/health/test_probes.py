"""Every check kind against real servers on 127.0.0.1, including hostile ones.

Each hostile case must come back with the right severity and error class; `asyncio.wait_for` with a
generous bound guards against a hang (it is a hang guard, not a timing assertion).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable
from typing import Any

import pytest

from opsdash.core.findings import Severity
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes import ProbeContext
from opsdash.core.providers import ikhokha
from opsdash.demo.httpserver import Request, Response
from tests.servers import (
    Certs,
    closed_port,
    drip_feed,
    garbage,
    http_server,
    huge_body,
    json_handler,
    never_answers,
    raw_server,
    redirect_loop,
    reset_after_request,
)
from tests.unit.core.health.conftest import CERT_THRESHOLDS, HANG_GUARD, HEALTH, env_snapshot, make_check, run


async def test_http_ok_with_conditions_phases_and_metrics(ctx: ProbeContext, certs: Certs) -> None:
    async with http_server(json_handler(HEALTH), certs.valid) as server:
        check = make_check(
            kind="http",
            url=f"{server.base_url}/health",
            metrics=["payments.pending"],
            conditions=[
                "[STATUS] == 200",
                "[BODY].payments.success_rate >= 0.95",
                "[CERTIFICATE_EXPIRATION] > 720h",
            ],
        )
        result = await run(check, ctx)
    assert result.severity is Severity.OK, result.summary
    assert {"connect", "tls", "request", "first_byte", "body"} <= set(result.phases)
    # The phases are consecutive: they add up to the reported response time.
    assert sum(result.phases.values()) == pytest.approx(result.metrics["response_time_ms"], abs=0.02)
    assert result.metrics["payments.success_rate"] == 0.99 and result.metrics["payments.pending"] == 2
    assert result.facts["tls_version"].startswith("TLSv1.")
    assert float(result.facts["cert_days_left"]) > 190
    assert all(c.ok for c in result.conditions)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ErrorClass.HTTP_AUTH),
        (403, ErrorClass.HTTP_AUTH),
        (404, ErrorClass.HTTP_NOT_FOUND),
        (429, ErrorClass.HTTP_RATE_LIMITED),
        (500, ErrorClass.HTTP_5XX),
        (503, ErrorClass.HTTP_5XX),
        (418, ErrorClass.HTTP_STATUS),
    ],
)
async def test_http_status_classes(ctx: ProbeContext, status: int, error: ErrorClass) -> None:
    async with http_server(json_handler({"error": "x"}, status)) as server:
        result = await run(make_check(kind="http", url=f"{server.base_url}/"), ctx)
    assert (result.severity, result.error_class) == (Severity.CRIT, error)
    assert result.hint and result.findings[0].rule == "check-failed"


async def test_condition_failure_says_which_and_what(ctx: ProbeContext) -> None:
    async with http_server(json_handler({**HEALTH, "status": "DEGRADED"})) as server:
        check = make_check(
            kind="http", url=f"{server.base_url}/", conditions=["[BODY].status == UP"], severity="warn"
        )
        result = await run(check, ctx)
    assert (result.severity, result.error_class) == (Severity.WARN, ErrorClass.CONDITION)
    assert "[BODY].status == UP (actual DEGRADED)" in result.summary


async def test_html_error_page_is_body_unparseable(ctx: ProbeContext) -> None:
    async def handler(_req: Request) -> Response:
        return Response(200, b"<html>maintenance</html>")

    async with http_server(handler) as server:
        check = make_check(kind="http", url=f"{server.base_url}/", conditions=["[BODY].status == UP"])
        result = await run(check, ctx)
    assert result.error_class is ErrorClass.BODY_UNPARSEABLE


async def test_redirect_not_followed_names_the_location(ctx: ProbeContext) -> None:
    async def handler(_req: Request) -> Response:
        return Response(301, b"", {"location": "https://elsewhere.example/"})

    async with http_server(handler) as server:
        result = await run(make_check(kind="http", url=f"{server.base_url}/"), ctx)
    assert result.error_class is ErrorClass.HTTP_STATUS
    assert "redirect to https://elsewhere.example/" in result.summary


@pytest.mark.parametrize(
    ("behaviour", "error", "fields"),
    [
        (never_answers, ErrorClass.READ_TIMEOUT, {"timeout": 0.5}),
        (drip_feed, ErrorClass.READ_TIMEOUT, {"timeout": 0.5}),
        (huge_body, ErrorClass.TOO_LARGE, {"max_body_bytes": 100_000}),
        (reset_after_request, ErrorClass.RESET, {}),
        (redirect_loop, ErrorClass.TOO_MANY_REDIRECTS, {"follow_redirects": True, "max_redirects": 3}),
        (garbage, ErrorClass.PROTOCOL, {}),
    ],
)
async def test_hostile_servers(
    ctx: ProbeContext, behaviour: Any, error: ErrorClass, fields: dict[str, Any]
) -> None:
    async with raw_server(behaviour) as port:
        result = await run(make_check(kind="http", url=f"http://127.0.0.1:{port}/", **fields), ctx)
    assert (result.severity, result.error_class) == (Severity.CRIT, error), result.summary


async def test_refused(ctx: ProbeContext) -> None:
    result = await run(make_check(kind="http", url=f"http://127.0.0.1:{closed_port()}/"), ctx)
    assert result.error_class is ErrorClass.REFUSED
    tcp = await run(make_check(kind="tcp", host="127.0.0.1", port=closed_port()), ctx)
    assert tcp.error_class is ErrorClass.REFUSED


async def test_dns_failure_and_hang_are_dns_class(ctx: ProbeContext) -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def hangs(host: str, port: int) -> list[str]:
        await asyncio.sleep(3600)
        return []

    for resolver in (nxdomain, hangs):
        ctx.resolver = resolver
        http = await run(make_check(kind="http", url="https://app.betaskill.test/health", timeout=0.5), ctx)
        dns = await run(make_check(kind="dns", hostname="app.betaskill.test", timeout=0.5), ctx)
        assert http.error_class is ErrorClass.DNS and dns.error_class is ErrorClass.DNS


async def test_dns_ok_and_expectations(ctx: ProbeContext) -> None:
    ok = await run(make_check(kind="dns", hostname="localhost", expect=["127.0.0.1"]), ctx)
    assert ok.severity is Severity.OK and "127.0.0.1" in ok.facts["answers"]
    wrong = await run(make_check(kind="dns", hostname="localhost", expect=["203.0.113.7"]), ctx)
    assert wrong.error_class is ErrorClass.CONDITION and "203.0.113.7" in wrong.summary


async def test_tcp_ok(ctx: ProbeContext) -> None:
    async with raw_server(never_answers) as port:
        result = await run(make_check(kind="tcp", host="127.0.0.1", port=port), ctx)
    assert result.severity is Severity.OK and result.facts["ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("cert", "error", "rule"),
    [
        ("expired", ErrorClass.TLS_EXPIRED, "tls-expired"),
        ("wrong_host", ErrorClass.TLS_HOSTNAME, "tls-hostname-mismatch"),
        ("untrusted", ErrorClass.TLS_UNTRUSTED, "tls-untrusted"),
    ],
)
async def test_bad_certificates_fail_http_and_tls_checks(
    ctx: ProbeContext, certs: Certs, cert: str, error: ErrorClass, rule: str
) -> None:
    async with http_server(json_handler(HEALTH), getattr(certs, cert)) as server:
        http = await run(make_check(kind="http", url=f"{server.base_url}/"), ctx)
        tls = await run(make_check(kind="tls", host="127.0.0.1", port=server.port), ctx)
    for result in (http, tls):
        assert (result.severity, result.error_class) == (Severity.CRIT, error), result.summary
        assert result.findings[0].rule == rule
    assert "cert_not_after" in tls.facts  # facts are read even from a certificate that fails verification


@pytest.mark.parametrize(("cert", "severity"), CERT_THRESHOLDS)
async def test_tls_days_left_thresholds(
    ctx: ProbeContext, certs: Certs, cert: str, severity: Severity
) -> None:
    async with http_server(json_handler(HEALTH), getattr(certs, cert)) as server:
        result = await run(make_check(kind="tls", host="127.0.0.1", port=server.port), ctx)
    assert result.severity is severity, result.summary
    if severity is not Severity.OK:
        assert [f.rule for f in result.findings] == ["tls-expiring-soon"]
    assert result.facts["tls_cipher"]


async def test_tls_old_protocol(ctx: ProbeContext, certs: Certs) -> None:
    async with http_server(json_handler(HEALTH), certs.tls12_only) as server:
        result = await run(
            make_check(kind="tls", host="127.0.0.1", port=server.port, min_version="TLSv1.3"), ctx
        )
    assert result.severity is Severity.WARN
    assert result.facts["tls_version"] == "TLSv1.2"
    assert [f.rule for f in result.findings] == ["tls-old-protocol"]


async def test_retry_only_transient_failures(ctx: ProbeContext) -> None:
    calls = {"n": 0}

    async def flaky(_req: Request) -> Response:
        calls["n"] += 1
        return Response(503 if calls["n"] == 1 else 200, b"{}")

    async with http_server(flaky) as server:
        result = await run(make_check(kind="http", url=f"{server.base_url}/", retries=2), ctx)
    assert result.severity is Severity.OK and result.attempts == 2
    calls["n"] = -100  # 404 is not transient: no retry
    async with http_server(json_handler({}, 404)) as server:
        result = await run(make_check(kind="http", url=f"{server.base_url}/", retries=2), ctx)
    assert result.attempts == 1


# ---------------------------------------------------------------- provider and webhook

APP_ID, SECRET, HOOK_SECRET = "IKAPPIDFAKE0001", "fake-app-secret-0f9e8d7c6b5a", "fake-hook-secret-1a2b3c4d5e"


def provider_handler(status_when_valid: int = 200) -> tuple[Any, list[Request]]:
    seen: list[Request] = []

    async def handler(req: Request) -> Response:
        seen.append(req)
        if req.method != "GET":
            return Response(405)
        if not req.path.startswith("/public-api/v1/api/"):
            return Response.json('{"message":"Not Found"}', 404)
        valid = req.headers.get("ik-appid") == APP_ID and ikhokha.verify(
            SECRET, req.path, req.body, req.headers.get("ik-sign", "")
        )
        return Response.json("{}", status_when_valid if valid else 401)

    return handler, seen


@pytest.fixture
def signed_ctx(ctx: ProbeContext) -> ProbeContext:
    ctx.env = env_snapshot(
        {"IKHOKHA_API_KEY": APP_ID, "IKHOKHA_API_SECRET": SECRET, "IKHOKHA_WEBHOOK_SECRET": HOOK_SECRET}
    )
    return ctx


async def test_provider_signs_a_read_only_request(signed_ctx: ProbeContext, certs: Certs) -> None:
    handler, seen = provider_handler()
    async with http_server(handler, certs.valid) as server:
        check = make_check(kind="provider", base_url=f"{server.base_url}/public-api/v1/api")
        result = await run(check, signed_ctx)
    assert result.severity is Severity.OK, result.summary
    assert "credentials accepted" in result.summary
    (request,) = seen
    assert request.method == "GET" and request.path == "/public-api/v1/api/payments/history"
    assert "startDate=" in request.target


@pytest.mark.parametrize(
    ("case", "severity", "error"),
    [
        ("wrong secret", Severity.CRIT, ErrorClass.HTTP_AUTH),
        ("wrong base", Severity.CRIT, ErrorClass.HTTP_NOT_FOUND),
        ("rate limited", Severity.WARN, ErrorClass.HTTP_RATE_LIMITED),
        ("down", Severity.CRIT, ErrorClass.HTTP_5XX),
    ],
)
async def test_provider_tells_failures_apart(
    signed_ctx: ProbeContext, certs: Certs, case: str, severity: Severity, error: ErrorClass
) -> None:
    handler, _ = provider_handler({"rate limited": 429, "down": 503}.get(case, 200))
    if case == "wrong secret":
        signed_ctx.env = env_snapshot({"IKHOKHA_API_KEY": APP_ID, "IKHOKHA_API_SECRET": "not-the-secret-123"})
    async with http_server(handler, certs.valid) as server:
        base = f"{server.base_url}/{'v2' if case == 'wrong base' else 'public-api/v1/api'}"
        result = await run(make_check(kind="provider", base_url=base), signed_ctx)
    assert (result.severity, result.error_class) == (severity, error), result.summary
    assert result.runbook == "payment-provider-outage"


@pytest.mark.parametrize(("status", "runbook"), [(503, "rollback"), (401, None), (429, None)])
async def test_an_apps_own_failure_is_not_sent_to_the_payment_providers_runbook(
    ctx: ProbeContext, status: int, runbook: str | None
) -> None:
    async def answer(_req: Request) -> Response:
        return Response(status, b"{}")

    async with http_server(answer) as server:
        result = await run(make_check(kind="http", url=f"{server.base_url}/health"), ctx)
    assert result.severity in (Severity.WARN, Severity.CRIT), result.summary
    assert result.runbook == runbook


async def test_provider_200_with_a_truncated_body_is_not_credentials_accepted(
    signed_ctx: ProbeContext, certs: Certs
) -> None:
    async def truncated(_req: Request) -> Response:
        return Response(200, b'{"payments": [{"id": "p1", "amou', {"content-type": "application/json"})

    async with http_server(truncated, certs.valid) as server:
        check = make_check(kind="provider", base_url=f"{server.base_url}/public-api/v1/api")
        result = await run(check, signed_ctx)
    assert result.error_class is ErrorClass.BODY_UNPARSEABLE, result.summary
    assert "credentials accepted" not in result.summary
    assert "cannot tell whether the credentials were accepted" in result.summary


async def test_provider_without_credentials_is_unknown(ctx: ProbeContext) -> None:
    result = await run(make_check(kind="provider", base_url="https://127.0.0.1:9/api"), ctx)
    assert result.severity is Severity.UNKNOWN and "no env files" in result.summary


def webhook_handler(*, accept_unsigned: bool = False, reject_all: bool = False) -> Any:
    async def handler(req: Request) -> Response:
        if reject_all:
            return Response(401)
        if accept_unsigned:
            return Response(200, b"ok")
        good = req.headers.get("ik-appid") == APP_ID and ikhokha.verify(
            HOOK_SECRET, req.path, req.body, req.headers.get("ik-sign", "")
        )
        return Response(200 if good else 401)

    return handler


@pytest.mark.parametrize(
    ("behaviour", "severity", "rule"),
    [
        ({}, Severity.OK, None),
        ({"accept_unsigned": True}, Severity.CRIT, "webhook-accepts-unsigned"),
        ({"reject_all": True}, Severity.CRIT, "webhook-rejects-signed"),
    ],
)
async def test_webhook_self_test(
    signed_ctx: ProbeContext, behaviour: dict[str, bool], severity: Severity, rule: str | None
) -> None:
    async with http_server(webhook_handler(**behaviour)) as server:
        check = make_check(
            kind="webhook", url=f"{server.base_url}/api/payments/ikhokha/webhook", signed_delivery=True
        )
        result = await run(check, signed_ctx)
    assert result.severity is severity, result.summary
    assert [f.rule for f in result.findings] == ([rule] if rule else [])


async def test_a_webhook_url_that_redirects_is_not_a_healthy_self_test(signed_ctx: ProbeContext) -> None:
    """A redirect loop answered every delivery with 302, which the self-test read as "rejects
    unsigned deliveries": healthy. A provider does not follow a redirect with a delivery."""

    async def loop(req: Request) -> Response:
        return Response(302, b"", headers={"Location": req.path})

    async with http_server(loop) as server:
        url = f"{server.base_url}/api/payments/ikhokha/webhook"
        result = await run(make_check(kind="webhook", url=url), signed_ctx)
    assert result.severity is Severity.CRIT, result.summary
    assert "HTTP 302 (a redirect to /api/payments/ikhokha/webhook)" in result.summary


async def test_checks_run_concurrently_and_never_hang(ctx: ProbeContext, certs: Certs) -> None:
    from opsdash.core.health.runner import run_once

    async with (
        raw_server(never_answers) as slow,
        raw_server(drip_feed) as drip,
        http_server(json_handler(HEALTH), certs.expired) as expired,
    ):
        checks = [
            make_check(name="slow", kind="http", url=f"http://127.0.0.1:{slow}/", timeout=0.5),
            make_check(name="drip", kind="http", url=f"http://127.0.0.1:{drip}/", timeout=0.5),
            make_check(name="expired", kind="tls", host="127.0.0.1", port=expired.port),
            make_check(name="refused", kind="tcp", host="127.0.0.1", port=closed_port()),
        ]
        results: Awaitable[list[CheckResult]] = run_once(checks, ctx, concurrency=4)
        by_name = {r.name: r for r in await asyncio.wait_for(results, HANG_GUARD)}
    assert [by_name[n].error_class for n in ("slow", "drip", "expired", "refused")] == [
        ErrorClass.READ_TIMEOUT,
        ErrorClass.READ_TIMEOUT,
        ErrorClass.TLS_EXPIRED,
        ErrorClass.REFUSED,
    ]


async def stalls_tls(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)  # the ClientHello, never answered
    await asyncio.sleep(3600)


async def test_tls_handshake_stall_is_named_as_such(ctx: ProbeContext) -> None:
    async with raw_server(stalls_tls) as port:
        http = await run(make_check(kind="http", url=f"https://127.0.0.1:{port}/", timeout=0.5), ctx)
        tls = await run(make_check(kind="tls", host="127.0.0.1", port=port, timeout=0.5), ctx)
    for result in (http, tls):
        assert (result.severity, result.error_class) == (Severity.CRIT, ErrorClass.TLS_HANDSHAKE), (
            result.summary
        )
        assert "no TLS handshake within 0.5s" in result.summary


async def test_compressed_body_is_read_and_a_bomb_is_capped(ctx: ProbeContext) -> None:
    import gzip

    payload = {"/ok": gzip.compress(json.dumps(HEALTH).encode()), "/bomb": gzip.compress(b"0" * 50_000_000)}

    async def handler(req: Request) -> Response:
        return Response(
            200, payload[req.path], {"content-encoding": "gzip", "content-type": "application/json"}
        )

    async with http_server(handler) as server:
        ok = await run(
            make_check(kind="http", url=f"{server.base_url}/ok", conditions=["[BODY].status == UP"]), ctx
        )
        bomb = await run(make_check(kind="http", url=f"{server.base_url}/bomb", max_body_bytes=100_000), ctx)
    assert ok.severity is Severity.OK, ok.summary
    assert bomb.error_class is ErrorClass.TOO_LARGE, bomb.summary


async def endless_headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\n")
    for i in range(100_000):
        writer.write(b"X-Filler-%d: %s\r\n" % (i, b"z" * 100))
        await writer.drain()


async def test_endless_response_head_is_a_protocol_error(ctx: ProbeContext) -> None:
    async with raw_server(endless_headers) as port:
        result = await run(make_check(kind="http", url=f"http://127.0.0.1:{port}/", timeout=10), ctx)
    assert result.error_class is ErrorClass.PROTOCOL, result.summary
    assert "response head larger than 64 KiB" in result.summary


async def test_header_with_a_line_break_is_refused_not_sent(ctx: ProbeContext) -> None:
    """Even a check built around the profile's validation never puts a raw line break on the wire."""
    seen: list[Request] = []

    async def handler(req: Request) -> Response:
        seen.append(req)
        return Response.json("{}")

    async with http_server(handler) as server:
        check = make_check(kind="http", url=f"{server.base_url}/")
        check = check.model_copy(update={"headers": {"X-Note": "a\r\nX-Injected: 1"}})
        result = await run(check, ctx)
    assert result.error_class is ErrorClass.CONFIG, result.summary
    assert seen == []


def test_header_with_a_line_break_is_a_config_error_at_load() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="control characters"):
        make_check(kind="http", url="http://127.0.0.1/", headers={"X-Note": "a\r\nX-Injected: 1"})


def test_probing_loads_no_pooled_http_client() -> None:
    """The probe path runs on asyncio and httptools alone: httpx/httpcore (whose per-request
    `import sniffio` retries cost a quarter of a sweep's CPU) are never loaded by a sweep."""
    import subprocess
    import sys

    script = (
        "import asyncio, sys\n"
        "from tests.unit.core.health.conftest import make_check, make_profile\n"
        "from opsdash.core.health.probes import ProbeContext, probe\n"
        "from tests.servers import closed_port\n"
        "ctx = ProbeContext(profile=make_profile())\n"
        "for url in (f'http://127.0.0.1:{closed_port()}/', f'https://127.0.0.1:{closed_port()}/'):\n"
        "    r = asyncio.run(probe(make_check(kind='http', url=url), ctx))\n"
        "    assert r.error_class.value == 'refused', r.summary\n"
        "print(sorted(m for m in ('httpx', 'httpcore', 'sniffio', 'anyio') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
