"""Overview: deploy readiness at a glance — the gate, failing checks, worst findings, active
alerts, and the last preflight and verify-deploy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Static

from opsdash.core.findings import Report, Severity
from opsdash.core.health.state import SustainedState
from opsdash.core.readiness import live_gate
from opsdash.tui.context import DashboardContext
from opsdash.tui.panes.validation import SEVERITY_STYLE
from opsdash.tui.safe import clean

if TYPE_CHECKING:
    from opsdash.storage.rows import AlertRow


class OverviewPane(Vertical):
    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.report: Report | None = None
        self.states: dict[str, SustainedState] = {}
        self.alerts: list[AlertRow] = []
        self.deploys: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="gate")
        with Grid(id="overview-grid"):
            yield Static("", id="overview-checks", classes="card")
            yield Static("", id="overview-findings", classes="card")
            yield Static("", id="overview-alerts", classes="card")
            yield Static("", id="overview-deploy", classes="card")

    def on_mount(self) -> None:
        self.border_title = "Overview"
        for card, title in (
            ("checks", "Checks"),
            ("findings", "Worst findings"),
            ("alerts", "Active alerts"),
            ("deploy", "Deploys"),
        ):
            self.query_one(f"#overview-{card}", Static).border_title = title
        self.refresh_history()
        self.render_all()

    @work(
        thread=True,
        exclusive=True,
        group="overview",
        exit_on_error=False,
        description="load alerts and deploys",
    )
    def refresh_history(self) -> None:
        from opsdash.ops.history import overview

        seen = overview(self.ctx.ops)
        alerts, deploys = seen.alerts, seen.deploys
        lines = [
            f"{r.kind:13} {r.verdict.value:7} {r.started_at[:16].replace('T', ' ')}  {r.run_id}"
            for r in deploys
        ]
        self.app.call_from_thread(self._history_loaded, alerts, lines)

    def _history_loaded(self, alerts: list[AlertRow], deploys: list[str]) -> None:
        self.alerts, self.deploys = alerts, deploys
        self.render_all()

    def update_validation(self, report: Report | None) -> None:
        self.report = report
        self.render_all()

    def update_health(self, states: dict[str, SustainedState]) -> None:
        self.states = states
        self.render_all()

    def gate(self) -> tuple[str, str]:
        """(GO | NO-GO | UNKNOWN, the reason): the core's rule, on what this pane has seen."""
        expected = len(self.ctx.loaded.profile.checks) if self.ctx.loaded else 0
        return live_gate(self.report, {n: s.status for n, s in self.states.items()}, expected)

    def render_all(self) -> None:
        label, reason = self.gate()
        style = {"GO": "bold green", "NO-GO": "bold red"}.get(label, "bold magenta")
        self.query_one("#gate", Static).update(
            Text.assemble((f" {label} ", f"{style} reverse"), f"  {reason}")
        )
        checks = Text(no_wrap=True, overflow="ellipsis")
        for name, state in sorted(self.states.items(), key=lambda kv: (-kv[1].status.rank, kv[0])):
            checks.append(f"{state.status.value:8}", style=SEVERITY_STYLE[state.status])
            summary = state.last.summary if state.last else ""
            checks.append(f" {name:20} {clean(summary)[:40]}\n")
        self.query_one("#overview-checks", Static).update(checks or "no check results yet")
        findings = Text(no_wrap=True, overflow="ellipsis")
        for f in self.report.sorted_findings()[:6] if self.report else []:
            findings.append(f"{f.severity.value:8}", style=SEVERITY_STYLE[f.severity])
            findings.append(f" {f.rule}  {clean(f.subject)}\n")
        self.query_one("#overview-findings", Static).update(
            findings or ("no findings" if self.report else "not validated yet")
        )
        alerts = Text(no_wrap=True, overflow="ellipsis")
        for a in self.alerts[-6:]:
            alerts.append(f"{a.severity:8}", style=SEVERITY_STYLE.get(Severity(a.severity), ""))
            alerts.append(f" {clean(a.title)}\n")
        self.query_one("#overview-alerts", Static).update(alerts or "no active alerts")
        self.query_one("#overview-deploy", Static).update(
            "\n".join(self.deploys) or "no preflight yet: run 'opsdash preflight' before a deploy"
        )
