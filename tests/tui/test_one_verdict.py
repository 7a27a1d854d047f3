"""Every view reads one state model: the Health row, its detail, the overview and the header say
the same thing about a check, and the verdict names its worst contributor, WARNs included.

Each test here is a contradiction an operator saw on the demo: a failing check shown as OK for
~20 s, a recovered one still CRIT, a GO while a certificate WARN and a WARN alert were active, a
GO with polling paused."""

from __future__ import annotations

import dataclasses

from textual.pilot import Pilot
from textual.widgets import Static

from opsdash.core.findings import Severity
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.demo.sample import sample_report, sample_results
from opsdash.tui.app import OpsdashApp, VerdictBar
from opsdash.tui.messages import CheckCompleted, OpenAlertsRead, ValidationCompleted
from opsdash.tui.widgets.table import OpsTable
from tests.tui.conftest import SIZE, settle

STARTED = "2026-11-26T08:00:00.000+00:00"


def result(name: str, severity: Severity, summary: str, error: ErrorClass | None = None) -> CheckResult:
    return CheckResult(
        name, "provider", "https://api.example", severity, summary, STARTED, 10.0, error_class=error
    )


def shown(app: OpsdashApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


async def clean_start(app: OpsdashApp, pilot: Pilot[None]) -> None:
    """A validation with no findings and every check OK, as a healthy deploy day starts."""
    await settle(pilot)
    assert app.ctx.loaded is not None
    validation = await app.ensure_pane("validation")
    health = await app.ensure_pane("health")
    report = dataclasses.replace(sample_report(app.ctx.loaded.profile), findings=())
    validation.post_message(ValidationCompleted(report))
    for r, _state in sample_results():
        ok = dataclasses.replace(r, severity=Severity.OK, error_class=None)
        health.post_message(CheckCompleted(ok, SustainedState().update(ok, 3, 2)))
    await settle(pilot)
    assert app.sub_title.startswith("GO: validation and live checks pass"), app.sub_title


async def test_a_first_failure_shows_at_once_as_failing_1_of_3(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await clean_start(sample_app, pilot)
        health = await sample_app.ensure_pane("health")
        state = health.states["ikhokha-api"]
        bad = result("ikhokha-api", Severity.CRIT, "Credentials rejected (401)", ErrorClass.HTTP_AUTH)
        health.post_message(CheckCompleted(bad, state.update(bad, 3, 2)))
        await pilot.press("3")
        await settle(pilot)
        table = sample_app.query_one("#checks", OpsTable)
        assert str(table.get_cell("ikhokha-api", "status")) == "failing 1 of 3"  # never "OK" beside a 401
        assert table.get_cell("ikhokha-api", "error") == "http-auth"
        table.move_to("ikhokha-api")
        await pilot.pause()
        assert "failing 1 of 3" in shown(sample_app, "#check-detail")
        assert "ikhokha-api failing 1 of 3" in sample_app.sub_title
        assert not sample_app.sub_title.startswith("GO: validation and live checks pass")
        assert "failing 1 of 3" in shown(sample_app, "#overview-checks")


async def test_a_recovering_check_says_so_and_the_verdict_agrees(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await clean_start(sample_app, pilot)
        health = await sample_app.ensure_pane("health")
        bad = result("ikhokha-api", Severity.CRIT, "Credentials rejected (401)", ErrorClass.HTTP_AUTH)
        state = SustainedState()
        for _ in range(3):
            state = state.update(bad, 3, 2)
        assert state.status is Severity.CRIT
        good = result("ikhokha-api", Severity.OK, "reachable, credentials accepted")
        health.post_message(CheckCompleted(good, state.update(good, 3, 2)))
        await pilot.press("3")
        await settle(pilot)
        table = sample_app.query_one("#checks", OpsTable)
        assert str(table.get_cell("ikhokha-api", "status")) == "recovering 1 of 2"  # not "CRIT … accepted"
        assert sample_app.sub_title.startswith("NO-GO: ikhokha-api recovering 1 of 2")
        assert "recovering 1 of 2" in shown(sample_app, "#overview-checks")


async def test_a_warn_check_and_a_warn_alert_are_named_not_a_clean_go(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await clean_start(sample_app, pilot)
        health = await sample_app.ensure_pane("health")
        warn = result("app-tls", Severity.WARN, "certificate valid 12 more days")
        state = SustainedState(Severity.OK)
        for _ in range(3):
            state = state.update(warn, 3, 2)
        health.post_message(CheckCompleted(warn, state))
        sample_app.post_message(OpenAlertsRead([(Severity.WARN, "app-tls: certificate expires soon")]))
        await settle(pilot)
        header = str(sample_app.query_one(VerdictBar).render())
        assert "validation and live checks pass" not in header
        assert sample_app.sub_title.startswith(
            "GO: with warnings: app-tls WARN; alert: app-tls: certificate expires soon"
        )
        assert "app-tls WARN" in shown(sample_app, "#gate")


async def test_paused_polling_marks_the_verdict_and_the_rows_stale(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await clean_start(sample_app, pilot)
        await pilot.press("3")
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert sample_app.sub_title.startswith("GO (stale): polling paused")
        assert "(stale)" in str(sample_app.query_one(VerdictBar).render())
        assert "GO (stale)" in shown(sample_app, "#gate")
        table = sample_app.query_one("#checks", OpsTable)
        assert str(table.get_cell("app-health", "status")) == "stale: OK"
        await pilot.press("p")
        await settle(pilot)
        assert sample_app.sub_title.startswith("GO: validation and live checks pass")


async def test_header_overview_and_health_read_the_same_verdict(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        health = await sample_app.ensure_pane("health")
        validation = await sample_app.ensure_pane("validation")
        assert sample_app.ctx.loaded is not None
        validation.post_message(ValidationCompleted(sample_report(sample_app.ctx.loaded.profile)))
        for r, state in sample_results():
            health.post_message(CheckCompleted(r, state))
        await settle(pilot)
        verdict = sample_app.ctx.verdict()
        assert verdict.label == "NO-GO" and "ikhokha-api CRIT" in verdict.reason
        assert sample_app.sub_title.startswith(str(verdict))
        assert " ".join(shown(sample_app, "#gate").split()) == f"{verdict.headline} {verdict.reason}"
        assert str(sample_app.query_one(VerdictBar).render()).strip().startswith("NO-GO")


async def test_a_failed_validation_never_hides_a_down_check(sample_app: OpsdashApp) -> None:
    """Validation could not run and a check is down: the header says NO-GO naming the check, as
    `opsdash serve`'s opsdash_gate does for the same state, not UNKNOWN. With every check up, it
    says the environment could not be validated."""
    from opsdash.tui.messages import ValidationFailed

    async with sample_app.run_test(size=SIZE) as pilot:
        await clean_start(sample_app, pilot)
        validation = await sample_app.ensure_pane("validation")
        validation.post_message(ValidationFailed("env file unreadable"))
        await settle(pilot)
        bar = str(sample_app.query_one(VerdictBar).render())
        assert bar.lstrip().startswith("UNKNOWN") and "could not be validated" in bar
        health = await sample_app.ensure_pane("health")
        down = result("ikhokha-api", Severity.CRIT, "HTTP 503", ErrorClass.HTTP_5XX)
        health.post_message(CheckCompleted(down, SustainedState().update(down, 1, 2)))
        await settle(pilot)
        bar = str(sample_app.query_one(VerdictBar).render())
        assert bar.lstrip().startswith("NO-GO") and "ikhokha-api CRIT" in bar
