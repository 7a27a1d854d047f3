"""The keys an operator expects, driven with the pilot on the fixed sample data: Esc backs out of
any input or dialog, vi keys and `/` work in every table, pane keys work from every pane, marks
keep the cursor, `d` refuses runs that cannot be compared (and says why), Help shows every key
by the name on the keyboard."""

from __future__ import annotations

import pytest
from textual.app import ComposeResult
from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static, TabbedContent

from opsdash.tui.app import HelpScreen, OpsdashApp
from opsdash.tui.panes.history import HistoryPane
from opsdash.tui.widgets.table import FilterBar, OpsTable
from tests.tui.conftest import SIZE, feed_sample, focus_of, screen_of, settle

PANE_KEYS = {"1": "overview", "2": "validation", "3": "health", "4": "audit", "5": "runbooks", "6": "history"}


async def ready(app: OpsdashApp, pilot: Pilot[None]) -> None:
    await settle(pilot)
    await feed_sample(app)
    await settle(pilot)


def active(app: OpsdashApp) -> str:
    return str(app.query_one(TabbedContent).active)


@pytest.mark.parametrize("start", list(PANE_KEYS))
async def test_every_pane_key_works_from_every_pane(sample_app: OpsdashApp, start: str) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await ready(sample_app, pilot)
        for key, pane in PANE_KEYS.items():
            await pilot.press(start)
            await settle(pilot)
            assert active(sample_app) == PANE_KEYS[start]
            await pilot.press(key)
            await settle(pilot)
            assert active(sample_app) == pane, f"{key} from {PANE_KEYS[start]}"


async def test_escape_leaves_the_audit_filter_boxes(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await ready(sample_app, pilot)
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("slash")
        grep = sample_app.query_one("#audit-grep", Input)
        assert sample_app.focused is grep
        await pilot.press("escape", "3")
        await settle(pilot)
        assert grep.value == ""  # the 3 went to the dashboard, not into the box
        assert active(sample_app) == "health"
        await pilot.press("4")
        await settle(pilot)
        sample_app.query_one("#audit-operator", Input).focus()
        await pilot.press("escape", "q")
        await pilot.pause()
        assert sample_app.query_one("#audit-operator", Input).value == ""
        assert sample_app.return_code == 0  # q quit the dashboard


async def test_escape_closes_any_dialog(sample_app: OpsdashApp) -> None:
    class Dialog(ModalScreen[None]):
        def compose(self) -> ComposeResult:
            yield Static("a dialog without keys of its own")

    async with sample_app.run_test(size=SIZE) as pilot:
        await ready(sample_app, pilot)
        sample_app.push_screen(Dialog())
        await pilot.pause()
        assert isinstance(screen_of(sample_app), Dialog)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(screen_of(sample_app), ModalScreen)
        await pilot.press("question_mark")
        assert isinstance(screen_of(sample_app), HelpScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(sample_app.screen, HelpScreen)


@pytest.mark.parametrize(("key", "table_id"), [("2", "#findings"), ("3", "#checks"), ("6", "#runs")])
async def test_vi_keys_move_in_every_table(sample_app: OpsdashApp, key: str, table_id: str) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await ready(sample_app, pilot)
        await pilot.press(key)
        await settle(pilot)
        table = sample_app.query_one(table_id, DataTable)
        assert sample_app.focused is table and table.row_count >= 3
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("g")
        assert table.cursor_row == 0


@pytest.mark.parametrize(
    ("key", "table_id", "words", "expected"),
    [
        ("2", "#findings", "required-missing", "required-missing"),
        ("3", "#checks", "ikhokha tls", "ikhokha-tls"),
        ("6", "#runs", "preflight", "preflight"),
    ],
)
async def test_slash_filters_every_table_and_escape_clears_it(
    sample_app: OpsdashApp, key: str, table_id: str, words: str, expected: str
) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await ready(sample_app, pilot)
        await pilot.press(key)
        await settle(pilot)
        table = sample_app.query_one(table_id, OpsTable)
        everything = table.row_count
        await pilot.press("slash")
        assert isinstance(focus_of(sample_app), FilterBar)
        await pilot.press(*words)
        await pilot.pause()
        assert 0 < table.row_count < everything
        rows = [" ".join(str(c) for c in table.get_row_at(i)) for i in range(table.row_count)]
        assert all(expected in row for row in rows)
        await pilot.press("enter")  # keeps the filter, back in the table
        assert sample_app.focused is table and table.row_count < everything
        await pilot.press("slash", "escape")  # clears it
        assert sample_app.focused is table and table.row_count == everything


async def test_marks_keep_the_cursor_and_the_second_mark_lands_where_it_is(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await ready(sample_app, pilot)
        await pilot.press("6")
        await settle(pilot)
        table = sample_app.query_one("#runs", OpsTable)
        ids = [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        await pilot.press("j", "space")
        assert table.cursor_row == 1
        await pilot.press("j", "j", "space")
        assert table.cursor_row == 3
        assert sample_app.query_one(HistoryPane).marked == (ids[1], ids[3])
        assert [str(table.get_row_at(i)[0]) for i in range(4)] == [" ", "•", " ", "•"]


async def test_diff_refuses_runs_of_different_kinds_and_says_why(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE, notifications=True) as pilot:
        await ready(sample_app, pilot)
        await pilot.press("6")
        await settle(pilot)
        table = sample_app.query_one("#runs", OpsTable)
        kinds = [str(table.get_row_at(i)[2]) for i in range(table.row_count)]
        first = kinds.index("preflight")
        second = kinds.index("check")
        table.move_cursor(row=first)
        await pilot.press("space")
        table.move_cursor(row=second)
        await pilot.press("space", "d")
        await settle(pilot)
        detail = str(sample_app.query_one("#run-detail", Static).render())
        assert "Cannot diff" in detail and "preflight run and a check run" in detail
        assert any("Cannot diff" in n.message for n in sample_app._notifications)


async def test_help_shows_keys_by_their_names_and_every_key(sample_app: OpsdashApp) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await ready(sample_app, pilot)
        await pilot.press("question_mark")
        table = sample_app.screen.query_one("#help-table", DataTable)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
        keys = {r[0] for r in rows}
        assert not any("question_mark" in k or "slash" in k for k in keys)
        assert {"?", "/", "esc", "j", "k", "g", "G", "1", "6", "q"} <= {
            part.strip() for k in keys for part in k.split(",")
        }
        ids = {r[2] for r in rows}
        assert {
            "app.back",
            "table.down",
            "audit.verify",
            "history.diff",
            "health.filter",
            "runbooks.open",
        } <= ids
        title = str(sample_app.screen.query_one("#help-title", Static).render())
        assert "[opsdash] keymap" in title  # markup characters are text, not swallowed
