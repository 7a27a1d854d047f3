"""The one masker and fingerprinter. Every output path shows secrets only through this module.

A fingerprint is the first 8 hex digits of the value's SHA-256: enough to tell "same value" from
"changed" across runs and variables, never enough to show the value.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable
from urllib.parse import SplitResult, parse_qsl, unquote_plus, urlsplit, urlunsplit

MASK = "••••"
_MIN_REDACT_LEN = 6


def fingerprint(value: str) -> str:
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def mask(value: str) -> str:
    """`•••• (32 chars, sha256:1a2b3c4d)`: length and fingerprint, never the value."""
    if value == "":
        return "(empty)"
    return f"{MASK} ({len(value)} chars, {fingerprint(value)})"


_SECRET_PARAMS = (
    "key",
    "secret",
    "token",
    "password",
    "passwd",
    "pwd",
    "signature",
    "sig",
    "apikey",
    "api_key",
    "access_token",
    "auth",
)


def secret_param(name: str) -> bool:
    """A query parameter whose value is a credential by its name (`api_key`, `token`, `X-Amz-Signature`)."""
    lowered = name.lower()
    return any(lowered == p or lowered.endswith("_" + p) or lowered.endswith(p) for p in _SECRET_PARAMS)


def _split(url: str) -> SplitResult | None:
    """urlsplit, or None for a URL it refuses (`http://[::1`: an unbalanced bracket)."""
    try:
        return urlsplit(url.strip())
    except ValueError:
        return None


def _scheme_netloc(url: str) -> tuple[str, str]:
    """The scheme and the authority of a URL, read by hand when urlsplit refuses it: a malformed
    URL's password must still be found, to be masked in the error that names the URL."""
    parts = _split(url)
    if parts is not None:
        return parts.scheme, parts.netloc
    scheme, sep, rest = url.strip().partition("://")
    return (scheme, re.split(r"[/?#]", rest, maxsplit=1)[0]) if sep else ("", "")


def url_credentials(url: str) -> list[str]:
    """The credentials a URL of any scheme carries in its userinfo: the password
    (`postgres://app:PASS@db`, `redis://:PASS@cache`), or a user that stands alone as a token
    (`https://ghp_TOKEN@github.com`)."""
    scheme, netloc = _scheme_netloc(url)
    if not scheme or "@" not in netloc:
        return []
    userinfo = netloc.rpartition("@")[0]
    user, colon, password = userinfo.partition(":")
    if colon:
        return [password] if password else []
    # A lone user is a token in an http(s) URL; elsewhere (postgres://app@db) it is a user name.
    return [user] if user and scheme.lower() in ("http", "https") else []


def url_secrets(url: str) -> list[str]:
    """Every credential a URL carries: its userinfo (`url_credentials`) and the values of the query
    parameters that are secret by name (`?api_key=`, the rule url-secret-in-query flags)."""
    parts = _split(url)
    if parts is None:  # malformed: its userinfo, found by hand
        return url_credentials(url)
    if not parts.scheme or not parts.netloc:
        return []
    query = [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if v and secret_param(k)]
    return [*url_credentials(url), *query]


def mask_url(url: str, known: frozenset[str] | set[str] = frozenset()) -> str:
    """The URL, any scheme, with its userinfo credentials and every query value that is secret by
    name or a known secret replaced by a mask; the rest as written (a URL urlsplit refuses: its
    userinfo credentials masked where they stand)."""
    parts = _split(url)
    if parts is None:
        for credential in url_credentials(url):
            url = url.replace(credential, mask(credential))
        return url
    if not parts.scheme:
        return url
    netloc = parts.netloc
    for credential in url_credentials(url):
        userinfo, _, host = netloc.rpartition("@")
        netloc = userinfo.replace(credential, mask(credential)) + "@" + host
    query = "&".join(_masked_pair(pair, known) for pair in parts.query.split("&")) if parts.query else ""
    if netloc == parts.netloc and query == parts.query:
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _masked_pair(pair: str, known: frozenset[str] | set[str]) -> str:
    name, equals, value = pair.partition("=")
    plain = unquote_plus(value)
    return (
        f"{name}={mask(plain)}" if equals and (secret_param(unquote_plus(name)) or plain in known) else pair
    )


def entropy_bits_per_char(value: str) -> float:
    """Shannon entropy of the characters of `value` (0 for a repeated character)."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


# A token that may be a secret: what env secrets are made of (hex, base64, base64url, JWT parts).
_TOKEN = re.compile(r"[A-Za-z0-9_\-+/.~]{8,}={0,2}")
_TOKEN_PART = re.compile(r"[A-Za-z0-9_\-+~]{8,}={0,2}")  # the same without / and . (paths, hosts)
_RANDOM_TOKEN = re.compile(r"[A-Za-z0-9_\-+~]{20,}={0,2}")
# `api_key=...`, `password: ...`: a value secret by the name before it (the rule for query strings)
# (a lookahead, so `note: api_key=...` is looked at from `api_key` too)
_NAMED_VALUE = re.compile(r"(?=\b([A-Za-z][A-Za-z0-9_\-]*)[ \t]*[=:][ \t]*[\"']?([^\s\"'&,;]{6,}))")


def secret_like(text: str) -> list[str]:
    """The parts of free text an operator typed (a note, a parameter) that look like secrets: a value
    after a secret's name (`api_key=...`, `token: ...`), or a long random-looking token (letters and
    digits, at least 3.5 bits of entropy per character)."""
    found = [m.group(2) for m in _NAMED_VALUE.finditer(text) if secret_param(m.group(1))]
    for token in _RANDOM_TOKEN.findall(text):
        letters, digits = any(c.isalpha() for c in token), any(c.isdigit() for c in token)
        if letters and digits and entropy_bits_per_char(token) >= 3.5:
            found.append(token)
    return found


class Redactor:
    """Remembers every secret value this process has seen and scrubs it from any text.

    Validators register secrets as they read them, so that error messages and tracebacks — text that
    was never meant to hold a secret — are scrubbed on their way out too.
    """

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._fingerprints: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        if len(value) >= _MIN_REDACT_LEN:
            with self._lock:
                self._values.add(value)

    def register_fingerprints(self, fingerprints: Iterable[str]) -> None:
        """Fingerprints of secrets no longer in hand (rotated-away values from earlier runs): a token
        of a secret's shape whose fingerprint is one of these is masked too."""
        with self._lock:
            self._fingerprints = self._fingerprints | frozenset(fingerprints)

    def known(self) -> tuple[list[str], list[str]]:
        """The values and fingerprints this redactor masks (for a masking process of opsdash's own)."""
        with self._lock:
            return sorted(self._values), sorted(self._fingerprints)

    def clear(self) -> None:
        with self._lock:
            self._values.clear()
            self._fingerprints = frozenset()

    def redact(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
            fingerprints = self._fingerprints
        for value in values:
            if value in text:
                text = text.replace(value, mask(value))
        if fingerprints:

            def seen(match: re.Match[str]) -> str:
                token = match.group()
                return mask(token) if fingerprint(token) in fingerprints else token

            # whole tokens first (a base64 value with / in it), then their parts (a value in a path)
            text = _TOKEN_PART.sub(seen, _TOKEN.sub(seen, text))
        return text

    def unmask(self, text: str) -> str:
        """The inverse of `redact` for the secrets this process knows (from the target's env files):
        a resumed runbook session gets back the parameter it was given, never from storage."""
        with self._lock:
            values = list(self._values)
        for value in values:
            shown = mask(value)
            if shown in text:
                text = text.replace(shown, value)
        return text


redactor = Redactor()
