"""Credentials: placeholders, weak or reused secrets, dev values, fallbacks and client exposure."""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping

from opsdash.core.findings import Finding, Severity
from opsdash.core.rules import rule
from opsdash.core.secrets import entropy_bits_per_char, fingerprint, mask
from opsdash.core.validators.bundle import LABEL_ORDER, BundleScan, scan_bundle
from opsdash.core.validators.context import Context, must_be_off

FOUND = "found in the bundle"
NOT_FOUND = "not found in the scanned bundle"
NOT_SCANNED = "no bundle scanned"

_MIN_ENTROPY = 3.0
_MIN_DISTINCT = 6

# Placeholders are recognised by the shape of the whole value, never by a character or word somewhere
# inside it: a random 32-character password contains `<`, `>` or `${` about half the time, and a
# random base64url one holds `dev` or `todo` between two `-` often enough to matter.
_WRAPPED = (
    (re.compile(r"<\s*[A-Za-z][\w .:/-]*>"), "a <...> template marker"),
    (re.compile(r"\[\s*[A-Za-z][\w .:/-]*\]"), "a [...] template marker"),
    (re.compile(r"\{\{\s*[A-Za-z][\w .:/-]*\}\}"), "a {{...}} template marker"),
    (re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?[-=?+][^{}]*)?\}"), "an unexpanded ${...} reference"),
    (re.compile(r"\$[A-Z_][A-Z0-9_]*"), "an unexpanded $NAME reference"),
    (re.compile(r"%[A-Z_][A-Z0-9_]*%"), "an unexpanded %NAME% reference"),
)
_WORDS = re.compile(r"[A-Za-z0-9]+(?:[-_. ]+[A-Za-z0-9]+)*")
_SEPARATORS = re.compile(r"[-_. ]+")
# `sk_live_xxxxxxxx`, `xxxx-xxxx-xxxx`: the filler must be a third of the value (random base64url ends
# in `-Xxx` about once in a million).
_FILLER = re.compile(r"(?:[A-Za-z0-9]+[-_:])*?[-_: ]*(?P<fill>(?:[xX]{3,}|\*{3,}|•{3,}|#{3,})[-_: xX*•#]*)")
_ELLIPSIS = re.compile(r"(?:[A-Za-z0-9]+[-_:])*[A-Za-z0-9]*(?:\.{3,}|…)")
_TEST_PREFIX = re.compile(r"[A-Za-z]{2,8}_(?:test|sandbox|dev)_", re.IGNORECASE)
_SEQUENCES = (
    "01234567890123456789",
    "98765432109876543210",
    "abcdefghijklmnopqrstuvwxyz",
    "zyxwvutsrqponmlkjihgfedcba",
    "qwertyuiopasdfghjklzxcvbnm",
)
# Compared with the value lowercased, non-alphanumerics removed and trailing digits dropped.
_WHOLE = frozenset(
    {
        "changeme", "replaceme", "placeholder", "todo", "tbd", "fixme", "dummy", "example", "sample",
        "fake", "test", "demo", "secret", "password", "passwd", "pass", "key", "apikey", "secretkey",
        "token", "mysecret", "supersecret", "yoursecret", "yourkey", "yourapikey", "yourtoken", "setme",
        "notset", "null", "none", "nil", "undefined", "empty", "default", "xxx", "letmein", "qwerty",
        "admin", "na",
    }
)  # fmt: skip
_LEADERS = frozenset(
    {
        "your", "replace", "replaceme", "change", "changeme", "insert", "enter", "paste", "fill",
        "placeholder", "example", "sample", "dummy", "fake", "test", "demo", "sandbox", "todo", "fixme",
    }
)  # fmt: skip
# Three-letter leaders start a random base64url value about once in a million: they need a second word.
_SHORT_LEADERS = frozenset({"put", "add", "set"})
_FOLLOWERS = frozenset(
    {"your", "the", "a", "me", "real", "here", "key", "secret", "token", "password", "value", "api"}
)
_ANYWHERE = frozenset({"changeme", "replaceme", "placeholder"})
_PAIRS = frozenset({("change", "me"), ("replace", "me"), ("replace", "with"), ("set", "me"), ("fill", "me")})


def placeholder_reason(value: str) -> str | None:
    """Why the whole of `value` has the shape of a placeholder or test value, or None.

    The reason names the shape or a placeholder word, never the value."""
    text = value.strip()
    lowered = text.lower()
    if not text or len(set(lowered)) == 1:
        return "one character repeated"
    for pattern, reason in _WRAPPED:
        if pattern.fullmatch(text):
            return f"the whole value is {reason}"
    normalized = re.sub(r"[^a-z0-9]", "", lowered)
    stem = normalized.rstrip("0123456789")
    if stem in _WHOLE:
        return "the whole value is a well-known placeholder word"  # not echoed: it may be a real password
    if _repeated_unit(lowered):
        return "a short sequence repeated"
    if len(lowered) >= 4 and any(lowered in seq for seq in _SEQUENCES):
        return "a counting or keyboard sequence"
    filler = _FILLER.fullmatch(text)
    if filler and len(filler["fill"]) * 3 >= len(text):
        return "filled in with x, * or # characters"
    if _ELLIPSIS.fullmatch(text):
        return "cut short with an ellipsis, as in documentation"
    if _TEST_PREFIX.match(text):
        return "marked as a test, sandbox or dev credential"
    if _WORDS.fullmatch(text):
        return _wording_reason(_SEPARATORS.split(lowered))
    return None


def _repeated_unit(text: str) -> bool:
    n = len(text)
    return any(n % size == 0 and n >= 3 * size and text == text[:size] * (n // size) for size in (2, 3, 4))


def _wording_reason(words: list[str]) -> str | None:
    """Placeholder wording in a value made only of words and separators (`your-api-key-here`)."""
    while len(words) > 1 and words[-1].isdigit():
        words = words[:-1]
    if len(words) < 2:
        return None
    first = words[0]
    if first in _LEADERS or (first in _SHORT_LEADERS and words[1] in _FOLLOWERS):
        return f"starts with {first!r}"
    if words[-1] == "here":
        return "ends with 'here'"
    for word in words:
        if word in _ANYWHERE:
            return f"contains {word!r}"
    for pair in itertools.pairwise(words):
        if pair in _PAIRS:
            return f"contains {' '.join(pair)!r}"
    return None


def check_placeholders_and_strength(ctx: Context) -> Iterator[Finding]:
    min_len = ctx.profile.env.min_secret_length
    for key, value in ctx.secret_items():
        reason = placeholder_reason(value)
        if reason:
            yield rule("secret-placeholder").finding(
                key, f"{key} looks like a placeholder or test value ({reason}).", evidence=ctx.evidence(key)
            )
            continue
        problems = []
        if len(value) < min_len:
            problems.append(f"{len(value)} characters, fewer than {min_len}")
        bits = entropy_bits_per_char(value)
        if bits < _MIN_ENTROPY or len(set(value)) < _MIN_DISTINCT:
            problems.append(f"low variety ({len(set(value))} distinct characters, {bits:.1f} bits/char)")
        if problems:
            yield rule("secret-weak").finding(
                key, f"{key} is weak: {'; '.join(problems)}.", evidence=ctx.evidence(key)
            )


def check_reuse(ctx: Context) -> Iterator[Finding]:
    by_value: dict[str, list[str]] = defaultdict(list)
    for key, value in ctx.secret_items():
        by_value[value].append(key)
    for value, keys in sorted(by_value.items(), key=lambda kv: kv[1]):
        if len(keys) < 2:
            continue
        names = ", ".join(keys)
        yield rule("secret-reused").finding(
            names,
            f"{names} hold the same value ({fingerprint(value)}); a leak or rotation of one is a leak or "
            "rotation of all.",
            evidence={"fingerprint": mask(value), "sources": ", ".join(ctx.env.source_of(k) for k in keys)},
        )


def check_matches_dev(ctx: Context) -> Iterator[Finding]:
    if ctx.development is None:
        return
    dev_values = {v.value: v for v in ctx.development.values.values() if v.value}
    for key, value in ctx.secret_items():
        dev = dev_values.get(value)
        if dev is not None:
            yield rule("secret-matches-dev").finding(
                key,
                f"{key} has the same value as {dev.key} in the development environment ({dev.source}).",
                evidence=ctx.evidence(key, development=dev.source),
            )


def check_fallback(ctx: Context) -> Iterator[Finding]:
    patterns = [p.upper() for p in ctx.profile.env.fallback_variables]
    r = rule("fallback-credentials-enabled")
    for key in sorted(ctx.env.values):
        if not any(fnmatch.fnmatchcase(key.upper(), p) for p in patterns):
            continue
        value = ctx.env.values[key].value
        if not value.strip():
            continue  # set but empty: off
        yield from must_be_off(
            ctx,
            r,
            key,
            value,
            on=f"{key} is {value!r}: the app may silently use fallback credentials.",
            not_boolean=f"{key} is {value!r}, not a boolean; the app may treat it as enabled.",
            not_boolean_severity=Severity.WARN,
        )


def _where(files: Mapping[str, tuple[str, ...]]) -> str:
    parts = [f"{name} ({', '.join(labels)})" for name, labels in files.items()]
    return ", ".join(parts[:5]) + (f" and {len(parts) - 5} more" if len(parts) > 5 else "")


def _scan(ctx: Context) -> BundleScan | str:
    """The scan of the profile's bundle, or why there is none."""
    root = ctx.profile.target.bundle_dir
    if root is None:
        return "target.bundle_dir is not set; point it at the built front end, e.g. dist"
    if not root.is_dir():
        return f"{root} does not exist"
    return scan_bundle(root, ctx.secret_items())


def _client_exposed(ctx: Context, scan: BundleScan | str) -> Iterator[Finding]:
    r = rule("secret-client-exposed")
    for key, value in ctx.secret_items():
        if not ctx.profile.is_client_exposed(key):
            continue
        prefix = next(p for p in ctx.profile.target.client_prefixes if key.startswith(p))
        head = f"{key} is a secret under the client-exposed prefix {prefix}"
        inlined = (
            f"the bundler inlines a {prefix} variable into browser JavaScript wherever the code reads it"
        )
        if isinstance(scan, BundleScan) and scan.hits.get(key):
            where = _where(scan.hits[key])
            yield r.finding(
                key,
                f"{head}, and its value is in the scanned bundle in {scan.root}: {where}. Every visitor "
                "can read it.",
                evidence=ctx.evidence(key, prefix=prefix, bundle=FOUND, files=where),
            )
        elif isinstance(scan, BundleScan) and key in scan.searched:
            partly = f"; {len(scan.skipped)} file(s) could not be scanned" if scan.skipped else ""
            yield r.finding(
                key,
                f"{head}. Its value was not found in the scanned bundle ({scan.root}, {scan.files} file(s), "
                f"searched as written, JS-escaped, and base64-, URL- and hex-encoded{partly}), so this build "
                f"does not seem to ship it. It stays critical: {inlined}, so the next build whose code reads "
                "it ships it to every visitor, and an earlier build may already have.",
                evidence=ctx.evidence(key, prefix=prefix, bundle=NOT_FOUND, scanned=str(scan.root)),
                remediation="Rename the variable without the client prefix and read it only on the server; "
                "rotate the secret if any deployed build may have shipped it; rebuild and rescan.",
            )
        else:
            why = (
                f"the value, {len(value)} characters, is too short to search for"
                if isinstance(scan, BundleScan)
                else scan
            )
            yield r.finding(
                key,
                f"{head}: {inlined}, where every visitor can read it. No bundle was scanned ({why}), so "
                "it is not known whether the current build ships it.",
                evidence=ctx.evidence(key, prefix=prefix, bundle=NOT_SCANNED),
            )


def _in_bundle(ctx: Context, scan: BundleScan | str) -> Iterator[Finding]:
    r = rule("secret-in-bundle")
    root = ctx.profile.target.bundle_dir
    if root is not None and not isinstance(scan, BundleScan):
        yield r.finding(
            str(root),
            f"The bundle directory {root} does not exist, so it could not be scanned for secrets.",
            severity=Severity.UNKNOWN,
            title="Bundle not scanned",
            remediation="Build the front end first, or fix target.bundle_dir in the profile.",
            runbook=None,
        )
        return
    if not isinstance(scan, BundleScan):
        return
    for key, files in sorted(scan.hits.items()):
        where = _where(files)
        encodings = sorted({label for labels in files.values() for label in labels}, key=LABEL_ORDER.index)
        yield r.finding(
            key,
            f"The value of {key} appears in {len(files)} built file(s) in {scan.root}: {where}.",
            evidence=ctx.evidence(key, files=where, encodings=", ".join(encodings)),
        )
    if scan.skipped:
        shown = "; ".join(scan.skipped[:5]) + (
            f"; and {len(scan.skipped) - 5} more" if len(scan.skipped) > 5 else ""
        )
        yield r.finding(
            str(scan.root),
            f"{len(scan.skipped)} file(s) in {scan.root} could not be scanned for secrets: {shown}.",
            severity=Severity.UNKNOWN,
            title="Bundle partly scanned",
            remediation="Check why the files are unreadable or so large (an unminified or vendored build?), "
            "then rescan.",
            runbook=None,
        )


def check_exposure(ctx: Context) -> Iterator[Finding]:
    """`secret-client-exposed` and `secret-in-bundle`, from one scan of the bundle."""
    scan = _scan(ctx)
    yield from _client_exposed(ctx, scan)
    yield from _in_bundle(ctx, scan)


CHECKS = (
    check_placeholders_and_strength,
    check_reuse,
    check_matches_dev,
    check_fallback,
    check_exposure,
)
