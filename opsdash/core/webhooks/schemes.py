"""The signature schemes: how each provider signs a delivery, and how to check it."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass

from opsdash.core.providers import ikhokha
from opsdash.core.webhooks.model import (
    ALGORITHMS,
    MAX_HEADER,
    Delivery,
    SchemeOptions,
)


class Malformed(Exception):
    pass


class Missing(Exception):
    pass


def _hmac(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, ALGORITHMS[algorithm]).digest()


def _required(delivery: Delivery, name: str) -> str:
    value = delivery.header(name)
    if value is None:
        raise Missing(f"no {name} header")
    if not value.strip():
        raise Malformed(f"{name} header is empty")
    if len(value) > MAX_HEADER:
        raise Malformed(f"{name} header is {len(value):,} characters (limit {MAX_HEADER:,})")
    return value.strip()


def _hex(value: str, what: str, length: int | None = None) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise Malformed(f"{what} is not hex") from None
    if length is not None and len(raw) != length:
        raise Malformed(f"{what} is {len(raw)} bytes, expected {length}")
    return raw


def _b64(value: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != value:  # unused padding bits set: not what any signer produces
        raise Malformed(f"{what} is not canonical base64")
    return raw


def _timestamp(value: str, what: str) -> int:
    if not value.isdigit() or len(value) > 12:
        raise Malformed(f"{what} {value[:40]!r} is not a UNIX timestamp")
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
            raise AppIdMismatch(app_id)
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


class AppIdMismatch(Exception):
    pass


class GitHub(Scheme):
    name = "github"
    header = "X-Hub-Signature-256"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        value = _required(delivery, self.header)
        if not value.startswith("sha256="):
            raise Malformed(f"{self.header} does not start with sha256=")
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
                raise Malformed(f"{self.header} item {item.strip()[:40]!r} is not key=value")
            if key == "t":
                timestamp = _timestamp(val, "t=")
            elif key == "v1":
                signatures.append(_hex(val, "v1 signature", 32))
        if timestamp is None:
            raise Malformed(f"{self.header} has no t= timestamp")
        if not signatures:
            raise Malformed(f"{self.header} has no v1= signature (the only scheme accepted)")
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
                raise Malformed(f"webhook-signature entry {item[:40]!r} is not version,signature")
            if version == "v1":
                signatures.append(_b64(value, "v1 signature"))
        if not signatures:
            raise Malformed("webhook-signature has no v1 signature")
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
            raise Malformed("X-Slack-Signature does not start with v0=")
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
            raise Malformed(f"{self.header} is {len(signature)} bytes, expected 32")
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
                raise Malformed(f"{options.header} does not start with {options.prefix}")
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
