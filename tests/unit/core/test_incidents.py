"""Incident derivation (core/incidents.py): hand-made cases for each rule, and a property test that
holds the one-pass derivation against a brute-force reference over random event streams (flaps,
overlapping checks, alerts opening and closing out of step, restarts that know nothing yet)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from opsdash.core import incidents as inc
from opsdash.core.findings import Severity
from opsdash.core.incidents import Event

OK, WARN, CRIT, UNKNOWN = Severity.OK, Severity.WARN, Severity.CRIT, Severity.UNKNOWN


def probe(at: float, name: str, sustained: Severity, *, failed: bool | None = None) -> Event:
    failed = sustained in inc.DOWN if failed is None else failed
    return Event(at, inc.CHECK, name, f"{name}", CRIT if failed else OK, failed=failed, sustained=sustained)


def fired(at: float, ref: str, rule: str = "check-critical", severity: Severity = CRIT) -> Event:
    return Event(at, inc.ALERT_FIRED, f"{rule}:api", "fired", severity, ref=ref)


def resolved(at: float, ref: str, rule: str = "check-critical") -> Event:
    return Event(at, inc.ALERT_RESOLVED, f"{rule}:api", "resolved", OK, ref=ref)


def test_a_sustained_failure_opens_and_recovery_closes_with_every_phase() -> None:
    events = [
        Event(0, inc.DEPLOY, "verify-deploy", "deployed 2026.12.1", evidence="2026.12.1"),
        probe(100, "api", OK, failed=True),  # failing 1 of 2: not yet an incident
        probe(130, "api", CRIT),  # sustained: the incident opens here
        fired(131, "7"),
        Event(400, inc.STEP, "rollback", "step 1 started", operator="ana", ref="s1"),
        probe(600, "api", CRIT, failed=False),  # recovering 1 of 2: mitigated here
        probe(630, "api", OK),
        resolved(631, "7"),
    ]
    [one] = inc.derive(events, target="BetaSkill")
    assert (one.first_failure_at, one.opened_at, one.recovered_at) == (100, 130, 631)
    assert one.checks == ("api",) and one.alerts == ("check-critical:api",)
    assert one.severity is CRIT
    assert one.cause is not None and one.cause.evidence == "2026.12.1"
    assert [(p.name, p.start, p.end) for p in one.phases] == [
        ("detect", 100, 131),
        ("act", 131, 400),
        ("mitigate", 400, 600),
        ("recover", 600, 631),
    ]
    assert one.sessions == ["s1"]
    assert [e.at for e in one.events] == [100, 130, 131, 400, 600, 630, 631]


def test_a_blip_below_the_threshold_and_a_restart_open_nothing() -> None:
    events = [probe(0, "api", OK, failed=True), probe(30, "api", OK), probe(60, "api", UNKNOWN, failed=True)]
    assert inc.derive(events) == []


def test_a_restart_that_does_not_know_the_state_yet_does_not_close_the_incident() -> None:
    events = [probe(0, "api", CRIT), probe(30, "api", UNKNOWN, failed=False), probe(60, "api", OK)]
    [one] = inc.derive(events)
    assert one.recovered_at == 60


def test_a_flap_within_the_quiet_period_is_one_incident_and_beyond_it_two() -> None:
    flap = [probe(0, "api", CRIT), probe(60, "api", OK), probe(200, "api", CRIT), probe(260, "api", OK)]
    [one] = inc.derive(flap, quiet_s=300)
    assert (one.opened_at, one.recovered_at) == (0, 260)
    two = inc.derive(flap, quiet_s=100)
    assert [(i.opened_at, i.recovered_at) for i in two] == [(0, 60), (200, 260)]


def test_an_incident_stays_open_until_every_check_and_alert_has_recovered() -> None:
    events = [probe(0, "api", CRIT), fired(1, "1"), probe(10, "db", WARN), probe(20, "api", OK)]
    events += [resolved(21, "1"), probe(50, "db", OK)]
    [one] = inc.derive(events)
    assert one.recovered_at == 50 and one.checks == ("api", "db")
    assert one.severity is CRIT
    assert inc.derive(events[:-1])[0].ongoing


def test_a_certificate_warning_opens_no_incident_but_an_expired_certificate_does() -> None:
    warning = [fired(0, "1", "certificate-expiry", WARN)]
    assert inc.derive(warning) == []
    [one] = inc.derive([fired(0, "1", "certificate-expiry", CRIT), resolved(9, "1", "certificate-expiry")])
    assert one.alerts == ("certificate-expiry:api",) and one.recovered_at == 9


def test_a_stale_failing_streak_of_a_removed_check_does_not_stretch_a_later_incident() -> None:
    """A check whose last result failed (removed, renamed, its watcher stopped) keeps no streak
    that a later incident of another check starts from: only the checks that go down in it count."""
    events = [
        probe(1000, "old-check", OK, failed=True),  # a blip below the threshold, then never again
        probe(90000, "api", OK, failed=True),
        probe(90030, "api", CRIT),
        probe(90060, "api", OK),
    ]
    (only,) = inc.derive(events)
    assert (only.first_failure_at, only.opened_at, only.recovered_at) == (90000, 90030, 90060)
    assert only.duration(99999) == 60
    assert only.checks == ("api",)


def test_resolve_by_id_prefix_and_latest() -> None:
    found = inc.derive([probe(0, "a", CRIT), probe(10, "a", OK), probe(9_000, "b", CRIT)])
    assert inc.resolve(found, "latest") is found[1]
    assert inc.resolve(found, "latest~1") is found[0]
    assert inc.resolve(found, found[0].id[:-1]) is found[0]
    for bad in ("latest~9", "latest~x", "nope", ""):
        with pytest.raises(ValueError, match="incident"):
            inc.resolve(found, bad)


# ---------------------------------------------------------------- the brute-force reference


def _down_after(ordered: Sequence[Event], i: int) -> set[str]:
    down: set[str] = set()
    for e in ordered[: i + 1]:
        m = e.member
        if m is None:
            continue
        if e.goes_down:
            down.add(m)
        elif e.comes_back:
            down.discard(m)
    return down


def _streak_start(ordered: Sequence[Event], i: int, name: str) -> float | None:
    """When the check's failing streak that is running at event i began (None: it is not failing)."""
    mine = [e for e in ordered[: i + 1] if e.kind == inc.CHECK and e.source == name]
    if not mine or not mine[-1].failed:
        return None
    j = len(mine) - 1
    while j > 0 and mine[j - 1].failed:
        j -= 1
    return mine[j].at


def reference(
    events: Sequence[Event], quiet_s: float
) -> list[tuple[float, float, float | None, tuple[str, ...], Severity]]:
    ordered = sorted(events, key=lambda e: e.at)
    spans: list[tuple[int, int | None]] = []
    start = None
    for i in range(len(ordered)):
        if _down_after(ordered, i):
            if start is None:
                start = i
        elif start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, None))
    merged: list[tuple[int, int | None]] = []
    for s, r in spans:
        if merged:
            prev_s, prev_r = merged[-1]
            assert prev_r is not None
            # the previous closes at the first event later than its recovery plus the quiet period
            closer = next(
                (k for k in range(prev_r + 1, len(ordered)) if ordered[k].at > ordered[prev_r].at + quiet_s),
                None,
            )
            if closer is None or closer > s:
                merged[-1] = (prev_s, r)
                continue
        merged.append((s, r))
    out = []
    floor = float("-inf")
    for s, r in merged:
        end = len(ordered) - 1 if r is None else r
        members: dict[str | None, None] = {}
        levels: list[Severity] = []
        for e in ordered[s : end + 1]:
            if e.goes_down:
                members.setdefault(e.member, None)
                levels.append(e.sustained if e.kind == inc.CHECK and e.sustained else e.severity)
        # the first failure: the start of the failing streak of each check that went down in it,
        # as it ran when the check went down (a streak of a check that never went down in it, such
        # as one removed while failing, is not this incident's)
        starts = [
            t
            for k in range(s, end + 1)
            if ordered[k].kind == inc.CHECK
            and ordered[k].goes_down
            and (t := _streak_start(ordered, k, ordered[k].source)) is not None
        ]
        first = max(min([ordered[s].at, *starts]), floor)
        recovered = None if r is None else ordered[r].at
        out.append(
            (
                first,
                ordered[s].at,
                recovered,
                tuple(m for m in members if m),
                max(levels, key=lambda v: v.rank),
            )
        )
        if recovered is not None:
            floor = recovered
    return out


# few distinct times: ties, and recoveries exactly a quiet period apart, are common
_times = st.integers(0, 24).map(lambda t: float(t * 30))
_checks = st.builds(
    lambda at, name, sustained, failed: Event(
        at, inc.CHECK, name, name, CRIT if failed else OK, failed=failed, sustained=sustained
    ),
    _times,
    st.sampled_from(["api", "db", "provider"]),
    st.sampled_from([OK, OK, WARN, CRIT, UNKNOWN]),  # UNKNOWN: a process that has just (re)started
    st.booleans(),
)
_alerts = st.builds(
    lambda at, ref, rule, sev, fire: Event(
        at,
        inc.ALERT_FIRED if fire else inc.ALERT_RESOLVED,
        f"{rule}:api",
        "alert",
        sev,
        ref=str(ref),
    ),
    _times,
    st.integers(1, 3),
    st.sampled_from(["check-critical", "certificate-expiry"]),
    st.sampled_from([WARN, CRIT]),
    st.booleans(),
)
# a check that failed and was then removed (renamed, its watcher stopped): its last result a
# failure, never followed by another; early, so that later incidents of other checks follow it
_stale = st.builds(
    lambda at, sustained: Event(at, inc.CHECK, "retired", "retired", CRIT, failed=True, sustained=sustained),
    st.integers(0, 4).map(lambda t: float(t * 30)),
    st.sampled_from([OK, UNKNOWN]),
)
_context = st.builds(
    lambda at, kind: Event(at, kind, "x", "context"),
    _times,
    st.sampled_from([inc.DEPLOY, inc.STEP, inc.ENV]),
)


@settings(max_examples=400, deadline=None)
@example([probe(0, "api", CRIT), probe(30, "api", OK), probe(90, "api", CRIT)], 60.0)  # exactly quiet apart
@example([probe(0, "api", CRIT), probe(30, "api", OK), probe(30, "db", CRIT)], 0.0)
@example([probe(0, "retired", OK, failed=True), probe(600, "api", CRIT), probe(630, "api", OK)], 60.0)
@given(
    st.lists(st.one_of(_checks, _checks, _alerts, _context, _stale), min_size=4, max_size=50),
    st.sampled_from([0.0, 60.0, 300.0]),
)
def test_derivation_matches_the_brute_force_reference(events: list[Event], quiet_s: float) -> None:
    got = inc.derive(events, quiet_s=quiet_s)
    expected = reference(events, quiet_s)
    assert [
        (i.first_failure_at, i.opened_at, i.recovered_at, tuple(f"check:{c}" for c in i.checks), i.severity)
        for i in got
    ] == [(f, o, r, tuple(m for m in ms if m.startswith("check:")), sev) for f, o, r, ms, sev in expected]
    ordered = sorted(events, key=lambda e: e.at)
    for i in got:  # every event of its window, and the windows never overlap
        end = float("inf") if i.recovered_at is None else i.recovered_at
        assert list(i.events) == [e for e in ordered if i.first_failure_at <= e.at <= end]
    for a, b in itertools.pairwise(got):
        assert a.recovered_at is not None and a.recovered_at <= b.first_failure_at
