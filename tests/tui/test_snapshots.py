"""A snapshot of every pane on fixed sample data shaped like the demo target, at 80x24 (every pane
usable), 120x36 and 200x50 (columns share the extra width); the Runbooks pane at 120x36.

Deterministic by construction: no network, fixed ids and times, no cursor blink. The SVGs are
also searched for the sample's secret values, which must never be drawn.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot

from opsdash.demo.sample import ENV
from opsdash.tui.app import OpsdashApp
from tests.tui.conftest import SIZE, SnapCompare, feed_sample, settle

PANES = ["1", "2", "3", "4", "5", "6", "7"]
SIZES = [(80, 24), (120, 36), (200, 50)]


def before(key: str) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        await settle(pilot)
        await feed_sample(pilot.app)
        await pilot.pause()
        await pilot.press(key)
        await settle(pilot)
        pilot.app.set_focus(None)  # no focus ring, no blinking cursor

    return run_before


@pytest.mark.parametrize("key", ["5"])
def test_pane_snapshot(snap_compare: SnapCompare, sample_app: OpsdashApp, key: str) -> None:
    assert snap_compare(sample_app, terminal_size=SIZE, run_before=before(key))


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
@pytest.mark.parametrize("key", ["1", "2", "3", "4", "6"])
def test_pane_snapshot_at_size(
    snap_compare: SnapCompare, sample_app: OpsdashApp, key: str, size: tuple[int, int]
) -> None:
    assert snap_compare(sample_app, terminal_size=size, run_before=before(key))


@pytest.mark.parametrize("key", PANES)
async def test_no_secret_in_any_pane(sample_app: OpsdashApp, key: str, tmp_path: Path) -> None:
    async with sample_app.run_test(size=SIZE) as pilot:
        await before(key)(pilot)
        screen = sample_app.export_screenshot()
    for value in ENV.values():
        if len(value) > 16:
            assert value not in screen
    assert "opsdash" in screen
