"""Runbooks: where they are found, how their check gates run, and their sessions (every
transition saved before it is acted on, and audited)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opsdash.core.errors import ConfigError, InputError, OpsdashError
from opsdash.core.findings import Severity
from opsdash.core.health.probes.base import ProbeContext
from opsdash.core.health.runner import run_once
from opsdash.core.profile import Check, Profile
from opsdash.core.runbooks.exclusive import ExclusiveConflict, Holder
from opsdash.core.runbooks.executor import AuditHook, Executor, GateResult, GateRunner
from opsdash.core.runbooks.gates import Gate
from opsdash.core.runbooks.model import Runbook
from opsdash.core.runbooks.parser import Problem as RunbookProblem
from opsdash.core.runbooks.parser import parse as parse_runbook
from opsdash.core.text import did_you_mean
from opsdash.core.validators import load_target_env, validate
from opsdash.ops.base import Ops, probe_context
from opsdash.storage.rows import SessionRow

_PACKAGE = Path(__file__).resolve().parents[2]
_SHIPPED = [_PACKAGE / "runbooks", _PACKAGE.parent / "runbooks"]


def shipped_runbooks_dir() -> Path | None:
    """The runbooks that ship with opsdash: in the wheel, or in a checkout."""
    return next((d for d in _SHIPPED if d.is_dir()), None)


def runbook_dirs(profile: Profile | None) -> list[Path]:
    dirs = [d for d in (profile.runbooks.dirs if profile else []) if d.is_dir()]
    shipped = shipped_runbooks_dir()
    if shipped is not None and (profile is None or profile.runbooks.shipped) and shipped not in dirs:
        dirs.append(shipped)
    return dirs


def load_runbooks(dirs: Sequence[Path]) -> tuple[list[Runbook], list[RunbookProblem]]:
    """Every runbook in the directories, first one wins for a duplicate id."""
    books: dict[str, Runbook] = {}
    problems: list[RunbookProblem] = []
    for directory in dirs:
        for path in sorted(directory.glob("*.md")):
            book, found = parse_runbook(path)
            problems.extend(found)
            if book is not None and book.id not in books:
                books[book.id] = book
    return sorted(books.values(), key=lambda b: b.id), problems


def looks_like_path(ref: str) -> bool:
    """`./rollback.md`, `/srv/runbooks/x.md`, `drill.md`: a path. `rollback`: an id, even when the
    current directory happens to hold a file of that name (deploy repositories often do)."""
    return "/" in ref or ref.endswith(".md") or ref.startswith(".")


def find_runbook(ref: str, profile: Profile | None) -> Runbook:
    """A runbook by id (from the profile's dirs and the shipped ones, only) or by a path."""
    path = Path(ref)
    if looks_like_path(ref):
        book, problems = parse_runbook(path)
        if book is None:
            raise InputError(
                str(problems[0]) + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
            )
        return book
    books, _problems = load_runbooks(runbook_dirs(profile))
    for book in books:
        if book.id == ref:
            return book
    known = ", ".join(b.id for b in books) or "none found"
    hint = did_you_mean(ref, [b.id for b in books])
    raise InputError(f"no runbook {ref!r}{hint} (known: {known}); see 'opsdash runbook list'")


def gate_runner(
    ops: Ops, *, env_files: Sequence[Path] | None = None, from_env: bool | None = None
) -> GateRunner:
    """Check blocks run the profile's health checks, environment validation, or ad-hoc http checks."""
    import asyncio

    from pydantic import TypeAdapter, ValidationError

    loaded = ops.config
    cached: list[ProbeContext] = []

    def context() -> ProbeContext:
        """The target's credentials and trust, read once for the session (not per gate)."""
        if not cached:
            if loaded is not None:
                cached.append(ops.probe_context(env_files=env_files, from_env=from_env))
            else:  # ad-hoc http gates need no profile
                bare = Profile.model_validate(
                    {"target": {"name": "runbook", "base_url": "https://localhost"}}
                )
                cached.append(probe_context(bare))
        return cached[0]

    def run(gates: Sequence[Gate]) -> list[GateResult]:
        results: list[GateResult] = []
        if loaded is None and any(g.kind in ("check", "validate", "trace") for g in gates):
            return [GateResult(g.label(), False, "no profile loaded: pass --config") for g in gates]
        checks: list[Any] = []
        for gate in gates:
            if gate.kind == "check":
                assert loaded is not None
                check = loaded.profile.check(gate.target)
                if check is None:
                    results.append(GateResult(gate.label(), False, "no such check in the profile"))
                else:
                    checks.append((gate, check))
            elif gate.kind == "http":
                try:
                    checks.append(
                        (
                            gate,
                            TypeAdapter(Check).validate_python(
                                {
                                    "name": "runbook-gate",
                                    "kind": "http",
                                    "url": gate.target,
                                    "conditions": list(gate.conditions),
                                    "retries": 0,
                                    "timeout": 10,
                                }
                            ),
                        )
                    )
                except ValidationError as exc:
                    results.append(GateResult(gate.label(), False, f"invalid: {exc.errors()[0]['msg']}"))
            elif gate.kind == "trace":
                results.append(trace_gate(ops, gate, env_files=env_files, from_env=from_env))
            else:
                assert loaded is not None
                try:
                    report = validate(loaded.profile, env_files=env_files, from_env=from_env).report
                except (ConfigError, InputError) as exc:
                    results.append(GateResult(gate.label(), False, str(exc)))
                    continue
                passed = report.verdict.rank < Severity.UNKNOWN.rank
                counts = report.counts()
                worst = [f for f in report.sorted_findings() if f.severity.rank >= Severity.WARN.rank][:5]
                results.append(
                    GateResult(
                        gate.label(),
                        passed,
                        f"{report.verdict.value}: {counts['CRIT']} critical, {counts['WARN']} warning",
                        tuple(f"{f.severity.value:<5} {f.rule}: {f.title}" for f in worst),
                    )
                )
        if checks:
            ctx = context()
            outcomes = asyncio.run(run_once([c for _g, c in checks], ctx))
            for (gate, _check), outcome in zip(checks, outcomes, strict=True):
                ok = outcome.severity.rank < Severity.UNKNOWN.rank
                evidence = tuple(
                    f"{'✓' if c.ok else '✗'} {c.text}  (actual: {c.error or c.actual})"
                    for c in outcome.conditions
                )
                results.append(
                    GateResult(gate.label(), ok, f"{outcome.severity.value}: {outcome.summary}", evidence)
                )
        order = {g.label(): i for i, g in enumerate(gates)}
        return sorted(results, key=lambda r: order.get(r.label, 0))

    return run


def trace_gate(
    ops: Ops, gate: Gate, *, env_files: Sequence[Path] | None = None, from_env: bool | None = None
) -> GateResult:
    """The credential trace as a gate: it passes when no secret is served live and no previous
    secret is accepted by the provider (nothing CRIT), and everything could be looked at."""
    from opsdash.ops import trace_live

    try:
        traced = trace_live.run(ops, env_files=env_files, from_env=from_env, record=False, live=True).report
    except (ConfigError, InputError) as exc:
        return GateResult(gate.label(), False, str(exc))
    live = traced.summary.get("live") or {}
    assets = len(live.get("assets", [])) if isinstance(live, dict) else 0
    findings = sorted(traced.findings, key=lambda f: -f.severity.rank)
    verdict = max((f.severity for f in findings), key=lambda s: s.rank, default=Severity.OK)
    bad = [f for f in findings if f.severity.rank >= Severity.WARN.rank]
    rules: dict[str, int] = {}
    for f in bad:
        rules[f.rule] = rules.get(f.rule, 0) + 1
    named = ", ".join(f"{r} ×{n}" if n > 1 else r for r, n in rules.items()) or "nothing found"
    lines = tuple(f"{f.severity.value:<5} {f.rule}: {f.subject}: {f.title}" for f in bad[:8])
    unproved = _unproved(traced.summary)
    if unproved and verdict.rank < Severity.UNKNOWN.rank:
        return GateResult(
            gate.label(),
            False,
            f"UNKNOWN: {unproved}; {assets} served asset(s) scanned",
            (*lines, f"UNKNOWN previous-secret-still-accepted: {unproved}"),
        )
    return GateResult(
        gate.label(),
        verdict.rank < Severity.UNKNOWN.rank,
        f"{verdict.value}: {named}; {assets} served asset(s) scanned",
        lines,
    )


def _unproved(summary: Mapping[str, object]) -> str:
    """Why the trace cannot say the old API secret is dead, or "": the record keeps previous
    values of it (by fingerprint) but none was found in what was traced, so none was tried at the
    provider. Passing then would call a credential revoked that nobody asked the provider about."""
    known, tried = summary.get("previous_api_secret", 0), summary.get("previous_tried", 0)
    if not isinstance(known, int) or not known or (isinstance(tried, int) and tried):
        return ""
    return (
        f"{known} previous value(s) of the provider's API secret are known only by fingerprint and none "
        "was found in what was traced (the live site, [target.trace] repo and paths), so none could be "
        "tried at the provider: add where the old value was (its repository, an old build) to "
        "[target.trace] and retry"
    )


def lint_before_run(ops: Ops, book: Runbook) -> None:
    """A runbook with problems is refused before its first step, not found out at step 4."""
    from opsdash.core.runbooks.lint import lint

    profile = ops.profile_or_none
    problems = lint(book, [c.name for c in profile.checks] if profile else None)
    if problems:
        listed = "; ".join(str(p) for p in problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        raise InputError(f"runbook {book.id} has problems, fix them first: {listed}{more}")


def learn_secrets(ops: Ops, *, env_files: Sequence[Path] | None = None, from_env: bool | None = None) -> None:
    """Teach the masker the target's secrets before any step runs, so a command that prints one, or
    a parameter that is one, is masked in the output, the session, history and the audit log."""
    profile = ops.profile_or_none
    if profile is None:
        return
    with contextlib.suppress(OpsdashError):  # an unreadable env file must not block an incident runbook
        load_target_env(profile, env_files=env_files, from_env=from_env, required=False)


def dry_run_gates(
    ops: Ops, book: Runbook, *, env_files: Sequence[Path] | None = None, from_env: bool | None = None
) -> GateRunner:
    """A dry run is audited; its check gates really run (commands never do)."""
    learn_secrets(ops, env_files=env_files, from_env=from_env)
    ops.audit.event("operator_action", "runbook-dry-run", subject=book.id)
    return gate_runner(ops, env_files=env_files, from_env=from_env)


def audit_hook(ops: Ops) -> AuditHook:
    def hook(action: str, subject: str, outcome: str, details: Mapping[str, Any]) -> None:
        ops.audit.event("operator_action", action, subject=subject, outcome=outcome, details=dict(details))

    return hook


def catalogue(
    ops: Ops,
) -> tuple[list[Runbook], list[RunbookProblem], dict[str, SessionRow | None], dict[str, Holder]]:
    """Every runbook opsdash offers, the problems found reading them, each one's last session, and
    the active session holding each exclusive group for this target (whichever process or
    operator started it)."""
    books, problems = load_runbooks(runbook_dirs(ops.profile_or_none))
    with ops.history() as history:
        last = {b.id: history.sessions.last(b.id) for b in books}
        held = (
            {h.group: h for h in history.sessions.holders(target_name(ops))}
            if any(b.exclusive for b in books)
            else {}
        )
    return books, problems, last, held


class Sessions:
    """Runbook sessions on one history connection, which a dashboard's session keeps open across
    workers (`shared`). Start one, or resume one by id or 'latest'."""

    def __init__(
        self,
        ops: Ops,
        *,
        shared: bool = False,
        env_files: Sequence[Path] | None = None,
        from_env: bool | None = None,
    ) -> None:
        self.ops = ops
        learn_secrets(ops, env_files=env_files, from_env=from_env)
        self.history = ops.history(shared=shared)
        self.store = self.history.sessions
        self.runner = gate_runner(ops, env_files=env_files, from_env=from_env)
        self.audit = audit_hook(ops)

    def start(self, book: Runbook, params: dict[str, str]) -> Executor:
        """Start a session; ExclusiveConflict (audited) while another session, in any process,
        holds the runbook's exclusive group for this target."""
        lint_before_run(self.ops, book)
        try:
            executor = Executor.start(
                book, params, self.ops.operator, self.store, self.runner, self.audit, target_name(self.ops)
            )
            for holder in self.store.taken_over:  # sessions whose opsdash had died: the record says so
                self.audit(
                    "runbook-group-taken-over",
                    book.id,
                    "abandoned",
                    {
                        "session": holder.session_id,
                        "operator": holder.operator,
                        "driver": holder.driver,
                        "group": holder.group,
                        "by": executor.state.id,
                    },
                )
            return executor
        except ExclusiveConflict as exc:
            held = exc.holder
            self.audit(
                "runbook-start-refused",
                book.id,
                "refused",
                {"held_by": held.session_id, "operator": held.operator, "group": held.group},
            )
            raise

    def resume(self, book: Runbook, ref: str) -> Executor:
        """Resume a session by id, or the newest unfinished one of this runbook with 'latest'."""
        session_id = self.store.latest_active(book.id) if ref == "latest" else ref
        if session_id is None:
            raise InputError(f"no unfinished session of {book.id} to resume")
        try:
            executor = Executor.resume(book, session_id, self.store, self.runner, self.audit)
        except (LookupError, ValueError) as exc:
            raise InputError(str(exc)) from None
        # this process drives it now: it holds the session's lock (shared with its other drivers)
        self.store.hold(executor.state)
        return executor

    def close(self) -> None:
        self.history.close()

    def __enter__(self) -> Sessions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def lint_paths(paths: list[Path], known_checks: list[str] | None) -> tuple[int, list[str]]:
    """Lint runbook files and directories; (how many runbooks, every problem as file:line: text)."""
    from opsdash.core.runbooks.lint import lint
    from opsdash.core.runbooks.parser import parse

    problems: list[str] = []
    count = 0
    for path in paths:
        files = sorted(path.glob("*.md")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            problems.append(f"{path}: no runbooks (*.md) here")
        for file in files:
            count += 1
            book, found = parse(file)
            if book is not None:
                found = lint(book, known_checks)
            problems.extend(str(p) for p in found)
    return count, problems


def suggested_params(ops: Ops, book: Runbook) -> dict[str, str]:
    """Values opsdash can look up for a runbook's parameters (`suggest = "previous-release"`): the
    releases `[deploy] version_url` or `version_command` reports. Only values a parameter accepts;
    nothing when the profile has no version source or it cannot be read."""
    wanted = [p for p in book.parameters if p.suggest]
    profile = ops.profile_or_none
    if not wanted or profile is None:
        return {}
    from opsdash.ops.versions import read_versions

    versions = read_versions(profile)
    if versions is None:
        return {}
    known = {"previous-release": versions.previous, "current-release": versions.current}
    return {
        p.name: value
        for p in wanted
        if (value := known.get(p.suggest or "")) is not None and p.problem(value) is None
    }


def target_name(ops: Ops) -> str:
    """What an exclusive group is held for: the profile's target ("" with no profile)."""
    profile = ops.profile_or_none
    return profile.target.name if profile is not None else ""


def resume_command(ops: Ops, holder: Holder) -> str:
    """The command that resumes the holder's session: its runbook by id when `runbook run` finds
    it by id, by its path otherwise."""
    import shlex

    path = Path(holder.runbook_path)
    ref = holder.runbook_id if path.parent in runbook_dirs(ops.profile_or_none) else str(path)
    return f"opsdash runbook run {shlex.quote(ref)} --resume {holder.session_id}"


def unfinished(ops: Ops) -> SessionRow | None:
    """The newest session still active (paused, interrupted, or with a command running), which the
    dashboard offers to resume on start. None when there is none, or no history yet."""
    if not ops.has_history():
        return None
    with ops.history(write=False) as history:
        return history.sessions.latest_active_row()
