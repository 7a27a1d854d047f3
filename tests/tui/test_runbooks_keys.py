"""Keys in the Runbooks pane are the keys its footer shows, in every state; `n` in a session view
opens the parameters dialog at once (a slow version lookup fills it in later), so what the
operator types next lands in the dialog and never becomes a step action; cancelling it leaves the
list movable."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from opsdash.core.runbooks.model import Runbook
from opsdash.core.runbooks.state import StepStatus
from opsdash.storage.history import History
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.runbooks import ParametersScreen, RunbooksPane
from tests.conftest import Project
from tests.tui.conftest import SIZE, settle, until

BOOK = """+++
id = "keys-drill"
title = "Keys drill"
parameters = [{ name = "release", prompt = "Release", default = "2026.11.1", suggest = "previous-release" }]
+++

## Deploy {#deploy}
```command timeout=60
touch started; until [ -e release ]; do sleep 0.05; done
```

## Tell people {#tell end}
Say it is out.
"""


def keys_app(project: Project, tmp_path: Path) -> OpsdashApp:
    books = tmp_path / "books"
    books.mkdir()
    (books / "keys-drill.md").write_text(BOOK)
    (books / "other-drill.md").write_text(BOOK.replace("keys-drill", "other-drill"))
    text = project.profile.read_text().replace('dirs = ["runbooks"]', f'dirs = ["{books}"]')
    project.profile.write_text(text)
    return OpsdashApp.on_profile(project.profile, live=False, record=False, data_dir=tmp_path / "data")


async def on_the_drill(pilot: Pilot[None]) -> RunbooksPane:
    """The Runbooks pane, its list loaded, keys-drill chosen."""
    await pilot.press("5")
    await settle(pilot)
    pane = pilot.app.query_one(RunbooksPane)
    await until(pilot, lambda: bool(pane.books))
    pane.open_runbook("keys-drill")
    return pane


def shown(app: OpsdashApp) -> set[str]:
    """The pane's keys the footer offers now."""
    pane_actions = {"open", "new_session", "copy", "back_to_list"}
    return {
        b.binding.key
        for b in app.active_bindings.values()
        if b.enabled and (b.binding.action.startswith("step(") or b.binding.action in pane_actions)
    }


async def test_n_in_a_session_view_opens_the_dialog_at_once_and_typing_stays_in_it(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lookups: list[str] = []
    answer = threading.Event()

    def slow_lookup(_ops: object, book: Runbook) -> dict[str, str]:
        lookups.append(book.id)
        if len(lookups) > 1:  # the second lookup: a version URL that takes its time
            answer.wait(120)  # longer than a test waits: without the answer, no dialog is a failure
        return {"release": "2026.11.2"}

    monkeypatch.setattr("opsdash.ops.runbooks.suggested_params", slow_lookup)
    app = keys_app(project, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await on_the_drill(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ParametersScreen))
        field = app.screen.query_one("#param-release", Input)
        await until(pilot, lambda: field.value == "2026.11.2")
        await pilot.press("enter")
        await until(pilot, lambda: pane.executor is not None and not pane._busy)
        await settle(pilot)
        first = pane.executor
        assert first is not None
        assert "n" in shown(app)
        await pilot.press("n")  # a new session, while the lookup hangs (no settle: it would wait for it)
        await until(pilot, lambda: isinstance(app.screen, ParametersScreen))  # up before any answer
        assert not answer.is_set() and isinstance(app.screen, ParametersScreen)
        assert app.screen.book.id == "keys-drill"
        await pilot.press("c", "i", "a")  # typed into the dialog, where the focus is
        await pilot.pause()
        assert isinstance(app.screen, ParametersScreen)
        assert app.screen.query_one("#param-release", Input).value.endswith("cia")
        assert pane.executor is first and first.state.steps[0].status is StepStatus.PENDING
        assert not (tmp_path / "books" / "started").exists()  # no step action was taken
        answer.set()
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert type(app.screen).__name__ != "ParametersScreen"  # closed (the mypy-narrowed isinstance aside)
        assert pane.executor is first
        with History.open(tmp_path / "data", write=False) as history:
            assert [e.event for e in history.sessions.events(first.state.id)] == ["session-started"]
            assert len(history.sessions.recent("keys-drill")) == 1  # cancelled: no second session
        # back to the list: it moves, and the preview follows
        await pilot.press("l")
        await settle(pilot)
        table = app.query_one("#runbook-list", DataTable)
        before = table.cursor_row
        await pilot.press("up" if before else "down")
        await settle(pilot)
        assert table.cursor_row != before


async def test_after_cancelling_the_dialog_the_list_moves(project: Project, tmp_path: Path) -> None:
    app = keys_app(project, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:  # narrow: the session takes the whole pane
        await on_the_drill(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ParametersScreen))
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        table = app.query_one("#runbook-list", DataTable)
        assert app.focused is table
        before = str(table.coordinate_to_cell_key(table.cursor_coordinate)[0].value)
        assert before == "keys-drill"
        await pilot.press("up")
        await settle(pilot)
        after = str(table.coordinate_to_cell_key(table.cursor_coordinate)[0].value)
        assert after != before  # the list moves ...
        assert f"({after})" in str(app.query_one("#session-title", Static).render())  # ... and shows it


async def test_the_keys_that_work_are_the_keys_the_footer_shows(project: Project, tmp_path: Path) -> None:
    app = keys_app(project, tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await on_the_drill(pilot)
        assert shown(app) == {"n"}  # the list: Enter (the table's own) opens, n starts anew
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ParametersScreen))
        await pilot.press("enter")
        await until(pilot, lambda: pane.executor is not None and not pane._busy)
        await settle(pilot)
        assert shown(app) == {"n", "y", "c", "a", "l"}  # a fresh command step
        await pilot.press("c")
        await until(pilot, lambda: (tmp_path / "books" / "started").exists() and "i" in shown(app))
        await settle(pilot)
        assert shown(app) == {"y", "i"}  # running: only interrupt (and copying the command)
        for key in ("n", "l", "c", "r", "s", "d", "a"):  # none of these does anything now
            await pilot.press(key)
        await settle(pilot)
        assert not isinstance(app.screen, ParametersScreen) and pane.has_class("-session")
        assert pane.executor is not None and pane.executor.state.steps[0].status is StepStatus.RUNNING
        (tmp_path / "books" / "release").touch()
        await until(
            pilot, lambda: pane.executor is not None and pane.executor.state.current == 1 and not pane._busy
        )
        await settle(pilot)
        assert shown(app) == {"n", "c", "a", "l"}  # a manual step: nothing to copy
