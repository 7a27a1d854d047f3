"""Widgets are touched only on the UI thread: thread workers read files and the database, then hand
what they found to the UI by message or `call_from_thread`. Textual does not guard this itself (a
widget changed from a worker thread usually works, and now and then corrupts a repaint), so these
tests do: any widget looked up, changed or repainted from another thread while the panes do their
thread work is recorded and fails the test."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from textual.dom import DOMNode
from textual.widget import Widget

from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.audit import AuditPane
from opsdash.tui.panes.history import HistoryPane
from opsdash.tui.widgets.table import OpsTable
from tests.tui.conftest import SIZE, feed_sample, settle
from tests.tui.test_audit_pane import fill
from tests.waits import until_async


@pytest.fixture
def off_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every widget lookup and repaint from a thread other than the test's (run_test runs the app
    on the test's own event loop, so that is the UI thread)."""
    ui = threading.current_thread()
    touched: list[str] = []

    def guard(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(self: DOMNode, *args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not ui:
                touched.append(f"{type(self).__name__}.{name}{args!r} on {threading.current_thread().name}")
            return original(self, *args, **kwargs)

        return guarded

    for owner, name in ((DOMNode, "query_one"), (DOMNode, "query"), (Widget, "refresh")):
        monkeypatch.setattr(owner, name, guard(name, getattr(owner, name)))
    yield touched


async def test_the_panes_thread_workers_never_touch_a_widget(
    sample_app: OpsdashApp, off_thread: list[str]
) -> None:
    data = sample_app.ctx.ops.audit.directory
    (data / "audit.log").unlink()
    fill(data, 600, max_bytes=20_000)  # rotated files: g reads them all with a progress bar
    async with sample_app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await feed_sample(sample_app)
        await settle(pilot)
        for key in ("2", "3", "1"):  # validation, health (latency history), overview (alerts, deploys)
            await pilot.press(key)
            await settle(pilot)

        await pilot.press("6")
        await settle(pilot)
        history = sample_app.query_one(HistoryPane)
        runs = sample_app.query_one("#runs", OpsTable)
        await until_async(lambda: runs.row_count >= 2, "the runs are listed", pause=pilot.pause)
        history.show_run(history.runs[0].run_id)
        history.diff(history.runs[1].run_id, history.runs[0].run_id)
        await settle(pilot)

        await pilot.press("4")
        await settle(pilot)
        audit = sample_app.query_one(AuditPane)
        await pilot.press("g")  # index every rotated file, with progress
        await until_async(
            pause=pilot.pause, condition=lambda: audit.index is not None and audit.index.complete
        )
        await pilot.press("slash")
        await pilot.press(*"step-0001", "enter")  # a filter scans the log on a thread
        await until_async(
            pause=pilot.pause,
            condition=lambda: "matching records" in str(audit.query_one("#audit-status").render()),
        )
        await pilot.press("v")
        await until_async(
            pause=pilot.pause,
            condition=lambda: "verified" in audit.verify_text or "TAMPERED" in audit.verify_text,
        )
        await settle(pilot)
    assert off_thread == []


async def test_the_guard_sees_a_widget_touched_from_a_thread(
    sample_app: OpsdashApp, off_thread: list[str]
) -> None:
    """The guard above can fail: a worker that looks a widget up off the UI thread is caught."""
    async with sample_app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        done = threading.Event()

        def rogue() -> None:
            sample_app.query_one("#verdict-bar")
            done.set()

        sample_app.run_worker(rogue, thread=True)
        await until_async(done.is_set, "the rogue worker ran", pause=pilot.pause)
    assert off_thread and "query_one('#verdict-bar',)" in off_thread[0]
