"""Validation: findings grouped by severity and category, a detail panel, re-run with progress."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from opsdash.core.errors import OpsdashError
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.readiness import gate
from opsdash.core.secrets import redactor
from opsdash.tui.messages import TraceCompleted, ValidationCompleted, ValidationFailed, ValidationShown
from opsdash.tui.panes.base import Item, ItemPane, in_thread, item_keys
from opsdash.tui.safe import clean, safe
from opsdash.tui.style import HINT, Part, severity
from opsdash.tui.widgets.table import Col, FilteredTable, OpsTable


def found_at(f: Finding) -> str | None:
    """Where the credential trace found a secret: the served asset's URL and line, or the path and
    line in a commit of the app's repository (None for other findings)."""
    ev = f.evidence
    line = f", line {ev['line']}" if ev.get("line") else ""
    if ev.get("url"):
        return f"{ev['url']}{line}" + (f" ({ev['asset']})" if ev.get("asset") else "")
    if ev.get("path") and ev.get("commit"):
        return f"{ev['path']}{line} in commit {ev['commit']}"
    if ev.get("found_at"):
        return ev["found_at"]
    return None


def finding_text(f: Finding) -> Content:
    parts: list[Part] = [(f"{clean(f.title)}\n", "bold"), f"{clean(f.detail)}\n"]
    where = found_at(f)
    if where:
        parts += [("found at: ", "bold"), f"{clean(where)}\n"]
    for key, value in f.evidence.items():
        parts += [(f"{key}: ", "dim"), f"{clean(value)}\n"]
    parts.append((f"fix: {f.remediation}", HINT))
    if f.runbook:
        parts.append((f"  (runbook: {f.runbook} — press o)", HINT))
    return Content.assemble(*parts)


class ValidationPane(ItemPane):
    BINDINGS: ClassVar = [
        Binding("r", "rerun", "Re-run", id="validation.rerun", tooltip="Validate the environment again"),
        Binding(
            "t",
            "trace",
            "Trace",
            id="validation.trace",
            tooltip="Trace the secrets in the live site's pages, scripts and source maps (old values tried)",
        ),
        *item_keys("validation", "finding", "the finding"),
    ]
    NO_RUNBOOK = "This finding has no runbook."

    report: Report | None = None  # the report shown
    _awaiting_early = False  # the start-up child is still validating: its report is shown, not a second
    findings: Sequence[Finding] = ()  # its findings, worst first: the table's rows
    traced: tuple[Finding, ...] = ()  # the last credential trace's findings, shown below them

    def compose(self) -> ComposeResult:
        yield Static("validating…" if self.ctx.live else "not validated yet", id="verdict")
        # fixed widths (the table never renders with header-sized columns while it sizes itself);
        # the subject takes whatever width the terminal has left
        columns = [Col("SEVERITY", 8), Col("CATEGORY", 12), Col("RULE", 26), Col("SUBJECT", 20, flex=1)]
        yield FilteredTable(OpsTable(columns, id="findings"))
        with VerticalScroll(id="detail-scroll"):
            yield Static("", id="detail")

    def on_mount(self) -> None:
        self.border_title = "Validation"
        if self.ctx.service is not None:  # attached: the service's latest report (tui/attached.py)
            self.query_one("#verdict", Static).update("waiting for the service's validation…")
            if self.ctx.picture.report is not None:
                self.post_message(ValidationCompleted(self.ctx.picture.report))
            elif self.ctx.service.validation_problem is not None:
                self.post_message(ValidationFailed(f"on the service: {self.ctx.service.validation_problem}"))
            return
        if not (self.ctx.live and self.ctx.loaded is not None):
            return
        self._awaiting_early = self.ctx.early_report_pending()
        if not self._awaiting_early:
            self.early_settled(first=True)

    def early_settled(self, *, first: bool = False) -> None:
        """The start-up child's validation (ops/early.py) is in, or the child ended: show its report
        (validated and recorded already), or validate here if it had none to give."""
        if not (first or self._awaiting_early) or self.ctx.early_report_pending():
            return
        self._awaiting_early = False
        report = self.ctx.take_early_report()
        if report is not None:
            self.post_message(ValidationCompleted(report))
        else:
            self.run_validation(reload=False)  # the profile was loaded a moment ago

    def action_rerun(self) -> None:
        from opsdash.tui.attached import refuse

        if refuse(self.app, self.ctx, "validate"):
            return
        if self.ctx.loaded is not None:
            self.run_validation()

    @in_thread("validate", "validate")
    def run_validation(self, reload: bool = True) -> None:
        from opsdash.ops import validation

        self.app.call_from_thread(self._loading, True)
        ops = self.ctx.ops.reloaded() if reload else self.ctx.ops
        try:  # a re-run reads the profile again: after editing it, it validates the edit
            run = validation.run(ops, record=self.ctx.record)
        except OpsdashError as exc:
            self.post_message(ValidationFailed(redactor.redact(str(exc))))
            return
        except Exception as exc:  # a bug must show on screen, not vanish with the worker
            self.post_message(
                ValidationFailed(redactor.redact(f"internal error: {type(exc).__name__}: {exc}"))
            )
            return
        finally:
            self.app.call_from_thread(self._loading, False)
        self.post_message(ValidationCompleted(run.report))

    def action_trace(self) -> None:
        if self.ctx.loaded is not None:
            self.query_one("#verdict", Static).update("tracing the secrets on the live site…")
            self.run_trace()

    @in_thread("trace", "trace the secrets")
    def run_trace(self) -> None:
        from opsdash.ops import trace_live

        try:
            traced = trace_live.run(self.ctx.ops, record=self.ctx.record, live=True).report
        except OpsdashError as exc:
            self.post_message(TraceCompleted((), redactor.redact(str(exc))))
            return
        except Exception as exc:  # a bug must show on screen, not vanish with the worker
            self.post_message(
                TraceCompleted((), redactor.redact(f"internal error: {type(exc).__name__}: {exc}"))
            )
            return
        self.post_message(TraceCompleted(traced.findings))

    @on(TraceCompleted)
    def show_trace(self, message: TraceCompleted) -> None:
        if message.error is not None:
            self.app.notify(clean(message.error), title="Trace failed", severity="error", markup=False)
        else:
            self.traced = message.findings
            bad = sum(f.severity.rank >= Severity.UNKNOWN.rank for f in self.traced)
            self.app.notify(
                f"credential trace: {len(self.traced)} finding(s), {bad} critical or unknown",
                title="Trace done",
                severity="error" if bad else "information",
                markup=False,
            )
        if self.report is not None:
            self.show_report(ValidationCompleted(self.report))

    def _loading(self, on: bool) -> None:
        # not `loading` on the table: that would take the keyboard focus away from it mid-work
        verdict = self.query_one("#verdict", Static)
        if on:
            verdict.update("validating…")
            verdict.set_classes("")

    @on(ValidationFailed)
    def show_failure(self, message: ValidationFailed) -> None:
        verdict = self.query_one("#verdict", Static)
        verdict.set_classes("unknown")
        verdict.update(safe(f"UNKNOWN — could not validate: {message.error}"))
        self.app.notify(clean(message.error), title="Validation failed", severity="error", markup=False)
        self.post_message(ValidationShown(None))

    @on(ValidationCompleted)
    def show_report(self, message: ValidationCompleted) -> None:
        report = message.report
        self.report = report
        counts = report.counts()
        verdict = self.query_one("#verdict", Static)
        verdict.set_classes(report.verdict.value.lower())
        verdict.update(
            f"{gate(report)}  {report.verdict.value}: {counts['CRIT']} critical, "
            f"{counts['WARN']} warning, {counts['UNKNOWN']} unknown, {counts['INFO']} info"
            + (f"; trace: {len(self.traced)} finding(s)" if self.traced else "")
        )
        self.findings = [*report.sorted_findings(), *sorted(self.traced, key=lambda f: -f.severity.rank)]
        table = self.query_one("#findings", OpsTable)
        with self.app.batch_update():
            table.clear()
            for index, f in enumerate(self.findings):
                table.add_row(
                    severity(f.severity.value, f.severity),
                    f.category,
                    f.rule,
                    safe(f.subject),
                    key=str(index),
                )
        current = table.current_key
        self._show_detail(int(current) if current is not None else 0)
        self.post_message(ValidationShown(report))

    @on(OpsTable.RowHighlighted, "#findings")
    def highlighted(self, event: OpsTable.RowHighlighted) -> None:
        self._show_detail(int(event.row_key.value or 0))

    def current(self) -> Finding | None:
        if not self.findings:
            return None
        key = self.query_one("#findings", OpsTable).current_key
        return self.findings[int(key)] if key is not None else None

    def _show_detail(self, index: int) -> None:
        detail = self.query_one("#detail", Static)
        if not self.findings:
            detail.update("No findings: the environment passes every rule." if self.report else "")
            return
        detail.update(finding_text(self.findings[min(index, len(self.findings) - 1)]))

    def current_item(self) -> Item | None:
        f = self.current()
        if f is None:
            return None
        text = f"[{f.severity.value}] {f.rule} {f.subject}: {f.detail}\nfix: {f.remediation}"
        return Item("Finding", text, f.runbook)
