"""Reading header values the way the providers' libraries do, without raising on any of them:
whatever a header holds ends as a value, `Missing` or `Malformed`."""

from __future__ import annotations

import base64
import hmac
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from opsdash.core.text import visible
from opsdash.core.webhooks.model import ALGORITHMS, MAX_HEADER, Delivery

LOWER_HEX_64 = re.compile(r"[0-9a-f]{64}")
# datetime's range (years 1 to 9999), which is also where Standard Webhooks' library stops
_EARLIEST, _LATEST = -62_135_596_800, 253_402_300_799


class Malformed(Exception):
    pass


class Missing(Exception):
    pass


class AppIdMismatch(Exception):
    pass


def hmac_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    return hmac.new(key, message, ALGORITHMS[algorithm]).digest()


def utf8(text: str) -> bytes:
    """Text as UTF-8; arguments and headers read with surrogateescape get their original bytes back."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def present(delivery: Delivery, name: str) -> str:
    """The header's value exactly as sent (the libraries do not strip it either)."""
    return sized(name, delivery.header(name))


def sized(name: str, value: str | None, *, blank_ok: bool = False) -> str:
    if value is None or (blank_ok and not value):
        raise Missing(f"no {name} header")
    if not blank_ok and not value.strip():
        raise Malformed(f"{name} header is empty")
    if len(value) > MAX_HEADER:
        raise Malformed(f"{name} header is {len(value):,} characters (limit {MAX_HEADER:,})")
    return value


def _in_range(value: int, what: str, text: str) -> int:
    if not _EARLIEST <= value <= _LATEST:
        raise Malformed(f"{what} {text[:40]!r} is not a UNIX timestamp between the years 1 and 9999")
    return value


def python_int(text: str, what: str) -> int:
    """A timestamp the way stripe-python and slack_sdk read one, with int(): surrounding blanks, a
    sign, `_` between digits and any Unicode decimal digits pass; superscripts and fractions do not."""
    try:
        value = int(text)
    except ValueError:
        raise Malformed(f"{what} {text[:40]!r} is not a UNIX timestamp") from None
    return _in_range(value, what, text)


def datetime_seconds(text: str, what: str) -> tuple[int, float]:
    """A timestamp the way the Standard Webhooks library reads one: float(), then a datetime. Its
    whole seconds are what was signed (`T.0` and `T.9` sign as T); the tolerance applies to all of it."""
    try:
        instant = datetime.fromtimestamp(float(text), tz=UTC).timestamp()
    except (ValueError, OverflowError, OSError):
        raise Malformed(f"{what} {text[:40]!r} is not a UNIX timestamp") from None
    return _in_range(math.floor(instant), what, text), instant


def digest_b64(value: str, what: str, size: int) -> bytes:
    """Strict base64 of a digest: the exact text a signer produces, nothing else."""
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise Malformed(f"{what} is not base64") from None
    if base64.b64encode(raw).decode() != value:  # unused padding bits set: not what any signer produces
        raise Malformed(f"{what} is not canonical base64")
    if len(raw) != size:
        raise Malformed(f"{what} is {len(raw)} bytes, expected {size}")
    return raw


def canonical_b64(text: str, size: int) -> bytes | None:
    """The bytes `text` encodes when it is exactly the base64 a signer writes for `size` bytes (what
    the Standard Webhooks library compares against), else None: no missing or extra padding, no
    padding bits set, nothing outside the alphabet."""
    if not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return raw if len(raw) == size and base64.b64encode(raw).decode() == text else None


def lower_hex_64(value: str, what: str) -> bytes:
    if not LOWER_HEX_64.fullmatch(value):
        raise Malformed(f"{what} is not 64 lowercase hex digits")
    return bytes.fromhex(value)


def header_id(delivery: Delivery, name: str | None) -> str | None:
    """The delivery id a header carries, control characters escaped; None when it is absent or empty."""
    value = delivery.header(name) if name else None
    return visible(value) if value else None


def body_id(body: bytes, *keys: str) -> str | None:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    if not isinstance(data, dict):
        return None
    for key in keys:
        if isinstance(data.get(key), str | int):
            return visible(str(data[key]))
    return None


@dataclass(frozen=True)
class Parsed:
    """What a scheme read from a delivery: candidate signatures and what was signed."""

    signatures: tuple[bytes, ...]
    message: Callable[[bytes], bytes]  # secret key bytes -> digest to compare
    timestamp: int | None = None
    delivery_id: str | None = None  # shown, stored and compared for replays: control characters escaped
    broken: str | None = None  # an entry after `signatures` that the provider's library fails on
    instant: float | None = None  # the timestamp with the fraction the library keeps, for the tolerance
    skipped: str | None = None  # entries passed over as the provider's library does, said on a mismatch

    @property
    def sent(self) -> float | None:
        """When the delivery says it was sent: what the tolerance and the clock skew are measured from."""
        return self.instant if self.instant is not None else self.timestamp
