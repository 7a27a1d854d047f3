"""Helpers for the dashboard tests: deterministic sample state, and a demo profile that polls fast."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.pilot import Pilot

from opsdash.demo.sample import AUDIT_KEY, write_sample_data
from opsdash.tui.app import OpsdashApp
from opsdash.tui.sample import feed_sample, settle
from tests.conftest import EXAMPLE_PROFILE, Demo

SIZE = (120, 36)


@pytest.fixture
def sample_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpsdashApp:
    """The dashboard on fixed sample data: no network, no clock, no randomness."""
    data = tmp_path / "sample-data"
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", AUDIT_KEY)
    monkeypatch.setenv("OPSDASH_OPERATOR", "alice")
    write_sample_data(data)
    return OpsdashApp.on_profile(EXAMPLE_PROFILE, live=False, record=False, data_dir=data)


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


__all__ = ["SIZE", "feed_sample", "sample_on", "settle"]
