"""Credentials: placeholders, weak or reused secrets, dev values, fallbacks and client exposure."""

from __future__ import annotations

import fnmatch
import os
import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from opsdash.core.findings import Finding, Severity
from opsdash.core.rules import rule
from opsdash.core.secrets import entropy_bits_per_char, fingerprint, mask
from opsdash.core.validators.context import Context, parse_bool

_PLACEHOLDER_WORDS = (
    "changeme",
    "change_me",
    "change-me",
    "replace",
    "your_",
    "your-",
    "placeholder",
    "example",
    "dummy",
    "todo",
    "fixme",
    "fake",
    "sample",
    "xxxx",
    "insert",
    "${",
    "<",
    ">",
)
_PLACEHOLDER_VALUES = {"secret", "password", "123456", "12345678", "null", "none", "undefined", "nil", "key"}
_TEST_MARKER = re.compile(r"(?:^|[^a-z])(?:test|sandbox|dev)(?:[^a-z]|$)")
_MIN_ENTROPY = 3.0
_MIN_DISTINCT = 6
BUNDLE_SUFFIXES = {
    ".js",
    ".mjs",
    ".cjs",
    ".map",
    ".html",
    ".htm",
    ".json",
    ".css",
    ".txt",
    ".svg",
    ".webmanifest",
}
MAX_BUNDLE_FILE = 50_000_000
_MIN_SCANNED_SECRET = 8


def placeholder_reason(value: str) -> str | None:
    lowered = value.strip().lower()
    if lowered in _PLACEHOLDER_VALUES:
        return "a well-known placeholder"
    if len(set(lowered)) == 1:
        return "one character repeated"
    for word in _PLACEHOLDER_WORDS:
        if word in lowered:
            return f"contains {word!r}"
    if _TEST_MARKER.search(lowered):
        return "marked as a test, sandbox or dev credential"
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
        parsed = parse_bool(value) if value.strip() else False
        if parsed is None:
            yield r.finding(
                key,
                f"{key} is {value!r}, not a boolean; the app may treat it as enabled.",
                severity=Severity.WARN,
                evidence=ctx.evidence(key),
            )
        elif parsed:
            yield r.finding(
                key,
                f"{key} is {value!r}: the app may silently use fallback credentials.",
                evidence=ctx.evidence(key),
            )


def check_client_exposed(ctx: Context) -> Iterator[Finding]:
    for key, _value in ctx.secret_items():
        if ctx.profile.is_client_exposed(key):
            prefix = next(p for p in ctx.profile.target.client_prefixes if key.startswith(p))
            yield rule("secret-client-exposed").finding(
                key,
                f"{key} is a secret under the client-exposed prefix {prefix}: the bundler inlines it into "
                "browser JavaScript, where every visitor can read it.",
                evidence=ctx.evidence(key, prefix=prefix),
            )


def _bundle_files(root: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(root):
        for name in sorted(files):
            path = Path(dirpath) / name
            if path.suffix.lower() in BUNDLE_SUFFIXES and not path.is_symlink():
                yield path


def check_bundle(ctx: Context) -> Iterator[Finding]:
    root = ctx.profile.target.bundle_dir
    if root is None:
        return
    r = rule("secret-in-bundle")
    if not root.is_dir():
        yield r.finding(
            str(root),
            f"The bundle directory {root} does not exist, so it could not be scanned for secrets.",
            severity=Severity.UNKNOWN,
            title="Bundle not scanned",
            remediation="Build the front end first, or fix target.bundle_dir in the profile.",
            runbook=None,
        )
        return
    needles = [(k, v.encode()) for k, v in ctx.secret_items() if len(v) >= _MIN_SCANNED_SECRET]
    hits: dict[str, list[str]] = defaultdict(list)
    for path in _bundle_files(root):
        try:
            if path.stat().st_size > MAX_BUNDLE_FILE:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        for key, needle in needles:
            if needle in data:
                hits[key].append(str(path.relative_to(root)))
    for key, files in sorted(hits.items()):
        shown = ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else "")
        yield r.finding(
            key,
            f"The value of {key} appears literally in {len(files)} built file(s) in {root}: {shown}.",
            evidence=ctx.evidence(key, files=shown),
        )


CHECKS = (
    check_placeholders_and_strength,
    check_reuse,
    check_matches_dev,
    check_fallback,
    check_client_exposed,
    check_bundle,
)
