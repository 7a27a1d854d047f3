"""Audit: the live tail of the audit log (and its rotated files) on the core tail engine.

It opens at the newest record at once: the engine indexes backwards from the end, one page at
first and more only as the operator scrolls up, so a 1 GB log costs what its last page costs.
Nothing is verified until the operator asks (v): the status says "not verified yet" until then.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, ProgressBar, Select, Static

from opsdash.core.audit.tail import RecordFilter, StreamIndex, parse_since
from opsdash.core.secrets import redactor
from opsdash.tui.context import DashboardContext
from opsdash.tui.messages import AuditLinesAppended, AuditScanProgressed, AuditVerified
from opsdash.tui.panes.base import Pane, copy_key, in_thread
from opsdash.tui.widgets.logview import LogView, NearTop

if TYPE_CHECKING:
    from opsdash.ops.audit import AuditTrail

KINDS = [
    ("all kinds", ""),
    ("operator actions", "operator_action"),
    ("security events", "security_event"),
    ("check results", "check_result"),
    ("system", "system"),
]
FIRST_PAGE = 256 * 1024  # bytes indexed before the first paint: several screens of records
MORE = 4 * 1024 * 1024  # bytes indexed each time the operator scrolls near the top
SHOW_SCAN_PROGRESS = 50_000_000  # bytes: a filter over a smaller log ends before a bar would help


class AuditPane(Pane):
    BINDINGS: ClassVar = [
        Binding("v", "verify", "Verify", id="audit.verify", tooltip="Verify the audit log's chain"),
        Binding("slash", "focus_filter", "Filter", id="audit.filter", tooltip="Filter by text"),
        Binding(
            "end,G", "follow", "Newest", id="audit.follow", tooltip="Jump to the newest record and follow"
        ),
        Binding("home,g", "oldest", "Oldest", id="audit.oldest", tooltip="Jump to the oldest record"),
        copy_key("audit", "the newest visible record"),
    ]

    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(ctx, **kwargs)
        self.index: StreamIndex | None = None
        self.rows: Any = []  # stream positions shown: the index's offsets, or a filter's matches
        self.filter = RecordFilter()
        self.verify_text = "not verified yet (v verifies)"
        self._extending = False
        self._to_top = False  # g pressed: land on the oldest record once everything is indexed

    @property
    def trail(self) -> AuditTrail:
        return self.ctx.ops.audit

    def compose(self) -> ComposeResult:
        with Horizontal(id="audit-filters"):
            yield Select(KINDS, value="", allow_blank=False, id="audit-kind")
            yield Input(placeholder="operator", id="audit-operator")
            yield Input(placeholder="text (/ to focus)", id="audit-grep")
            yield Input(placeholder="since: 2h, 2026-11-26T10:00", id="audit-since")
        yield Static("opening the audit log…", id="audit-status")
        yield ProgressBar(id="audit-progress", show_eta=False)
        yield LogView(id="audit-log")

    def on_mount(self) -> None:
        self.border_title = "Audit"
        self.query_one("#audit-progress", ProgressBar).display = False
        self.open_log()
        if self.ctx.live:
            self.follow_log()

    def shown(self) -> None:
        """The pane became visible: keep the newest record in view while following."""
        log = self.query_one("#audit-log", LogView)
        if log.follow:
            log.call_after_refresh(log.scroll_end, animate=False)

    @in_thread("audit-open", "open the audit log")
    def open_log(self) -> None:
        index = self.trail.index()
        if index.files == 0:
            index.close()
            self.app.call_from_thread(
                self._status, "no audit log yet: it starts with the first operator action"
            )
            self.app.call_from_thread(self._opened, None)
            return
        index.extend_back(FIRST_PAGE)
        self.app.call_from_thread(self._opened, index)

    def _opened(self, index: StreamIndex | None) -> None:
        if self.index is not None:
            self.index.close()
        self.index = index
        if index is not None:
            self.apply_filter()

    def _status(self, text: str) -> None:
        self.query_one("#audit-status", Static).update(text)

    @work(exclusive=True, group="audit-follow", exit_on_error=False, description="follow the audit log")
    async def follow_log(self) -> None:
        while True:  # chained: the next look is scheduled when this one has finished
            await asyncio.sleep(0.5)
            index = self.index
            if index is None:
                if await asyncio.to_thread(self.trail.exists):
                    self.open_log()  # the log appeared since the pane opened
                    await asyncio.sleep(0.5)
                continue
            event = await asyncio.to_thread(index.refresh)
            if event == "reset":
                self.post_message(AuditLinesAppended(0, "reset"))
            elif event is not None:
                self.post_message(AuditLinesAppended(len(index.offsets), event))

    @on(AuditLinesAppended)
    def lines_appended(self, message: AuditLinesAppended) -> None:
        if message.event == "reset":
            self.app.notify("The audit log was truncated or replaced; reading it again.", severity="warning")
            self.open_log()
            return
        if message.event == "rotated":
            self.app.notify("The audit log rotated; following the new file.", timeout=5)
        if self.index is None:
            return
        log = self.query_one("#audit-log", LogView)
        if not self.filter.active:
            self.rows = self.index.offsets
        else:
            from opsdash.core.audit.tail import Entry

            known = self.rows[-1] if len(self.rows) else -1
            start = len(self.index.offsets)
            while start > 0 and self.index.offsets[start - 1] > known:
                start -= 1
            for position in self.index.offsets[start:]:
                raw = self.index.line_at(position)
                if self.filter.quick(raw) and self.filter.match(Entry.parse(raw)):
                    self.rows.append(position)
        log.rows_appended(self.rows)
        self._summary()

    @on(NearTop)
    def near_top(self, _message: NearTop) -> None:
        if (
            self.index is not None
            and not self.index.complete
            and not self.filter.active
            and not self._extending
        ):
            self._extending = True
            self.extend(MORE)

    @in_thread("audit-extend", "read older audit records", exclusive=False)
    def extend(self, budget: int) -> None:
        index = self.index
        if index is None:
            return
        added = index.extend_back(budget) if budget else self._extend_all(index)
        self.app.call_from_thread(self._extended, added)

    def _extend_all(self, index: StreamIndex) -> int:
        total, added = index.low, 0
        while not index.complete:
            added += index.extend_back(16 * MORE)
            self.post_message(AuditScanProgressed(total - index.low, total or 1))
        self.post_message(AuditScanProgressed(total, total or 1, finished=True))
        return added

    @on(AuditScanProgressed)
    def scan_progressed(self, message: AuditScanProgressed) -> None:
        bar = self.query_one("#audit-progress", ProgressBar)
        bar.display = not message.finished
        bar.update(total=message.total, progress=message.done)

    def _extended(self, added: int) -> None:
        self._extending = False
        if self.index is None or self.filter.active:
            return
        self.rows = self.index.offsets
        log = self.query_one("#audit-log", LogView)
        log.rows_prepended(self.rows, added)
        if self._to_top:
            self._to_top = False
            log.scroll_home(animate=False, immediate=True)
        self._summary()

    def apply_filter(self) -> None:
        if self.index is None:
            return
        if not self.filter.active:
            self.rows = self.index.offsets
            self._show()
        else:
            self.scan_filter(self.filter)

    @in_thread("audit-filter", "filter the audit log")
    def scan_filter(self, flt: RecordFilter) -> None:
        from opsdash.core.audit.tail import Entry

        index = self.index
        assert index is not None
        shown = index.end > SHOW_SCAN_PROGRESS

        def progressed(done: int, total: int) -> None:
            if shown:
                self.post_message(AuditScanProgressed(done, total))

        rows = index.scan(lambda raw: flt.quick(raw) and flt.match(Entry.parse(raw)), progressed)
        self.post_message(AuditScanProgressed(index.end, index.end, finished=True))
        self.app.call_from_thread(self._filtered, rows)

    def _filtered(self, rows: Any) -> None:
        self.rows = rows
        self._show()

    def _show(self) -> None:
        index = self.index
        assert index is not None
        self.query_one("#audit-log", LogView).set_source(index.line_at, self.rows)
        self._summary()

    def _summary(self) -> None:
        index = self.index
        if index is None:
            return
        files = f" in {index.files} files" if index.files > 1 else ""
        size = f"{index.end / 2**20:,.1f} MiB{files}"
        if self.filter.active:
            shown = f"{len(self.rows):,} matching records ({size})"
        elif index.complete:
            shown = f"{len(self.rows):,} records ({size})"
        else:
            shown = f"newest {len(self.rows):,} records of {size} (scroll up or g for older)"
        self._status(f"{shown} · {self.verify_text}")

    @on(Input.Submitted)
    @on(Select.Changed, "#audit-kind")
    def filters_changed(self, event: Input.Submitted | Select.Changed) -> None:
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
        if isinstance(event, Input.Submitted):
            self.query_one("#audit-log", LogView).focus()  # Enter applies and returns to the log

    def action_focus_filter(self) -> None:
        self.query_one("#audit-grep", Input).focus()

    def action_follow(self) -> None:
        log = self.query_one("#audit-log", LogView)
        log.follow = True
        log.scroll_end(animate=False)

    def action_oldest(self) -> None:
        log = self.query_one("#audit-log", LogView)
        log.follow = False
        if self.index is not None and not self.index.complete and not self.filter.active:
            self._extending = self._to_top = True
            self.extend(0)  # index everything (with progress), then the view lands on the top
        log.scroll_home(animate=False)

    def action_verify(self) -> None:
        self.verify_text = "verifying…"
        self._summary()
        self.verify()

    @in_thread("audit-verify", "verify the audit log")
    def verify(self) -> None:
        result = self.trail.verify().result
        if result.ok:
            text = f"verified: {result.records:,} records intact"
        else:
            assert result.problem is not None
            text = f"TAMPERED at {result.problem}"
        self.post_message(AuditVerified(result.ok, redactor.redact(text)))

    @on(AuditVerified)
    def verified(self, message: AuditVerified) -> None:
        self.verify_text = message.text
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
