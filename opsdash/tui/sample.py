"""Feeding the fixed sample data to the dashboard (screenshots, snapshot tests), and waiting for the
dashboard to settle. Nothing here touches the network."""

from __future__ import annotations

import contextlib
from typing import Any

from textual.pilot import Pilot
from textual.worker import WorkerCancelled, WorkerFailed, WorkerState

from opsdash.demo.sample import sample_report, sample_results
from opsdash.tui.messages import CheckCompleted, ValidationCompleted

LONG_RUNNING = ("health", "audit-follow", "retention")  # workers that run for as long as the app does


async def feed_sample(app: Any) -> None:
    """Give the panes the sample validation report and check results, as their workers would."""
    assert app.ctx.loaded is not None
    validation = await app.ensure_pane("validation")  # mounted just after the first paint
    health = await app.ensure_pane("health")
    validation.post_message(ValidationCompleted(sample_report(app.ctx.loaded.profile)))
    for result, state in sample_results():
        health.post_message(CheckCompleted(result, state))


async def settle(pilot: Pilot[Any]) -> None:
    """Wait until no worker is busy (a replaced exclusive worker ends cancelled: that is fine)."""
    for _ in range(200):
        running = [
            w
            for w in pilot.app.workers
            if w.state in (WorkerState.PENDING, WorkerState.RUNNING) and w.group not in LONG_RUNNING
        ]
        if not running:
            break
        with contextlib.suppress(WorkerCancelled, WorkerFailed):
            await pilot.app.workers.wait_for_complete(running)
    await pilot.pause()
