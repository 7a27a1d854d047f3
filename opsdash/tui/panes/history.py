"""History: past validation, check, preflight, verify-deploy runs and runbook sessions; open one,
mark two and diff them (new, resolved, changed findings; env values whose fingerprint changed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Static

from opsdash.core.findings import Severity
from opsdash.core.readiness import why_not_comparable
from opsdash.tui.panes.base import TablePane, filter_key, in_thread
from opsdash.tui.safe import clean, safe
from opsdash.tui.style import Part, severity
from opsdash.tui.widgets.table import Col, FilteredTable, OpsTable

if TYPE_CHECKING:
    from opsdash.ops.history import RunFilter
    from opsdash.storage.rows import RunRow

LISTED = 500


class RunQuery(Input):
    """`f` opens it: filters as `history list` takes them (since=7d kind=preflight verdict=crit
    rule=secret-reused); Enter applies them, Esc clears them."""

    DEFAULT_CSS = """
    RunQuery { height: 1; border: none; padding: 0 1; }
    """

    class Cleared(Message):
        pass

    BINDINGS: ClassVar = [
        Binding(
            "escape",
            "clear_filters",
            "Clear filters",
            id="filter.clear",
            tooltip="Clear the filters",
        ),
    ]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "placeholder",
            "since=7d until=2026-12-01 kind=preflight verdict=crit rule=… (Enter applies, Esc clears)",
        )
        super().__init__(**kwargs)
        self.display = False

    def action_clear_filters(self) -> None:
        self.value = ""
        self.display = False
        self.post_message(self.Cleared())


class HistoryPane(TablePane):
    BINDINGS: ClassVar = [
        Binding("enter", "show", "Open", id="history.open", tooltip="Show the run"),
        Binding("space", "mark", "Mark", id="history.mark", tooltip="Mark a run for diffing (two at most)"),
        Binding("d", "diff", "Diff", id="history.diff", tooltip="Diff the two marked runs"),
        Binding("r", "reload", "Reload", id="history.reload", tooltip="Reload the list of runs"),
        Binding(
            "f",
            "filters",
            "Filters",
            id="history.filters",
            tooltip="Filter the runs by date, kind, verdict and rule (as history list does)",
        ),
        filter_key("history", "runs"),
    ]

    runs: Sequence[RunRow] = ()
    marked: tuple[str, ...] = ()  # two at most, oldest first
    filters: RunFilter | None = None  # applied (history list's --since/--until/--kind/--verdict/--rule)

    def compose(self) -> ComposeResult:
        yield Static("Enter opens a run · space marks two · d diffs them · / filters", id="history-help")
        columns = [
            Col("", 1, key="mark"),
            Col("RUN", 22),
            Col("KIND", 13),
            Col("VERDICT", 7),
            Col("STARTED (UTC)", 16, key="started"),
            Col("OPERATOR", 8, flex=1),
            Col("TARGET", 8, flex=2),
        ]
        yield RunQuery(id="history-query")
        yield FilteredTable(OpsTable(columns, id="runs"))
        with VerticalScroll(id="run-detail-scroll"):
            yield Static("", id="run-detail")

    def on_mount(self) -> None:
        self.border_title = "History"
        self.action_reload()

    def action_reload(self) -> None:
        self.load()

    def action_filters(self) -> None:
        query = self.query_one(RunQuery)
        query.display = True
        query.focus()

    @on(Input.Submitted, "#history-query")
    def _apply_filters(self, event: Input.Submitted) -> None:
        from opsdash.ops import history as past

        event.stop()
        try:
            chosen = past.parse_filters(event.value, self.ctx.ops.clock())
        except ValueError as exc:  # said where the operator is typing; the list stays as it was
            self.app.notify(str(exc), title="Filters", severity="error")
            return
        self.filters = chosen or None
        if not chosen:
            self.query_one(RunQuery).display = False
        self.query_one("#runs", OpsTable).focus()
        self.load()

    @on(RunQuery.Cleared)
    def _cleared(self, event: RunQuery.Cleared) -> None:
        event.stop()
        self.filters = None
        self.query_one("#runs", OpsTable).focus()
        self.load()

    @in_thread("history", "load history")
    def load(self) -> None:
        from opsdash.ops import history as past

        f = self.filters
        if f is None:
            runs = past.runs(self.ctx.ops, limit=LISTED)
        else:  # the call `history list` makes with the same filters
            runs = past.runs(
                self.ctx.ops,
                limit=LISTED,
                kind=f.kind,
                since=f.since,
                until=f.until,
                verdict=f.verdict,
                rule=f.rule,
            )
        self.app.call_from_thread(self._listed, runs)

    def _listed(self, runs: list[RunRow]) -> None:
        self.runs = runs
        self.border_subtitle = f"filters: {self.filters.text}" if self.filters else ""
        if self.filters and not runs:
            self._show_detail(Content(f"No runs match these filters: {clean(self.filters.text)}"))
        table = self.query_one("#runs", OpsTable)
        current = table.current_key
        with self.app.batch_update():
            table.clear()
            for r in runs:
                table.add_row(
                    "•" if r.run_id in self.marked else " ",
                    r.run_id,
                    safe(r.kind),
                    severity(r.verdict.value, r.verdict),
                    r.started_at[:16].replace("T", " "),
                    safe(r.operator),
                    safe(r.target),
                    key=r.run_id,
                )
            if current is not None:
                table.move_to(current)

    def _current(self) -> RunRow | None:
        key = self.query_one("#runs", OpsTable).current_key
        return next((r for r in self.runs if r.run_id == key), None)

    def action_mark(self) -> None:
        run = self._current()
        if run is None:
            return
        table = self.query_one("#runs", OpsTable)
        if run.run_id in self.marked:
            self.marked = tuple(m for m in self.marked if m != run.run_id)
        else:
            for dropped in self.marked[:-1]:  # two at most: the oldest mark goes
                table.update_cell(dropped, "mark", " ")
            self.marked = (*self.marked[-1:], run.run_id)
        # only the mark cell changes: the cursor stays where the operator is
        table.update_cell(run.run_id, "mark", "•" if run.run_id in self.marked else " ")

    def action_show(self) -> None:
        run = self._current()
        if run is not None:
            self.show_run(run.run_id)

    @in_thread("history-detail", "open a run")
    def show_run(self, run_id: str) -> None:
        from opsdash.ops import history as past

        detail = past.show(self.ctx.ops, run_id)
        run = detail.run
        parts: list[Part] = [(f"{run.kind} {run.run_id}  ", "bold"), severity(run.verdict.value, run.verdict)]
        parts.append(f"  {run.started_at}  by {clean(run.operator)}\n")
        if detail.report is None:
            state = detail.session
            for index, st in enumerate(state.steps if state else []):
                parts.append(f"  {index + 1}. {st.status.value:11} {clean(st.note)}\n")
            for event in (state.events if state else [])[-15:]:
                parts.append(
                    (f"  {event['at'][11:19]} {event['event']} {clean(event['detail'])[:80]}\n", "dim")
                )
        else:
            for f in detail.report.sorted_findings():
                parts.append(severity(f"  {f.severity.value:7}", f.severity))
                parts.append(f" {f.rule}  {clean(f.subject)}: {clean(f.detail)}\n")
            if not detail.report.findings:
                parts.append("  no findings\n")
        self.app.call_from_thread(self._show_detail, Content.assemble(*parts))

    def _show_detail(self, content: Content) -> None:
        self.query_one("#run-detail", Static).update(content)

    def action_diff(self) -> None:
        if len(self.marked) != 2:
            self.app.notify("Mark two runs with space, then press d.", severity="warning")
            return
        known = {r.run_id: r for r in self.runs}
        if not all(m in known for m in self.marked):
            self.app.notify("A marked run is no longer in history; mark two runs again.", severity="warning")
            return
        a, b = known[self.marked[0]], known[self.marked[1]]
        why = why_not_comparable(a.kind, a.target, b.kind, b.target)
        if why is not None:
            message = f"Cannot diff {a.run_id} and {b.run_id}: {why}."
            self.query_one("#run-detail", Static).update(Text(message))
            self.app.notify(message, title="Diff", severity="warning")
            return
        self.diff(*self.marked)

    @in_thread("history-detail", "diff two runs")
    def diff(self, a_id: str, b_id: str) -> None:
        from opsdash.ops import history as past

        compared = past.diff(self.ctx.ops, a_id, b_id, oldest_first=True)
        a, b, result = compared.a, compared.b, compared.diff
        parts: list[Part] = [(f"diff {a.run_id} → {b.run_id}\n", "bold")]
        if result.empty:
            parts.append("  no differences in findings or environment\n")
        for f in result.new:
            line = f"  + {f.severity.value:7} {f.rule}  {clean(f.subject)}: {clean(f.detail)}\n"
            parts.append(severity(line, f.severity))
        for f in result.resolved:
            parts.append(severity(f"  - resolved {f.rule}  {clean(f.subject)}\n", Severity.OK))
        for old, new in result.changed:
            line = f"  ~ {new.rule}  {clean(new.subject)}: {old.severity.value} → {new.severity.value}\n"
            parts.append(severity(line, Severity.WARN))
        for key in result.env_changed:
            parts.append(severity(f"  ~ env {key}: value changed (fingerprint differs)\n", Severity.WARN))
        parts += [f"  + env {key}\n" for key in result.env_added]
        parts += [f"  - env {key}\n" for key in result.env_removed]
        self.app.call_from_thread(self._show_detail, Content.assemble(*parts))

    @on(OpsTable.RowSelected, "#runs")
    def selected(self, event: OpsTable.RowSelected) -> None:
        self.show_run(str(event.row_key.value))
