"""Health: the live table of checks, updated by key, with a detail panel and a latency sparkline.

Polls are chained per check by the core Watcher (never two probes of one check in flight); results
are recorded and turned into alerts off the event loop.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Sparkline, Static

from opsdash.core.errors import OpsdashError
from opsdash.core.findings import Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.secrets import redactor
from opsdash.tui.context import DashboardContext
from opsdash.tui.messages import AlertsRaised, CheckCompleted, OpenRunbook, OverviewChanged
from opsdash.tui.panes.validation import SEVERITY_STYLE
from opsdash.tui.safe import clean, safe

if TYPE_CHECKING:
    from opsdash.ops.checks import Watch

COLUMNS = (
    ("STATUS", 8),
    ("CHECK", 22),
    ("KIND", 8),
    ("LATENCY", 9),
    ("ERROR", 20),
    ("SINCE", 12),
    ("SUMMARY", 60),
)
SPARK_POINTS = 60


def check_detail(result: CheckResult, state: SustainedState | None) -> Text:
    text = Text()
    status = state.status if state else result.severity
    text.append(clean(result.name), style="bold")
    text.append(f"  {result.kind} → {clean(result.target)}\n", style="dim")
    text.append(f"{status.value}", style=SEVERITY_STYLE[status])
    text.append(f"  {clean(result.summary)}\n")
    if result.hint:
        text.append(f"{result.hint}", style="cyan")
        text.append(f"  (runbook: {result.runbook} — press o)\n" if result.runbook else "\n", style="cyan")
    if result.phases:
        text.append("phases  ", style="dim")
        parts = [f"{k} {v:.1f}" for k, v in result.phases.items()]
        text.append(" + ".join(parts) + f" = {sum(result.phases.values()):.1f} ms\n")
    facts = {k: v for k, v in result.facts.items() if k.startswith(("cert_", "tls_", "ip", "status"))}
    for key, value in facts.items():
        text.append(f"{key}: ", style="dim")
        text.append(f"{clean(value)}\n")
    metrics = {k: v for k, v in result.metrics.items() if k != "response_time_ms"}
    if metrics:
        text.append("metrics  ", style="dim")
        text.append("  ".join(f"{k}={v:g}" for k, v in metrics.items()) + "\n")
    return text


class HealthPane(Vertical):
    BINDINGS: ClassVar = [
        Binding("p", "pause", "Pause", id="health.pause", tooltip="Pause or resume polling"),
        Binding("o", "open_runbook", "Runbook", id="health.open_runbook", tooltip="Open the check's runbook"),
        Binding("y", "copy", "Copy", id="health.copy", tooltip="Copy the check's detail to the clipboard"),
    ]

    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.results: dict[str, CheckResult] = {}
        self.states: dict[str, SustainedState] = {}
        self.latencies: dict[str, deque[float]] = {}
        self.watcher: Watch | None = None
        self._pending: dict[str, CheckCompleted] = {}
        self._shown: dict[str, dict[str, str]] = {}

    def compose(self) -> ComposeResult:
        yield Static("", id="health-status")
        yield DataTable(id="checks", cursor_type="row", zebra_stripes=True)
        with Horizontal(id="health-detail-row"):
            yield Static("", id="check-detail")
            yield Sparkline([], id="latency-spark", summary_function=max)

    def on_mount(self) -> None:
        self.border_title = "Health"
        table = self.query_one("#checks", DataTable)
        for label, width in COLUMNS:
            table.add_column(label, key=label.lower(), width=width)
        checks = self.ctx.loaded.profile.checks if self.ctx.loaded else []
        for check in checks:
            table.add_row(
                Text("UNKNOWN", style="magenta"),
                check.name,
                check.kind,
                "",
                "",
                "",
                "not checked yet",
                key=check.name,
            )
        self._status()
        if not checks:
            self.query_one("#check-detail", Static).update("The profile has no [[checks]].")
        elif self.ctx.live:
            self.load_history([c.name for c in checks])
            self.poll()

    def _status(self) -> None:
        paused = self.watcher is not None and self.watcher.paused
        total = len(self.ctx.loaded.profile.checks) if self.ctx.loaded else 0
        failing = sum(1 for s in self.states.values() if s.status.rank >= Severity.WARN.rank)
        text = f"{total} checks · {failing} not OK" + (" · PAUSED (p resumes)" if paused else "")
        self.query_one("#health-status", Static).update(text)

    @work(thread=True, group="health-history", exit_on_error=False, description="load latency history")
    def load_history(self, names: list[str]) -> None:
        from opsdash.ops.history import latency_series

        self.app.call_from_thread(self._merge_history, latency_series(self.ctx.ops, names, SPARK_POINTS))

    def _merge_history(self, series: dict[str, list[float]]) -> None:
        for name, values in series.items():
            live = self.latencies.get(name, deque())
            self.latencies[name] = deque([*values, *live], maxlen=SPARK_POINTS)
        self._show_detail()

    @work(exclusive=True, group="health", exit_on_error=False, description="poll health checks")
    async def poll(self) -> None:
        """The same watch loop as `opsdash check --watch`: it records, audits and alerts; this pane
        only shows each result."""
        import asyncio

        from opsdash.ops.checks import Watch

        try:  # it reads the env files and opens the history database: not on the event loop
            self.watcher = await asyncio.to_thread(
                Watch, self.ctx.ops, record=self.ctx.record, on_fired=self._alerts_fired
            )
        except OpsdashError as exc:
            self.app.notify(redactor.redact(str(exc)), title="Health checks not started", severity="error")
            return

        def on_result(result: CheckResult, state: SustainedState) -> None:
            self.post_message(CheckCompleted(result, state))

        await self.watcher.run(on_result)

    def _alerts_fired(self, titles: list[str]) -> None:
        self.post_message(AlertsRaised(titles))

    def on_unmount(self) -> None:
        if self.watcher is not None:
            self.watcher.close()

    @on(CheckCompleted)
    def result_arrived(self, message: CheckCompleted) -> None:
        """Results are applied in one batch per screen refresh, not one repaint each."""
        first = not self._pending
        self._pending[message.result.name] = message
        if first:
            self.call_later(self._flush)

    def _flush(self) -> None:
        pending, self._pending = self._pending, {}
        table = self.query_one("#checks", DataTable)
        with self.app.batch_update():
            for message in pending.values():
                self._apply(table, message.result, message.state)
        self._status()
        if self._current_name() in pending:
            self._show_detail()
        self.post_message(OverviewChanged("health", dict(self.states)))

    def _apply(self, table: DataTable[Any], result: CheckResult, state: SustainedState) -> None:
        self.results[result.name] = result
        self.states[result.name] = state
        if "response_time_ms" in result.metrics:
            self.latencies.setdefault(result.name, deque(maxlen=SPARK_POINTS)).append(
                result.metrics["response_time_ms"]
            )
        latency = result.metrics.get("response_time_ms", result.duration_ms)
        cells = {
            "status": Text(state.status.value, style=SEVERITY_STYLE[state.status]),
            "latency": f"{latency:6.0f} ms",
            "error": result.error_class.value if result.error_class else "",
            "since": (state.since or "")[11:19],
            "summary": safe(result.summary),
        }
        shown = self._shown.setdefault(result.name, {})
        for column, value in cells.items():
            if shown.get(column) != str(value):  # only what changed: most cells repeat sweep after sweep
                shown[column] = str(value)
                table.update_cell(result.name, column, value)

    def _current_name(self) -> str | None:
        table = self.query_one("#checks", DataTable)
        if table.row_count == 0:
            return None
        row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        return str(row_key.value)

    @on(DataTable.RowHighlighted, "#checks")
    def highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        name = self._current_name()
        detail = self.query_one("#check-detail", Static)
        spark = self.query_one("#latency-spark", Sparkline)
        if name is None:
            return
        result = self.results.get(name)
        detail.update(check_detail(result, self.states.get(name)) if result else f"{name}: not checked yet")
        spark.data = list(self.latencies.get(name, []))
        spark.border_title = f"latency, last {len(spark.data)}"

    def action_pause(self) -> None:
        if self.watcher is None:
            return
        self.watcher.paused = not self.watcher.paused
        self.app.notify("Health polling paused." if self.watcher.paused else "Health polling resumed.")
        self._status()

    def action_open_runbook(self) -> None:
        name = self._current_name()
        result = self.results.get(name or "")
        if result is None or not result.runbook:
            self.app.notify(
                "This check has no runbook to open (it is OK, or not checked yet).", severity="warning"
            )
            return
        self.post_message(OpenRunbook(result.runbook))

    def action_copy(self) -> None:
        name = self._current_name()
        result = self.results.get(name or "")
        if result is not None:
            self.app.copy_to_clipboard(
                redactor.redact(check_detail(result, self.states.get(result.name)).plain)
            )
            self.app.notify(f"{result.name} copied to the clipboard.")
