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

import base64
import binascii
import enum
import hashlib
import hmac
import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opsdash.core.providers import ikhokha

MAX_HEADER = 8192
DEFAULT_TOLERANCE = 300
ALGORITHMS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


class Outcome(enum.StrEnum):
    VERIFIED = "verified"
    MISSING_HEADER = "missing-header"
    MALFORMED_HEADER = "malformed-header"
    BAD_SIGNATURE = "bad-signature"
    STALE = "stale"
    FUTURE = "from-the-future"
    REPLAYED = "replayed"
    SOURCE_NOT_ALLOWED = "source-not-allowed"
    APP_ID_MISMATCH = "app-id-mismatch"


@dataclass(frozen=True)
class Delivery:
    body: bytes
    headers: Mapping[str, str]
    path: str = "/"
    source_ip: str | None = None

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str
    scheme: str
    delivery_id: str | None = None
    timestamp: int | None = None
    skew_s: float | None = None  # now - timestamp; reported even when the signature is bad
    secret_index: int | None = None  # which active secret verified (rotation)

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.VERIFIED

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "outcome": self.outcome.value,
            "message": self.message,
            "scheme": self.scheme,
            "delivery_id": self.delivery_id,
            "timestamp": self.timestamp,
            "clock_skew_s": self.skew_s,
            "secret_index": self.secret_index,
        }


@dataclass(frozen=True)
class SchemeOptions:
    """What a profile can tune; defaults match each provider's documentation."""

    tolerance: int = DEFAULT_TOLERANCE
    app_id: str | None = None  # iKhokha: IK-APPID must equal this
    message_template: str = "{path}{body}"  # iKhokha layout (configurable: the docs are unreadable)
    escape: bool = True  # iKhokha escaping of \\ " ' and NUL
    header: str = "X-Signature"  # generic
    algorithm: str = "sha256"
    encoding: str = "hex"  # hex | base64
    prefix: str = ""  # generic, e.g. "sha256="
    template: str = "{body}"  # generic: {body} {timestamp} {id} {path}
    timestamp_header: str | None = None
    id_header: str | None = None


class _Malformed(Exception):
    pass


class _Missing(Exception):
    pass


def _hmac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, ALGORITHMS[algorithm]).digest()


def _required(delivery: Delivery, name: str) -> str:
    value = delivery.header(name)
    if value is None:
        raise _Missing(f"no {name} header")
    if not value.strip():
        raise _Malformed(f"{name} header is empty")
    if len(value) > MAX_HEADER:
        raise _Malformed(f"{name} header is {len(value):,} characters (limit {MAX_HEADER:,})")
    return value.strip()


def _hex(value: str, what: str, length: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise _Malformed(f"{what} is not hex") from None
    if length is not None and len(raw) != length:
        raise _Malformed(f"{what} is {len(raw)} bytes, expected {length}")
    return raw


def _b64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _Malformed(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != value:  # unused padding bits set: not what any signer produces
        raise _Malformed(f"{what} is not canonical base64")
    return raw


def _timestamp(value: str, what: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise _Malformed(f"{what} {value[:40]!r} is not a UNIX timestamp")
    return int(value)


def _body_id(body: bytes, *keys: str) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    for key in keys:
        if isinstance(data.get(key), str | int):
            return str(data[key])
    return None


@dataclass(frozen=True)
class Parsed:
    """What a scheme read from a delivery: candidate signatures and what was signed."""

    signatures: tuple[bytes, ...]
    message: Callable[[bytes], bytes]  # secret key bytes -> digest to compare
    timestamp: int | None = None
    delivery_id: str | None = None


class Scheme:
    name = "generic"
    timestamped = False

    def key(self, secret: str) -> bytes:
        return secret.encode("utf-8")

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        raise NotImplementedError

    def sign(
        self,
        secret: str,
        delivery: Delivery,
        options: SchemeOptions,
        *,
        timestamp: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, str]:
        raise NotImplementedError


class IKhokha(Scheme):
    name = "ikhokha"

    def _message(self, delivery: Delivery, options: SchemeOptions) -> bytes:
        text = options.message_template.format(
            path=delivery.path.split("?", 1)[0], body=delivery.body.decode("utf-8", "surrogateescape")
        )
        return (ikhokha.escape(text) if options.escape else text).encode("utf-8", "surrogateescape")

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        app_id = _required(delivery, ikhokha.APP_ID_HEADER)
        if options.app_id is not None and not hmac.compare_digest(app_id, options.app_id):
            raise _AppIdMismatch(app_id)
        signature = _hex(_required(delivery, ikhokha.SIGN_HEADER).lower(), "IK-SIGN", 32)
        message = self._message(delivery, options)
        return Parsed(
            (signature,),
            lambda key: _hmac(key, message),
            delivery_id=_body_id(delivery.body, "paylinkID", "paylinkId"),
        )

    def sign(
        self,
        secret: str,
        delivery: Delivery,
        options: SchemeOptions,
        *,
        timestamp: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, str]:
        digest = _hmac(self.key(secret), self._message(delivery, options)).hex()
        return {ikhokha.APP_ID_HEADER: options.app_id or "", ikhokha.SIGN_HEADER: digest}


class _AppIdMismatch(Exception):
    pass


class GitHub(Scheme):
    name = "github"
    header = "X-Hub-Signature-256"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        value = _required(delivery, self.header)
        if not value.startswith("sha256="):
            raise _Malformed(f"{self.header} does not start with sha256=")
        signature = _hex(value[len("sha256=") :], self.header, 32)
        return Parsed(
            (signature,),
            lambda key: _hmac(key, delivery.body),
            delivery_id=delivery.header("X-GitHub-Delivery"),
        )

    def sign(
        self,
        secret: str,
        delivery: Delivery,
        options: SchemeOptions,
        *,
        timestamp: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, str]:
        headers = {self.header: "sha256=" + _hmac(self.key(secret), delivery.body).hex()}
        if delivery_id:
            headers["X-GitHub-Delivery"] = delivery_id
        return headers


class Stripe(Scheme):
    name = "stripe"
    timestamped = True
    header = "Stripe-Signature"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        value = _required(delivery, self.header)
        timestamp, signatures = None, []
        for item in value.split(","):
            key, sep, val = item.strip().partition("=")
            if not sep:
                raise _Malformed(f"{self.header} item {item.strip()[:40]!r} is not key=value")
            if key == "t":
                timestamp = _timestamp(val, "t=")
            elif key == "v1":
                signatures.append(_hex(val, "v1 signature", 32))
        if timestamp is None:
            raise _Malformed(f"{self.header} has no t= timestamp")
        if not signatures:
            raise _Malformed(f"{self.header} has no v1= signature (the only scheme accepted)")
        message = f"{timestamp}.".encode() + delivery.body
        return Parsed(
            tuple(signatures), lambda key: _hmac(key, message), timestamp, _body_id(delivery.body, "id")
        )

    def sign(
        self,
        secret: str,
        delivery: Delivery,
        options: SchemeOptions,
        *,
        timestamp: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, str]:
        assert timestamp is not None
        digest = _hmac(self.key(secret), f"{timestamp}.".encode() + delivery.body).hex()
        return {self.header: f"t={timestamp},v1={digest}"}


class StandardWebhooks(Scheme):
    name = "standard"
    timestamped = True

    def key(self, secret: str) -> bytes:
        encoded = secret.removeprefix("whsec_")
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        msg_id = _required(delivery, "webhook-id")
        timestamp = _timestamp(_required(delivery, "webhook-timestamp"), "webhook-timestamp")
        signatures = []
        for item in _required(delivery, "webhook-signature").split():
            version, sep, value = item.partition(",")
            if not sep:
                raise _Malformed(f"webhook-signature entry {item[:40]!r} is not version,signature")
            if version == "v1":
                signatures.append(_b64(value, "v1 signature"))
        if not signatures:
            raise _Malformed("webhook-signature has no v1 signature")
        message = f"{msg_id}.{timestamp}.".encode() + delivery.body
        return Parsed(tuple(signatures), lambda key: _hmac(key, message), timestamp, msg_id)

    def sign(
        self,
        secret: str,
        delivery: Delivery,
        options: SchemeOptions,
        *,
        timestamp: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, str]:
        assert timestamp is not None and delivery_id
        digest = _hmac(self.key(secret), f"{delivery_id}.{timestamp}.".encode() + delivery.body)
        return {
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }


class Slack(Scheme):
    name = "slack"
    timestamped = True

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        timestamp = _timestamp(_required(delivery, "X-Slack-Request-Timestamp"), "X-Slack-Request-Timestamp")
        value = _required(delivery, "X-Slack-Signature")
        if not value.startswith("v0="):
            raise _Malformed("X-Slack-Signature does not start with v0=")
        signature = _hex(value[3:], "X-Slack-Signature", 32)
        message = f"v0:{timestamp}:".encode() + delivery.body
        return Parsed((signature,), lambda key: _hmac(key, message), timestamp)

    def sign(
        self,
        secret: str,
        delivery: Delivery,
        options: SchemeOptions,
        *,
        timestamp: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, str]:
        assert timestamp is not None
        digest = _hmac(self.key(secret), f"v0:{timestamp}:".encode() + delivery.body).hex()
        return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": "v0=" + digest}


class Shopify(Scheme):
    name = "shopify"
    header = "X-Shopify-Hmac-Sha256"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        signature = _b64(_required(delivery, self.header), self.header)
        if len(signature) != 32:
            raise _Malformed(f"{self.header} is {len(signature)} bytes, expected 32")
        return Parsed(
            (signature,),
            lambda key: _hmac(key, delivery.body),
            delivery_id=delivery.header("X-Shopify-Webhook-Id"),
        )

    def sign(
        self,
        secret: str,
        delivery: Delivery,
        options: SchemeOptions,
        *,
        timestamp: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, str]:
        headers = {self.header: base64.b64encode(_hmac(self.key(secret), delivery.body)).decode()}
        if delivery_id:
            headers["X-Shopify-Webhook-Id"] = delivery_id
        return headers


class Generic(Scheme):
    name = "generic"

    def _message(
        self, delivery: Delivery, options: SchemeOptions, timestamp: int | None, msg_id: str | None
    ) -> bytes:
        parts = options.template.split("{body}")
        fill = {
            "timestamp": "" if timestamp is None else str(timestamp),
            "id": msg_id or "",
            "path": delivery.path,
        }
        return delivery.body.join(p.format(**fill).encode() for p in parts)

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        value = _required(delivery, options.header)
        if options.prefix:
            if not value.startswith(options.prefix):
                raise _Malformed(f"{options.header} does not start with {options.prefix}")
            value = value[len(options.prefix) :]
        size = ALGORITHMS[options.algorithm]().digest_size
        signature = (
            _hex(value, options.header, size) if options.encoding == "hex" else _b64(value, options.header)
        )
        timestamp = (
            _timestamp(_required(delivery, options.timestamp_header), options.timestamp_header)
            if options.timestamp_header
            else None
        )
        msg_id = delivery.header(options.id_header) if options.id_header else None
        message = self._message(delivery, options, timestamp, msg_id)
        return Parsed((signature,), lambda key: _hmac(key, message, options.algorithm), timestamp, msg_id)

    def sign(
        self,
        secret: str,
        delivery: Delivery,
        options: SchemeOptions,
        *,
        timestamp: int | None = None,
        delivery_id: str | None = None,
    ) -> dict[str, str]:
        digest = _hmac(
            self.key(secret), self._message(delivery, options, timestamp, delivery_id), options.algorithm
        )
        encoded = digest.hex() if options.encoding == "hex" else base64.b64encode(digest).decode()
        headers = {options.header: options.prefix + encoded}
        if options.timestamp_header and timestamp is not None:
            headers[options.timestamp_header] = str(timestamp)
        if options.id_header and delivery_id:
            headers[options.id_header] = delivery_id
        return headers


SCHEMES: dict[str, Scheme] = {
    s.name: s for s in (IKhokha(), GitHub(), Stripe(), StandardWebhooks(), Slack(), Shopify(), Generic())
}


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
        except _Missing as exc:
            return verdict(Outcome.MISSING_HEADER, f"unsigned delivery: {exc}")
        except _Malformed as exc:
            return verdict(Outcome.MALFORMED_HEADER, f"malformed signature header: {exc}")
        except _AppIdMismatch as exc:
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
