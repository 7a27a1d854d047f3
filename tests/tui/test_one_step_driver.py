"""The scripted session of tests/runbook_script.py through the Runbooks pane (pilot; the same
terminal killed -9 in the middle): the record must be EXPECTED, as `opsdash runbook run` leaves it."""

from __future__ import annotations

from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input

from opsdash.core.runbooks.state import StepStatus
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.runbooks import ConfirmAction, QuitDuringCommand, RunbooksPane
from tests.conftest import Project
from tests.runbook_script import BOOK_ID, REASON, assert_expected, fix_env, killed_during_verify, setup
from tests.tui.conftest import SIZE, settle, until


def dashboard(project: Project, data: Path) -> OpsdashApp:
    return OpsdashApp.on_profile(project.profile, live=False, record=False, data_dir=data)


async def opened(pilot: Pilot[None], idle: bool = True) -> RunbooksPane:
    """`idle=False`: a command left running is being watched (the driver is busy with it)."""
    await pilot.press("5")
    await settle(pilot)
    pane = pilot.app.query_one(RunbooksPane)
    await until(pilot, lambda: bool(pane.books))
    pane.open_runbook(BOOK_ID)
    await pilot.press("enter")  # starts it, or resumes the active session
    await until(pilot, lambda: pane.executor is not None and not (idle and pane._busy))
    await settle(pilot)
    return pane


def step(pane: RunbooksPane, index: int) -> StepStatus:
    assert pane.executor is not None
    return pane.executor.state.steps[index].status


async def test_the_scripted_session_through_the_pane(project: Project, tmp_path: Path) -> None:
    books, data = tmp_path / "books", tmp_path / "data"
    setup(project, books)
    app = dashboard(project, data)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot)
        await pilot.press("c")  # Build
        await until(pilot, lambda: step(pane, 0) is StepStatus.DONE and not pane._busy)
        await pilot.press("c")  # the gate fails (test mode) ...
        await until(pilot, lambda: step(pane, 1) is StepStatus.FAILED and not pane._busy)
        await settle(pilot)
        fix_env(project)
        await pilot.press("r")  # ... and retrying runs the checks again: they pass
        await until(pilot, lambda: step(pane, 1) is StepStatus.DONE and not pane._busy)
        await settle(pilot)
        await pilot.press("c")  # Deploy, interrupted
        await until(
            pilot,
            lambda: (books / "deploy-started").exists() and not app.query_one("#step-interrupt").disabled,
        )
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, ConfirmAction))
        app.screen.query_one("#confirm-reason", Input).value = REASON
        app.screen.query_one("#confirm-yes", Button).press()
        await until(pilot, lambda: step(pane, 2) is StepStatus.FAILED and not pane._busy)
        await settle(pilot)
        (books / "deploy-release").touch()
        await pilot.press("r")
        await until(pilot, lambda: step(pane, 2) is StepStatus.PENDING and not pane._busy)
        await settle(pilot)
        await pilot.press("c")
        await until(pilot, lambda: step(pane, 2) is StepStatus.DONE and not pane._busy)
        await settle(pilot)
        await pilot.press("c")  # Migrate, left running when the dashboard quits
        await until(
            pilot, lambda: (books / "migrate-started").exists() and pane.command_running() is not None
        )
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, QuitDuringCommand))
        app.screen.query_one("#quit-detach", Button).press()
        await until(pilot, lambda: not app.is_running)

    killed_during_verify(project, books, data)

    app = dashboard(project, data)
    async with app.run_test(size=SIZE) as pilot:
        pane = await opened(pilot, idle=False)  # resumed: Verify outlived the killed terminal, and is watched
        steps = app.query_one("#steps", DataTable)
        await until(pilot, lambda: "(elsewhere)" in str(steps.get_cell("verify", "state")))
        assert app.query_one("#step-interrupt", Button).disabled is False  # only interrupt is offered
        (books / "verify-release").touch()
        await until(pilot, lambda: step(pane, 4) is StepStatus.DONE and not pane._busy)
        await settle(pilot)
        await pilot.press("c")  # Tell people
        await until(pilot, lambda: pane.executor is not None and pane.executor.finished)
        await settle(pilot)
    assert_expected(data)
