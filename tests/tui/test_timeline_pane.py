"""The Timeline pane (key 7) on the sample record with its provider outage (demo/sample.py
`write_sample_incident`): the incidents listed, Enter opening one as a timeline with the sparkline
of failing checks, `e` exporting it; snapshots at 80x24, 120x36 and 200x50."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Sparkline, Static

from opsdash.demo.sample import AUDIT_KEY, ENV, write_sample_data, write_sample_incident
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.timeline import TimelinePane
from opsdash.tui.widgets.table import OpsTable
from tests.conftest import EXAMPLE_PROFILE
from tests.tui.conftest import SnapCompare, settle, until

SIZES = [(80, 24), (120, 36), (200, 50)]
INCIDENT = "20261126-071240"


@pytest.fixture
def timeline_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpsdashApp:
    data = tmp_path / "sample-data"
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", AUDIT_KEY)
    monkeypatch.setenv("OPSDASH_OPERATOR", "alice")
    write_sample_data(data)
    write_sample_incident(data)
    return OpsdashApp.on_profile(EXAMPLE_PROFILE, live=False, record=False, data_dir=data)


def pane_of(app: OpsdashApp) -> TimelinePane:
    return app.query_one(TimelinePane)


async def opened(pilot: Pilot[None]) -> None:
    await settle(pilot)
    await pilot.press("7")
    await until(pilot, lambda: pilot.app.query(TimelinePane) and pane_of(pilot.app).incidents)  # type: ignore[arg-type]
    await pilot.press("enter")
    await until(pilot, lambda: pane_of(pilot.app).shown is not None)  # type: ignore[arg-type]
    await settle(pilot)
    pilot.app.set_focus(None)


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_timeline_snapshot(
    snap_compare: SnapCompare, timeline_app: OpsdashApp, size: tuple[int, int]
) -> None:
    assert snap_compare(timeline_app, terminal_size=size, run_before=opened)


async def test_enter_opens_the_incident_with_its_phases_and_failing_checks(timeline_app: OpsdashApp) -> None:
    async with timeline_app.run_test(size=(120, 36)) as pilot:
        await opened(pilot)
        pane = pane_of(timeline_app)
        table = pane.query_one("#incidents", OpsTable)
        assert table.row_count == 1 and str(table.current_key).startswith(INCIDENT)
        shown = pane.shown
        assert shown is not None
        assert shown.checks == ("ikhokha-api", "webhook-endpoint")
        assert shown.cause is not None and shown.cause.source == "preflight"
        text = str(pane.query_one("#incident-timeline", Static).render())
        assert "detect 41s" in text and "act 5m 49s" in text
        assert "Roll back a release: step 2 command-started (alice)" in text
        spark = pane.query_one("#failing-spark", Sparkline)
        assert max(spark.data or [0]) == 2  # the provider and the webhook endpoint at once
        screen = timeline_app.export_screenshot()
        assert not any(value in screen for value in ENV.values() if len(value) > 16)


async def test_e_exports_a_postmortem_draft(timeline_app: OpsdashApp, tmp_path: Path) -> None:
    async with timeline_app.run_test(size=(120, 36)) as pilot:
        await opened(pilot)
        pane_of(timeline_app).query_one("#incidents", OpsTable).focus()
        await pilot.press("e")
        written = tmp_path / "sample-data" / "postmortems"
        await until(pilot, lambda: list(written.glob("incident-*.md")))
        [draft] = written.glob("incident-*.md")
        assert draft.name.startswith(f"incident-{INCIDENT}")
        assert "## Open questions" in draft.read_text(encoding="utf-8")
        notes = [str(n.message) for n in timeline_app._notifications]
        assert any("Postmortem draft written to" in n for n in notes)


async def test_an_empty_record_says_how_an_incident_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "empty"
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", AUDIT_KEY)
    write_sample_data(data)
    app = OpsdashApp.on_profile(EXAMPLE_PROFILE, live=False, record=False, data_dir=data)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("7")
        await until(
            pilot,
            lambda: (
                "No incidents in the record"
                in str(pane_of(app).query_one("#incident-timeline", Static).render())
            ),
        )
        await pilot.press("e")
        await until(pilot, lambda: any("No incident to export" in str(n.message) for n in app._notifications))
