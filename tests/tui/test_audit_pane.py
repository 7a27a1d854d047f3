"""The Audit pane opens at the newest record, reads rotated files, and claims nothing about the
chain until it has been verified."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Static

from opsdash.core.audit.log import AuditLog, log_files
from opsdash.demo.sample import AUDIT_KEY
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.audit import AuditPane
from opsdash.tui.widgets.logview import LogView
from tests.tui.conftest import SIZE, settle, until


def fill(data: Path, records: int, max_bytes: int = 100 * 1024 * 1024) -> None:
    log = AuditLog(data, AUDIT_KEY.encode(), operator="alice", max_bytes=max_bytes)
    for n in range(records):
        log.append("operator_action", f"step-{n:05d}", subject="drill", outcome="OK")


def visible_actions(log: LogView) -> list[str]:
    top = int(log.scroll_offset.y)
    entries = [log.entry_at(row) for row in range(top, min(top + log.size.height, log.row_count))]
    return [str(e.record.get("action")) for e in entries if e is not None and e.record]


async def test_audit_pane_opens_at_the_newest_record_unverified(sample_app: OpsdashApp) -> None:
    data = sample_app.ctx.ops.audit.directory
    fill(data, 3000)
    async with sample_app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        log = sample_app.query_one("#audit-log", LogView)
        await until(pilot, lambda: log.row_count > 0)
        await pilot.pause()
        assert visible_actions(log)[-1] == "step-02999"  # the newest, without pressing End
        status = str(sample_app.query_one("#audit-status", Static).render())
        assert "not verified yet" in status and "intact" not in status
        assert "newest" in status  # only the end of the log was read to open it


async def test_audit_pane_reads_rotated_files_back_to_the_first(sample_app: OpsdashApp) -> None:
    data = sample_app.ctx.ops.audit.directory
    (data / "audit.log").unlink()
    fill(data, 600, max_bytes=20_000)
    assert len(log_files(data)) > 3
    async with sample_app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        log = sample_app.query_one("#audit-log", LogView)
        await until(pilot, lambda: log.row_count > 0)
        assert visible_actions(log)[-1] == "step-00599"
        await pilot.press("g")
        pane = sample_app.query_one(AuditPane)
        await until(pilot, lambda: pane.index is not None and pane.index.complete)
        await settle(pilot)
        await pilot.pause()
        assert log.scroll_offset.y == 0  # g lands on the oldest record of the oldest file
        first = log.entry_at(0)
        assert first is not None and first.record is not None and first.record["action"] == "genesis"
        assert "step-00000" in visible_actions(log)
        status = str(sample_app.query_one("#audit-status", Static).render())
        assert f"in {len(log_files(data))} files" in status
