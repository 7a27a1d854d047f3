"""What every pane has: the session it works through, thread workers declared one way, and the
keys several panes share (each with the pane's own binding id, `<pane>.<what>`, which a profile's
`[opsdash] keymap` remaps)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from textual import work
from textual.binding import Binding
from textual.containers import Vertical
from textual.worker import Worker

from opsdash.core.secrets import redactor
from opsdash.tui.context import DashboardContext
from opsdash.tui.messages import OpenRunbook
from opsdash.tui.widgets.table import FilteredTable

P = ParamSpec("P")
R = TypeVar("R")


def in_thread(
    group: str, description: str, *, exclusive: bool = True
) -> Callable[[Callable[P, R]], Callable[P, Worker[R]]]:
    """Blocking work (SQLite, file scans, the audit chain) on a thread worker. A failure is shown
    on screen by the app (`Worker.StateChanged`), never raised into it. From the thread, widgets are
    reached only through `post_message` or `app.call_from_thread` (tests/tui/test_ui_thread.py)."""
    decorator = work(
        thread=True, exclusive=exclusive, group=group, exit_on_error=False, description=description
    )
    return cast(Callable[[Callable[P, R]], Callable[P, Worker[R]]], decorator)


def filter_key(pane: str, what: str) -> Binding:
    return Binding("slash", "filter", "Filter", id=f"{pane}.filter", tooltip=f"Filter the {what}")


def copy_key(pane: str, what: str) -> Binding:
    return Binding("y", "copy", "Copy", id=f"{pane}.copy", tooltip=f"Copy {what} to the clipboard")


def item_keys(pane: str, item: str, copied: str) -> list[Binding]:
    """o, y and / on a table of items (`item`: check, finding) that may name a runbook."""
    return [
        Binding(
            "o", "open_runbook", "Runbook", id=f"{pane}.open_runbook", tooltip=f"Open the {item}'s runbook"
        ),
        copy_key(pane, copied),
        filter_key(pane, f"{item}s"),
    ]


class Pane(Vertical):
    """A dashboard pane, on the session's context."""

    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx


class TablePane(Pane):
    """A pane around one filtered table (`/` filters it)."""

    def action_filter(self) -> None:
        self.query_one(FilteredTable).open_filter()


@dataclass(frozen=True)
class Item:
    """The row under the cursor, as `o` and `y` need it."""

    name: str  # said when it is copied
    text: str  # what `y` copies (masked on the way)
    runbook: str | None


class ItemPane(TablePane):
    """A table of items (findings, checks): `o` opens the item's runbook, `y` copies it."""

    NO_RUNBOOK = "This has no runbook."

    def current_item(self) -> Item | None:
        raise NotImplementedError

    def action_open_runbook(self) -> None:
        item = self.current_item()
        if item is None or not item.runbook:
            self.app.notify(self.NO_RUNBOOK, severity="warning")
            return
        self.post_message(OpenRunbook(item.runbook))

    def action_copy(self) -> None:
        item = self.current_item()
        if item is not None:
            self.app.copy_to_clipboard(redactor.redact(item.text))
            self.app.notify(f"{item.name} copied to the clipboard.")
