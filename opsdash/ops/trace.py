"""Credential trace: where are the target's secrets? The current values (from the env the profile
reads) and the previous ones (fingerprints kept per run) are looked for in the app's git history
(every object, incrementally), its working tree, build output and configured paths; the run is
recorded and audited like a validation.

Findings: `secret-in-git-history` and `secret-in-source` (a current value: CRIT, rotate),
`previous-secret-in-history` (a rotated-away value: INFO until the provider test says it still
works). A finding names the variable, the object or file, the commits (author date, pushed or
not), the line and the encoding, with the value only as a mask (`•••• (32 chars, sha256:…)`).
Previous values found (`TraceRun.previous`) carry the candidate in memory only, for the provider
test; nothing here prints or stores it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from opsdash.core.errors import ConfigError
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.rules import rule
from opsdash.core.secrets import fingerprint, mask
from opsdash.core.trace.files import FileHits, FileTrace, trace_paths
from opsdash.core.trace.git import GitTrace, Location, ObjectHits, Place, Progress, git_dir, trace_repository
from opsdash.core.trace.match import MIN_FORM, Hit, Matcher, Needle, PreviousPrint
from opsdash.ops.base import Ops

TRACE_RUNS = 200  # previous values: the secrets of this many of the newest env-reading runs
SHOWN = 5  # places listed in a finding's detail before "and N more"


@dataclass(frozen=True)
class PreviousFound:
    """A previous value found: where, and the candidate itself (in memory only, for the provider
    test; never rendered or stored)."""

    name: str
    fingerprint: str
    where: str
    value: str = field(repr=False)


@dataclass
class TraceRun:
    report: Report
    git: GitTrace | None = None
    files: FileTrace | None = None
    previous: list[PreviousFound] = field(default_factory=list)


@dataclass(frozen=True)
class Targets:
    """What a trace reads: the repository (or None) and the paths."""

    repo: Path | None
    paths: list[Path]


def targets(ops: Ops, repo: Path | None, paths: Sequence[Path] | None, use_git: bool) -> Targets:
    """--repo / --path, else the profile's `[target.trace]` (relative to the profile file) and
    its bundle_dir."""
    profile = ops.profile
    base = ops.config.path.resolve().parent if ops.config else Path.cwd()
    trace = profile.target.trace
    chosen_repo = repo if repo is not None else (base / trace.repo if trace.repo is not None else None)
    if paths:
        chosen = list(paths)
    else:
        chosen = [base / p for p in trace.paths]
        bundle = profile.target.bundle_dir
        if bundle is not None and bundle.exists() and all(bundle.resolve() != p.resolve() for p in chosen):
            chosen.append(bundle)
    return Targets(chosen_repo if use_git else None, chosen)


def needles(
    ops: Ops, *, env_files: Sequence[Path] | None, from_env: bool | None
) -> tuple[list[Needle], list[PreviousPrint], list[Finding]]:
    """The current secret values, the previous values' prints, and a finding per value too short to
    look for (it would match by chance)."""
    from opsdash.core.validators import load_target_env

    profile = ops.profile
    env = load_target_env(profile, env_files=env_files, from_env=from_env)
    current: list[Needle] = []
    notes: list[Finding] = []
    assert env is not None  # required=True: no env is a ConfigError
    for key, item in sorted(env.values.items()):
        if not item.value or not profile.is_secret(key):
            continue
        if len(item.value) < MIN_FORM:
            notes.append(
                rule("secret-in-git-history").finding(
                    key,
                    f"{key} is {len(item.value)} characters long: too short to look for (it would match by "
                    f"chance), so it was not traced.",
                    severity=Severity.UNKNOWN,
                    title="Secret not traced",
                    evidence={"value": mask(item.value)},
                    runbook=None,
                )
            )
            continue
        current.append(Needle(key, item.value))
    if not current and not notes:
        raise ConfigError(
            "no secret values to trace: the env the profile reads has no secret variables set "
            "(env.secrets, the provider's secret variables, or names like *SECRET*)"
        )
    live = {fingerprint(n.value) for n in current}
    with ops.history() as history:
        prints = history.runs.secret_prints(TRACE_RUNS)
    previous = [PreviousPrint(k, p, n) for k, p, n in prints if p not in live]
    return current, previous, notes


def run(
    ops: Ops,
    *,
    repo: Path | None = None,
    paths: Sequence[Path] | None = None,
    use_git: bool = True,
    full: bool = False,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    progress: Callable[[Progress], None] | None = None,
    record: bool = True,
) -> TraceRun:
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    where = targets(ops, repo, paths, use_git)
    if where.repo is None and not where.paths:
        raise ConfigError(
            "nothing to trace: pass --repo or --path, or set [target.trace] repo/paths (or "
            "target.bundle_dir) in the profile"
        )
    current, previous, findings = needles(ops, env_files=env_files, from_env=from_env)
    matcher = Matcher(current, previous)
    masks = {n.name: mask(n.value) for n in current}
    shapes = {(p.name, p.fingerprint): p for p in previous}
    result = TraceRun(report=Report.timed("trace", ops.profile.target.name, started, t0, []))
    summary: dict[str, object] = {"traced": sorted(masks), "previous": len(previous)}
    if where.repo is not None:
        result.git = _git(ops, where.repo, matcher, full, progress)
        summary["git"] = _git_summary(result.git)
        for obj in result.git.found:
            findings.extend(_object_findings(obj, masks, shapes, result.previous))
    if where.paths:
        profile_trace = ops.profile.target.trace
        result.files = trace_paths(
            where.paths, matcher, skip_dirs=profile_trace.skip_dirs, max_file=profile_trace.max_file_bytes
        )
        summary["files"] = {
            "paths": [str(p) for p in where.paths],
            "files": result.files.files,
            "bytes": result.files.bytes,
            "skipped": len(result.files.skipped),
        }
        for found in result.files.found:
            findings.extend(_file_findings(found, masks, shapes, result.previous))
        if result.files.skipped:
            findings.append(_skipped(result.files))
        if result.files.files == 0:
            findings.append(_nothing_searched(where.paths))
    result.report = Report.timed("trace", ops.profile.target.name, started, t0, findings, summary)
    if record:
        with ops.history() as history:
            history.runs.record(result.report, operator=ops.operator)
            ops.audit.report(result.report, history)
    return result


def _git(
    ops: Ops, repo: Path, matcher: Matcher, full: bool, progress: Callable[[Progress], None] | None
) -> GitTrace:
    gdir = git_dir(repo)
    with ops.history() as history:
        if full:
            history.trace.forget(gdir)
        scan = history.trace.scan_id(gdir, matcher.key)
        clean = history.trace.clean(scan) if scan is not None else set()
        places = history.trace.places(scan) if scan is not None else []
    known: dict[str, list[Place]] = {}
    for oid, commit, path in places:
        known.setdefault(oid, []).append(Place(commit, path))
    trace = trace_repository(repo, matcher, known_clean=clean, known_places=known, progress=progress)
    with ops.history() as history:
        history.trace.remember(
            gdir,
            matcher.key,
            trace.clean,
            {o.oid: [(loc.commit, loc.path) for loc in o.locations] for o in trace.found},
        )
    return trace


def _git_summary(trace: GitTrace) -> dict[str, object]:
    return {
        "repo": trace.repo,
        "objects_read": trace.objects,
        "bytes_read": trace.bytes,
        "objects_known_clean": trace.skipped,
        "objects_with_values": len(trace.found),
        "seconds": round(trace.seconds, 3),
    }


def _groups(hits: Iterable[Hit]) -> dict[tuple[str, bool, str], list[Hit]]:
    """Hits by (variable, previous, fingerprint of a previous candidate)."""
    groups: dict[tuple[str, bool, str], list[Hit]] = {}
    for hit in hits:
        key = (hit.name, hit.previous, fingerprint(hit.value) if hit.previous and hit.value else "")
        groups.setdefault(key, []).append(hit)
    return groups


def _lines(hits: list[Hit], binary: bool = False) -> str:
    if binary:
        return "byte offset " + ", ".join(str(h.offset) for h in hits[:SHOWN])
    lines = sorted({h.line for h in hits})
    return ("line " if len(lines) == 1 else "lines ") + ", ".join(str(n) for n in lines[:SHOWN])


def _encodings(hits: list[Hit]) -> str:
    return ", ".join(dict.fromkeys(h.encoding for h in hits))


def _location(loc: Location) -> str:
    pushed = "pushed" if loc.pushed else ("not pushed" if loc.reachable else "on no branch: unreachable")
    date = f"{loc.author_date}, " if loc.author_date else ""
    return f"{loc.path} in commit {loc.commit[:12]} ({date}{pushed})"


def _object_findings(
    obj: ObjectHits,
    masks: dict[str, str],
    shapes: dict[tuple[str, str], PreviousPrint],
    previous: list[PreviousFound],
) -> Iterable[Finding]:
    for (name, is_previous, print_), hits in _groups(obj.hits).items():
        places = [_location(loc) for loc in obj.locations]
        if not places:
            where = (
                "no commit: a dangling object (kept by git until gc prunes it: a file added then "
                "reset, a dropped stash)"
            )
        else:
            more = f"; and {len(places) - SHOWN} more" if len(places) > SHOWN else ""
            where = "; ".join(places[:SHOWN]) + more
        first = obj.locations[0] if obj.locations else None
        evidence = {
            "object": obj.oid,
            "path": first.path if first else "",
            "line": str(hits[0].line),
            "commit": first.commit if first else "",
            "author_date": first.author_date if first else "",
            "pushed": str(any(loc.pushed for loc in obj.locations)).lower(),
            "reachable": str(any(loc.reachable for loc in obj.locations)).lower(),
            "commits": ",".join(dict.fromkeys(loc.commit for loc in obj.locations)),
            "encoding": _encodings(hits),
        }
        at = f"{obj.kind} {obj.oid[:12]}, {_lines(hits)} ({_encodings(hits)})"
        if is_previous:
            shape = shapes.get((name, print_))
            evidence["value"] = (
                f"•••• ({shape.length or len(hits[0].value or '')} chars, {print_})" if shape else print_
            )
            previous.extend(PreviousFound(name, print_, where, h.value) for h in hits[:1] if h.value)
            yield rule("previous-secret-in-history").finding(
                name,
                f"A previous value of {name} ({print_}) is in the git history: {at}, at {where}. It was "
                "rotated away; it is harmless only if the provider revoked it.",
                evidence=evidence,
            )
        else:
            evidence["value"] = masks[name]
            pushed = any(loc.pushed for loc in obj.locations)
            if pushed:
                exposure = "It was pushed: whoever can read the remote has it."
            elif any(loc.reachable for loc in obj.locations):
                exposure = "No remote-tracking branch holds it, but every clone made from here does."
            else:
                exposure = (
                    "No branch holds it: it stays in this repository's object store (and any copy of the "
                    "directory, a backup, a CI cache) until git gc prunes it."
                )
            yield rule("secret-in-git-history").finding(
                name,
                f"The current value of {name} is in the git history: {at}, at {where}. {exposure} Rewriting "
                "history does not un-leak it: rotate it.",
                evidence=evidence,
            )


def _file_findings(
    found: FileHits,
    masks: dict[str, str],
    shapes: dict[tuple[str, str], PreviousPrint],
    previous: list[PreviousFound],
) -> Iterable[Finding]:
    path = found.path if found.path == found.root else f"{found.root.rstrip('/')}/{found.path}"
    for (name, is_previous, print_), hits in _groups(found.hits).items():
        at = f"{path} {_lines(hits, found.binary)} ({_encodings(hits)})"
        evidence = {
            "path": path,
            "line": "" if found.binary else str(hits[0].line),
            "encoding": _encodings(hits),
        }
        if is_previous:
            shape = shapes.get((name, print_))
            evidence["value"] = (
                f"•••• ({shape.length or len(hits[0].value or '')} chars, {print_})" if shape else print_
            )
            previous.extend(PreviousFound(name, print_, path, h.value) for h in hits[:1] if h.value)
            yield rule("previous-secret-in-history").finding(
                name,
                f"A previous value of {name} ({print_}) is in {at}. It was rotated away; it is harmless only "
                "if the provider revoked it.",
                evidence=evidence,
            )
        else:
            evidence["value"] = masks[name]
            yield rule("secret-in-source").finding(
                name,
                f"The current value of {name} is written in {at}. Whoever has this file has the secret.",
                evidence=evidence,
            )


def _skipped(files: FileTrace) -> Finding:
    shown = "; ".join(files.skipped[:SHOWN]) + (
        f"; and {len(files.skipped) - SHOWN} more" if len(files.skipped) > SHOWN else ""
    )
    return rule("secret-in-source").finding(
        "files",
        f"{len(files.skipped)} file(s) could not be searched: {shown}.",
        severity=Severity.UNKNOWN,
        title="Files not searched",
        remediation="Check why they are unreadable or so large; raise [target.trace] max_file_bytes if a "
        "large file must be searched, then trace again.",
        runbook=None,
    )


def _nothing_searched(paths: Sequence[Path]) -> Finding:
    """Zero files searched is not clean: an empty build directory, a path that is only a link or a
    FIFO, a tree of unreadable files."""
    named = ", ".join(str(p) for p in paths[:SHOWN]) + (
        f" (+{len(paths) - SHOWN} more)" if len(paths) > SHOWN else ""
    )
    return rule("secret-in-source").finding(
        "files",
        f"no file was searched under {named}: nothing there is a regular file opsdash could read, so "
        "nothing is known about it.",
        severity=Severity.UNKNOWN,
        title="No files searched",
        remediation="Point --path (or [target.trace] paths, target.bundle_dir) at the files to search: "
        "the source tree, the build output.",
        runbook=None,
    )
