"""What changed between two runs: new, resolved and changed findings; env keys whose value changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from opsdash.core.findings import Finding


@dataclass(frozen=True)
class RunDiff:
    new: tuple[Finding, ...]
    resolved: tuple[Finding, ...]
    changed: tuple[tuple[Finding, Finding], ...]  # (before, after): severity or detail differs
    env_changed: tuple[str, ...]
    env_added: tuple[str, ...]
    env_removed: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (
            self.new
            or self.resolved
            or self.changed
            or self.env_changed
            or self.env_added
            or self.env_removed
        )


def diff_runs(
    before: Sequence[Finding],
    after: Sequence[Finding],
    env_before: Mapping[str, str] | None = None,
    env_after: Mapping[str, str] | None = None,
) -> RunDiff:
    """Compare two runs. Env maps are key -> fingerprint (never values)."""
    a = {f.key: f for f in before}
    b = {f.key: f for f in after}
    changed = tuple(
        (a[k], b[k])
        for k in sorted(a.keys() & b.keys())
        if (a[k].severity, a[k].detail) != (b[k].severity, b[k].detail)
    )
    eb, ea = env_before or {}, env_after or {}
    return RunDiff(
        new=tuple(b[k] for k in sorted(b.keys() - a.keys())),
        resolved=tuple(a[k] for k in sorted(a.keys() - b.keys())),
        changed=changed,
        env_changed=tuple(sorted(k for k in eb.keys() & ea.keys() if eb[k] != ea[k])),
        env_added=tuple(sorted(ea.keys() - eb.keys())),
        env_removed=tuple(sorted(eb.keys() - ea.keys())),
    )


def why_not_comparable(a_kind: str, a_target: str, b_kind: str, b_target: str) -> str | None:
    """None when two runs can be diffed; else why not, in words an operator can act on (the
    History pane and `opsdash history diff` both ask this). A diff
    compares findings and env fingerprints, so both runs must be of the same kind, on the same
    target, and not runbook sessions (which have steps, not findings)."""
    if "runbook" in (a_kind, b_kind):
        return "a runbook session has steps, not findings: show it instead"
    if a_kind != b_kind:
        return f"a {a_kind} run and a {b_kind} run check different things: compare two {a_kind} runs"
    if a_target != b_target:
        return f"the runs are of different targets ({a_target} and {b_target})"
    return None
