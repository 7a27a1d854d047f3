"""Reading history: runs, one run (a report or a runbook session), what changed between two runs,
the dashboard's overview of alerts and deploys, and latency series for sparklines."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from opsdash.core.diff import RunDiff, diff_runs, why_not_comparable
from opsdash.core.errors import InputError
from opsdash.core.findings import Report
from opsdash.core.text import visible
from opsdash.ops.base import Ops
from opsdash.storage.rows import AlertRow, RunRow

if TYPE_CHECKING:  # a runbook session's modules load only when one is shown
    from opsdash.core.runbooks.executor import SessionState
    from opsdash.core.runbooks.model import Runbook
    from opsdash.storage.retention import Batch

DEPLOY_KINDS = ("preflight", "verify-deploy")

_RELATIVE = re.compile(r"^\s*(\d{1,6})\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


EARLIEST = 0.0  # 1970-01-01 UTC: the record holds nothing older
LATEST = datetime(9999, 12, 30, tzinfo=UTC).timestamp()  # the record's ISO text ends at year 9999


def parse_when(text: str, now: float) -> float:
    """A point in time from `--since`/`--until`: an ISO date or date-time (UTC unless it says), or
    a time back from now (`90s`, `30m`, `2h`, `7d`, `2w`; further back than 1970 is 1970, which
    holds everything). ValueError with what is accepted, for text that is not a time or a date
    outside 1970-01-01 to 9999-12-30 (UTC)."""
    relative = _RELATIVE.match(text)
    if relative:
        return max(EARLIEST, now - int(relative.group(1)) * _UNITS[relative.group(2).lower()])
    shown = visible(text[:40])
    try:
        when = datetime.fromisoformat(text.strip())
        at = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    except ValueError as exc:
        if "out of range" in str(exc):  # 0001-01-01 read as UTC is year 0 elsewhere
            at = float("-inf")
        else:
            raise ValueError(
                f"{shown!r} is not a time: give an ISO date (2026-12-01), a date-time "
                "(2026-12-01T14:30, UTC unless it has an offset) or a time back from now (30m, 2h, 7d, 2w)"
            ) from None
    except OverflowError:
        at = float("-inf")
    if not EARLIEST <= at <= LATEST:
        raise ValueError(f"{shown!r} is out of range: give a time between 1970-01-01 and 9999-12-30 (UTC)")
    return at


FILTERS = ("since", "until", "kind", "verdict", "rule")


@dataclass(frozen=True)
class RunFilter:
    """What `history list`'s --since/--until/--kind/--verdict/--rule choose, as the History pane
    types them: `since=7d kind=preflight verdict=crit rule=secret-reused`."""

    since: float | None = None
    until: float | None = None
    kind: str | None = None
    verdict: str | None = None  # upper case, a Severity's value
    rule: str | None = None
    text: str = ""  # as typed, for saying what is applied

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.since, self.until, self.kind, self.verdict, self.rule))


def parse_filters(text: str, now: float) -> RunFilter:
    """`word=value` pairs (since, until, kind, verdict, rule; times as `--since` takes them);
    ValueError naming what is wrong and what is accepted."""
    from opsdash.core.findings import Severity

    found: dict[str, str] = {}
    for word in text.split():
        name, eq, value = word.partition("=")
        name = name.lower()
        if not eq or not value or name not in FILTERS:
            raise ValueError(
                f"{visible(word[:40])!r}: give filters as word=value, the words {', '.join(FILTERS)} "
                "(since=7d kind=preflight verdict=crit rule=secret-reused)"
            )
        if name in found:
            raise ValueError(f"{name}= is given twice")
        found[name] = value
    verdicts = [s.value for s in Severity]
    verdict = found.get("verdict", "").upper() or None
    if verdict is not None and verdict not in verdicts:
        raise ValueError(
            f"verdict {visible(found['verdict'][:20])!r}: one of {', '.join(v.lower() for v in verdicts)}"
        )
    since = parse_when(found["since"], now) if "since" in found else None
    until = parse_when(found["until"], now) if "until" in found else None
    if since is not None and until is not None and since > until:
        raise ValueError("since= is later than until=: no time is in both; swap them")
    return RunFilter(since, until, found.get("kind"), verdict, found.get("rule"), " ".join(text.split()))


def runs(
    ops: Ops,
    *,
    limit: int = 20,
    kind: str | None = None,
    since: float | None = None,
    until: float | None = None,
    verdict: str | None = None,
    rule: str | None = None,
) -> list[RunRow]:
    """The newest runs first, filtered (`since`/`until`: seconds since the epoch)."""
    from opsdash.storage.timeline import iso

    with ops.history(write=False) as history:
        return history.runs.recent(
            limit=limit,
            kind=kind,
            since=None if since is None else iso(since),
            until=None if until is None else iso(until),
            verdict=verdict,
            rule=rule,
        )


@dataclass(frozen=True)
class RunDetail:
    """One run: a report (validate, check, preflight, verify-deploy) or a runbook session."""

    run: RunRow
    report: Report | None = None
    session: SessionState | None = None
    runbook: Runbook | None = None  # the session's runbook, when its file still parses


def show(ops: Ops, ref: str) -> RunDetail:
    """RUN is an id, a unique prefix of one, `latest` or `latest~N`."""
    with ops.history(write=False) as history:
        run = history.runs.resolve(ref)
        if run.kind != "runbook":
            return RunDetail(run, report=history.runs.report(run))
        from opsdash.core.runbooks.parser import parse as parse_runbook

        state = history.sessions.load(run.run_id)
    book = None
    if state is not None and Path(state.runbook_path).is_file():
        book, _problems = parse_runbook(Path(state.runbook_path))
    return RunDetail(run, session=state, runbook=book)


@dataclass(frozen=True)
class Comparison:
    a: RunRow
    b: RunRow
    diff: RunDiff


def diff(
    ops: Ops, ref_a: str, ref_b: str = "latest", *, oldest_first: bool = False, kind: str | None = None
) -> Comparison:
    """New, resolved and changed findings, and env keys whose fingerprint changed, from A to B
    (with `oldest_first`, from the older of the two to the newer; with `kind`, `latest~N` counts
    runs of that kind). Two runs that cannot be compared are an InputError saying why."""
    with ops.history(write=False) as history:
        a, b = history.runs.resolve(ref_a, kind), history.runs.resolve(ref_b, kind)
        why = why_not_comparable(a.kind, a.target, b.kind, b.target)
        if why is not None:  # the History pane says the same before it asks
            raise InputError(f"cannot diff {a.run_id} and {b.run_id}: {why}")
        if oldest_first and b.started_at < a.started_at:
            a, b = b, a
        changed = diff_runs(
            history.runs.findings(a.run_id),
            history.runs.findings(b.run_id),
            {k.key: k.fingerprint for k in history.runs.env_keys(a.run_id)},
            {k.key: k.fingerprint for k in history.runs.env_keys(b.run_id)},
        )
    return Comparison(a, b, changed)


@dataclass(frozen=True)
class Overview:
    alerts: list[AlertRow]  # firing now, oldest first
    deploys: list[RunRow]  # the newest preflight / verify-deploy runs


def overview(ops: Ops, *, deploys: int = 4) -> Overview:
    profile = ops.profile_or_none  # its target's open alerts (and those of none), not another's
    with ops.history(write=False) as history:
        alerts = history.alerts.firing(profile.target.name if profile is not None else None)
        recent = [r for r in history.runs.recent(limit=50) if r.kind in DEPLOY_KINDS][:deploys]
    return Overview(alerts, recent)


def latency_series(
    ops: Ops, names: Iterable[str], points: int, *, exclude_run: str | None = None
) -> dict[str, list[float]]:
    """The last `points` latencies of each check, oldest first; without the results of
    `exclude_run` (the caller's own watch, whose results it already has)."""
    with ops.history(write=False) as history:
        return {
            n: [r.latency_ms for r in history.checks.recent(n, points) if r.run_id != exclude_run]
            for n in names
        }


def purge(ops: Ops, on_batch: Callable[[Batch], None] | None = None) -> int:
    """Everything older than the retention period, now, batch after batch (each a short
    transaction other commands' writes interleave with), then the space back; the runs purged."""
    with ops.history() as history:
        return history.purge(ops.settings.history_retention_days, on_batch=on_batch)


def compact(ops: Ops) -> int:
    """Rebuild the history file with incremental vacuum; the bytes given back."""
    with ops.history() as history:
        return history.compact()
