"""Every way a check can fail, with a one-line recovery hint and the runbook that handles it."""

from __future__ import annotations

import enum
import errno
import socket
import ssl
from dataclasses import dataclass

from opsdash.core.rules import RB_PROVIDER, RB_ROLLBACK, RB_TLS, RB_WEBHOOK

# OpenSSL X509 verify codes (x509_vfy.h)
X509_NOT_YET_VALID = 9
X509_EXPIRED = 10
X509_HOSTNAME_MISMATCH = 62
X509_IP_ADDRESS_MISMATCH = 64


class ErrorClass(enum.StrEnum):
    DNS = "dns"
    REFUSED = "refused"
    RESET = "reset"
    CONNECT_TIMEOUT = "connect-timeout"
    READ_TIMEOUT = "read-timeout"
    TLS_EXPIRED = "tls-expired"
    TLS_NOT_YET_VALID = "tls-not-yet-valid"
    TLS_UNTRUSTED = "tls-untrusted"
    TLS_HOSTNAME = "tls-hostname-mismatch"
    TLS_HANDSHAKE = "tls-handshake"
    HTTP_AUTH = "http-auth"
    HTTP_NOT_FOUND = "http-not-found"
    HTTP_RATE_LIMITED = "http-rate-limited"
    HTTP_5XX = "http-5xx"
    HTTP_STATUS = "http-status"
    TOO_MANY_REDIRECTS = "too-many-redirects"
    CONDITION = "condition-failed"
    BODY_UNPARSEABLE = "body-unparseable"
    TOO_LARGE = "too-large"
    PROTOCOL = "protocol-error"
    CONFIG = "not-evaluated"

    @property
    def info(self) -> ErrorInfo:
        return ERROR_INFO[self]


@dataclass(frozen=True)
class ErrorInfo:
    title: str
    hint: str
    runbook: str | None
    transient: bool  # worth a retry within the same probe


ERROR_INFO: dict[ErrorClass, ErrorInfo] = {
    ErrorClass.DNS: ErrorInfo(
        "DNS lookup failed", "Check the host name and its DNS records (dig +short HOST).", RB_ROLLBACK, False
    ),
    ErrorClass.REFUSED: ErrorInfo(
        "Connection refused",
        "Nothing listens on that port: is the service running and the load balancer pointing at it?",
        RB_ROLLBACK,
        False,
    ),
    ErrorClass.RESET: ErrorInfo(
        "Connection reset",
        "The server or a proxy dropped the connection; check its "
        "logs and any firewall or WAF in front of it.",
        RB_ROLLBACK,
        True,
    ),
    ErrorClass.CONNECT_TIMEOUT: ErrorInfo(
        "Connect timed out",
        "The host did not answer: check firewalls, security groups and that the host is up.",
        RB_ROLLBACK,
        True,
    ),
    ErrorClass.READ_TIMEOUT: ErrorInfo(
        "Response timed out",
        "The server accepted the connection but was too "
        "slow; check its load, dependencies and recent deploys.",
        RB_ROLLBACK,
        True,
    ),
    ErrorClass.TLS_EXPIRED: ErrorInfo(
        "Certificate expired", "Renew and deploy the certificate now.", RB_TLS, False
    ),
    ErrorClass.TLS_NOT_YET_VALID: ErrorInfo(
        "Certificate not yet valid", "Check the server clock and the certificate's start date.", RB_TLS, False
    ),
    ErrorClass.TLS_UNTRUSTED: ErrorInfo(
        "Certificate not trusted",
        "Serve a certificate from a trusted CA with its full chain (self-signed or missing intermediate?).",
        RB_TLS,
        False,
    ),
    ErrorClass.TLS_HOSTNAME: ErrorInfo(
        "Certificate is for another host", "Serve a certificate whose names include this host.", RB_TLS, False
    ),
    ErrorClass.TLS_HANDSHAKE: ErrorInfo(
        "TLS handshake failed", "Check the server's TLS versions and ciphers.", RB_TLS, False
    ),
    ErrorClass.HTTP_AUTH: ErrorInfo(
        "Credentials rejected (401/403)",
        "Check that the credentials are the production ones and have not been rotated or revoked.",
        None,  # a provider check's goes to the provider runbook (runbook_for); an app's has none
        False,
    ),
    ErrorClass.HTTP_NOT_FOUND: ErrorInfo(
        "Endpoint not found (404)", "Check the URL and the API base path.", RB_ROLLBACK, False
    ),
    ErrorClass.HTTP_RATE_LIMITED: ErrorInfo(
        "Rate limited (429)",
        "Back off; lower the check frequency or ask the provider for a higher limit.",
        None,
        False,
    ),
    ErrorClass.HTTP_5XX: ErrorInfo(
        "Server error (5xx)",
        "The service or its upstream is failing: check its logs and the provider's status page.",
        RB_ROLLBACK,  # the app failing; a provider check's 5xx goes to the provider runbook
        True,
    ),
    ErrorClass.HTTP_STATUS: ErrorInfo(
        "Unexpected HTTP status", "Compare the status with what the check expects.", RB_ROLLBACK, False
    ),
    ErrorClass.TOO_MANY_REDIRECTS: ErrorInfo(
        "Too many redirects",
        "Look for a redirect loop (http↔https, trailing slash, login).",
        RB_ROLLBACK,
        False,
    ),
    ErrorClass.CONDITION: ErrorInfo(
        "Condition failed",
        "The service answered, but not as the check requires; see the failed condition.",
        RB_ROLLBACK,
        False,
    ),
    ErrorClass.BODY_UNPARSEABLE: ErrorInfo(
        "Response body is not JSON",
        "The endpoint returned something else (an error page?); open it in a browser.",
        RB_ROLLBACK,
        False,
    ),
    ErrorClass.TOO_LARGE: ErrorInfo(
        "Response too large",
        "The body exceeded the check's size cap; check the URL, or raise max_body_bytes.",
        None,
        False,
    ),
    ErrorClass.PROTOCOL: ErrorInfo(
        "Protocol error",
        "The server's reply was not valid HTTP; is this the right port and scheme?",
        RB_ROLLBACK,
        True,
    ),
    ErrorClass.CONFIG: ErrorInfo(
        "Could not evaluate", "Fix the check's configuration or inputs.", None, False
    ),
}

_KIND_RUNBOOKS = {"provider": RB_PROVIDER, "webhook": RB_WEBHOOK}
_TLS_CLASSES = {"tls-expired", "tls-not-yet-valid", "tls-untrusted", "tls-hostname-mismatch", "tls-handshake"}


def runbook_for(error: ErrorClass, kind: str) -> str | None:
    """Certificate trouble goes to the TLS runbook; other provider and webhook failures to theirs;
    the rest by error class, so an app's own 503 is never sent to the payment provider's runbook."""
    if error.value in _TLS_CLASSES or error is ErrorClass.CONFIG:
        return error.info.runbook
    return _KIND_RUNBOOKS.get(kind, error.info.runbook)


def classify_status(status: int) -> ErrorClass | None:
    if status in (401, 403):
        return ErrorClass.HTTP_AUTH
    if status == 404:
        return ErrorClass.HTTP_NOT_FOUND
    if status == 429:
        return ErrorClass.HTTP_RATE_LIMITED
    if 500 <= status <= 599:
        return ErrorClass.HTTP_5XX
    return None


def classify_tls(exc: ssl.SSLError) -> tuple[ErrorClass, str]:
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        reason = exc.verify_message or str(exc)
        if code == X509_EXPIRED:
            return ErrorClass.TLS_EXPIRED, reason
        if code == X509_NOT_YET_VALID:
            return ErrorClass.TLS_NOT_YET_VALID, reason
        if code in (X509_HOSTNAME_MISMATCH, X509_IP_ADDRESS_MISMATCH):
            return ErrorClass.TLS_HOSTNAME, reason
        return ErrorClass.TLS_UNTRUSTED, reason
    return ErrorClass.TLS_HANDSHAKE, exc.reason or str(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def classify_exception(exc: BaseException) -> tuple[ErrorClass, str]:
    """Map a socket, TLS or timeout exception to an error class and a short reason."""
    chain = _chain(exc)
    for item in chain:
        if isinstance(item, ssl.SSLError):
            return classify_tls(item)
    for item in chain:
        if isinstance(item, socket.gaierror):
            return ErrorClass.DNS, item.strerror or str(item)
        if isinstance(item, ConnectionRefusedError):
            return ErrorClass.REFUSED, "connection refused"
        if isinstance(item, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return ErrorClass.RESET, str(item) if item.args else "connection reset by peer"
        if isinstance(item, OSError) and item.errno in (errno.ECONNREFUSED,):
            return ErrorClass.REFUSED, "connection refused"
    first = chain[0]
    if isinstance(first, TimeoutError):
        return ErrorClass.READ_TIMEOUT, "no complete response in time"
    if isinstance(first, OSError):
        return ErrorClass.REFUSED, first.strerror or str(first) or "could not connect"
    return ErrorClass.PROTOCOL, f"{type(first).__name__}: {first}"
