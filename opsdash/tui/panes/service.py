"""What stands for a pane on a dashboard attached to a running `opsdash serve` (tui/attached.py)
when that pane would act or read on this machine: the Runbooks pane shows the runbook sessions of
every operator from the service's record, read-only; the others say where their data is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Static

from opsdash.tui.attached import refuse
from opsdash.tui.panes.base import Pane
from opsdash.tui.safe import clean
from opsdash.tui.widgets.table import Col, OpsTable

ELSEWHERE = {
    "audit": "The audit log is on the service's host: 'opsdash audit tail' or 'opsdash audit verify' there.",
    "history": "History is on the service's host: 'opsdash history list' there.",
}


class _Standing(Pane):
    """What the app asks of the panes it stands for (none of it acts here)."""

    executor: Any = None

    def load(self) -> None:
        """Nothing to read from this machine."""

    def shown(self) -> None:
        """Nothing to read from this machine."""

    def hold_quit(self, _exit: Callable[[], object]) -> bool:
        return False  # no runbook command runs here

    def open_runbook(self, runbook_id: str) -> None:
        refuse(self.app, self.ctx, "runbook")

    def action_verify(self) -> None:
        refuse(self.app, self.ctx, "audit")

    def show_sessions(self) -> None:
        """Only the sessions pane shows them."""


class ElsewherePane(_Standing):
    def compose(self) -> ComposeResult:
        pane = (self.id or "").removesuffix("-pane")
        url = self.ctx.service.url if self.ctx.service is not None else ""
        where = ELSEWHERE.get(pane, "This pane reads this machine's own files, not the service's.")
        yield Static(
            Text.assemble(
                (f"Attached to {url}: this pane is not shown here.\n\n", "bold"),
                where,
                "\n\nThe Overview, Validation and Health panes show the service's live picture.",
            ),
            id=f"{pane}-elsewhere",
        )


class SessionsPane(_Standing):
    # the Runbooks pane's keys that would act here (enter on a row is the table's: RowSelected)
    BINDINGS: ClassVar = [
        Binding(keys, "act", "Run", show=False, tooltip="Runbook steps run on the host they change")
        for keys in ("n", "c", "r", "s", "a", "x", "m")
    ]

    def compose(self) -> ComposeResult:
        yield Static(
            "Runbook sessions of every operator, from the service's record (read-only: a step runs on "
            "the machine it changes, with 'opsdash runbook run RUNBOOK --resume SESSION' there).",
            id="sessions-note",
        )
        columns = [Col("STATUS", 10), Col("RUNBOOK", 22), Col("STEP", 5), Col("OPERATOR", 14)]
        columns += [Col("UPDATED", 16), Col("SESSION", 22, flex=1)]
        yield OpsTable(columns, id="runbook-list")  # the id the app focuses on the Runbooks pane

    def on_mount(self) -> None:
        self.border_title = "Runbook sessions (service)"
        self.show_sessions()

    def show_sessions(self) -> None:
        table = self.query_one("#runbook-list", OpsTable)
        rows = self.ctx.service.sessions if self.ctx.service is not None else []
        with self.app.batch_update():
            table.clear()
            for row in rows:
                table.add_row(
                    clean(row.status),
                    clean(row.runbook_id),
                    str(row.current_step + 1),
                    clean(row.operator),
                    row.updated_at[:16].replace("T", " "),
                    clean(row.id),
                    key=row.id,
                )

    def action_act(self) -> None:
        refuse(self.app, self.ctx, "runbook")

    @on(OpsTable.RowSelected)
    def selected(self, _event: OpsTable.RowSelected) -> None:
        refuse(self.app, self.ctx, "runbook")
