"""Verifying webhook deliveries the way a careful receiver does.

Schemes: iKhokha (IK-APPID + IK-SIGN over path + body, PLAN §6), GitHub (X-Hub-Signature-256),
Stripe (Stripe-Signature t=,v1=), Standard Webhooks (webhook-id/-timestamp/-signature, whsec_
secrets), Slack (v0), Shopify (base64) and a generic HMAC scheme. Verification works on the raw
bytes, compares in constant time, accepts several active secrets (rotation), rejects old *and*
too-far-future timestamps (clock skew is reported apart from a bad signature), and — through a
callback the caller backs with storage — rejects replayed delivery ids. Every outcome is a verdict
with a sentence: no header, body or source, however malformed, makes `verify` raise (a property test
over arbitrary header sets for every scheme holds it to that). Templates and paths are checked when
the profile loads (`validate_message_template`, `validate_template`, `validate_path`).
"""

from __future__ import annotations

import hmac
import ipaddress
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsdash.core.text import visible
from opsdash.core.webhooks.model import (
    ALGORITHMS,
    DEFAULT_TOLERANCE,
    MAX_HEADER,
    Delivery,
    Outcome,
    SchemeOptions,
    Verdict,
)
from opsdash.core.webhooks.schemes import SCHEMES, AppIdMismatch, Malformed, Missing, Parsed
from opsdash.core.webhooks.templates import validate_message_template, validate_path, validate_template

__all__ = [
    "ALGORITHMS",
    "DEFAULT_TOLERANCE",
    "MAX_HEADER",
    "SCHEMES",
    "BurstRule",
    "Delivery",
    "Outcome",
    "SchemeOptions",
    "Verdict",
    "Verifier",
    "sign",
    "validate_message_template",
    "validate_path",
    "validate_template",
]

# The prefix of the verdict given when reading a delivery raised anyway: the delivery is rejected and
# audited like any other, and the property tests fail on it, since it means a bug here.
UNREADABLE = "unreadable delivery"


def _source_allowed(ip: str, networks: Sequence[str]) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    for net in networks:
        network = ipaddress.ip_network(net, strict=False)
        if address.version == network.version and address in network:
            return True
    return False


def _refuse_empty(secrets: Sequence[str]) -> None:
    """An empty secret is no secret: an HMAC with an empty key is one anybody can compute."""
    for number, secret in enumerate(secrets, 1):
        if not secret.strip():
            which = f"webhook secret #{number}" if len(secrets) > 1 else "the webhook secret"
            raise ValueError(f"{which} is empty: anybody could sign with it; set the real secret")


@dataclass
class Verifier:
    scheme: str
    secrets: Sequence[str]
    options: SchemeOptions = field(default_factory=SchemeOptions)
    allowed_sources: Sequence[str] = ()
    seen: Callable[[str, str, int], bool] | None = None  # (scheme, id, expires_in_s) -> already seen?

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise ValueError(f"unknown scheme {self.scheme!r}; known: {', '.join(SCHEMES)}")
        if not self.secrets:
            raise ValueError("no webhook secret to verify with")
        _refuse_empty(self.secrets)
        for net in self.allowed_sources:
            ipaddress.ip_network(net, strict=False)  # a bad CIDR is a config error, raised here
        if not (math.isfinite(self.options.tolerance) and self.options.tolerance >= 1):
            raise ValueError(f"webhook.tolerance {self.options.tolerance!r}: a number of seconds, at least 1")
        scheme = SCHEMES[self.scheme]
        scheme.check(self.options)  # a bad template is a config error here, not a failure per delivery
        self._keys = [scheme.key(s) for s in self.secrets]
        self.warnings = scheme.warnings(self.options)

    def _match(self, parsed: Parsed) -> int | None:
        """The index of the first secret whose signature is among the delivery's, if any."""
        for index, key in enumerate(self._keys):
            expected = parsed.message(key)
            if any(hmac.compare_digest(expected, sig) for sig in parsed.signatures):
                return index
        return None

    def verify(self, delivery: Delivery, now: float) -> Verdict:
        """The verdict on one delivery as of `now` (UNIX seconds, finite: NaN would compare false with
        every tolerance, and so pass any timestamp)."""
        if not math.isfinite(now):
            raise ValueError(f"verifying as of {now!r}: the time must be a finite number of seconds")
        scheme = SCHEMES[self.scheme]

        def verdict(outcome: Outcome, message: str, parsed: Parsed | None = None, **extra: Any) -> Verdict:
            sent = parsed.sent if parsed else None
            return Verdict(
                outcome,
                message,
                self.scheme,
                parsed.delivery_id if parsed else None,
                parsed.timestamp if parsed else None,
                None if sent is None else round(now - sent, 3),
                warnings=self.warnings,
                **extra,
            )

        if self.allowed_sources:
            if not delivery.source_ip:
                return verdict(
                    Outcome.SOURCE_NOT_ALLOWED,
                    "the delivery's source address is unknown, and an allowlist is configured",
                )
            if not _source_allowed(delivery.source_ip, self.allowed_sources):
                return verdict(
                    Outcome.SOURCE_NOT_ALLOWED,
                    f"source {visible(delivery.source_ip[:60])} is not in the allowed "
                    f"networks ({', '.join(self.allowed_sources)})",
                )
        try:
            parsed = scheme.parse(delivery, self.options)
            matched = self._match(parsed)
        except Missing as exc:
            return verdict(Outcome.MISSING_HEADER, f"unsigned delivery: {exc}")
        except Malformed as exc:
            return verdict(Outcome.MALFORMED_HEADER, f"malformed signature header: {exc}")
        except AppIdMismatch as exc:
            return verdict(
                Outcome.APP_ID_MISMATCH, f"IK-APPID {str(exc)[:40]!r} is not this application's id"
            )
        except Exception as exc:  # fail closed: a delivery that trips a bug is rejected and audited
            return verdict(
                Outcome.MALFORMED_HEADER, f"{UNREADABLE}: reading it failed ({type(exc).__name__}); rejected"
            )
        if matched is None and parsed.broken is not None:
            return verdict(
                Outcome.MALFORMED_HEADER,
                f"malformed signature header: {parsed.broken}, and no signature before it matches",
                parsed,
            )
        if matched is None:
            skew = "" if parsed.sent is None else f" (clock skew {now - parsed.sent:+.0f} s, not the cause)"
            skipped = f"; {parsed.skipped}" if parsed.skipped else ""
            return verdict(
                Outcome.BAD_SIGNATURE,
                f"no signature matches any of the {len(self._keys)} active secret(s){skew}{skipped}",
                parsed,
            )
        if parsed.sent is not None:
            age = now - parsed.sent
            if age > self.options.tolerance:
                return verdict(
                    Outcome.STALE,
                    f"signature valid, but the delivery is {age:.0f} s old (tolerance "
                    f"{self.options.tolerance} s): a replay, or a retry after long delay",
                    parsed,
                    secret_index=matched,
                )
            if -age > self.options.tolerance:
                return verdict(
                    Outcome.FUTURE,
                    f"signature valid, but the timestamp is {-age:.0f} s in the future "
                    f"(tolerance {self.options.tolerance} s): check both clocks",
                    parsed,
                    secret_index=matched,
                )
        if parsed.delivery_id and self.seen is not None:
            expires = self.options.tolerance * 2 if scheme.timestamped else 7 * 86400
            if self.seen(self.scheme, parsed.delivery_id, expires):
                return verdict(
                    Outcome.REPLAYED,
                    f"delivery {parsed.delivery_id[:60]} was already accepted once: replayed",
                    parsed,
                    secret_index=matched,
                )
        return verdict(
            Outcome.VERIFIED,
            "signature verified" + (f" with secret #{matched + 1}" if matched else ""),
            parsed,
            secret_index=matched,
        )


def sign(
    scheme: str,
    secret: str,
    delivery: Delivery,
    options: SchemeOptions | None = None,
    *,
    timestamp: int | None = None,
    delivery_id: str | None = None,
) -> dict[str, str]:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}; known: {', '.join(SCHEMES)}")
    _refuse_empty([secret])
    return SCHEMES[scheme].sign(
        secret, delivery, options or SchemeOptions(), timestamp=timestamp, delivery_id=delivery_id
    )


@dataclass
class BurstRule:
    """N failed verifications from one source within a window raise one alert; the next alert for that
    source can only come after the window has passed."""

    threshold: int = 5
    window_s: float = 300.0

    def should_alert(self, failures: Sequence[float], last_alert: float | None, now: float) -> bool:
        recent = [t for t in failures if now - t <= self.window_s]
        if len(recent) < self.threshold:
            return False
        return last_alert is None or now - last_alert > self.window_s
