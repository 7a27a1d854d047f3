"""The signature schemes: how each provider signs a delivery, and how to read its headers.

Where a provider ships an official library, `parse` reads the headers exactly as that library does
(stripe-python, svix/standardwebhooks, slack_sdk; tests/unit/core/test_webhooks_parity.py holds them
to it), so a delivery is accepted here when the provider's own code would accept it. Where that code
raises on junk (say a Standard Webhooks entry with no comma before the valid one), it would never
accept the delivery, so it is malformed here. GitHub and Shopify publish reference code instead:
their signatures must equal the expected text exactly. Nothing here raises on delivery input except
`Missing`, `Malformed` and `AppIdMismatch`, which the verifier turns into verdicts.
"""

from __future__ import annotations

import base64
import hmac
import re

from opsdash.core.providers import ikhokha
from opsdash.core.text import visible
from opsdash.core.webhooks.model import ALGORITHMS, Delivery, SchemeOptions
from opsdash.core.webhooks.reading import (
    LOWER_HEX_64,
    AppIdMismatch,
    Malformed,
    Missing,
    Parsed,
    body_id,
    datetime_seconds,
    digest_b64,
    hmac_digest,
    lower_hex_64,
    present,
    python_int,
    sized,
    utf8,
)
from opsdash.core.webhooks.templates import GENERIC_FIELDS, IKHOKHA_FIELDS, parse_template

__all__ = ["SCHEMES", "AppIdMismatch", "Malformed", "Missing", "Parsed", "Scheme"]


class Scheme:
    name = "generic"
    timestamped = False

    def key(self, secret: str) -> bytes:
        return secret.encode("utf-8")

    def check(self, options: SchemeOptions) -> None:
        """Raise ValueError for options this scheme cannot work with."""

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
    """PLAN §6. No official library reads callbacks; opsdash.core.providers.ikhokha.verify is the
    reference: IK-SIGN is compared stripped and lowercased."""

    name = "ikhokha"

    def check(self, options: SchemeOptions) -> None:
        parse_template(options.message_template, IKHOKHA_FIELDS, "webhook.message_template")

    def _message(self, delivery: Delivery, options: SchemeOptions) -> bytes:
        fill = {
            "path": delivery.path.split("?", 1)[0],
            "body": delivery.body.decode("utf-8", "surrogateescape"),
        }
        segments = parse_template(options.message_template, IKHOKHA_FIELDS, "webhook.message_template")
        text = "".join(literal + (fill[field] if field else "") for literal, field in segments)
        return utf8(ikhokha.escape(text) if options.escape else text)

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        app_id = present(delivery, ikhokha.APP_ID_HEADER).strip()
        if options.app_id is not None and not hmac.compare_digest(utf8(app_id), utf8(options.app_id)):
            raise AppIdMismatch(app_id)
        value = present(delivery, ikhokha.SIGN_HEADER).strip().lower()
        signature = lower_hex_64(value, "IK-SIGN")
        message = self._message(delivery, options)
        return Parsed(
            (signature,),
            lambda key: hmac_digest(key, message),
            delivery_id=body_id(delivery.body, "paylinkID", "paylinkId"),
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
        digest = hmac_digest(self.key(secret), self._message(delivery, options)).hex()
        return {ikhokha.APP_ID_HEADER: options.app_id or "", ikhokha.SIGN_HEADER: digest}


class GitHub(Scheme):
    """GitHub's documented check compares "sha256=" + hexdigest to the header, exactly."""

    name = "github"
    header = "X-Hub-Signature-256"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        value = present(delivery, self.header)
        if not value.startswith("sha256="):
            raise Malformed(f"{self.header} does not start with sha256=")
        signature = lower_hex_64(value[len("sha256=") :], f"{self.header} after sha256=")
        github_id = delivery.header("X-GitHub-Delivery")
        return Parsed(
            (signature,),
            lambda key: hmac_digest(key, delivery.body),
            delivery_id=visible(github_id) if github_id else None,
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
        headers = {self.header: "sha256=" + hmac_digest(self.key(secret), delivery.body).hex()}
        if delivery_id:
            headers["X-GitHub-Delivery"] = delivery_id
        return headers


class Stripe(Scheme):
    """As stripe-python's WebhookSignature reads Stripe-Signature: items split on "," and each on
    "=" (at most twice), no blanks stripped; the first t item is the timestamp (every t and v1 item
    must have a value); v1 items that are not the expected lowercase hex are skipped, so junk beside
    a valid one does no harm, up to the first non-ASCII one, where the library stops with an error."""

    name = "stripe"
    timestamped = True
    header = "Stripe-Signature"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        value = present(delivery, self.header)
        items = [item.split("=", 2) for item in value.split(",")]
        stamps = [item for item in items if item[0] == "t"]
        versions = [item for item in items if item[0] == "v1"]
        if any(len(item) < 2 for item in stamps + versions):
            raise Malformed(f"{self.header} has a t or v1 item without '='")
        if not stamps:
            raise Malformed(f"{self.header} has no t= timestamp")
        timestamp = python_int(stamps[0][1], "t=")
        if not versions:
            raise Malformed(f"{self.header} has no v1= signature (the only scheme accepted)")
        signatures: list[bytes] = []
        broken = None
        for _, text, *_rest in versions:
            if not text.isascii():
                broken = f"v1 signature {text[:40]!r} is not ASCII"
                break
            if LOWER_HEX_64.fullmatch(text):
                signatures.append(bytes.fromhex(text))
        message = f"{timestamp}.".encode() + delivery.body
        return Parsed(
            tuple(signatures),
            lambda key: hmac_digest(key, message),
            timestamp,
            body_id(delivery.body, "id"),
            broken,
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
        digest = hmac_digest(self.key(secret), f"{timestamp}.".encode() + delivery.body).hex()
        return {self.header: f"t={timestamp},v1={digest}"}


class StandardWebhooks(Scheme):
    """As the svix library reads them (it wraps the standardwebhooks library): each of id, timestamp
    and signature from its svix- header when that is present, else from its webhook- header; entries
    split on single spaces, each "version,signature" with exactly one comma; base64 decoded leniently
    as base64.b64decode does. Entries are tried in order until one matches, and an entry the library
    fails on (no comma, or base64 it cannot decode) ends the search."""

    name = "standard"
    timestamped = True

    def key(self, secret: str) -> bytes:
        # the library pads the secret itself, so an unpadded whsec_ secret works there and here
        encoded = secret.strip().removeprefix("whsec_").rstrip("=")
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except ValueError:
            raise ValueError("a Standard Webhooks secret is whsec_ followed by base64") from None
        if not key:
            raise ValueError("the Standard Webhooks secret is empty after whsec_")
        return key

    @staticmethod
    def _pick(delivery: Delivery, name: str) -> str:
        """svix-NAME when present (even empty), else webhook-NAME; only an empty value is missing,
        as in the library (a blank webhook-id is text like any other)."""
        branded = delivery.header(f"svix-{name}")
        if branded is not None:
            return sized(f"svix-{name}", branded, blank_ok=True)
        return sized(f"webhook-{name}", delivery.header(f"webhook-{name}"), blank_ok=True)

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        msg_id = self._pick(delivery, "id")
        timestamp, instant = datetime_seconds(self._pick(delivery, "timestamp"), "webhook-timestamp")
        value = self._pick(delivery, "signature")
        try:
            signed = f"{msg_id}.{timestamp}.".encode()
        except UnicodeEncodeError:
            raise Malformed(f"webhook-id {msg_id[:40]!r} is not text") from None
        signatures: list[bytes] = []
        broken = None
        for entry in value.split(" "):
            parts = entry.split(",")
            if len(parts) != 2:
                broken = f"webhook-signature entry {entry[:40]!r} is not version,signature"
                break
            if parts[0] != "v1":
                continue
            try:
                signatures.append(base64.b64decode(parts[1]))
            except ValueError:  # binascii.Error, or text that is not ASCII
                broken = f"v1 signature {parts[1][:40]!r} is not base64"
                break
        return Parsed(
            tuple(signatures),
            lambda key: hmac_digest(key, signed + delivery.body),
            timestamp,
            visible(msg_id),
            broken,
            instant=instant,
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
        assert timestamp is not None and delivery_id
        digest = hmac_digest(self.key(secret), f"{delivery_id}.{timestamp}.".encode() + delivery.body)
        return {
            "webhook-id": delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }


class Slack(Scheme):
    """As slack_sdk's SignatureVerifier: the timestamp read with int(), the signed basestring built
    from the header text as sent, and the signature equal to "v0=" + lowercase hexdigest."""

    name = "slack"
    timestamped = True

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        stamp = present(delivery, "X-Slack-Request-Timestamp")
        value = present(delivery, "X-Slack-Signature")
        timestamp = python_int(stamp, "X-Slack-Request-Timestamp")
        if not value.startswith("v0="):
            raise Malformed("X-Slack-Signature does not start with v0=")
        signature = lower_hex_64(value[3:], "X-Slack-Signature after v0=")
        message = b"v0:" + utf8(stamp) + b":" + delivery.body
        return Parsed((signature,), lambda key: hmac_digest(key, message), timestamp)

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
        digest = hmac_digest(self.key(secret), f"v0:{timestamp}:".encode() + delivery.body).hex()
        return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": "v0=" + digest}


class Shopify(Scheme):
    """Shopify's documented check compares the base64 digest to the header, exactly."""

    name = "shopify"
    header = "X-Shopify-Hmac-Sha256"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        signature = digest_b64(present(delivery, self.header), self.header, 32)
        shop_id = delivery.header("X-Shopify-Webhook-Id")
        return Parsed(
            (signature,),
            lambda key: hmac_digest(key, delivery.body),
            delivery_id=visible(shop_id) if shop_id else None,
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
        headers = {self.header: base64.b64encode(hmac_digest(self.key(secret), delivery.body)).decode()}
        if delivery_id:
            headers["X-Shopify-Webhook-Id"] = delivery_id
        return headers


class Generic(Scheme):
    """A profile-described HMAC: hex (either case) or strict base64, a timestamp of ASCII digits."""

    name = "generic"

    def check(self, options: SchemeOptions) -> None:
        parse_template(options.template, GENERIC_FIELDS, "webhook.template")
        if options.algorithm not in ALGORITHMS:
            raise ValueError(f"webhook.algorithm {options.algorithm!r}: one of {', '.join(ALGORITHMS)}")
        if options.encoding not in ("hex", "base64"):
            raise ValueError(f"webhook.encoding {options.encoding!r}: hex or base64")
        if not options.header:
            raise ValueError("webhook.header is empty: name the header that carries the signature")

    def _message(
        self, delivery: Delivery, options: SchemeOptions, timestamp: str | None, msg_id: str | None
    ) -> bytes:
        fill = {"timestamp": utf8(timestamp or ""), "id": utf8(msg_id or ""), "path": utf8(delivery.path)}
        segments = parse_template(options.template, GENERIC_FIELDS, "webhook.template")
        return b"".join(
            utf8(literal) + (b"" if field is None else delivery.body if field == "body" else fill[field])
            for literal, field in segments
        )

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        value = present(delivery, options.header)
        if options.prefix:
            if not value.startswith(options.prefix):
                raise Malformed(f"{options.header} does not start with {options.prefix}")
            value = value[len(options.prefix) :]
        size = ALGORITHMS[options.algorithm]().digest_size
        if options.encoding == "hex":
            if not re.fullmatch(f"[0-9a-fA-F]{{{size * 2}}}", value):
                raise Malformed(f"{options.header} is not {size * 2} hex digits")
            signature = bytes.fromhex(value)
        else:
            signature = digest_b64(value, options.header, size)
        stamp, timestamp = None, None
        if options.timestamp_header:
            stamp = present(delivery, options.timestamp_header)
            if not re.fullmatch(r"[0-9]{1,12}", stamp):
                raise Malformed(f"{options.timestamp_header} {stamp[:40]!r} is not a UNIX timestamp")
            timestamp = int(stamp)
        msg_id = delivery.header(options.id_header) if options.id_header else None
        message = self._message(delivery, options, stamp, msg_id)
        return Parsed(
            (signature,),
            lambda key: hmac_digest(key, message, options.algorithm),
            timestamp,
            visible(msg_id) if msg_id else None,
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
        stamp = None if timestamp is None else str(timestamp)
        digest = hmac_digest(
            self.key(secret), self._message(delivery, options, stamp, delivery_id), options.algorithm
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
