"""Incidents read from the record: the events of a window from every table (`history.timeline`),
cut into incidents by `core.incidents.derive`, and exported as a postmortem draft (Markdown) or
JSON. Every front end (`opsdash incident`, the Timeline pane) calls these.

Listing reads only what can open, close or measure an incident (unhealthy check results and the
result after each, alerts, deploys, runbook transitions); showing one reads everything of its
window as well (alert deliveries, other runs, webhook failures, env changes, audit anchors).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsdash.core import incidents as core
from opsdash.core.findings import SCHEMA_VERSION, Severity
from opsdash.core.incidents import Event, Incident
from opsdash.core.secrets import redactor
from opsdash.core.text import visible
from opsdash.ops.base import Ops

if TYPE_CHECKING:
    from opsdash.storage.history import History

CONTEXT_RUNS = ("validate", "check")


@dataclass(frozen=True)
class Query:
    since: float | None = None
    until: float | None = None
    target: str | None = None
    severity: Severity | None = None  # this or worse
    quiet_s: float = core.QUIET_S
    limit: int | None = None  # only the newest this many are wanted (None: every one)


def target_name(ops: Ops) -> str:
    """The profile's target, named the way the dashboard's first frame reads it (no validation)."""
    from opsdash.ops.glance import quick_target

    path = ops.source.path
    found = quick_target(path) if isinstance(path, Path) else None
    return found[0] if found else ""


def _listing(history: History, since: float, until: float, target: str) -> list[Event]:
    t = history.timeline
    lookback = since - core.DEPLOY_LOOKBACK_S
    return [
        *t.check_changes(since, until, target),
        *t.alerts(since, until, target),
        *t.runs(lookback, until, target=target),
        *t.runbooks(since, until, target),
    ]


def _everything(history: History, since: float, until: float, target: str) -> list[Event]:
    t = history.timeline
    return [
        *_listing(history, since, until, target),
        *t.deliveries(since, until, target),
        *t.runs(since, until, CONTEXT_RUNS, target),
        *t.webhook_failures(since, until, target),
        *t.env_changes(since, until, target),
        *t.anchors(since, until, target),
    ]


FIRST_SPAN_S = 7 * 86400.0  # a limited listing reads the last week first, then 4x as far back
CUT_STEP_S = 600.0  # the first step back from a window's start that is not quiet (then doubled)
CUT_TRIES = 16  # 600 s x 2^16: back over a year before reading the record from its start


def incidents(ops: Ops, query: Query = Query()) -> list[Incident]:
    """The incidents of one target that overlap the window [since, until], oldest first, filtered
    by severity (and only the newest `limit` of them when it is set). The target is the
    profile's, or `query.target` (another profile's record in the same data directory); only its
    own runs, watches and alerts are read.

    An incident keeps its start, its id and its end whatever the window (`show` finds it by that
    id): one that recovered after `until` is listed as recovered, with its real duration, not as
    ongoing. That needs the record from a point where nothing was open: the record is read from
    the latest *quiet* cut before the window (`Timeline.quiet_at`: from there the derivation is
    the whole record's), and a limited listing without `since` starts with the last week and
    reaches further back (as far as `limit` incidents should take, at least 4x) only while it
    has found fewer. A record never quiet (a check left down and never probed again) is read
    from its start."""
    now = ops.clock()
    since = float("-inf") if query.since is None else query.since
    until = float("inf") if query.until is None else query.until
    name = target_name(ops)
    with ops.history(write=False) as history:
        if query.target is not None and query.target.casefold() != name.casefold():
            known = history.timeline.known_target(query.target)
            if known is None:  # no run, watch or alert of it: none of the record is its
                return []
            name = known
        first = history.timeline.first_trouble()
        if first is None:
            return []
        span = FIRST_SPAN_S
        while True:
            start = since if query.limit is None else max(since, min(until, now) - span)
            cut = _quiet_cut(history, start, query.quiet_s, name)
            found = core.derive(_listing(history, cut, now + 1, name), target=name, quiet_s=query.quiet_s)
            found = [
                i
                for i in found
                if (i.recovered_at is None or i.recovered_at >= since) and i.first_failure_at <= until
            ]
            if query.severity is not None:
                wanted = query.severity.rank
                found = [i for i in found if i.severity.rank >= wanted]
            if query.limit is None or len(found) >= query.limit or cut <= first or start <= since:
                return found if query.limit is None else found[-query.limit :]
            span *= max(4.0, 1.5 * query.limit / max(len(found), 1))  # as far as that many take


def _quiet_cut(history: History, start: float, quiet_s: float, target: str) -> float:
    """The latest quiet cut at or before `start` (0.0: the record's start), stepping back from it
    by CUT_STEP_S, then twice as far each time."""
    if start <= 0.0:
        return 0.0
    cut, step = start, CUT_STEP_S
    for _ in range(CUT_TRIES):
        if cut <= 0.0:
            return 0.0
        if history.timeline.quiet_at(cut, quiet_s, target):
            return cut
        cut, step = cut - step, step * 2
    return 0.0


def show(ops: Ops, ref: str, *, quiet_s: float = core.QUIET_S) -> Incident:
    """One incident with every event of its window. REF is an id, a unique prefix of one,
    `latest` or `latest~N`; a ref that names none is an InputError."""
    from opsdash.core.errors import InputError

    found = incidents(ops, _query_for(ref, quiet_s))
    try:
        chosen = core.resolve(found, ref)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    since = chosen.first_failure_at - core.DEPLOY_LOOKBACK_S
    until = (ops.clock() if chosen.recovered_at is None else chosen.recovered_at) + 1
    with ops.history(write=False) as history:
        events = _everything(history, since, until, chosen.target)
    full = core.derive(events, target=chosen.target, quiet_s=quiet_s)
    return next((i for i in full if i.id == chosen.id), chosen)


_ID_STAMP = re.compile(r"(\d{8}-\d{6})(?:-[0-9a-f]{0,4})?")


def _query_for(ref: str, quiet_s: float) -> Query:
    """The incidents that REF can name: `latest~N` is among the newest N+1; an id (its first 15
    characters are when it opened, to the second) among those open in that second; a shorter
    prefix among every one."""
    if ref == "latest" or ref.startswith("latest~"):
        back = ref.partition("~")[2]
        if not back or (back.isascii() and back.isdigit() and len(back) <= 9):
            return Query(quiet_s=quiet_s, limit=int(back or 0) + 1)
    elif (stamp := _ID_STAMP.fullmatch(ref)) is not None:
        try:
            opened = datetime.strptime(stamp.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=UTC).timestamp()
        except ValueError:  # not a date: no incident has this id
            return Query(quiet_s=quiet_s)
        return Query(since=opened, until=opened + 1, quiet_s=quiet_s)
    return Query(quiet_s=quiet_s)


def export_file(ops: Ops, ref: str, directory: Path | None = None) -> Path:
    """Write the incident's postmortem draft to `directory` (default: `postmortems/` in the data
    directory, beside the record it was read from); its path."""
    from opsdash.core.errors import InputError

    found = show(ops, ref)
    where = ops.data_dir / "postmortems" if directory is None else directory
    path = where / f"incident-{found.id}.md"
    try:
        where.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown(found, ops.clock()), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{path}: cannot write the export ({exc.strerror or exc})") from None
    return path


def failing_series(incident: Incident, points: int = 60) -> list[float]:
    """How many checks were failing across the incident's window, in `points` equal slices (the
    most at any time in each slice): the Timeline pane's sparkline."""
    start = incident.first_failure_at
    end = (
        incident.recovered_at
        if incident.recovered_at is not None
        else max((e.at for e in incident.events), default=start)
    )
    span = max(end - start, 1e-9)
    out = [0.0] * points
    failing: set[str] = set()
    slot = 0
    for e in incident.events:
        if e.kind != core.CHECK:
            continue
        at = min(points - 1, int((e.at - start) / span * points))
        while slot < at:
            slot += 1
            out[slot] = max(out[slot], len(failing))
        (failing.add if e.failed else failing.discard)(e.source)
        out[at] = max(out[at], len(failing))
    for rest in range(slot + 1, points):
        out[rest] = len(failing)
    return out


# ---------------------------------------------------------------- export


def stamp(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def short(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def took(seconds: float | None) -> str:
    """A duration as an operator reads it: 45s, 12m 05s, 3h 20m, 2d 4h; `-` when not reached."""
    if seconds is None:
        return "-"
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


def clean(text: str) -> str:
    """Text from the record as it may be shown: secrets masked, control characters visible."""
    return visible(redactor.redact(text))


def event_dict(e: Event) -> dict[str, Any]:
    return {
        "at": stamp(e.at),
        "kind": e.kind,
        "source": clean(e.source),
        "title": clean(e.title),
        "severity": e.severity.value,
        "operator": clean(e.operator) or None,
        "evidence": clean(e.evidence) or None,
        "ref": clean(e.ref) or None,
    }


def summary_dict(i: Incident, now: float) -> dict[str, Any]:
    return {
        "id": i.id,
        "target": clean(i.target),
        "severity": i.severity.value,
        "status": "ongoing" if i.ongoing else "recovered",
        "first_failure_at": stamp(i.first_failure_at),
        "opened_at": stamp(i.opened_at),
        "recovered_at": None if i.recovered_at is None else stamp(i.recovered_at),
        "duration_s": round(i.duration(now), 3),
        "checks": [clean(c) for c in i.checks],
        "alerts": [clean(a) for a in i.alerts],
        "phases": {p.name: None if p.seconds is None else round(p.seconds, 3) for p in i.phases},
    }


def to_dict(i: Incident, now: float) -> dict[str, Any]:
    """The incident as `incident show --json` and `export --format json` print it
    (docs/schemas/incident-show.schema.json)."""
    return {
        "schema_version": SCHEMA_VERSION,
        **summary_dict(i, now),
        "phases": [
            {
                "name": p.name,
                "start": stamp(p.start),
                "end": None if p.end is None else stamp(p.end),
                "seconds": None if p.seconds is None else round(p.seconds, 3),
            }
            for p in i.phases
        ],
        "cause": None if i.cause is None else event_dict(i.cause),
        "deploys": [event_dict(e) for e in i.deploys],
        "runbook_sessions": [clean(s) for s in i.sessions],
        "events": [event_dict(e) for e in i.events],
    }


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>#+|~])")


def _md(text: str) -> str:
    """Record text as inert Markdown: masked, one line, Markdown's punctuation escaped."""
    return _MD_SPECIAL.sub(r"\\\1", clean(text))


def _code(text: str) -> str:
    """Record text as a Markdown code span (a backtick in it would end the span early)."""
    return "`" + clean(text).replace("`", "'") + "`"


def _bullets(items: list[str], width: int = 78) -> list[str]:
    """Markdown list items wrapped at `width` (continuation lines indented under the text)."""
    import textwrap

    out: list[str] = []
    for item in items:
        out += textwrap.wrap(
            item,
            width,
            initial_indent="- ",
            subsequent_indent="  ",
            break_long_words=False,
            break_on_hyphens=False,
        ) or ["-"]
    return out


PHASE_NAMES = {
    "detect": "Time to detect (first failure to alert)",
    "act": "Time to act (alert to first runbook step)",
    "mitigate": "Time to mitigate (to the last stretch without failures)",
    "recover": "Time to recover (every check and alert recovered)",
}


def markdown(i: Incident, now: float) -> str:
    """A postmortem draft: summary, impact window, timeline, what was done, open questions. The
    facts come from the record; the questions are left for people."""
    status = "ongoing" if i.ongoing else "recovered"
    title = f"Incident {i.id}" + (f" on {_md(i.target)}" if i.target else "")
    lines = [f"# {title}", "", "## Summary", ""]
    lines += _bullets(
        [
            f"Severity: {i.severity.value}, {status}",
            "Checks down: " + (", ".join(_code(c) for c in i.checks) or "none"),
            "Alerts: " + (", ".join(_code(a) for a in i.alerts) or "none fired"),
            "Deploy before it: "
            + (
                f"{_md(i.cause.title)} at {short(i.cause.at)} UTC"
                + (f" by {_md(i.cause.operator)}" if i.cause.operator else "")
                if i.cause
                else "none within the hour before"
            ),
        ]
    )
    lines += ["", "## Impact window", ""]
    lines += _bullets(
        [
            f"First failure: {short(i.first_failure_at)} UTC",
            f"Opened (sustained failure or alert): {short(i.opened_at)} UTC",
            "Recovered: " + (f"{short(i.recovered_at)} UTC" if i.recovered_at is not None else "not yet"),
            f"Duration: {took(i.duration(now))}",
        ]
    )
    lines += ["", "### Phases", ""]
    lines += _bullets([f"{PHASE_NAMES[p.name]}: {took(p.seconds)}" for p in i.phases])
    lines += ["", "## Timeline", "", "All times UTC.", ""]
    lines += _bullets(
        [
            f"{short(e.at)} {e.kind} {_code(e.source)}: {_md(e.title)}"
            + (f" ({_md(e.operator)})" if e.operator else "")
            for e in i.events
        ]
        or ["No events in the window."]
    )
    done = [e for e in i.events if e.kind in (core.STEP, core.SESSION, core.DEPLOY)]
    lines += ["", "## What was done", ""]
    lines += _bullets(
        [f"{short(e.at)} {_md(e.title)}" + (f" by {_md(e.operator)}" if e.operator else "") for e in done]
        or ["No runbook step or deploy is recorded in the window."]
    )
    lines += ["", "## Open questions", ""]
    questions = ["What was the impact on users and payments in the window?", "What was the root cause?"]
    detect = next((p for p in i.phases if p.name == "detect"), None)
    if detect is not None and detect.end is None:
        questions.append("No alert fired: why was this not alerted on?")
    if not i.sessions:
        questions.append("No runbook was run: is one missing for this failure?")
    if i.cause is not None:
        questions.append(f"Did the deploy at {short(i.cause.at)} UTC cause it?")
    questions.append("What will stop it happening again?")
    lines += _bullets(questions)
    return redactor.redact("\n".join(lines) + "\n")
