"""What every validator reads: the profile, the effective environment and what to compare it with."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from opsdash.core.envfiles import EnvSnapshot
from opsdash.core.findings import Finding, Severity
from opsdash.core.profile import Profile
from opsdash.core.rules import Rule
from opsdash.core.secrets import mask, mask_url

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_SHOWN_CHARS = 80


def parse_bool(text: str) -> bool | None:
    """true/false/1/0/yes/no/on/off in any case; None when it is none of these."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    return None


@dataclass(frozen=True)
class Context:
    profile: Profile
    env: EnvSnapshot
    development: EnvSnapshot | None = None
    example_keys: Mapping[str, str] | None = None  # key -> "path:line" in the example file

    def is_secret(self, key: str) -> bool:
        return self.profile.is_secret(key)

    def secret_items(self) -> list[tuple[str, str]]:
        """(key, value) of every non-empty secret in the effective environment, sorted by key."""
        return sorted((k, v.value) for k, v in self.env.values.items() if v.value and self.is_secret(k))

    def shown(self, key: str, value: str | None = None) -> str:
        """A value as it may appear in output: masked for secrets, shortened otherwise."""
        value = self.env.get(key) if value is None else value
        if value is None:
            return "(not set)"
        if self.is_secret(key):
            return mask(value)
        value = mask_url(value)  # a connection string's password is a secret whatever the variable's name
        return value if len(value) <= _SHOWN_CHARS else value[: _SHOWN_CHARS - 1] + "…"

    def evidence(self, key: str, **extra: str) -> dict[str, str]:
        return {"source": self.env.source_of(key), "value": self.shown(key), **extra}


def must_be_off(
    ctx: Context,
    found: Rule,
    key: str,
    value: str,
    *,
    on: str,
    not_boolean: str,
    not_boolean_severity: Severity | None = None,
) -> Iterator[Finding]:
    """`found`'s finding for a setting that must be off (test mode, fallback credentials) when it is
    on, or when it is not a boolean at all (many apps read any non-empty text as on)."""
    parsed = parse_bool(value)
    if parsed is None:
        yield found.finding(key, not_boolean, severity=not_boolean_severity, evidence=ctx.evidence(key))
    elif parsed:
        yield found.finding(key, on, evidence=ctx.evidence(key))
