"""Helpers for the dashboard tests: deterministic sample state, and a demo profile that polls fast."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget

from opsdash.demo.sample import AUDIT_KEY, write_sample_data
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.runbooks import RunbooksPane
from opsdash.tui.sample import feed_sample, settle
from tests.conftest import EXAMPLE_PROFILE, Demo
from tests.waits import DEADLINE, until_async

SIZE = (120, 36)


@pytest.fixture
def sample_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpsdashApp:
    """The dashboard on fixed sample data: no network, no clock, no randomness."""
    data = tmp_path / "sample-data"
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", AUDIT_KEY)
    monkeypatch.setenv("OPSDASH_OPERATOR", "alice")
    write_sample_data(data)
    return OpsdashApp.on_profile(EXAMPLE_PROFILE, live=False, record=False, data_dir=data)


class SnapCompare(Protocol):
    """pytest-textual-snapshot's `snap_compare` fixture, as it is called (the plugin ships no types)."""

    def __call__(
        self,
        app: App[Any],
        press: Iterable[str] = ...,
        terminal_size: tuple[int, int] = ...,
        run_before: Callable[[Pilot[None]], Awaitable[None] | None] | None = ...,
    ) -> bool: ...


def screen_of(app: App[Any]) -> Screen[Any]:
    """`app.screen`, read through a call: the pilot changes it between two asserts, and mypy would
    carry the first assert's isinstance narrowing into the second and call that one unreachable."""
    return app.screen


def focus_of(app: App[Any]) -> Widget | None:
    """`app.focused`, read through a call (as `screen_of`)."""
    return app.focused


async def until(pilot: Pilot[None], condition: Callable[[], object], deadline: float = DEADLINE) -> None:
    """Let the app work until `condition()` holds (a hang guard, not a timing assertion); if it
    never does, say what the dashboard was showing instead."""
    with contextlib.suppress(AssertionError):
        await until_async(condition, deadline=deadline, pause=pilot.pause)
        return
    notes = [n.message for n in pilot.app._notifications]
    verdict = [str(w.render()) for w in pilot.app.query("#verdict")]
    runbook = [
        (
            p.executor.state.status.value,
            [s.status.value for s in p.executor.state.steps],
            [s.output[:80] for s in p.executor.state.steps],
        )
        for p in pilot.app.query(RunbooksPane)
        if p.executor
    ]
    workers = [(w.name, w.state.name) for w in pilot.app.workers]
    raise AssertionError(
        f"the dashboard never reached the expected state (verdict {verdict}, notices {notes}, "
        f"runbook {runbook}, workers {workers})"
    )


async def sample_on(pilot: Pilot[None], key: str) -> None:
    """The sample data fed to the panes, and the pane under `key` shown."""
    await settle(pilot)
    await feed_sample(pilot.app)
    await pilot.press(key)
    await settle(pilot)


def fast_demo_profile(demo: Demo, tmp_path: Path, extra: str = "") -> Path:
    """The demo's profile with one-second polls and absolute paths, in a directory of the test's own."""
    text = re.sub(r"(?m)^interval = \d+$", "interval = 1", demo.profile.read_text())
    text = text.replace('ca_file = "demo-ca.pem"', f'ca_file = "{demo.profile.parent / "demo-ca.pem"}"')
    text = text.replace(
        'files = [".env.production"]', f'files = ["{demo.profile.parent / ".env.production"}"]'
    )
    path = tmp_path / "opsdash.toml"
    path.write_text(text + extra)
    return path


__all__ = ["SIZE", "SnapCompare", "feed_sample", "focus_of", "sample_on", "screen_of", "settle", "until"]
