"""The dashboard application. Screens orchestrate: they call core/services and render results.

This first cut has the validation pane; the health, audit, runbook and history panes are built on
it as their cores land.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static
from textual.worker import Worker, WorkerState

from opsdash.config import load_config, load_settings
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.secrets import redactor
from opsdash.demo import FAULTS
from opsdash.errors import OpsdashError
from opsdash.services import validate_and_record
from opsdash.tui.messages import DemoFaultSwitched, ValidationCompleted, ValidationFailed

SEVERITY_STYLE = {
    Severity.CRIT: "bold red",
    Severity.UNKNOWN: "magenta",
    Severity.WARN: "yellow",
    Severity.INFO: "blue",
    Severity.OK: "green",
}

FIRST_RUN = """[b]No opsdash configuration found.[/b]

Try it on the built-in BetaSkill demo:   [b]opsdash demo[/b]
Set it up for your project:               [b]opsdash init[/b]   (in the project directory)
Or point at a profile:                    [b]opsdash --config path/to/opsdash.toml[/b]

Press [b]q[/b] to quit."""

NOTICE = (
    "Validation pane. Live health, audit tail, runbooks and history panes are being built; "
    "until then use the CLI: opsdash --help"
)


class OpsdashApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "opsdash"
    BINDINGS: ClassVar = [
        Binding("q", "quit", "Quit", id="quit", tooltip="Leave the dashboard"),
        Binding("r", "rerun", "Re-run validation", id="rerun", tooltip="Validate the environment again"),
    ]

    def __init__(self, config_path: Path | None, *, demo: bool = False, record: bool = True) -> None:
        super().__init__()
        self.config_path = config_path
        self.demo = demo
        self.record = record
        self.findings: list[Finding] = []

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        if self.config_path is None:
            yield Static(FIRST_RUN, id="first-run")
        else:
            yield Static("validating…", id="verdict")
            yield Static(NOTICE, id="notice")
            yield DataTable(id="findings", cursor_type="row", zebra_stripes=True)
            yield Static("", id="detail")
        yield Footer()

    def on_mount(self) -> None:
        if self.demo:
            self.sub_title = "demo target (fake values)"
        if self.config_path is not None:
            table = self.query_one("#findings", DataTable)
            # fixed widths: the table never renders with header-sized columns while it sizes itself
            for label, width in (("SEVERITY", 8), ("CATEGORY", 12), ("RULE", 28), ("SUBJECT", 60)):
                table.add_column(label, width=width)
            self.run_validation()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if self.config_path is not None:
            yield SystemCommand("Re-run validation", "Validate the environment again", self.action_rerun)
        if self.demo:
            for name, text in FAULTS.items():
                for state in ("on", "off"):
                    yield SystemCommand(
                        f"Demo fault: {name} {state}", text, partial(self.switch_fault, name, state == "on")
                    )

    @work(thread=True, group="demo", exit_on_error=False, description="switch a demo fault")
    def switch_fault(self, name: str, on: bool) -> None:
        from opsdash.demo.control import set_fault

        try:
            active = set_fault(load_settings().resolved_data_dir(), name, on)
        except OpsdashError as exc:
            self.post_message(DemoFaultSwitched(name, on, error=str(exc)))
            return
        self.post_message(DemoFaultSwitched(name, on, active=active))

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """A worker that dies must say so on screen, never vanish silently."""
        if event.state is WorkerState.ERROR:
            error = redactor.redact(f"{type(event.worker.error).__name__}: {event.worker.error}")
            self.notify(
                error, title=f"{event.worker.description or event.worker.name} failed", severity="error"
            )

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
        self.run_validation()

    def action_rerun(self) -> None:
        if self.config_path is not None:
            self.run_validation()

    @work(thread=True, exclusive=True, group="validate", exit_on_error=False, description="validate")
    def run_validation(self) -> None:
        assert self.config_path is not None
        try:
            loaded = load_config(self.config_path)
            settings = load_settings(loaded.file_table)
            run = validate_and_record(loaded, settings, settings.resolved_operator(), record=self.record)
        except OpsdashError as exc:
            self.post_message(ValidationFailed(redactor.redact(str(exc))))
            return
        except Exception as exc:  # a bug must show on screen, not vanish with the worker
            self.post_message(
                ValidationFailed(redactor.redact(f"internal error: {type(exc).__name__}: {exc}"))
            )
            return
        self.post_message(ValidationCompleted(run.report))

    @on(ValidationFailed)
    def show_failure(self, message: ValidationFailed) -> None:
        verdict = self.query_one("#verdict", Static)
        verdict.set_classes("unknown")
        verdict.update(f"UNKNOWN — could not validate: {message.error}")
        self.notify(message.error, title="Validation failed", severity="error")

    @on(ValidationCompleted)
    def show_report(self, message: ValidationCompleted) -> None:
        report: Report = message.report
        self.title = f"opsdash — {report.target}"
        counts = report.counts()
        verdict = self.query_one("#verdict", Static)
        verdict.set_classes(report.verdict.value.lower())
        gate = (
            "GO"
            if report.verdict.exit_code == 0
            else "NO-GO"
            if report.verdict is not Severity.UNKNOWN
            else "UNKNOWN"
        )
        verdict.update(
            f"{gate}  {report.verdict.value}: {counts['CRIT']} critical, {counts['WARN']} warning, "
            f"{counts['UNKNOWN']} unknown, {counts['INFO']} info"
        )
        self.findings = report.sorted_findings()
        table = self.query_one("#findings", DataTable)
        table.clear()
        for index, f in enumerate(self.findings):
            table.add_row(
                Text(f.severity.value, style=SEVERITY_STYLE[f.severity]),
                f.category,
                f.rule,
                f.subject,
                key=str(index),
            )
        self._show_detail(0)

    @on(DataTable.RowHighlighted)
    def highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)

    def _show_detail(self, index: int) -> None:
        detail = self.query_one("#detail", Static)
        if not self.findings:
            detail.update("No findings: the environment passes every rule.")
            return
        f = self.findings[min(index, len(self.findings) - 1)]
        text = Text()
        text.append(f"{f.title}\n", style="bold")
        text.append(f"{f.detail}\n")
        for key, value in f.evidence.items():
            text.append(f"{key}: ", style="dim")
            text.append(f"{value}\n")
        text.append(f"fix: {f.remediation}", style="cyan")
        if f.runbook:
            text.append(f"  (runbook: {f.runbook})", style="cyan")
        detail.update(text)


def run_dashboard(config_path: Path | None, *, demo: bool = False) -> None:
    OpsdashApp(config_path, demo=demo).run()
