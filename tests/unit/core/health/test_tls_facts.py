"""TLS facts as blackbox_exporter and check_ssl_cert see them: the whole presented chain, not only the
leaf; thresholds on the earliest expiry, for tls checks and for http checks of https URLs; servers that
still accept protocols below the policy minimum. Held against openssl on the same server."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import ssl
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.findings import Severity
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.probes import ProbeContext, make_ssl_context
from opsdash.demo.httpserver import Request, Response
from tests.servers import NOW, Certs, Chain, http_server, json_handler
from tests.unit.core.health.conftest import CERT_THRESHOLDS, HEALTH, make_check, make_profile, run


def chain_ctx(chain: Chain, tmp_path: Path) -> ProbeContext:
    return ProbeContext(profile=make_profile(), ssl_context=make_ssl_context(chain.ca_file(str(tmp_path))))


async def openssl_earliest_expiry(port: int) -> datetime:
    """The earliest notAfter over the certificates the server presents, as openssl reads them."""
    proc = await asyncio.create_subprocess_exec(
        "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-showcerts",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await proc.communicate()
    pems = re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
    assert len(pems) == 2, out[-500:]
    ends = []
    for pem in pems:
        x = await asyncio.create_subprocess_exec(
            "openssl", "x509", "-noout", "-enddate",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        text, _ = await x.communicate(pem)
        stamp = text.decode().strip().removeprefix("notAfter=")
        ends.append(datetime.strptime(stamp, "%b %d %H:%M:%S %Y %Z").replace(tzinfo=UTC))
    return min(ends)


@pytest.mark.parametrize("kind", ["tls", "http"])
async def test_intermediate_expiring_soon_is_crit_and_named(kind: str, tmp_path: Path) -> None:
    chain = Chain(leaf_days=90, intermediate_days=5)
    async with http_server(json_handler(HEALTH), chain.server(str(tmp_path))) as server:
        fields: dict[str, Any] = (
            {"host": "127.0.0.1", "port": server.port} if kind == "tls" else {"url": f"{server.base_url}/"}
        )
        result = await run(make_check(kind=kind, **fields), chain_ctx(chain, tmp_path))
        reference = await openssl_earliest_expiry(server.port) if shutil.which("openssl") else None
    assert result.severity is Severity.CRIT, result.summary
    finding = result.findings[0]
    assert finding.rule == "tls-expiring-soon"
    assert "opsdash test intermediate" in finding.detail and "expires in 5d" in finding.detail
    assert float(result.facts["cert_days_left"]) > 89  # the leaf alone would have said OK
    assert result.metrics["cert_days_left"] == pytest.approx(5, abs=0.1)
    earliest = datetime.fromisoformat(result.facts["chain_earliest_expiry"])
    assert earliest == chain.intermediate.not_valid_after_utc
    if reference is not None:  # openssl reads the same presented chain to the same second
        assert earliest == reference


async def test_expired_intermediate_names_it_not_the_leaf(tmp_path: Path) -> None:
    chain = Chain(leaf_days=90, intermediate_days=-2)
    async with http_server(json_handler(HEALTH), chain.server(str(tmp_path))) as server:
        ctx = chain_ctx(chain, tmp_path)
        tls = await run(make_check(kind="tls", host="127.0.0.1", port=server.port), ctx)
        http = await run(make_check(kind="http", url=f"{server.base_url}/"), ctx)
    assert (tls.severity, tls.error_class) == (Severity.CRIT, ErrorClass.TLS_EXPIRED)
    assert "opsdash test intermediate" in tls.summary
    assert chain.intermediate.not_valid_after_utc.isoformat() in tls.summary
    assert chain.leaf.not_valid_after_utc.isoformat() not in tls.summary
    assert (http.severity, http.error_class) == (Severity.CRIT, ErrorClass.TLS_EXPIRED)


@pytest.mark.parametrize(("cert", "severity"), CERT_THRESHOLDS)
async def test_http_checks_of_https_urls_apply_the_certificate_thresholds(
    ctx: ProbeContext, certs: Certs, cert: str, severity: Severity
) -> None:
    async with http_server(json_handler(HEALTH), getattr(certs, cert)) as server:
        result = await run(make_check(kind="http", url=f"{server.base_url}/"), ctx)
        off = await run(make_check(kind="http", url=f"{server.base_url}/", warn_days=0, crit_days=0), ctx)
    assert result.severity is severity, result.summary
    assert [f.rule for f in result.findings] == ([] if severity is Severity.OK else ["tls-expiring-soon"])
    assert off.severity is Severity.OK  # thresholds of 0 turn the certificate verdict off


async def test_certificate_expiration_condition_reads_the_earliest_in_the_chain(tmp_path: Path) -> None:
    chain = Chain(leaf_days=400, intermediate_days=20)
    async with http_server(json_handler(HEALTH), chain.server(str(tmp_path))) as server:
        check = make_check(
            kind="http", url=f"{server.base_url}/", warn_days=0, crit_days=0,
            conditions=["[CERTIFICATE_EXPIRATION] > 720h"],
        )  # fmt: skip
        result = await run(check, chain_ctx(chain, tmp_path))
    assert result.error_class is ErrorClass.CONDITION, result.summary
    assert not result.conditions[0].ok


def _old_protocol_server(certs: Certs) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certs.ca.issue_cert("127.0.0.1").configure_cert(ctx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


async def test_server_still_offering_tls10_next_to_13_is_old_protocol(
    ctx: ProbeContext, certs: Certs
) -> None:
    async with http_server(json_handler(HEALTH), _old_protocol_server(certs)) as server:
        result = await run(make_check(kind="tls", host="127.0.0.1", port=server.port), ctx)
    if result.facts.get("old_protocols", "").startswith("not tested"):
        pytest.skip("this machine's OpenSSL refuses to offer TLS 1.0/1.1 even at @SECLEVEL=0")
    assert result.facts["tls_version"] == "TLSv1.3"  # what a modern client negotiates ...
    assert result.severity is Severity.WARN, result.summary  # ... hides that old clients still get in
    assert [f.rule for f in result.findings] == ["tls-old-protocol"]
    assert "TLSv1" in result.findings[0].detail and "TLSv1.2" in result.findings[0].detail


async def test_modern_server_refuses_old_protocols(ctx: ProbeContext, certs: Certs) -> None:
    async with http_server(json_handler(HEALTH), certs.valid) as server:
        result = await run(make_check(kind="tls", host="127.0.0.1", port=server.port), ctx)
    if result.facts["old_protocols"].startswith("not tested"):
        pytest.skip("this machine's OpenSSL refuses to offer TLS 1.0/1.1 even at @SECLEVEL=0")
    assert result.severity is Severity.OK, result.summary
    assert result.facts["old_protocols"] == "refused below TLSv1.2"


async def test_min_version_tlsv1_asks_for_nothing_older(ctx: ProbeContext, certs: Certs) -> None:
    async with http_server(json_handler(HEALTH), _old_protocol_server(certs)) as server:
        result = await run(
            make_check(kind="tls", host="127.0.0.1", port=server.port, min_version="TLSv1"), ctx
        )
    assert result.severity is Severity.OK, result.summary


async def test_html_500_is_the_server_failing_not_an_unparseable_body(ctx: ProbeContext) -> None:
    async def handler(_req: Request) -> Response:
        return Response(500, b"<html><h1>Internal Server Error</h1></html>")

    async with http_server(handler) as server:
        check = make_check(
            kind="http", url=f"{server.base_url}/", conditions=["[BODY].status == UP", "[STATUS] == 200"]
        )
        result = await run(check, ctx)
    assert result.error_class is ErrorClass.HTTP_5XX, result.summary
    assert "HTTP 500" in result.summary


def _tls10_only_server(certs: Certs) -> ssl.SSLContext:
    ctx = _old_protocol_server(certs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.maximum_version = ssl.TLSVersion.TLSv1
    return ctx


async def test_min_version_tlsv1_lets_a_tls10_only_server_through_verified(
    ctx: ProbeContext, certs: Certs
) -> None:
    async with http_server(json_handler(HEALTH), _tls10_only_server(certs)) as server:
        allowed = await run(
            make_check(kind="tls", host="127.0.0.1", port=server.port, min_version="TLSv1"), ctx
        )
        default = await run(make_check(kind="tls", host="127.0.0.1", port=server.port), ctx)
    if allowed.error_class is ErrorClass.TLS_HANDSHAKE and "version" in allowed.summary.lower():
        pytest.skip("this machine's OpenSSL refuses TLS 1.0 even at @SECLEVEL=0")
    assert allowed.severity is Severity.OK, allowed.summary  # the policy allows TLS 1.0 ...
    assert allowed.facts["tls_version"] == "TLSv1" and allowed.facts.get("cert_days_left")
    assert default.severity is Severity.CRIT, default.summary  # ... the default policy (TLSv1.2) does not


async def test_a_certificate_not_yet_valid_has_its_own_rule(certs: Certs, tmp_path: Path) -> None:
    future = certs.ca.issue_cert(
        "127.0.0.1", not_before=NOW + dt.timedelta(days=2), not_after=NOW + dt.timedelta(days=200)
    )
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    future.configure_cert(server_ctx)
    ctx = ProbeContext(profile=make_profile(), ssl_context=make_ssl_context(certs.ca_file(str(tmp_path))))
    async with http_server(json_handler(HEALTH), server_ctx) as server:
        result = await run(make_check(kind="tls", host="127.0.0.1", port=server.port), ctx)
    assert result.error_class is ErrorClass.TLS_NOT_YET_VALID, result.summary
    assert [f.rule for f in result.findings] == ["tls-not-yet-valid"], result.findings
