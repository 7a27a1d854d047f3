"""Audit: the live tail of the audit log on the core tail engine, with filters and verify state."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Input, ProgressBar, Select, Static

from opsdash.core.audit.tail import LineIndex, RecordFilter, parse_since
from opsdash.core.secrets import redactor
from opsdash.tui.context import DashboardContext
from opsdash.tui.messages import AuditLinesAppended, AuditVerified
from opsdash.tui.widgets.logview import LogView

if TYPE_CHECKING:
    from opsdash.ops.audit import AuditTrail

KINDS = [
    ("all kinds", ""),
    ("operator actions", "operator_action"),
    ("security events", "security_event"),
    ("check results", "check_result"),
    ("system", "system"),
]


class AuditPane(Vertical):
    BINDINGS: ClassVar = [
        Binding("v", "verify", "Verify", id="audit.verify", tooltip="Verify the audit log's chain"),
        Binding("slash", "focus_filter", "Filter", id="audit.filter", tooltip="Filter by text"),
        Binding("end", "follow", "Follow", id="audit.follow", tooltip="Jump to the newest record and follow"),
        Binding("y", "copy", "Copy", id="audit.copy", tooltip="Copy the newest visible record"),
    ]

    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.index: LineIndex | None = None
        self.rows: list[int] = []
        self.filter = RecordFilter()
        self._opening = False

    @property
    def trail(self) -> AuditTrail:
        return self.ctx.ops.audit

    def compose(self) -> ComposeResult:
        with Horizontal(id="audit-filters"):
            yield Select(KINDS, value="", allow_blank=False, id="audit-kind")
            yield Input(placeholder="operator", id="audit-operator")
            yield Input(placeholder="text (/ to focus)", id="audit-grep")
            yield Input(placeholder="since: 2h, 2026-11-26T10:00", id="audit-since")
        yield Static("", id="audit-status")
        yield ProgressBar(id="audit-progress", show_eta=False)
        yield LogView(id="audit-log")

    def on_mount(self) -> None:
        self.border_title = "Audit"
        self.query_one("#audit-progress", ProgressBar).display = False
        self.open_log()
        if self.ctx.live:
            self.follow_log()
            self.verify()

    @work(
        thread=True,
        exclusive=True,
        group="audit-open",
        exit_on_error=False,
        description="index the audit log",
    )
    def open_log(self) -> None:
        self._opening = True  # one index build at a time: the follower must not start a second
        try:
            self._open_log()
        finally:
            self._opening = False

    def _open_log(self) -> None:
        if not self.trail.exists():
            self.app.call_from_thread(
                self._status, "no audit log yet: it starts with the first operator action"
            )
            return
        index = self.trail.index()
        last = index.last_lines(200)  # the newest page first, before the full index exists
        self.app.call_from_thread(self._provisional, [raw for _off, raw in last])
        bar = self.query_one("#audit-progress", ProgressBar)
        self.app.call_from_thread(setattr, bar, "display", index.size > 50_000_000)
        index.build(lambda done, total: self.app.call_from_thread(bar.update, total=total, progress=done))
        self.app.call_from_thread(self._indexed, index)

    def _provisional(self, lines: list[bytes]) -> None:
        self.query_one("#audit-log", LogView).set_source(lambda n: lines[n], range(len(lines)))

    def _indexed(self, index: LineIndex) -> None:
        if self.index is not None:
            self.index.close()
        self.index = index
        self.query_one("#audit-progress", ProgressBar).display = False
        self.apply_filter()

    def _status(self, text: str) -> None:
        self.query_one("#audit-status", Static).update(text)

    @work(exclusive=True, group="audit-follow", exit_on_error=False, description="follow the audit log")
    async def follow_log(self) -> None:
        while True:  # chained: the next look is scheduled when this one has finished
            await asyncio.sleep(0.5)
            if self.index is None:
                if not self._opening and await asyncio.to_thread(self.trail.exists):
                    self.open_log()  # the log appeared since the pane opened
                continue
            event = await asyncio.to_thread(self.index.refresh)
            if event == "reset":
                self.post_message(AuditLinesAppended(0, "reset"))
            elif event == "appended":
                self.post_message(AuditLinesAppended(len(self.index.offsets or [])))

    @on(AuditLinesAppended)
    def lines_appended(self, message: AuditLinesAppended) -> None:
        if message.event == "reset":
            self.app.notify("The audit log was truncated or rotated; reading it again.", severity="warning")
            self.open_log()
            return
        assert self.index is not None and self.index.offsets is not None
        start = self.rows[-1] + 1 if self.rows else 0
        new = range(start, len(self.index.offsets))
        if not self.filter.active:
            self.rows.extend(new)
        else:
            from opsdash.core.audit.tail import Entry

            self.rows.extend(n for n in new if self.filter.match(Entry.parse(self.index.line(n))))
        self.query_one("#audit-log", LogView).rows_appended(self.rows)
        self._summary()

    def apply_filter(self) -> None:
        if self.index is None:
            return
        if not self.filter.active:
            self.rows = list(range(len(self.index.offsets or [])))
            self._show()
        else:
            self.scan_filter(self.filter)

    @work(
        thread=True,
        exclusive=True,
        group="audit-filter",
        exit_on_error=False,
        description="filter the audit log",
    )
    def scan_filter(self, flt: RecordFilter) -> None:
        from opsdash.core.audit.tail import Entry

        assert self.index is not None
        rows = [n for n, raw in self.index.iter_lines() if flt.quick(raw) and flt.match(Entry.parse(raw))]
        self.app.call_from_thread(self._filtered, rows)

    def _filtered(self, rows: list[int]) -> None:
        self.rows = rows
        self._show()

    def _show(self) -> None:
        assert self.index is not None
        index = self.index
        self.query_one("#audit-log", LogView).set_source(index.line, self.rows)
        self._summary()

    def _summary(self) -> None:
        total = len(self.index.offsets or []) if self.index else 0
        shown = f"{len(self.rows):,} of {total:,} records" if self.filter.active else f"{total:,} records"
        verify = getattr(self, "_verify_text", "not verified yet (v)")
        self._status(f"{shown} · {verify}")

    @on(Input.Submitted)
    @on(Select.Changed, "#audit-kind")
    def filters_changed(self, _event: object) -> None:
        since_text = self.query_one("#audit-since", Input).value.strip()
        try:
            since = parse_since(since_text) if since_text else None
        except ValueError as exc:
            self.app.notify(str(exc), severity="error")
            return
        kind = self.query_one("#audit-kind", Select).value
        self.filter = RecordFilter(
            kind=str(kind) if kind else None,
            operator=self.query_one("#audit-operator", Input).value.strip() or None,
            grep=self.query_one("#audit-grep", Input).value.strip() or None,
            since=since,
        )
        self.apply_filter()

    def action_focus_filter(self) -> None:
        self.query_one("#audit-grep", Input).focus()

    def action_follow(self) -> None:
        log = self.query_one("#audit-log", LogView)
        log.follow = True
        log.scroll_end(animate=False)

    def action_verify(self) -> None:
        self.verify()

    @work(
        thread=True,
        exclusive=True,
        group="audit-verify",
        exit_on_error=False,
        description="verify the audit log",
    )
    def verify(self) -> None:
        from opsdash.ops.audit import verify_log

        result = verify_log(self.ctx.ops).result
        if result.ok:
            text = f"verified: {result.records:,} records intact"
        else:
            assert result.problem is not None
            text = f"TAMPERED at {result.problem}"
        self.post_message(AuditVerified(result.ok, redactor.redact(text)))

    @on(AuditVerified)
    def verified(self, message: AuditVerified) -> None:
        self._verify_text = message.text
        self._summary()
        if not message.ok:
            self.app.notify(message.text, title="Audit log", severity="error", timeout=30)

    def action_copy(self) -> None:
        log = self.query_one("#audit-log", LogView)
        entry = log.entry_at(log.row_count - 1 if log.follow else int(log.scroll_offset.y))
        if entry is not None:
            self.app.copy_to_clipboard(redactor.redact(entry.text()))
            self.app.notify("Record copied to the clipboard.")

    def on_unmount(self) -> None:
        if self.index is not None:
            self.index.close()
