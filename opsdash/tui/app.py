"""The dashboard application. It composes the panes, keeps the header's verdict, routes messages
between panes, and offers every action in the command palette. It is given its `Ops`; panes call
ops functions in workers and render what comes back; nothing here does I/O itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from opsdash.core.errors import OpsdashError
from opsdash.core.secrets import redactor
from opsdash.demo import FAULTS
from opsdash.ops.base import Ops
from opsdash.tui.context import DashboardContext
from opsdash.tui.messages import AlertsRaised, DemoFaultSwitched, OpenRunbook, OverviewChanged
from opsdash.tui.panes.audit import AuditPane
from opsdash.tui.panes.health import HealthPane
from opsdash.tui.panes.history import HistoryPane
from opsdash.tui.panes.overview import OverviewPane
from opsdash.tui.panes.runbooks import RunbooksPane
from opsdash.tui.panes.validation import ValidationPane

FIRST_RUN = """[b]No opsdash configuration found.[/b]

Try it on the built-in BetaSkill demo:   [b]opsdash demo[/b]
Set it up for your project:               [b]opsdash init[/b]   (in the project directory)
Or point at a profile:                    [b]opsdash --config path/to/opsdash.toml[/b]

Press [b]q[/b] to quit."""

PANES = (
    ("overview", "Overview"),
    ("validation", "Validation"),
    ("health", "Health"),
    ("audit", "Audit"),
    ("runbooks", "Runbooks"),
    ("history", "History"),
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        table: DataTable[str] = DataTable(id="help-table", cursor_type="row")
        yield Static(
            "[b]Keys[/b]  (remap any of them by id with [opsdash] keymap in opsdash.toml)", id="help-title"
        )
        yield table

    def on_mount(self) -> None:
        table = self.query_one("#help-table", DataTable)
        table.add_columns("KEY", "ACTION", "ID", "WHERE")
        seen = set()
        nodes: list[Any] = [
            self.app,
            *self.app.query("ValidationPane, HealthPane, AuditPane, RunbooksPane, HistoryPane"),
        ]
        for node in nodes:
            for binding in node.BINDINGS:
                if isinstance(binding, Binding) and binding.id and binding.id not in seen:
                    seen.add(binding.id)
                    where = "everywhere" if node is self.app else type(node).__name__.removesuffix("Pane")
                    table.add_row(binding.key, binding.description or binding.action, binding.id, where)
        table.add_row("ctrl+p", "Command palette (every action)", "", "everywhere")


class OpsdashApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "opsdash"
    BINDINGS: ClassVar = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the dashboard"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="List every key"),
        *(
            Binding(
                str(n),
                f"show_pane('{pane}')",
                label,
                id=f"app.pane.{pane}",
                show=False,
                tooltip=f"Show the {label} pane",
            )
            for n, (pane, label) in enumerate(PANES, start=1)
        ),
    ]

    def __init__(
        self,
        ops: Ops,
        *,
        error: str | None = None,
        demo: bool = False,
        record: bool = True,
        live: bool = True,
    ) -> None:
        """The dashboard works through `ops`; `error` is a profile that did not load (shown instead of
        the panes). `live=False`: no network work on mount; `record=False`: nothing written."""
        super().__init__()
        self.ctx = DashboardContext(ops, demo=demo, live=live, record=record, error=error)

    @classmethod
    def on_profile(
        cls, config_path: Path | None, *, data_dir: Path | None = None, **options: Any
    ) -> OpsdashApp:
        """The dashboard on a profile file (startup validation: its problems are shown on screen)."""
        ops, error = Ops.open_or_error(config_path, data_dir=data_dir)
        return cls(ops, error=error, **options)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        if self.ctx.error is not None:
            yield Static(
                f"[b]opsdash cannot start on this configuration[/b]\n\n{self.ctx.error}\n\n"
                "Fix it (opsdash config validate lists every problem), then start opsdash again.",
                id="startup-error",
            )
        elif self.ctx.loaded is None:
            yield Static(FIRST_RUN, id="first-run")
        else:
            with TabbedContent(id="panes", initial="overview"):
                with TabPane("Overview [1]", id="overview"):
                    yield OverviewPane(self.ctx, id="overview-pane")
                with TabPane("Validation [2]", id="validation"):
                    yield ValidationPane(self.ctx, id="validation-pane")
                with TabPane("Health [3]", id="health"):
                    yield HealthPane(self.ctx, id="health-pane")
                with TabPane("Audit [4]", id="audit"):
                    yield AuditPane(self.ctx, id="audit-pane")
                with TabPane("Runbooks [5]", id="runbooks"):
                    yield RunbooksPane(self.ctx, id="runbooks-pane")
                with TabPane("History [6]", id="history"):
                    yield HistoryPane(self.ctx, id="history-pane")
        yield Footer()

    def on_mount(self) -> None:
        self.theme = self.ctx.settings.theme
        if self.ctx.settings.keymap:
            self.set_keymap(dict(self.ctx.settings.keymap))
        if self.ctx.loaded is not None:
            target = self.ctx.loaded.profile.target
            self.title = f"opsdash — {target.name} ({target.environment})"
        self._set_subtitle("UNKNOWN", "starting")
        # a closed terminal (SSH dropped) ends the app cleanly; runbook sessions are already saved
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hangup)

    def _hangup(self) -> None:
        """The terminal is gone. Everything that matters is already persisted (runbook steps are saved
        before they run, audit records are fsynced), so exit; if restoring the vanished terminal hangs
        the normal shutdown, leave anyway after a few seconds."""
        timer = threading.Timer(3.0, os._exit, args=(129,))
        timer.daemon = True
        timer.start()
        self.exit(return_code=129)

    def _set_subtitle(self, label: str, reason: str) -> None:
        demo = "demo target (fake values) · " if self.ctx.demo else ""
        self.sub_title = f"{demo}operator {self.ctx.operator} · {label}: {reason}"

    # ------------------------------------------------------------------ routing

    @on(OverviewChanged)
    def overview_changed(self, message: OverviewChanged) -> None:
        panes = self.query(OverviewPane)
        if not panes:  # a late message while the app shuts down
            return
        overview = panes.first()
        if message.source == "validation":
            overview.update_validation(message.data)
        elif message.source == "health":
            overview.update_health(message.data)
        self._set_subtitle(*overview.gate())

    @on(TabbedContent.TabActivated)
    def pane_shown(self, event: TabbedContent.TabActivated) -> None:
        """Focus the pane's main widget (so its keys work at once) and refresh what it reads from disk."""
        pane = event.pane.id
        focus = {
            "validation": "#findings",
            "health": "#checks",
            "audit": "#audit-log",
            "runbooks": "#runbook-list",
            "history": "#runs",
        }.get(pane or "")
        if focus:
            self.query_one(focus).focus()
        if pane == "history":
            self.query_one(HistoryPane).load()
        elif pane == "overview":
            self.query_one(OverviewPane).refresh_history()
        elif pane == "runbooks" and self.query_one(RunbooksPane).executor is None:
            self.query_one(RunbooksPane).load()

    @on(OpenRunbook)
    def open_runbook(self, message: OpenRunbook) -> None:
        self.action_show_pane("runbooks")
        for pane in self.query(RunbooksPane):
            pane.open_runbook(message.runbook_id)

    @on(AlertsRaised)
    def alerts_raised(self, message: AlertsRaised) -> None:
        for title in message.titles:
            self.notify(title, title="Alert", severity="error", timeout=20)
        for overview in self.query(OverviewPane):
            overview.refresh_history()

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """A worker that dies must say so on screen, never vanish silently."""
        if event.state is WorkerState.ERROR:
            error = redactor.redact(f"{type(event.worker.error).__name__}: {event.worker.error}")
            self.notify(
                error, title=f"{event.worker.description or event.worker.name} failed", severity="error"
            )

    # ------------------------------------------------------------------ actions

    def action_show_pane(self, pane: str) -> None:
        if self.ctx.loaded is not None:
            self.query_one(TabbedContent).active = pane

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if self.ctx.loaded is None:
            return
        for pane, label in PANES:
            yield SystemCommand(
                f"Show {label}", f"Switch to the {label} pane", partial(self.action_show_pane, pane)
            )
        yield SystemCommand(
            "Re-run validation",
            "Validate the environment again",
            lambda: self.query_one(ValidationPane).action_rerun(),
        )
        yield SystemCommand(
            "Pause or resume health checks",
            "Stop or restart polling",
            lambda: self.query_one(HealthPane).action_pause(),
        )
        yield SystemCommand(
            "Verify the audit log",
            "Check the audit log's chain",
            lambda: self.query_one(AuditPane).action_verify(),
        )
        yield SystemCommand("Help: keys", "List every key binding", self.action_help)
        if self.ctx.demo:
            for name, text in FAULTS.items():
                for state in ("on", "off"):
                    yield SystemCommand(
                        f"Demo fault: {name} {state}", text, partial(self.switch_fault, name, state == "on")
                    )

    @work(thread=True, group="demo", exit_on_error=False, description="switch a demo fault")
    def switch_fault(self, name: str, on: bool) -> None:
        from opsdash.demo.control import switch_fault

        try:
            active = switch_fault(self.ctx.ops, name, on)
        except OpsdashError as exc:
            self.post_message(DemoFaultSwitched(name, on, error=str(exc)))
            return
        self.post_message(DemoFaultSwitched(name, on, active=active))

    @on(DemoFaultSwitched)
    def fault_switched(self, message: DemoFaultSwitched) -> None:
        if message.error:
            self.notify(message.error, title="Demo fault", severity="error")
            return
        state = "on" if message.on else "off"
        self.notify(
            f"{message.fault} is {state}; faults on: {', '.join(message.active) or 'none'}",
            title="Demo fault",
        )
        for pane in self.query(ValidationPane):
            pane.action_rerun()


def run_dashboard(config_path: Path | None, *, demo: bool = False) -> None:
    OpsdashApp.on_profile(config_path, demo=demo).run()
