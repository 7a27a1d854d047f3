"""TCP, DNS and TLS probes, and reading certificates."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from datetime import datetime

from cryptography import x509

from opsdash.core.findings import Finding, Severity
from opsdash.core.health import conditions as cond
from opsdash.core.health.errors import (
    ErrorClass,
    classify_exception,
    classify_tls,
)
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes.base import (
    ProbeContext,
    ProbeFailed,
    condition_failure,
    evaluate_conditions,
    failed,
    passed,
    resolve,
)
from opsdash.core.profile import DnsCheck, TcpCheck, TlsCheck
from opsdash.core.rules import rule

TLS_VERSIONS = {"TLSv1": 1, "TLSv1.1": 2, "TLSv1.2": 3, "TLSv1.3": 4}


def _inspecting_context() -> ssl.SSLContext:
    """Accepts any certificate and old protocols: only used to read what a failing server presents."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):  # depends on the OpenSSL build
        ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def certificate_facts(der: bytes, now: datetime) -> dict[str, str]:
    cert = x509.load_der_x509_certificate(der)
    not_after = cert.not_valid_after_utc
    facts = {
        "cert_subject": cert.subject.rfc4514_string(),
        "cert_issuer": cert.issuer.rfc4514_string(),
        "cert_not_before": cert.not_valid_before_utc.isoformat(),
        "cert_not_after": not_after.isoformat(),
        "cert_days_left": f"{(not_after - now).total_seconds() / 86400:.1f}",
    }
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        facts["cert_names"] = ", ".join(names)
    except x509.ExtensionNotFound:
        facts["cert_names"] = ""
    return facts


def tls_facts(sslobj: ssl.SSLObject | None, now: datetime) -> dict[str, str]:
    if sslobj is None:
        return {}
    facts: dict[str, str] = {}
    version = sslobj.version()
    if version:
        facts["tls_version"] = version
    cipher = sslobj.cipher()
    if cipher:
        facts["tls_cipher"] = cipher[0]
    der = sslobj.getpeercert(binary_form=True)
    if der:
        facts.update(certificate_facts(der, now))
    chain = getattr(sslobj, "get_verified_chain", None)  # Python 3.13+
    if chain is not None:
        try:
            ends = [c.not_valid_after_utc for c in (x509.load_der_x509_certificate(d) for d in chain())]
            facts["chain_earliest_expiry"] = min(ends).isoformat()
        except (ssl.SSLError, ValueError):  # pragma: no cover
            pass
    return facts


async def probe_tcp(check: TcpCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    target = f"{check.host}:{check.port}"
    t = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout):
            _reader, writer = await asyncio.open_connection(check.host, check.port)
    except TimeoutError:
        return failed(
            check, target, started, t0, ErrorClass.CONNECT_TIMEOUT, f"no answer within {check.timeout:g}s"
        )
    except OSError as exc:
        error, reason = classify_exception(exc)
        return failed(check, target, started, t0, error, reason)
    connect_ms = (time.perf_counter() - t) * 1000
    peer = writer.get_extra_info("peername")
    writer.close()
    facts = {"ip": str(peer[0]) if peer else ""}
    results, metrics = evaluate_conditions(
        check, cond.Facts(connected=True, response_time_ms=connect_ms, ip=facts["ip"])
    )
    failure = condition_failure(
        check, target, started, t0, results, phases={"connect": connect_ms}, facts=facts
    )
    if failure is not None:
        return failure
    return passed(
        check,
        target,
        started,
        t0,
        f"connected in {connect_ms:.0f} ms",
        phases={"connect": connect_ms},
        facts=facts,
        conditions=results,
        metrics={**metrics, "response_time_ms": round(connect_ms, 2)},
    )


async def probe_dns(check: DnsCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    try:
        addresses, dns_ms = await resolve(ctx, check.hostname, 443, check.timeout)
    except ProbeFailed as exc:
        return failed(
            check,
            check.hostname,
            started,
            t0,
            exc.error,
            exc.reason,
            facts={"rcode": "NXDOMAIN or no answer"},
        )
    facts = {"ip": addresses[0], "answers": ", ".join(addresses)}
    missing = [a for a in check.expect if a not in addresses]
    if missing:
        return failed(
            check,
            check.hostname,
            started,
            t0,
            ErrorClass.CONDITION,
            f"expected {', '.join(missing)} among the answers ({facts['answers']})",
            facts=facts,
        )
    results, _metrics = evaluate_conditions(
        check, cond.Facts(ip=addresses[0], dns_rcode="NOERROR", response_time_ms=dns_ms)
    )
    failure = condition_failure(check, check.hostname, started, t0, results, facts=facts)
    if failure is not None:
        return failure
    return passed(
        check,
        check.hostname,
        started,
        t0,
        f"{len(addresses)} address(es) in {dns_ms:.0f} ms",
        phases={"dns": dns_ms},
        facts=facts,
        conditions=results,
    )


async def _handshake(
    host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float
) -> tuple[ssl.SSLObject | None, float]:
    t = time.perf_counter()
    async with asyncio.timeout(timeout):
        _reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=server_name, ssl_handshake_timeout=timeout
        )
    elapsed = (time.perf_counter() - t) * 1000
    sslobj = writer.get_extra_info("ssl_object")
    writer.close()
    return sslobj, elapsed


async def probe_tls(check: TlsCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    target = f"{check.host}:{check.port}"
    name = check.server_name or check.host
    verify_error: tuple[ErrorClass, str] | None = None
    try:
        sslobj, handshake_ms = await _handshake(check.host, check.port, name, ctx.ssl_context, check.timeout)
    except ssl.SSLError as exc:
        verify_error = classify_tls(exc)
        try:
            sslobj, handshake_ms = await _handshake(
                check.host, check.port, name, _inspecting_context(), check.timeout
            )
        except (OSError, TimeoutError):
            sslobj, handshake_ms = None, 0.0
    except TimeoutError:
        return failed(
            check,
            target,
            started,
            t0,
            ErrorClass.CONNECT_TIMEOUT,
            f"no TLS handshake within {check.timeout:g}s",
        )
    except OSError as exc:
        error, reason = classify_exception(exc)
        return failed(check, target, started, t0, error, reason)
    now = ctx.now()
    facts = tls_facts(sslobj, now)
    phases = {"handshake": handshake_ms}
    if verify_error is not None:
        error, reason = verify_error
        if error is ErrorClass.TLS_EXPIRED and "cert_not_after" in facts:
            reason = f"expired {facts['cert_not_after']} ({reason})"
        return failed(check, target, started, t0, error, reason, phases=phases, facts=facts)
    days = float(facts.get("cert_days_left", "nan"))
    findings: list[Finding] = []
    severity = Severity.OK
    if days < check.crit_days or days < check.warn_days:
        severity = Severity.CRIT if days < check.crit_days else Severity.WARN
        findings.append(
            rule("tls-expiring-soon").finding(
                check.name,
                f"{check.name}: the certificate for {name} expires in {days:.0f} days "
                f"({facts['cert_not_after']}).",
                severity=severity,
                evidence={"check": check.name, "target": target, "not_after": facts["cert_not_after"]},
            )
        )
    negotiated = facts.get("tls_version", "")
    if negotiated in TLS_VERSIONS and TLS_VERSIONS[negotiated] < TLS_VERSIONS[check.min_version]:
        severity = max(severity, Severity.WARN, key=lambda s: s.rank)
        findings.append(
            rule("tls-old-protocol").finding(
                check.name,
                f"{check.name}: {target} negotiated {negotiated}; the policy minimum is {check.min_version}.",
                evidence={"check": check.name, "target": target, "negotiated": negotiated},
            )
        )
    results, _m = evaluate_conditions(
        check, cond.Facts(certificate_expiration_s=days * 86400, connected=True)
    )
    failure = condition_failure(
        check, target, started, t0, results, phases=phases, facts=facts, extra=tuple(findings)
    )
    if failure is not None:
        return failure
    summary = f"{negotiated or 'TLS'} {facts.get('tls_cipher', '')}, certificate valid {days:.0f} more days"
    return passed(
        check,
        target,
        started,
        t0,
        summary,
        phases=phases,
        facts=facts,
        conditions=results,
        severity=severity,
        findings=tuple(findings),
        metrics={"cert_days_left": round(days, 1)},
    )
