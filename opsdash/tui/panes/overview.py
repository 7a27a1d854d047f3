"""Overview: deploy readiness at a glance — the verdict (the same one as the header), the checks
in their live state, the worst findings, active alerts, and the last preflight and verify-deploy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Grid
from textual.content import Content
from textual.widgets import Static

from opsdash.core.findings import Severity
from opsdash.tui.messages import OpenAlertsRead
from opsdash.tui.panes.base import Pane, in_thread
from opsdash.tui.safe import clean
from opsdash.tui.style import Part, gate_parts, severity

if TYPE_CHECKING:
    from opsdash.core.readiness import Verdict
    from opsdash.storage.rows import AlertRow
    from opsdash.tui.context import DashboardContext


class OverviewPane(Pane):
    alerts: Sequence[AlertRow] = ()  # the open alerts, as last read
    deploys: Sequence[str] = ()  # the last preflight and verify-deploy runs, one line each

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
        if self.ctx.ready:  # else the app asks once the profile is loaded
            self.refresh_history()
        self.render_all()

    @in_thread("overview", "load alerts and deploys")
    def refresh_history(self, *, sessions: bool = True) -> None:
        """The open alerts (the verdict reads them) and the last deploys; with `sessions`, also a
        runbook session left unfinished. At start the app asks without it first: finding sessions
        loads the runbook engine, which the first live verdict does not need. Attached to a
        service, its alerts and sessions come pushed (tui/attached.py): nothing is read here."""
        if self.ctx.service is not None:
            return
        from opsdash.ops.history import overview

        resume = self.ctx.picture.unfinished
        if sessions:
            from opsdash.ops.runbooks import unfinished

            found = unfinished(self.ctx.ops)
            step = found.current_step + 1 if found is not None else 0
            resume = "" if found is None else f"{found.runbook_id} unfinished (step {step})"
        seen = overview(self.ctx.ops)
        alerts, deploys = seen.alerts, seen.deploys
        lines = [
            f"{r.kind:13} {r.verdict.value:7} {r.started_at[:16].replace('T', ' ')}  {r.run_id}"
            for r in deploys
        ]
        self.app.call_from_thread(self._history_loaded, alerts, lines, resume)

    def _history_loaded(self, alerts: list[AlertRow], deploys: list[str], unfinished: str) -> None:
        """On the UI thread: the picture every view reads changes only here."""
        self.ctx.picture.unfinished = unfinished
        self.alerts, self.deploys = alerts, deploys
        self.post_message(OpenAlertsRead([a.contribution() for a in alerts]))
        self.app.show_verdict()  # type: ignore[attr-defined]  # the header offers an unfinished session
        self.render_all()

    def gate(self) -> Verdict:
        """The dashboard's one verdict (the header shows the same)."""
        return self.ctx.verdict()

    def render_all(self) -> None:
        if not self.is_mounted:
            return
        shown = self.ctx.shown()
        parts = gate_parts(shown.label, shown.headline, f" {shown.reason}", live=shown.live, note=shown.note)
        self.query_one("#gate", Static).update(Content.assemble(*parts))
        picture = self.ctx.picture
        checks: list[Part] = []
        ordered = sorted(picture.states.items(), key=lambda kv: (-kv[1].shown.rank, kv[0]))
        for name, state in ordered:
            checks.append(severity(f"{state.label:8}", state.shown))
            summary = state.last.summary if state.last else "not checked yet"
            checks.append(f" {clean(name)}  {clean(summary)}\n")
        if picture.paused and ordered:
            checks.append(("stale: polling paused (p in Health resumes)\n", "bold"))
        elif self.ctx.stale() and ordered:
            checks.append(("stale: the service is not connected\n", "bold"))
        self.query_one("#overview-checks", Static).update(Content.assemble(*checks) or "no check results yet")
        report = picture.report
        findings: list[Part] = []
        for f in report.sorted_findings()[:6] if report else []:
            findings.append(severity(f"{f.severity.value:8}", f.severity))
            findings.append(f" {f.rule}  {clean(f.subject)}\n")
        self.query_one("#overview-findings", Static).update(
            Content.assemble(*findings) or ("no findings" if report else "not validated yet")
        )
        alerts: list[Part] = []
        for a in self.alerts[-6:]:
            alerts.append(severity(f"{a.severity:8}", a.level))
            alerts.append(f" {clean(a.title)}\n")
        self.query_one("#overview-alerts", Static).update(Content.assemble(*alerts) or "no active alerts")
        deploy: list[Part] = []
        if self.ctx.service is not None:
            self.query_one("#overview-deploy", Static).update(Content.assemble(*session_lines(self.ctx)))
            return
        if picture.unfinished:
            deploy.append(
                severity(
                    f"runbook {picture.unfinished}: press 5, then Enter, to resume\n", Severity.WARN, "bold"
                )
            )
        deploy.append("\n".join(self.deploys) or "no preflight yet: run 'opsdash preflight' before a deploy")
        self.query_one("#overview-deploy", Static).update(Content.assemble(*deploy))


def session_lines(ctx: DashboardContext) -> list[Part]:
    """Attached: the runbook sessions of every operator, as the service's record has them."""
    assert ctx.service is not None
    lines: list[Part] = [("runbook sessions (every operator, from the service)\n", "dim")]
    for row in ctx.service.sessions[:6]:
        level = Severity.WARN if row.status == "active" else Severity.INFO
        lines.append(severity(f"{row.status:9}", level))
        when = row.updated_at[:16].replace("T", " ")
        step = f"step {row.current_step + 1}"
        lines.append(f" {clean(row.runbook_id)} {step} · {clean(row.operator)} · {when}\n")
    if not ctx.service.sessions:
        lines.append("none recorded\n")
    return lines
