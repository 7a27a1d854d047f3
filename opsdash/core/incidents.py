"""Incidents derived from the record: every event of a target on one time axis, cut into incidents.

An incident opens when a check's *sustained* state goes down (CRIT or WARN, after its failure
threshold: the `sustained` column history keeps, as the alert rules read it) or when an alert that
means an outage fires; it closes when every check and alert of it has recovered (a check's sustained
state back to OK, every such alert resolved). A member that goes down again within the quiet
period after the last recovery continues the same incident (a flap), instead of opening a new one.

A check whose sustained state is UNKNOWN (a process that has just started and has not seen the
check often enough) neither opens nor closes anything, as `core/alerts.check_scope` resolves nothing
for it: a restart is not a recovery. A certificate-expiry warning is shown on the timeline but
opens no incident (it warns of a future outage; only an expired certificate is one).

The phases are measured between milestones: the first failure (the earliest start of the
failing streak of a check that went down in it; a streak of a check that never went down in it,
such as one removed while failing, is not part of it), detection (the first alert fired), acting
(the first runbook step started), mitigation (the start of the last stretch in which no check
failed) and recovery.
"""

from __future__ import annotations

import bisect
import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from opsdash.core.findings import Severity

QUIET_S = 300.0  # a member down again within 5 minutes of the recovery: the same incident
DEPLOY_LOOKBACK_S = 3600.0  # a deploy up to an hour before the first failure may have caused it

CHECK = "check"
ALERT_FIRED = "alert-fired"
ALERT_RESOLVED = "alert-resolved"
DELIVERY = "alert-delivery"
DEPLOY = "deploy"
RUN = "run"
SESSION = "runbook-session"
STEP = "runbook-step"
WEBHOOK = "webhook-failures"
ENV = "env-change"
AUDIT = "audit-anchor"
KINDS = (CHECK, ALERT_FIRED, ALERT_RESOLVED, DELIVERY, DEPLOY, RUN, SESSION, STEP, WEBHOOK, ENV, AUDIT)
DOWN = (Severity.CRIT, Severity.WARN)  # a check is down at these sustained severities (core/alerts)
NOT_AN_OUTAGE = "certificate-expiry"  # an alert rule that warns of a future outage


class Event(NamedTuple):
    """One thing the record holds, at one time (seconds since the epoch, UTC).

    `source` is what it is about: a check's name, an alert's `rule:key`, a run's kind, a runbook's
    id. A check result carries whether this probe `failed` and the check's `sustained` state as
    recorded; an alert event carries its id in `ref` (the fired and the resolved of one alert share
    it); a deploy its version in `evidence`. A named tuple, not a dataclass: a year's listing
    makes tens of thousands, and a frozen dataclass is four times slower to make."""

    at: float
    kind: str
    source: str
    title: str
    severity: Severity = Severity.INFO
    operator: str = ""
    evidence: str = ""
    ref: str = ""
    failed: bool = False
    sustained: Severity | None = None

    @property
    def member(self) -> str | None:
        """What this event opens or closes, as a member of an incident (None: context only)."""
        if self.kind == CHECK:
            return f"check:{self.source}"
        if self.kind in (ALERT_FIRED, ALERT_RESOLVED):
            return f"alert:{self.ref or self.source}"
        return None

    @property
    def goes_down(self) -> bool:
        if self.kind == CHECK:
            return self.sustained in DOWN
        return self.kind == ALERT_FIRED and holds(self)

    @property
    def comes_back(self) -> bool:
        if self.kind == CHECK:
            return self.sustained is Severity.OK
        return self.kind == ALERT_RESOLVED


def holds(alert: Event) -> bool:
    """Whether a fired alert opens (and holds open) an incident."""
    rule = alert.source.partition(":")[0]
    return rule != NOT_AN_OUTAGE or alert.severity is Severity.CRIT


@dataclass(frozen=True)
class Phase:
    name: str  # detect | act | mitigate | recover
    start: float
    end: float | None  # None: not reached (no alert fired, no runbook step, not recovered yet)

    @property
    def seconds(self) -> float | None:
        return None if self.end is None else max(0.0, self.end - self.start)


@dataclass(frozen=True)
class Incident:
    id: str
    target: str
    severity: Severity
    first_failure_at: float
    opened_at: float  # the first sustained failure or firing alert
    recovered_at: float | None  # None: still open
    checks: tuple[str, ...]  # the checks that went down in it, in the order they did
    alerts: tuple[str, ...]  # the alerts (`rule:key`) that fired in it
    events: tuple[Event, ...] = ()  # every event in [first failure, recovery], in order
    cause: Event | None = None  # the deploy that preceded it (within DEPLOY_LOOKBACK_S)
    phases: tuple[Phase, ...] = ()

    @property
    def ongoing(self) -> bool:
        return self.recovered_at is None

    def duration(self, now: float) -> float:
        return (now if self.recovered_at is None else self.recovered_at) - self.first_failure_at

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    @property
    def deploys(self) -> list[Event]:
        return self.of_kind(DEPLOY)

    @property
    def sessions(self) -> list[str]:
        """The runbook sessions that acted in it (their ids), in the order they did."""
        return list(dict.fromkeys(e.ref for e in self.events if e.kind in (SESSION, STEP) and e.ref))


@dataclass
class _Open:
    opened: Event
    first_failure: float
    severity: Severity
    members: dict[str, None] = field(default_factory=dict)
    down: set[str] = field(default_factory=set)
    recovered_at: float | None = None


def incident_id(target: str, opened: Event) -> str:
    """Stable for the same record: when it opened and what opened it."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(opened.at))
    digest = hashlib.blake2b(f"{target}\0{opened.member}".encode(), digest_size=2).hexdigest()
    return f"{stamp}-{digest}"


def windows(events: Sequence[Event], *, quiet_s: float = QUIET_S) -> list[_Open]:
    """The incidents' windows and members, in one pass over events in time order."""
    out: list[_Open] = []
    current: _Open | None = None
    streak: dict[str, float] = {}  # check -> when its current failing streak began
    down: set[str] = set()
    floor = float("-inf")  # a new incident's first failure is never before the last recovery
    for e in events:
        kind = e.kind
        if current is not None and current.recovered_at is not None and e.at > current.recovered_at + quiet_s:
            floor = current.recovered_at
            current = None
        if kind == CHECK:
            if e.failed:
                streak.setdefault(e.source, e.at)
            else:
                streak.pop(e.source, None)
            sustained = e.sustained
            if sustained is Severity.OK:
                going_down = False
            elif sustained in DOWN:
                going_down = True
            else:
                continue  # UNKNOWN: a process that does not know yet changes nothing
            member = f"check:{e.source}"
            level = sustained or e.severity
        elif kind in (ALERT_FIRED, ALERT_RESOLVED):
            going_down = kind == ALERT_FIRED
            if going_down and not holds(e):
                continue
            member = f"alert:{e.ref or e.source}"
            level = e.severity
        else:
            continue
        if going_down:
            down.add(member)
        else:
            down.discard(member)
        if down and current is None:
            current = _Open(e, max(e.at, floor), level)
            out.append(current)
        if current is None:
            continue
        if going_down:
            if kind == CHECK:  # its failing streak, and no other check's, is part of the incident
                current.first_failure = min(current.first_failure, max(streak.get(e.source, e.at), floor))
            current.members.setdefault(member)
            if level.rank > current.severity.rank:
                current.severity = level
        if down:
            current.recovered_at = None
        elif current.recovered_at is None:
            current.recovered_at = e.at
    return out


def derive(
    events: Iterable[Event],
    *,
    target: str = "",
    quiet_s: float = QUIET_S,
    deploy_lookback_s: float = DEPLOY_LOOKBACK_S,
) -> list[Incident]:
    """The incidents in `events` (any order; ties keep the order given), oldest first."""
    ordered = sorted(events, key=lambda e: e.at)
    found = windows(ordered, quiet_s=quiet_s)
    times = [e.at for e in ordered]
    deploys = [e for e in ordered if e.kind == DEPLOY]
    deploy_times = [e.at for e in deploys]
    incidents = []
    for w in found:
        lo = bisect.bisect_left(times, w.first_failure)
        hi = len(ordered) if w.recovered_at is None else bisect.bisect_right(times, w.recovered_at)
        inside = tuple(ordered[lo:hi])
        last = bisect.bisect_left(deploy_times, w.first_failure) - 1  # the newest deploy before it
        cause = (
            deploys[last] if last >= 0 and deploy_times[last] >= w.first_failure - deploy_lookback_s else None
        )
        checks = tuple(m.partition(":")[2] for m in w.members if m.startswith("check:"))
        alert_names = dict.fromkeys(e.source for e in inside if e.kind == ALERT_FIRED)
        incidents.append(
            Incident(
                id=incident_id(target, w.opened),
                target=target,
                severity=w.severity,
                first_failure_at=w.first_failure,
                opened_at=w.opened.at,
                recovered_at=w.recovered_at,
                checks=checks,
                alerts=tuple(alert_names),
                events=inside,
                cause=cause,
                phases=phases(inside, w.first_failure, w.recovered_at),
            )
        )
    return incidents


def phases(inside: Sequence[Event], first_failure: float, recovered_at: float | None) -> tuple[Phase, ...]:
    detected = next((e.at for e in inside if e.kind == ALERT_FIRED), None)
    acted = next((e.at for e in inside if e.kind == STEP), None)
    mitigated = None
    failing: set[str] = set()
    for e in inside:
        if e.kind != CHECK:
            continue
        was = bool(failing)
        (failing.add if e.failed else failing.discard)(e.source)
        if was and not failing:
            mitigated = e.at
        elif failing:
            mitigated = None
    if mitigated is None and not failing and recovered_at is not None:
        mitigated = recovered_at  # alerts alone: mitigated when they resolved
    out = []
    start = first_failure
    for name, end in (
        ("detect", detected),
        ("act", acted),
        ("mitigate", mitigated),
        ("recover", recovered_at),
    ):
        if end is not None and end < start:
            end = start  # reached before the previous milestone (an operator acting before the alert)
        out.append(Phase(name, start, end))
        if end is not None:
            start = end
    return tuple(out)


def resolve(incidents: Sequence[Incident], ref: str) -> Incident:
    """An incident by id, unique prefix of one, `latest` or `latest~N`; ValueError otherwise."""
    shown = ref if len(ref) <= 40 else ref[:39] + "…"
    if ref == "latest" or ref.startswith("latest~"):
        back = ref.partition("~")[2]
        if back and not (back.isascii() and back.isdigit() and len(back) <= 9):
            raise ValueError(f"incident reference {shown!r}: expected latest~N with a number N")
        offset = int(back or 0)
        if len(incidents) <= offset:
            raise ValueError(f"incident {shown!r} not found: the record has {len(incidents)} incident(s)")
        return incidents[-1 - offset]
    matches = [i for i in incidents if i.id.startswith(ref)] if ref.strip() else []
    if not matches:
        raise ValueError(f"incident {shown!r} not found; see 'opsdash incident list'")
    exact = [i for i in matches if i.id == ref]
    if len(matches) > 1 and not exact:
        raise ValueError(f"incident {shown!r} is ambiguous; type more of the id")
    return (exact or matches)[0]
