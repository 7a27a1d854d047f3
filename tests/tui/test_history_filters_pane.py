"""The History pane's filters by date, kind, verdict and rule (issue #33: `history list` had them,
the pane did not): `f` opens them, Enter applies them through the call `history list` makes, Esc
clears them; a filter that is not one says so and leaves the list as it was. And the Timeline pane
of a profile that shares its data directory with another lists only its own incidents."""

from __future__ import annotations

import os
from pathlib import Path

from textual.widgets import Static

from opsdash.core.findings import Finding, Report, Severity
from opsdash.storage.history import History
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.history import HistoryPane, RunQuery
from opsdash.tui.panes.timeline import TimelinePane
from opsdash.tui.widgets.table import OpsTable
from tests.conftest import Project
from tests.incident_record import T0, iso, result, write_incident
from tests.tui.conftest import SIZE, settle, until


def finding(rule: str, severity: Severity) -> Finding:
    return Finding(rule, severity, "env", "VITE_X", rule, "detail", "fix it", None, {})


def write_runs() -> None:
    made = [
        ("validate", 0, (finding("secret-reused", Severity.CRIT),)),
        ("validate", 86400, ()),
        ("preflight", 2 * 86400, (finding("check-failed", Severity.WARN),)),
        ("validate", 3 * 86400, (finding("secret-reused", Severity.CRIT),)),
    ]
    with History.open(Path(os.environ["OPSDASH_DATA_DIR"])) as history:
        for n, (kind, offset, findings) in enumerate(made):
            report = Report(kind, "BetaSkill", f"run-{n}", iso(T0 + offset), 10, findings)
            history.runs.record(report, operator="ana")


def listed(app: OpsdashApp) -> list[str]:
    table = app.query_one("#runs", OpsTable)
    return [str(row.key.value) for row in table.ordered_rows]


async def test_history_pane_filters_by_date_kind_verdict_and_rule(project: Project) -> None:
    write_runs()
    app = OpsdashApp.on_profile(project.profile, record=False, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("6")
        await until(pilot, lambda: len(listed(app)) == 4)
        pane = app.query_one(HistoryPane)

        async def apply(text: str) -> None:
            await pilot.press("f")
            query = app.query_one(RunQuery)
            assert query.display and query.has_focus
            query.value = text
            await pilot.press("enter")
            await settle(pilot)

        await apply("kind=validate verdict=crit")
        await until(pilot, lambda: listed(app) == ["run-3", "run-0"])
        assert pane.border_subtitle == "filters: kind=validate verdict=crit"
        await apply("since=2026-12-02 until=2026-12-04")
        await until(pilot, lambda: listed(app) == ["run-2", "run-1"])
        await apply("rule=secret-reused")
        await until(pilot, lambda: listed(app) == ["run-3", "run-0"])
        await apply("rule=no-such-rule")
        await until(pilot, lambda: listed(app) == [])
        detail = str(app.query_one("#run-detail", Static).render())
        assert "No runs match these filters: rule=no-such-rule" in detail

        # not a filter: said, and the list stays as it was
        await apply("rule=secret-reused")
        await until(pilot, lambda: listed(app) == ["run-3", "run-0"])
        for bad, said in [
            ("verdict=fine", "verdict 'fine': one of"),
            ("since=yesterday", "is not a time"),
            ("since=0001-01-01", "out of range"),
            ("colour=red", "give filters as word=value"),
            ("since=1h until=2h", "since= is later than until="),
        ]:
            await apply(bad)
            assert listed(app) == ["run-3", "run-0"]
            assert any(said in str(n.message) for n in app._notifications), bad
            assert pane.border_subtitle == "filters: rule=secret-reused"

        # Esc clears every filter
        await pilot.press("escape")
        await until(pilot, lambda: len(listed(app)) == 4)
        assert not app.query_one(RunQuery).display and pane.filters is None and not pane.border_subtitle


async def test_timeline_pane_lists_only_the_profiles_own_incidents(project: Project) -> None:
    """Review of #33, item 1: another target's incident four minutes after this one's recovery was
    shown as part of it. Here it is the other target's alone."""
    with History.open(Path(os.environ["OPSDASH_DATA_DIR"])) as history:
        history.runs.watching("watch", "BetaSkill", iso(T0))
        written = write_incident(history)  # BetaSkill's, recovered at T0 + 431
        history.runs.watching("w-other", "Other", iso(T0))
        for offset, severity in [(600, Severity.CRIT), (630, Severity.CRIT), (660, Severity.OK)]:
            history.checks.record(
                "w-other", [result("payments-api", T0 + offset, severity, "x")], {"payments-api": severity}
            )
        history.alerts.record(
            "check-critical", "payments-api", "CRIT", "other", "x", T0 + 601, target="Other"
        )
    app = OpsdashApp.on_profile(project.profile, record=False, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("7")
        pane = app.query_one(TimelinePane)
        await until(pilot, lambda: bool(pane.incidents))
        assert [(i.target, i.recovered_at) for i in pane.incidents] == [("BetaSkill", written.recovered)]
