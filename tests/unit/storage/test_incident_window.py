"""Incidents read from a quiet cut (ops.incidents, `Timeline.quiet_at`): `incident list` reads the
last week of a year, not the year, and `show ID` the hour the id names. A property test holds
every windowed answer against the whole record's derivation, on random records written through
opsdash's own repositories: two targets sharing a check name, flaps, restarts that know nothing
yet, checks removed while failing or down, alerts left open."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsdash.core.findings import Severity
from opsdash.ops import incidents as ops_incidents
from opsdash.ops.base import Ops
from opsdash.storage.history import History
from tests.incident_record import T0, iso, result

OK, WARN, CRIT, UNKNOWN = Severity.OK, Severity.WARN, Severity.CRIT, Severity.UNKNOWN
Alert = tuple[str | None, int, int | None, str, str]
TABLES = ("check_results", "alert_deliveries", "alerts", "watches", "runs")

probes = st.lists(
    st.tuples(
        st.sampled_from(["api", "web", "db"]),
        st.sampled_from(["w-alpha", "w-beta"]),  # whose watch: a check of one name in two targets
        st.integers(5, 900),  # seconds after the previous probe
        st.sampled_from([OK, OK, OK, CRIT]),  # the probe
        st.sampled_from([OK, OK, CRIT, WARN, UNKNOWN]),  # its sustained state
    ),
    max_size=60,
)
alerts = st.lists(
    st.tuples(
        st.sampled_from(["alpha", "beta", None]),
        st.integers(0, 30_000),  # fired, seconds after T0
        st.one_of(st.none(), st.integers(1, 3_000)),  # resolved that much later, or still open
        st.sampled_from(["check-critical", "certificate-expiry"]),
        st.sampled_from(["CRIT", "WARN"]),
    ),
    max_size=4,
)


def write(history: History, rows: list[tuple[str, str, int, Severity, Severity]], fired: list[Alert]) -> None:
    conn = history.conn
    with history.writing():
        for table in TABLES:
            conn.execute(f"DELETE FROM {table}")
    history.runs.watching("w-alpha", "alpha", iso(T0))
    history.runs.watching("w-beta", "beta", iso(T0))
    at = T0
    for name, run, gap, severity, sustained in rows:
        at += gap
        history.checks.record(run, [result(name, at, severity, "x")], {name: sustained})
    for target, raised, lasted, rule, level in fired:
        alert = history.alerts.record(rule, "api", level, "api", "x", T0 + raised, target=target)
        if alert is not None and lasted is not None:
            history.alerts.mark(alert, status="resolved", resolved_at=T0 + raised + lasted)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=probes,
    fired=alerts,
    quiet_s=st.sampled_from([0.0, 60.0, 300.0]),
    span=st.integers(60, 20_000),
    step=st.integers(10, 2_000),
    limit=st.integers(1, 4),
    window=st.tuples(st.integers(0, 40_000), st.integers(0, 20_000)),
)
def test_a_window_read_from_a_quiet_cut_gives_the_whole_records_incidents(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[tuple[str, str, int, Severity, Severity]],
    fired: list[Alert],
    quiet_s: float,
    span: int,
    step: int,
    limit: int,
    window: tuple[int, int],
) -> None:
    monkeypatch.setattr(ops_incidents, "FIRST_SPAN_S", float(span))
    monkeypatch.setattr(ops_incidents, "CUT_STEP_S", float(step))
    with History.open(tmp_path) as history:
        write(history, rows, fired)
    ops = Ops.bare(data_dir=tmp_path)
    since, until = T0 + window[0], T0 + window[0] + window[1]
    for target in ("alpha", "beta", None):  # None: the profile's, here none (every target's)
        whole = ops_incidents.incidents(ops, ops_incidents.Query(target=target, quiet_s=quiet_s))
        newest = ops_incidents.Query(target=target, quiet_s=quiet_s, limit=limit)
        assert ops_incidents.incidents(ops, newest) == whole[-limit:]
        windowed = ops_incidents.Query(target=target, quiet_s=quiet_s, since=since, until=until)
        assert ops_incidents.incidents(ops, windowed) == [
            i
            for i in whole
            if (i.recovered_at is None or i.recovered_at >= since) and i.first_failure_at <= until
        ]
        both = ops_incidents.Query(target=target, quiet_s=quiet_s, since=since, limit=limit)
        assert (
            ops_incidents.incidents(ops, both)
            == [i for i in whole if i.recovered_at is None or i.recovered_at >= since][-limit:]
        )
    for incident in whole:  # the last, the profile's: `show` reads the profile's target
        assert ops_incidents.show(ops, incident.id, quiet_s=quiet_s).id == incident.id
    if whole:
        assert ops_incidents.show(ops, "latest", quiet_s=quiet_s).id == whole[-1].id


def test_the_newest_are_read_from_the_last_quiet_cut_not_from_the_start(tmp_path: Path) -> None:
    """A week-old incident and one today: `incident list -n 1` reads from a cut after the first
    (nothing of it is read), and a check left down and never probed again makes no cut after it
    quiet: the record is then read from its start, as the derivation has that check down still."""
    day = 86400.0
    with History.open(tmp_path) as history:
        for start in (T0 - 8 * day, T0):
            for offset, severity, sustained in ((0, CRIT, OK), (30, CRIT, CRIT), (60, OK, OK), (90, OK, OK)):
                history.checks.record("w", [result("api", start + offset, severity, "x")], {"api": sustained})
        t = history.timeline
        quiet = [t.quiet_at(T0 - day, 300.0), t.quiet_at(T0 + 45, 300.0), t.quiet_at(T0 + 200, 300.0)]
        history.checks.record("w", [result("db", T0 - 9 * day, CRIT, "x")], {"db": CRIT})  # and never again
        left_down = t.quiet_at(T0 - day, 300.0)
    assert quiet == [True, False, False]  # mid-incident, and inside its quiet period: not quiet
    assert left_down is False
    ops = Ops.bare(data_dir=tmp_path)
    (only,) = ops_incidents.incidents(ops, ops_incidents.Query(limit=1))
    assert only.ongoing  # db is down since nine days ago: one incident, still open
    assert only.first_failure_at == T0 - 9 * day


def test_a_cut_inside_a_failing_streak_is_not_quiet(tmp_path: Path) -> None:
    """A failed probe, nothing for ten minutes, then failures until the check goes down: the
    incident's first failure is the first probe's, so a cut between them is not quiet, and the
    window asked from there still gives the incident its real start."""
    with History.open(tmp_path) as history:
        for offset, severity, sustained in ((0, CRIT, OK), (700, CRIT, OK), (730, CRIT, CRIT), (760, OK, OK)):
            history.checks.record("w", [result("api", T0 + offset, severity, "x")], {"api": sustained})
        quiet = history.timeline.quiet_at(T0 + 600, 300.0)
    (only,) = ops_incidents.incidents(Ops.bare(data_dir=tmp_path), ops_incidents.Query(since=T0 + 600))
    assert quiet is False
    assert (only.first_failure_at, only.opened_at, only.recovered_at) == (T0, T0 + 730, T0 + 760)


def test_a_cut_after_a_result_of_unknown_state_is_not_quiet(tmp_path: Path) -> None:
    """The review's case: web answered with its state not known yet (a process just started), api
    went down, web's next result came inside the incident. That next result is an event of the
    incident (the row after an unhealthy one), so a cut between them is not quiet: the windowed
    incident keeps every event the whole record gives it."""
    with History.open(tmp_path) as history:
        history.runs.watching("w-alpha", "alpha", iso(T0))
        for at, name, sustained in ((4, "web", UNKNOWN), (8, "api", CRIT), (9, "web", OK)):
            history.checks.record("w-alpha", [result(name, T0 + at, OK, "x")], {name: sustained})
        quiet = history.timeline.quiet_at(T0 + 5, 0.0, "alpha")
    ops = Ops.bare(data_dir=tmp_path)
    whole = ops_incidents.incidents(ops, ops_incidents.Query(target="alpha", quiet_s=0.0))
    windowed = ops_incidents.Query(target="alpha", quiet_s=0.0, since=T0 + 5, until=T0 + 8)
    assert quiet is False
    assert [(e.source, e.at - T0) for e in whole[0].events] == [("api", 8), ("web", 9)]
    assert ops_incidents.incidents(ops, windowed) == whole
