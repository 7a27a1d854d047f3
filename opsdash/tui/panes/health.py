"""Health: the live table of checks, updated by key, with a scrollable detail panel (state,
phases, certificate facts, metrics) and a latency sparkline from history and live results.

Polls are chained per check by the core Watcher (never two probes of one check in flight); results
are recorded and turned into alerts off the event loop. Every cell reads the check's
`SustainedState.label`, the same words the overview and the header use.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Sparkline, Static

from opsdash.core.errors import OpsdashError
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.secrets import redactor
from opsdash.tui.context import DashboardContext
from opsdash.tui.messages import (
    AlertsRaised,
    AlertsResolved,
    CheckCompleted,
    CheckStatesChanged,
    PollingPaused,
    SourcesReloaded,
    SourcesReloadFailed,
)
from opsdash.tui.panes.base import Item, ItemPane, in_thread, item_keys
from opsdash.tui.safe import clean, safe
from opsdash.tui.style import HINT, Part, severity
from opsdash.tui.widgets.table import Col, FilteredTable, OpsTable

if TYPE_CHECKING:
    from opsdash.ops.checks import Watch
    from opsdash.ops.sources import Reload

COLUMNS = (
    Col("STATUS", 17),
    Col("CHECK", 19),
    Col("LATENCY", 7),
    Col("ERROR", 8, flex=1),  # the summary takes most of any extra width
    Col("SUMMARY", 14, flex=6),
)
SPARK_POINTS = 60


def status_cell(state: SustainedState, stale: bool = False) -> Content:
    if stale:
        return severity(f"stale: {state.label}", state.shown, "italic")
    return severity(state.label, state.shown)


def check_detail(result: CheckResult, state: SustainedState | None, stale: bool | str = False) -> Content:
    """`stale`: True while polling is paused; a text saying why otherwise (the service is gone)."""
    parts: list[Part] = [(clean(result.name), "bold"), (f"  {result.kind} → {clean(result.target)}\n", "dim")]
    if state is not None:
        parts.append(severity(state.label, state.shown))
        sustained = f"  sustained {state.status.value}"
        if state.since:
            sustained += f" since {state.since[11:19]}"
        if state.phase == "failing":
            sustained += f"; goes {result.severity.value} after {state.failure_threshold} failures in a row"
        elif state.phase == "recovering":
            sustained += f"; OK after {state.success_threshold} successes in a row"
        if stale:
            why = stale if isinstance(stale, str) else "polling paused (p resumes)"
            sustained += f" · STALE: {why}"
        parts.append((sustained + "\n", "dim"))
    parts.append(("last result  ", "dim"))
    parts.append(severity(result.severity.value, result.severity))
    parts.append(f"  {clean(result.summary)}  ({result.started_at[11:19]})\n")
    if result.error_class:
        parts.append((f"error class  {result.error_class.value}\n", "dim"))
    if result.hint:
        parts.append((f"{result.hint}", HINT))
        parts.append((f"  (runbook: {result.runbook} — press o)\n" if result.runbook else "\n", HINT))
    if result.phases:
        parts.append(("phases  ", "dim"))
        shown = [f"{k} {v:.1f}" for k, v in result.phases.items()]
        parts.append(" + ".join(shown) + f" = {sum(result.phases.values()):.1f} ms\n")
    for fact, value in result.facts.items():
        parts.append((f"{clean(fact)}: ", "dim"))
        parts.append(f"{clean(value)}\n")
    metrics = {k: v for k, v in result.metrics.items() if k != "response_time_ms"}
    if metrics:
        parts.append(("metrics\n", "dim"))
        for key, number in metrics.items():
            parts.append(f"  {clean(key)} = {number:g}\n")
    for condition in result.conditions:
        mark = "pass" if condition.ok else "FAIL"
        parts.append((f"  {mark} {clean(condition.text)}  (got {clean(condition.actual)})\n", "dim"))
    return Content.assemble(*parts)


class HealthPane(ItemPane):
    BINDINGS: ClassVar = [
        Binding("p", "pause", "Pause", id="health.pause", tooltip="Pause or resume polling"),
        *item_keys("health", "check", "the check's detail"),
    ]
    NO_RUNBOOK = "This check has no runbook to open (it is OK, or not checked yet)."

    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.results: dict[str, CheckResult] = {}
        self.states: dict[str, SustainedState] = {}
        self.latencies: dict[str, deque[float]] = {}
        self.watcher: Watch | None = None
        self.names: list[str] = []  # the checks in the table, as the watch polls them
        self._pending: dict[str, CheckCompleted] = {}
        self._shown: dict[str, dict[str, str]] = {}
        self._paused_view = False  # paused without a running watch (live=False: tests, snapshots)
        self._history_read = False

    def compose(self) -> ComposeResult:
        yield Static("", id="health-status")
        yield FilteredTable(OpsTable(COLUMNS, id="checks"))
        with VerticalScroll(id="health-detail"):
            yield Static("", id="check-detail")
            yield Static("", id="spark-title")
            yield Sparkline([], id="latency-spark", summary_function=max)

    def on_mount(self) -> None:
        self.border_title = "Health"
        checks = self.ctx.check_names()
        self._show_checks(checks)
        if self.ctx.service is not None:  # attached: the service's results so far (tui/attached.py)
            for state in self.ctx.picture.states.values():
                if state.last is not None:
                    self.post_message(CheckCompleted(state.last, state))
        elif not checks:
            self.query_one("#check-detail", Static).update("The profile has no [[checks]].")
        elif self.ctx.live:
            self.poll()  # the latency history is read once the first results are in (_flush)

    def attach_checks(self, names: list[str]) -> None:
        """Attached: the checks the service watches (after a reload there, maybe others)."""
        self._show_checks(names)

    @property
    def paused(self) -> bool:
        return self.watcher.paused if self.watcher is not None else self._paused_view

    def _show_checks(self, names: list[str]) -> None:
        """One row per check, in the table; a check no longer polled leaves with all it showed."""
        table = self.query_one("#checks", OpsTable)
        for name in [n for n in self.names if n not in names]:
            table.remove_row(name)
            for shown in (self.results, self.states, self.latencies, self._shown, self._pending):
                shown.pop(name, None)
        for name in [n for n in names if n not in self.names]:
            table.add_row(status_cell(SustainedState()), name, "", "", Text("not checked yet"), key=name)
        self.names = names
        self._status()

    def _status(self) -> None:
        total = len(self.names)
        phases = [s.phase for s in self.states.values()]
        down = sum(1 for p in phases if p in ("down", "recovering"))
        failing = phases.count("failing")
        text = f"{total} checks · {down} down · {failing} failing (not yet sustained)"
        if self.paused:
            text += " · PAUSED: states are stale (p resumes)"
        service = self.ctx.service
        if service is not None:
            lost = f"NOT CONNECTED, states stale: {service.problem}"
            where = service.age() if service.connected else lost
            text += f" · from service {service.url} · {where}"
        self.query_one("#health-status", Static).update(text)

    @in_thread("health-history", "load latency history", exclusive=False)
    def load_history(self, names: list[str]) -> None:
        from opsdash.ops.history import latency_series

        own = self.watcher.run_id if self.watcher is not None else None  # its results are here already
        series = latency_series(self.ctx.ops, names, SPARK_POINTS, exclude_run=own)
        self.app.call_from_thread(self._merge_history, series)

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

        early = self.ctx.take_early_results()  # the start-up child's probes: this watch's first round
        try:  # it reads the env files and opens the history database: not on the event loop
            self.watcher = await asyncio.to_thread(
                Watch,
                self.ctx.ops,
                record=self.ctx.record,
                on_alerts=self._alerts_changed,
                on_reload=self._reloaded,
                seed=early,
            )
        except OpsdashError as exc:
            self.app.notify(redactor.redact(str(exc)), title="Health checks not started", severity="error")
            self._read_history()  # what was recorded before is still worth showing
            return

        def on_result(result: CheckResult, state: SustainedState) -> None:
            self.post_message(CheckCompleted(result, state))

        await self.watcher.run(on_result)

    def _alerts_changed(self, fired: list[str], resolved: list[str]) -> None:
        if fired:
            self.post_message(AlertsRaised(fired))
        if resolved:
            self.post_message(AlertsResolved(resolved))

    def _reloaded(self, change: Reload) -> None:
        self.post_message(SourcesReloaded(change) if change.problem is None else SourcesReloadFailed(change))

    @on(SourcesReloaded)
    def sources_reloaded(self, message: SourcesReloaded) -> None:
        """An edited profile may add or remove checks (the app, where this goes on to, re-validates)."""
        self._show_checks([c.name for c in message.change.checks])
        self.post_message(CheckStatesChanged(dict(self.states)))

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
        table = self.query_one("#checks", OpsTable)
        with self.app.batch_update():
            for message in pending.values():
                if message.result.name in self.names:  # not a late result of a check since removed
                    self._apply(table, message.result, message.state)
        self._status()
        if self._current_name() in pending:
            self._show_detail()
        self.post_message(CheckStatesChanged(dict(self.states)))
        if self.ctx.live:  # not before the first results: it would slow the first verdict
            self._read_history()

    def _read_history(self) -> None:
        if not self._history_read and self.ctx.loaded is not None:
            self._history_read = True
            self.load_history([c.name for c in self.ctx.loaded.profile.checks])

    def _apply(self, table: OpsTable, result: CheckResult, state: SustainedState) -> None:
        self.results[result.name] = result
        self.states[result.name] = state
        if "response_time_ms" in result.metrics:
            self.latencies.setdefault(result.name, deque(maxlen=SPARK_POINTS)).append(
                result.metrics["response_time_ms"]
            )
        latency = result.metrics.get("response_time_ms", result.duration_ms)
        cells = {
            "status": status_cell(state, self.paused or self.ctx.stale()),
            "latency": f"{latency:4.0f} ms",
            "error": result.error_class.value if result.error_class else "",
            "summary": safe(result.summary),
        }
        shown = self._shown.setdefault(result.name, {})
        for column, value in cells.items():
            if shown.get(column) != repr(value):  # only what changed: most cells repeat sweep after sweep
                shown[column] = repr(value)
                table.update_cell(result.name, column, value)

    def _current_name(self) -> str | None:
        return self.query_one("#checks", OpsTable).current_key

    @on(OpsTable.RowHighlighted, "#checks")
    def highlighted(self, _event: OpsTable.RowHighlighted) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        name = self._current_name()
        if name is None:
            return
        detail = self.query_one("#check-detail", Static)
        spark = self.query_one("#latency-spark", Sparkline)
        result = self.results.get(name)
        if result is None:
            detail.update(f"{name}: not checked yet")
        else:
            lost = "the service is not connected" if self.ctx.stale() and not self.paused else False
            detail.update(check_detail(result, self.states.get(name), self.paused or lost))
        data = list(self.latencies.get(name, []))
        spark.data = data
        spark.display = bool(data)
        title = (
            f"latency, last {len(data)}: min {min(data):.0f} · max {max(data):.0f} · now {data[-1]:.0f} ms"
            if data
            else "latency: no samples yet"
        )
        self.query_one("#spark-title", Static).update(Text(title, style="dim"))

    def action_pause(self) -> None:
        from opsdash.tui.attached import refuse

        if refuse(self.app, self.ctx, "pause"):
            return
        paused = not self.paused
        if self.watcher is not None:
            self.watcher.paused = paused
        elif self.ctx.live:
            return  # the watch has not started yet: nothing to pause
        else:
            self._paused_view = paused
        self.app.notify("Health polling paused." if paused else "Health polling resumed.")
        self.restyle(paused)
        self.post_message(PollingPaused(paused))

    def restyle(self, stale: bool | None = None) -> None:
        """Every status cell, the status line and the detail again: stale or current now."""
        stale = self.paused or self.ctx.stale() if stale is None else stale
        table = self.query_one("#checks", OpsTable)
        for name, state in self.states.items():
            value = status_cell(state, stale)
            self._shown.setdefault(name, {})["status"] = repr(value)
            table.update_cell(name, "status", value)
        self._status()
        self._show_detail()

    def current_item(self) -> Item | None:
        result = self.results.get(self._current_name() or "")
        if result is None:
            return None
        return Item(result.name, check_detail(result, self.states.get(result.name)).plain, result.runbook)
