"""Verifying webhook deliveries the way a careful receiver does.

Schemes: iKhokha (IK-APPID + IK-SIGN over path + body, PLAN §6), GitHub (X-Hub-Signature-256),
Stripe (Stripe-Signature t=,v1=), Standard Webhooks (webhook-id/-timestamp/-signature, whsec_
secrets), Slack (v0), Shopify (base64) and a generic HMAC scheme. Verification works on the raw
bytes, compares in constant time, accepts several active secrets (rotation), rejects old *and*
too-far-future timestamps (clock skew is reported apart from a bad signature), and — through a
callback the caller backs with storage — rejects replayed delivery ids. Every outcome is a verdict
with a sentence; malformed input never raises.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

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
]


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
        for net in self.allowed_sources:
            ipaddress.ip_network(net, strict=False)  # a bad CIDR is a config error, raised here
        scheme = SCHEMES[self.scheme]
        self._keys = [scheme.key(s) for s in self.secrets]

    def verify(self, delivery: Delivery, now: float) -> Verdict:
        scheme = SCHEMES[self.scheme]

        def verdict(outcome: Outcome, message: str, parsed: Parsed | None = None, **extra: Any) -> Verdict:
            ts = parsed.timestamp if parsed else None
            return Verdict(
                outcome,
                message,
                self.scheme,
                parsed.delivery_id if parsed else None,
                ts,
                None if ts is None else round(now - ts, 3),
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
                    f"source {delivery.source_ip} is not in the allowed "
                    f"networks ({', '.join(self.allowed_sources)})",
                )
        try:
            parsed = scheme.parse(delivery, self.options)
        except Missing as exc:
            return verdict(Outcome.MISSING_HEADER, f"unsigned delivery: {exc}")
        except Malformed as exc:
            return verdict(Outcome.MALFORMED_HEADER, f"malformed signature header: {exc}")
        except AppIdMismatch as exc:
            return verdict(
                Outcome.APP_ID_MISMATCH, f"IK-APPID {str(exc)[:40]!r} is not this application's id"
            )
        matched = None
        for index, key in enumerate(self._keys):
            expected = parsed.message(key)
            if any(hmac.compare_digest(expected, sig) for sig in parsed.signatures):
                matched = index
                break
        if matched is None:
            skew = (
                ""
                if parsed.timestamp is None
                else f" (clock skew {now - parsed.timestamp:+.0f} s, not the cause)"
            )
            return verdict(
                Outcome.BAD_SIGNATURE,
                f"no signature matches any of the {len(self._keys)} active secret(s){skew}",
                parsed,
            )
        if parsed.timestamp is not None:
            age = now - parsed.timestamp
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
