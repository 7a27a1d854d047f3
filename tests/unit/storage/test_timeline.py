"""`history.timeline`: a window's events from every table, on a real SQLite file. Check results are
read through the partial index of unhealthy rows (v11), each with the row after it, so a run of
healthy results is never read; env changes carry fingerprints, never values."""

from __future__ import annotations

from pathlib import Path

from opsdash.core import incidents as core
from opsdash.core.envfiles import EnvSnapshot, EnvValue
from opsdash.core.findings import Report, Severity
from opsdash.storage.history import History
from tests.incident_record import T0, iso, result, write_incident
from tests.unit.storage.conftest import set_schema_version

OK, CRIT = Severity.OK, Severity.CRIT


def test_check_changes_read_unhealthy_rows_and_the_row_after_each(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        sweeps = [(0, OK, OK), (30, OK, OK), (60, CRIT, OK), (90, OK, OK), (120, OK, OK), (150, CRIT, CRIT)]
        sweeps += [(180, OK, CRIT), (210, OK, OK), (240, OK, OK)]
        for offset, severity, sustained in sweeps:
            history.checks.record("w", [result("api", T0 + offset, severity, "x")], {"api": sustained})
        events = history.timeline.check_changes(T0, T0 + 1000)
        if history.dialect == "sqlite":
            plan = " ".join(
                str(r[-1])
                for r in history.conn.execute(
                    "EXPLAIN QUERY PLAN SELECT 1 FROM check_results INDEXED BY idx_check_results_failing "
                    "WHERE (severity != 'OK' OR sustained != 'OK') AND started_at >= ?",
                    [iso(T0)],
                )
            )
        else:  # PostgreSQL plans alone: the partial index is there for it
            plan = " ".join(
                str(r[0])
                for r in history.conn.execute(
                    "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                    "AND indexname = 'idx_check_results_failing'"
                )
            )
    assert [(e.at - T0, e.failed, e.sustained) for e in events] == [
        (60, True, OK),  # a blip
        (90, False, OK),  # the row after it
        (150, True, CRIT),
        (180, False, CRIT),  # recovering
        (210, False, OK),  # recovered: the row after the last unhealthy one
    ]
    assert "idx_check_results_failing" in plan
    assert [(i.opened_at - T0, i.recovered_at) for i in core.derive(events)] == [(150, T0 + 210)]


def test_the_index_is_added_to_a_database_an_older_opsdash_made(tmp_path: Path) -> None:
    from opsdash.storage.schema import SCHEMA_VERSION

    with History.open(tmp_path) as history:
        write_incident(history)
        history.conn.execute("DROP INDEX idx_check_results_failing")
        set_schema_version(history, 10)  # as v10 left it: v11 made the index (later steps run too)
    with History.open(tmp_path) as history:
        assert history.schema_version == SCHEMA_VERSION
        assert len(history.timeline.check_changes(0, T0 + 10_000)) == 5  # 30, 60, 90, 400 and 430


def test_every_kind_of_the_window_and_nothing_outside_it(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        written = write_incident(history)
        for n, value in enumerate(("first-value-aaaa", "second-value-bbbb")):
            env = EnvSnapshot({"API_SECRET": EnvValue("API_SECRET", value, ".env:1")}, sources=(".env",))
            report = Report("validate", "BetaSkill", f"v{n}", iso(T0 + 100 + n * 100), 3, ())
            history.runs.record(report, operator="ana", env=env, is_secret=lambda _k: True)
        for second in (0, 1, 2, 70):
            history.webhooks.record_failure("203.0.113.9", "bad-signature", T0 + 300 + second)
        t = history.timeline
        since, until = written.first_failure, written.recovered + 2
        env_changes = t.env_changes(since, until)
        bursts = t.webhook_failures(since, until)
        deploys = t.runs(since - 3600, until)
        runbook = t.runbooks(since, until)
        deliveries = t.deliveries(since, until)
        empty = [t.alerts(0, T0 - 3600), t.runbooks(0, T0 - 3600), t.check_changes(T0 + 9000, T0 + 9999)]
    [changed] = env_changes
    assert changed.title == "env changed: API_SECRET" and changed.at == T0 + 200
    assert "first-value" not in changed.evidence and "second-value" not in changed.evidence
    assert changed.evidence.count("->") == 1
    assert [(b.at - T0, b.title) for b in bursts] == [
        (300, "3 failed webhook verification(s) from 203.0.113.9"),
        (370, "1 failed webhook verification(s) from 203.0.113.9"),
    ]
    assert [(d.kind, d.evidence) for d in deploys] == [(core.DEPLOY, "2026.12.1")]
    assert [e.kind for e in runbook] == [core.SESSION, core.STEP, core.STEP, core.SESSION]
    assert {e.operator for e in runbook} == {"ana"}
    assert [d.title for d in deliveries] == [
        "firing to ops-webhook: delivered",
        "resolved to ops-webhook: delivered",
    ]
    assert empty == [[], [], []]


def test_each_target_reads_only_its_own_rows_and_those_that_name_none(tmp_path: Path) -> None:
    """Two profiles share a data directory (review of #33, item 1): a check of the same name is
    watched by both, their results interleaved. Each target reads its own check results (through
    its watch's or its run's target), its own alerts and runs; a result of a watch that named no
    target (written before v13) and an alert without one are everyone's, as before."""
    with History.open(tmp_path) as history:
        history.runs.watching("w-alpha", "Alpha", iso(T0))
        history.runs.watching("w-beta", "Beta", iso(T0))
        history.runs.watching("w-alpha", "Beta", iso(T0))  # once per run id: the first stays
        for offset, run, severity, sustained in [
            (0, "w-beta", CRIT, CRIT),  # Beta down...
            (5, "w-alpha", OK, OK),  # ...while Alpha's check of that name is healthy
            (10, "w-beta", CRIT, CRIT),
            (15, "w-alpha", CRIT, CRIT),  # Alpha down at 15
            (20, "w-beta", OK, OK),  # Beta recovered at 20
            (25, "w-alpha", OK, OK),  # Alpha recovered at 25
            (30, "w-old", CRIT, OK),  # a watch from before v13: everyone's
            (35, "w-old", OK, OK),
        ]:
            history.checks.record(run, [result("api", T0 + offset, severity, "x")], {"api": sustained})
        report = Report("verify-deploy", "Beta", "deploy-beta", iso(T0 - 60), 3, ())
        history.runs.record(report, operator="ana")
        history.runs.record(
            Report("check", "Beta", "check-beta", iso(T0 + 40), 3, ()),
            operator="ana",
            results=[result("api", T0 + 40, CRIT, "one-shot")],
        )
        for key, target in (("api", "Beta"), ("api", "Alpha"), ("api", None)):
            history.alerts.record(
                "check-critical", key, "CRIT", f"api ({target})", "x", T0 + 1, target=target
            )
        t = history.timeline

        def checks(target: str) -> list[tuple[float, bool]]:
            return [(e.at - T0, e.failed) for e in t.check_changes(T0 - 1, T0 + 100, target)]

        alpha, beta, everyone = checks("Alpha"), checks("Beta"), checks("")
        alerts = {who: [e.title for e in t.alerts(0, T0 + 100, who)] for who in ("Alpha", "Beta")}
        deploys = {who: len(t.runs(0, T0 + 100, target=who)) for who in ("Alpha", "Beta", "")}
    assert alpha == [(15, True), (25, False), (30, True), (35, False)]
    assert beta == [(0, True), (10, True), (20, False), (30, True), (35, False), (40, True)]
    assert everyone == [
        (0, True),
        (5, False),
        (10, True),
        (15, True),
        (20, False),
        (30, True),
        (35, False),
        (40, True),
    ]
    assert alerts == {"Alpha": ["api (Alpha)", "api (None)"], "Beta": ["api (Beta)", "api (None)"]}
    assert deploys == {"Alpha": 0, "Beta": 1, "": 1}


def test_a_database_an_older_opsdash_made_gains_watches_and_alert_targets(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        write_incident(history)
        history.conn.execute("DROP TABLE watches")
        history.conn.execute("ALTER TABLE alerts DROP COLUMN target")
        set_schema_version(history, 12)  # before v13
    with History.open(tmp_path) as history:
        from opsdash.storage.schema import SCHEMA_VERSION

        assert history.schema_version == SCHEMA_VERSION
        # the rows it wrote name no target: every profile still reads them
        assert len(history.timeline.check_changes(0, T0 + 10_000, "Anyone")) == 5
        assert len(history.timeline.alerts(0, T0 + 10_000, "Anyone")) == 2
        history.runs.watching("w", "Alpha", iso(T0))
        assert history.alerts.record("x", "k", "CRIT", "t", "d", T0, target="Alpha") is not None
