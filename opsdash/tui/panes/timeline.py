"""Timeline: the incidents derived from the record; Enter opens one as a scrollable timeline (every
event of every kind on one axis, the phases measured) under a sparkline of the checks failing
across it; `e` exports it as a Markdown postmortem draft. Reading and writing go through
`ops.incidents`, on thread workers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Sparkline, Static

from opsdash.core.findings import Severity
from opsdash.tui.panes.base import TablePane, filter_key, in_thread
from opsdash.tui.safe import clean, safe
from opsdash.tui.style import Part, severity
from opsdash.tui.widgets.table import Col, FilteredTable, OpsTable

if TYPE_CHECKING:
    from opsdash.core.incidents import Incident

SPARK_POINTS = 60
LISTED = 500  # the newest incidents the table holds, as the History pane lists 500 runs


class TimelinePane(TablePane):
    DEFAULT_CSS = """
    TimelinePane { height: 1fr; }
    #timeline-help { height: 1; padding: 0 1; color: $text-muted; }
    #incidents { height: 1fr; }
    #timeline-scroll { height: 2fr; min-height: 6; border-top: solid $primary; }
    #failing-title { padding: 0 1; height: 1; }
    #failing-spark { height: 2; margin: 0 1; }
    #incident-timeline { padding: 0 1; height: auto; }
    """
    BINDINGS: ClassVar = [
        Binding("enter", "show", "Open", id="timeline.open", tooltip="Show the incident's timeline"),
        Binding(
            "e", "export", "Export", id="timeline.export", tooltip="Export a postmortem draft (Markdown)"
        ),
        Binding("r", "reload", "Reload", id="timeline.reload", tooltip="Derive the incidents again"),
        filter_key("timeline", "incidents"),
    ]

    incidents: Sequence[Incident] = ()
    shown: Incident | None = None

    def compose(self) -> ComposeResult:
        yield Static("Enter opens an incident · e exports it · r reloads · / filters", id="timeline-help")
        columns = [
            Col("INCIDENT", 20),
            Col("SEV", 4),
            Col("STARTED UTC", 11, key="started"),
            Col("LASTED", 7),
            Col("DETECT", 6),
            Col("ACT", 6),
            Col("CHECKS / ALERTS", 8, flex=1),
        ]
        yield FilteredTable(OpsTable(columns, id="incidents"))
        with VerticalScroll(id="timeline-scroll"):
            yield Static("", id="failing-title")
            yield Sparkline([], id="failing-spark", summary_function=max)
            yield Static("Select an incident and press Enter.", id="incident-timeline")

    def on_mount(self) -> None:
        self.border_title = "Timeline"
        # incidents are few and their timelines long: the list gets a third (inline: over app.tcss)
        self.query_one(FilteredTable).styles.height = "1fr"
        self.load()

    def action_reload(self) -> None:
        self.load()

    @in_thread("timeline", "derive incidents")
    def load(self) -> None:
        from opsdash.ops import incidents as ops_incidents

        found = ops_incidents.incidents(self.ctx.ops, ops_incidents.Query(limit=LISTED))
        self.app.call_from_thread(self._listed, found[::-1][:LISTED], self.ctx.ops.clock())

    def _listed(self, found: list[Incident], now: float) -> None:
        from opsdash.ops.incidents import short, took

        self.incidents = found
        table = self.query_one("#incidents", OpsTable)
        current = table.current_key
        with self.app.batch_update():
            table.clear()
            for i in found:
                phases = {p.name: p for p in i.phases}
                lasted = took(i.duration(now)) + ("…" if i.ongoing else "")
                table.add_row(
                    i.id,
                    severity(i.severity.value, i.severity),
                    short(i.first_failure_at)[5:16],
                    lasted,
                    took(phases["detect"].seconds),
                    took(phases["act"].seconds),
                    safe(", ".join([*i.checks, *i.alerts]) or "-"),
                    key=i.id,
                )
            if current is not None:
                table.move_to(current)
        if not found:
            self.query_one("#incident-timeline", Static).update(
                "No incidents in the record: a check that stays down or an alert that fires starts one."
            )

    def _current(self) -> Incident | None:
        key = self.query_one("#incidents", OpsTable).current_key
        return next((i for i in self.incidents if i.id == key), None)

    def action_show(self) -> None:
        chosen = self._current()
        if chosen is not None:
            self.show_incident(chosen.id)

    @on(OpsTable.RowSelected, "#incidents")
    def selected(self, event: OpsTable.RowSelected) -> None:
        self.show_incident(str(event.row_key.value))

    @in_thread("timeline-detail", "open an incident")
    def show_incident(self, ref: str) -> None:
        from opsdash.ops import incidents as ops_incidents

        found = ops_incidents.show(self.ctx.ops, ref)
        series = ops_incidents.failing_series(found, SPARK_POINTS)
        self.app.call_from_thread(self._shown, found, series, timeline(found, self.ctx.ops.clock()))

    def _shown(self, found: Incident, series: list[float], content: Content) -> None:
        self.shown = found
        most = int(max(series, default=0))
        self.query_one("#failing-title", Static).update(
            f"checks failing across the incident (most at once: {most})"
        )
        self.query_one("#failing-spark", Sparkline).data = series
        self.query_one("#incident-timeline", Static).update(content)

    def action_export(self) -> None:
        chosen = self.shown or self._current()
        if chosen is None:
            self.app.notify("No incident to export.", severity="warning")
            return
        self.export(chosen.id)

    @in_thread("timeline-export", "export an incident")
    def export(self, ref: str) -> None:
        from opsdash.ops import incidents as ops_incidents

        path: Path = ops_incidents.export_file(self.ctx.ops, ref)
        self.app.call_from_thread(
            self.app.notify, f"Postmortem draft written to {clean(path)}", title="Export"
        )


def timeline(i: Incident, now: float) -> Content:
    """The incident as the pane shows it: the window, what was involved, the phases, then every
    event with its offset from the first failure."""
    from opsdash.ops.incidents import short, took

    status = "ongoing" if i.ongoing else "recovered"
    recovered = short(i.recovered_at) if i.recovered_at is not None else "not yet"
    parts: list[Part] = [
        (f"{i.id}  ", "bold"),
        severity(i.severity.value, i.severity),
        f"  {status}  {short(i.first_failure_at)} → {recovered} UTC ({took(i.duration(now))})\n",
        f"checks {clean(', '.join(i.checks)) or '-'} · alerts {clean(', '.join(i.alerts)) or '-'}\n",
    ]
    if i.cause is not None:
        parts.append(f"deploy before it: {clean(i.cause.title)} at {short(i.cause.at)[11:]}\n")
    parts.append(("phases ", "bold"))
    parts.append("  ".join(f"{p.name} {took(p.seconds)}" for p in i.phases) + "\n")
    for e in i.events:
        level = e.severity if e.severity is not Severity.INFO else None
        line = f"{short(e.at)[11:]} {'+' + took(e.at - i.first_failure_at):>8} {e.kind:<15} "
        parts.append((line, "dim"))
        text = f"{clean(e.source)}: {clean(e.title)}" + (f" ({clean(e.operator)})" if e.operator else "")
        parts.append(severity(text + "\n", level) if level is not None else text + "\n")
    return Content.assemble(*parts)
