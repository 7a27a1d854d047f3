"""What a webhook delivery is, and what verifying one says about it."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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
        """The header's value, any case; with duplicates the last one, as the providers' libraries
        read headers (they lowercase the names into a dict)."""
        wanted = name.lower()
        found = None
        for key, value in self.headers.items():
            if key.lower() == wanted:
                found = value
        return found


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str
    scheme: str
    delivery_id: str | None = None
    timestamp: int | None = None
    skew_s: float | None = None  # now - timestamp; reported even when the signature is bad
    secret_index: int | None = None  # which active secret verified (rotation)
    warnings: tuple[str, ...] = ()  # what was not checked (iKhokha's IK-APPID with no app id configured)

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
            "warnings": list(self.warnings),
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
