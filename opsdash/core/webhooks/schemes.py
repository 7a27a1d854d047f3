"""The signature schemes: how each provider signs a delivery, and how to read its headers.

Where a provider ships an official library, `parse` reads the headers exactly as that library does
(stripe-python, standardwebhooks/svix, slack_sdk; tests/unit/core/test_webhooks_parity.py holds them
to it at the versions the lock pins, and scripts/webhook_drift.py against the newest releases), so a
delivery is accepted here when the provider's own code would accept it. Where that code raises on
junk (a non-ASCII Stripe v1 item before the valid one), it would never accept the delivery, so it is
malformed here; where it passes over junk (Standard Webhooks entries, as its spec says: try each
signature until one matches), so does opsdash. GitHub and Shopify publish reference code instead:
their signatures must equal the expected text exactly. Nothing here raises on delivery input except
`Missing`, `Malformed` and `AppIdMismatch`, which the verifier turns into verdicts.

Deliberate differences from the libraries, each for a reason an operator can check:
- Stripe: a timestamp more than the tolerance in the future is rejected (from-the-future);
  stripe-python only rejects old ones. A replayed-in-advance delivery is as suspect as a late one.
- Stripe: a body that is not UTF-8 is verified on its bytes; stripe-python raises
  UnicodeDecodeError before it checks anything. What was signed is bytes.
- Standard Webhooks: the whsec_ secret must be strict base64 (the library drops characters outside
  the alphabet, so a URL-safe or mistyped secret silently becomes another key); a bad one is a
  config error when the profile loads, not a bad-signature on every delivery.
- iKhokha (no library): without a configured application id, IK-APPID cannot be checked; the
  verdict says so in its warnings rather than accepting any IK-APPID without a word.
An empty or blank secret is refused for every scheme (Verifier and sign raise ValueError), as
stripe-python, slack_sdk and standardwebhooks refuse theirs: an HMAC with an empty key is one
anybody can compute.
"""

from __future__ import annotations

import base64
import hmac
import re
from collections.abc import Callable

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
    canonical_b64,
    datetime_seconds,
    digest_b64,
    header_id,
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
    """One provider's scheme. `message` is what the provider signs, built in one place for both
    directions: `parse` hands it to the verifier, `sign` signs it and lays out the headers."""

    name = "generic"
    timestamped = False  # the message holds a timestamp: signing needs one
    signs_id = False  # the message holds the delivery id: signing needs one

    def key(self, secret: str) -> bytes:
        return secret.encode("utf-8")

    def check(self, options: SchemeOptions) -> None:
        """Raise ValueError for options this scheme cannot work with."""

    def warnings(self, options: SchemeOptions) -> tuple[str, ...]:
        """What these options leave unchecked: said with every verdict, never silently."""
        return ()

    def message(
        self, delivery: Delivery, options: SchemeOptions, stamp: str | None, msg_id: str | None
    ) -> bytes:
        """The bytes the provider signs: `stamp` is the timestamp as text, as the provider's own code
        writes it into the message; `msg_id` the delivery id."""
        return delivery.body

    def algorithm(self, options: SchemeOptions) -> str:
        return "sha256"

    def digest(self, key: bytes, message: bytes, options: SchemeOptions) -> bytes:
        return hmac_digest(key, message, self.algorithm(options))

    def signed(self, message: bytes, options: SchemeOptions) -> Callable[[bytes], bytes]:
        """What `Parsed.message` holds: a secret key to the digest the delivery should carry."""
        return lambda key: self.digest(key, message, options)

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        raise NotImplementedError

    def headers(
        self, digest: bytes, options: SchemeOptions, timestamp: int | None, delivery_id: str | None
    ) -> dict[str, str]:
        """The headers that carry `digest` (and the timestamp and id it was made with)."""
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
        if self.timestamped and timestamp is None:
            raise ValueError(f"the {self.name} scheme signs a timestamp: give one")
        if self.signs_id and not delivery_id:
            raise ValueError(f"the {self.name} scheme signs a delivery id: give one")
        stamp = None if timestamp is None else str(timestamp)
        message = self.message(delivery, options, stamp, delivery_id)
        return self.headers(self.digest(self.key(secret), message, options), options, timestamp, delivery_id)


class IKhokha(Scheme):
    """PLAN §6. No official library reads callbacks; opsdash.core.providers.ikhokha.verify is the
    reference: IK-SIGN is compared stripped and lowercased."""

    name = "ikhokha"

    def check(self, options: SchemeOptions) -> None:
        parse_template(options.message_template, IKHOKHA_FIELDS, "webhook.message_template")

    def warnings(self, options: SchemeOptions) -> tuple[str, ...]:
        if options.app_id is not None:
            return ()
        # the operator guide says what follows: a callback for another application is accepted
        return ("IK-APPID was not checked: no application id is configured (webhook.app_id_variable)",)

    def message(
        self, delivery: Delivery, options: SchemeOptions, stamp: str | None, msg_id: str | None
    ) -> bytes:
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
        return Parsed(
            (signature,),
            self.signed(self.message(delivery, options, None, None), options),
            delivery_id=body_id(delivery.body, "paylinkID", "paylinkId"),
        )

    def headers(
        self, digest: bytes, options: SchemeOptions, timestamp: int | None, delivery_id: str | None
    ) -> dict[str, str]:
        return {ikhokha.APP_ID_HEADER: options.app_id or "", ikhokha.SIGN_HEADER: digest.hex()}


class GitHub(Scheme):
    """GitHub's documented check compares "sha256=" + hexdigest to the header, exactly."""

    name = "github"
    header = "X-Hub-Signature-256"
    id_header = "X-GitHub-Delivery"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        value = present(delivery, self.header)
        if not value.startswith("sha256="):
            raise Malformed(f"{self.header} does not start with sha256=")
        signature = lower_hex_64(value[len("sha256=") :], f"{self.header} after sha256=")
        return Parsed(
            (signature,), self.signed(delivery.body, options), delivery_id=header_id(delivery, self.id_header)
        )

    def headers(
        self, digest: bytes, options: SchemeOptions, timestamp: int | None, delivery_id: str | None
    ) -> dict[str, str]:
        return {self.header: "sha256=" + digest.hex()} | _optional(self.id_header, delivery_id)


class Stripe(Scheme):
    """As stripe-python's WebhookSignature reads Stripe-Signature: items split on "," and each on
    "=" (at most twice), no blanks stripped; the first t item is the timestamp (every t and v1 item
    must have a value); v1 items that are not the expected lowercase hex are skipped, so junk beside
    a valid one does no harm, up to the first non-ASCII one, where the library stops with an error."""

    name = "stripe"
    timestamped = True
    header = "Stripe-Signature"

    def message(
        self, delivery: Delivery, options: SchemeOptions, stamp: str | None, msg_id: str | None
    ) -> bytes:
        # stripe-python signs the timestamp it read with int(), written back as decimal digits
        return f"{stamp}.".encode() + delivery.body

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
        return Parsed(
            tuple(signatures),
            self.signed(self.message(delivery, options, str(timestamp), None), options),
            timestamp,
            body_id(delivery.body, "id"),
            broken,
        )

    def headers(
        self, digest: bytes, options: SchemeOptions, timestamp: int | None, delivery_id: str | None
    ) -> dict[str, str]:
        return {self.header: f"t={timestamp},v1={digest.hex()}"}


class StandardWebhooks(Scheme):
    """As the Standard Webhooks spec and its library (standardwebhooks 1.3.0, which svix 2.9.1 wraps)
    read them: each of id, timestamp and signature from its svix- header when that is present, else
    from its webhook- header; the signature header is a list of entries split on single spaces, and
    the delivery is authentic when one entry is exactly "v1," followed by the canonical base64 of the
    expected digest (the library compares the whole text). The spec has the receiver try each
    signature until one matches, so entries that match nothing (junk, other versions such as v1a,
    non-canonical base64: missing padding, set padding bits, stray characters) are skipped, wherever
    they stand; if none matches, the verdict is bad-signature and says how many were skipped."""

    name = "standard"
    timestamped = True
    signs_id = True

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

    def message(
        self, delivery: Delivery, options: SchemeOptions, stamp: str | None, msg_id: str | None
    ) -> bytes:
        # the whole seconds of the timestamp are signed (datetime_seconds floors them)
        try:
            return f"{msg_id}.{stamp}.".encode() + delivery.body
        except UnicodeEncodeError:
            raise Malformed(f"webhook-id {(msg_id or '')[:40]!r} is not text") from None

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        msg_id = self._pick(delivery, "id")
        timestamp, instant = datetime_seconds(self._pick(delivery, "timestamp"), "webhook-timestamp")
        value = self._pick(delivery, "signature")
        message = self.message(delivery, options, str(timestamp), msg_id)
        signatures: list[bytes] = []
        skipped = 0
        for entry in value.split(" "):
            version, comma, text = entry.partition(",")
            if not entry:
                continue  # two spaces in a row: the library compares an empty entry, which never matches
            signature = canonical_b64(text, 32) if version == "v1" and comma else None
            if signature is None:
                skipped += 1
            else:
                signatures.append(signature)
        return Parsed(
            tuple(signatures),
            self.signed(message, options),
            timestamp,
            visible(msg_id),
            instant=instant,
            skipped=(
                f"{skipped} webhook-signature entr{'y' if skipped == 1 else 'ies'} not v1,<canonical "
                "base64 of 32 bytes> skipped"
                if skipped
                else None
            ),
        )

    def headers(
        self, digest: bytes, options: SchemeOptions, timestamp: int | None, delivery_id: str | None
    ) -> dict[str, str]:
        return {
            "webhook-id": delivery_id or "",
            "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        }


class Slack(Scheme):
    """As slack_sdk's SignatureVerifier: the timestamp read with int(), the signed basestring built
    from the header text as sent, and the signature equal to "v0=" + lowercase hexdigest."""

    name = "slack"
    timestamped = True

    def message(
        self, delivery: Delivery, options: SchemeOptions, stamp: str | None, msg_id: str | None
    ) -> bytes:
        return b"v0:" + utf8(stamp or "") + b":" + delivery.body

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        stamp = present(delivery, "X-Slack-Request-Timestamp")
        value = present(delivery, "X-Slack-Signature")
        timestamp = python_int(stamp, "X-Slack-Request-Timestamp")
        if not value.startswith("v0="):
            raise Malformed("X-Slack-Signature does not start with v0=")
        signature = lower_hex_64(value[3:], "X-Slack-Signature after v0=")
        return Parsed(
            (signature,), self.signed(self.message(delivery, options, stamp, None), options), timestamp
        )

    def headers(
        self, digest: bytes, options: SchemeOptions, timestamp: int | None, delivery_id: str | None
    ) -> dict[str, str]:
        return {"X-Slack-Request-Timestamp": str(timestamp), "X-Slack-Signature": "v0=" + digest.hex()}


class Shopify(Scheme):
    """Shopify's documented check compares the base64 digest to the header, exactly."""

    name = "shopify"
    header = "X-Shopify-Hmac-Sha256"
    id_header = "X-Shopify-Webhook-Id"

    def parse(self, delivery: Delivery, options: SchemeOptions) -> Parsed:
        signature = digest_b64(present(delivery, self.header), self.header, 32)
        return Parsed(
            (signature,), self.signed(delivery.body, options), delivery_id=header_id(delivery, self.id_header)
        )

    def headers(
        self, digest: bytes, options: SchemeOptions, timestamp: int | None, delivery_id: str | None
    ) -> dict[str, str]:
        return {self.header: base64.b64encode(digest).decode()} | _optional(self.id_header, delivery_id)


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

    def algorithm(self, options: SchemeOptions) -> str:
        return options.algorithm

    def message(
        self, delivery: Delivery, options: SchemeOptions, stamp: str | None, msg_id: str | None
    ) -> bytes:
        fill = {"timestamp": utf8(stamp or ""), "id": utf8(msg_id or ""), "path": utf8(delivery.path)}
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
        message = self.message(delivery, options, stamp, msg_id)
        return Parsed(
            (signature,), self.signed(message, options), timestamp, header_id(delivery, options.id_header)
        )

    def headers(
        self, digest: bytes, options: SchemeOptions, timestamp: int | None, delivery_id: str | None
    ) -> dict[str, str]:
        encoded = digest.hex() if options.encoding == "hex" else base64.b64encode(digest).decode()
        headers = {options.header: options.prefix + encoded}
        if options.timestamp_header and timestamp is not None:
            headers[options.timestamp_header] = str(timestamp)
        return headers | _optional(options.id_header, delivery_id)


def _optional(name: str | None, value: str | None) -> dict[str, str]:
    """A header that is sent only when there is something to put in it."""
    return {name: value} if name and value else {}


SCHEMES: dict[str, Scheme] = {
    s.name: s for s in (IKhokha(), GitHub(), Stripe(), StandardWebhooks(), Slack(), Shopify(), Generic())
}
