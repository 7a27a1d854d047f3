"""TCP, DNS and TLS probes, and reading certificates."""

from __future__ import annotations

import _ssl
import asyncio
import contextlib
import functools
import ssl
import time
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from opsdash.core.findings import Finding, Severity
from opsdash.core.health import conditions as cond
from opsdash.core.health.conditions import duration_text
from opsdash.core.health.errors import (
    ErrorClass,
    classify_exception,
    classify_tls,
)
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes.base import Attempt, ProbeContext, ProbeFailed, evaluate_conditions, resolve
from opsdash.core.profile import Check, DnsCheck, TcpCheck, TlsCheck
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


def _days(not_after: datetime, now: datetime) -> float:
    return (not_after - now).total_seconds() / 86400


@dataclass(frozen=True)
class Certificate:
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    names: str  # DNS and IP subject alternative names


@functools.lru_cache(maxsize=1024)
def describe(der: bytes) -> Certificate:
    """A certificate's facts, parsed once per distinct certificate (every poll of a host presents
    the same ones; parsing them each time was a third of an https probe's own CPU)."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n) for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return Certificate(
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        ", ".join(names),
    )


def certificate_facts(der: bytes, now: datetime) -> dict[str, str]:
    cert = describe(der)
    return {
        "cert_subject": cert.subject,
        "cert_issuer": cert.issuer,
        "cert_not_before": cert.not_before.isoformat(),
        "cert_not_after": cert.not_after.isoformat(),
        "cert_days_left": f"{_days(cert.not_after, now):.1f}",
        "cert_names": cert.names,
    }


def peer_chain(sslobj: ssl.SSLObject, *, verified: bool) -> list[Certificate]:
    """The certificates the server presented (leaf first), or the chain OpenSSL verified (leaf to
    trust anchor). Public in Python 3.13 (DER bytes); present but private on 3.11 and 3.12."""
    name = "get_verified_chain" if verified else "get_unverified_chain"
    method = getattr(sslobj, name, None)
    try:
        if method is not None:
            ders = list(method())
        else:
            inner = getattr(getattr(sslobj, "_sslobj", None), name, None)
            ders = [c.public_bytes(_ssl.ENCODING_DER) for c in (inner() or [])] if inner else []
        return [describe(d) for d in ders]
    except (ssl.SSLError, ValueError):
        return []


def tls_facts(sslobj: ssl.SSLObject | None, now: datetime, *, verified: bool = True) -> dict[str, str]:
    """What blackbox_exporter tells of a TLS connection: the leaf, and the earliest expiry over the
    presented chain (`probe_ssl_earliest_cert_expiry`) and over the verified chain."""
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
    presented = peer_chain(sslobj, verified=False)
    if presented:
        first = min(presented, key=lambda c: c.not_after)
        facts["chain_length"] = str(len(presented))
        facts["chain_earliest_subject"] = first.subject
        facts["chain_earliest_expiry"] = first.not_after.isoformat()
        facts["chain_earliest_days_left"] = f"{_days(first.not_after, now):.1f}"
        expired = [c for c in presented if c.not_after < now]
        if expired:
            facts["chain_expired"] = "; ".join(f"{c.subject} ({c.not_after.isoformat()})" for c in expired)
    chain = peer_chain(sslobj, verified=True) if verified else []
    if chain:
        facts["verified_chain_expiry"] = min(c.not_after for c in chain).isoformat()
    return facts


def earliest_days(facts: Mapping[str, str]) -> float | None:
    """Days until the first certificate of the presented chain expires (the leaf alone if the chain
    is unknown): the day the connection breaks."""
    days = facts.get("chain_earliest_days_left") or facts.get("cert_days_left")
    return float(days) if days else None


def expiry_findings(
    check: Check, target: str, facts: Mapping[str, str], warn_days: float, crit_days: float
) -> tuple[Finding, ...]:
    """tls-expiring-soon when the earliest expiry in the chain is inside the warning window."""
    days = earliest_days(facts)
    if days is None or not (days < crit_days or days < warn_days):
        return ()
    severity = Severity.CRIT if days < crit_days else Severity.WARN
    subject = facts.get("chain_earliest_subject", facts.get("cert_subject", ""))
    when = facts.get("chain_earliest_expiry", facts.get("cert_not_after", ""))
    which = "the certificate" if subject == facts.get("cert_subject") else f"the chain certificate {subject}"
    return (
        rule("tls-expiring-soon").finding(
            check.name,
            f"{check.name}: {which} expires in {duration_text(days * 86400)} ({when}).",
            severity=severity,
            evidence={"check": check.name, "target": target, "subject": subject, "not_after": when},
        ),
    )


async def probe_tcp(check: TcpCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    target = f"{check.host}:{check.port}"
    at = Attempt(check, target, started, t0)
    t = time.perf_counter()
    try:
        async with asyncio.timeout(check.timeout):
            _reader, writer = await asyncio.open_connection(check.host, check.port)
    except TimeoutError:
        return at.failed(ErrorClass.CONNECT_TIMEOUT, f"no answer within {check.timeout:g}s")
    except OSError as exc:
        error, reason = classify_exception(exc)
        return at.failed(error, reason)
    connect_ms = (time.perf_counter() - t) * 1000
    peer = writer.get_extra_info("peername")
    writer.close()
    facts = {"ip": str(peer[0]) if peer else ""}
    results, metrics = evaluate_conditions(
        check, cond.Facts(connected=True, response_time_ms=connect_ms, ip=facts["ip"])
    )
    return at.concluded(
        results,
        f"connected in {connect_ms:.0f} ms",
        phases={"connect": connect_ms},
        facts=facts,
        metrics={**metrics, "response_time_ms": round(connect_ms, 2)},
    )


async def probe_dns(check: DnsCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    at = Attempt(check, check.hostname, started, t0)
    try:
        addresses, dns_ms = await resolve(ctx, check.hostname, 443, check.timeout)
    except ProbeFailed as exc:
        return at.failed(
            exc.error,
            exc.reason,
            facts={"rcode": "NXDOMAIN or no answer"},
        )
    facts = {"ip": addresses[0], "answers": ", ".join(addresses)}
    missing = [a for a in check.expect if a not in addresses]
    if missing:
        return at.failed(
            ErrorClass.CONDITION,
            f"expected {', '.join(missing)} among the answers ({facts['answers']})",
            facts=facts,
        )
    results, _metrics = evaluate_conditions(
        check, cond.Facts(ip=addresses[0], dns_rcode="NOERROR", response_time_ms=dns_ms)
    )
    return at.concluded(
        results, f"{len(addresses)} address(es) in {dns_ms:.0f} ms", phases={"dns": dns_ms}, facts=facts
    )


async def _handshake(
    host: str, port: int, server_name: str, context: ssl.SSLContext, timeout: float
) -> tuple[ssl.SSLObject | None, float]:
    t = time.perf_counter()
    async with asyncio.timeout(timeout):
        _reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=server_name, ssl_handshake_timeout=timeout + 1
        )
    elapsed = (time.perf_counter() - t) * 1000
    sslobj = writer.get_extra_info("ssl_object")
    writer.close()
    return sslobj, elapsed


_LEGACY = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1}
_LEGACY_CONTEXTS: weakref.WeakKeyDictionary[ssl.SSLContext, dict[str, ssl.SSLContext]] = (
    weakref.WeakKeyDictionary()
)


def _verifying(ctx: ProbeContext, min_version: str) -> ssl.SSLContext:
    """The shared verifying context, or, when the policy allows TLS 1.0 or 1.1, one that trusts the
    same CAs and offers those too (OpenSSL 3 needs @SECLEVEL=0 for their ciphers): a TLS 1.0-only
    server is then verified, not refused, as `min_version` says it may be."""
    if min_version not in _LEGACY:
        return ctx.ssl_context
    made = _LEGACY_CONTEXTS.setdefault(ctx.ssl_context, {})
    if min_version not in made:
        legacy = ssl.create_default_context()
        for der in ctx.ssl_context.get_ca_certs(binary_form=True):
            legacy.load_verify_locations(cadata=der)
        with warnings.catch_warnings():  # the policy asks for these protocols
            warnings.simplefilter("ignore", DeprecationWarning)
            legacy.minimum_version = _LEGACY[min_version]
        with contextlib.suppress(ssl.SSLError):  # depends on the OpenSSL build
            legacy.set_ciphers("DEFAULT:@SECLEVEL=0")
        made[min_version] = legacy
    return made[min_version]


_BELOW = {
    "TLSv1.1": ssl.TLSVersion.TLSv1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_1,
    "TLSv1.3": ssl.TLSVersion.TLSv1_2,
}


async def _accepts_older(check: TlsCheck, name: str) -> str | None:
    """Offer only protocols below the policy minimum: the version the server still accepts, "" when it
    refuses them all, None when this machine's OpenSSL cannot offer them (then nothing is known)."""
    below = _BELOW.get(check.min_version)
    if below is None:
        return ""
    ctx = _inspecting_context()
    with warnings.catch_warnings():  # deliberately offering what the server should refuse
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.maximum_version = below
    try:
        sslobj, _ms = await _handshake(check.host, check.port, name, ctx, check.timeout)
    except ssl.SSLError as exc:
        return None if "NO_PROTOCOLS_AVAILABLE" in str(exc).upper() else ""
    except (OSError, TimeoutError, ValueError):
        return ""
    return (sslobj.version() if sslobj else None) or ""


async def probe_tls(check: TlsCheck, ctx: ProbeContext, started: datetime, t0: float) -> CheckResult:
    target = f"{check.host}:{check.port}"
    at = Attempt(check, target, started, t0)
    name = check.server_name or check.host
    verify_error: tuple[ErrorClass, str] | None = None
    try:
        sslobj, handshake_ms = await _handshake(
            check.host, check.port, name, _verifying(ctx, check.min_version), check.timeout
        )
    except ssl.SSLError as exc:
        verify_error = classify_tls(exc)
        try:
            sslobj, handshake_ms = await _handshake(
                check.host, check.port, name, _inspecting_context(), check.timeout
            )
        except (OSError, TimeoutError):
            sslobj, handshake_ms = None, 0.0
    except TimeoutError:
        return at.failed(
            ErrorClass.TLS_HANDSHAKE,
            f"no TLS handshake within {check.timeout:g}s",
        )
    except OSError as exc:
        error, reason = classify_exception(exc)
        return at.failed(error, reason)
    now = ctx.now()
    facts = tls_facts(sslobj, now, verified=verify_error is None)
    phases = {"handshake": handshake_ms}
    if verify_error is not None:
        error, reason = verify_error
        if error is ErrorClass.TLS_EXPIRED and "chain_expired" in facts:
            reason = f"expired: {facts['chain_expired']} ({reason})"
        return at.failed(error, reason, phases=phases, facts=facts)
    findings = list(expiry_findings(check, target, facts, check.warn_days, check.crit_days))
    negotiated = facts.get("tls_version", "")
    older = await _accepts_older(check, name)
    if older is None:
        facts["old_protocols"] = f"not tested: this machine's OpenSSL cannot offer below {check.min_version}"
    elif older or (negotiated in TLS_VERSIONS and TLS_VERSIONS[negotiated] < TLS_VERSIONS[check.min_version]):
        accepted = older or negotiated
        facts["old_protocols"] = f"accepts {accepted}"
        findings.append(
            rule("tls-old-protocol").finding(
                check.name,
                f"{check.name}: {target} still accepts {accepted}; "
                f"the policy minimum is {check.min_version}.",
                evidence={"check": check.name, "target": target, "accepted": accepted},
            )
        )
    else:
        facts["old_protocols"] = f"refused below {check.min_version}"
    days = earliest_days(facts)
    expiration = days * 86400 if days is not None else None
    results, _m = evaluate_conditions(check, cond.Facts(certificate_expiration_s=expiration, connected=True))
    summary = f"{negotiated or 'TLS'} {facts.get('tls_cipher', '')}"
    if days is not None:
        summary += f", certificates valid {duration_text(days * 86400)} more"
    return at.concluded(
        results,
        summary,
        phases=phases,
        facts=facts,
        metrics={"cert_days_left": round(days, 1)} if days is not None else {},
        findings=tuple(findings),
    )
