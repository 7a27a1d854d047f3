"""Text a server or an env file controls reaches the dashboard as text: escape sequences are shown,
not obeyed (a body could clear the screen or write the clipboard), and Rich markup is shown as
typed, not rendered as a link or a style."""

from __future__ import annotations

import dataclasses

from opsdash.core.findings import Severity
from opsdash.core.health.state import SustainedState
from opsdash.demo.sample import sample_results
from opsdash.tui.app import OpsdashApp
from opsdash.tui.messages import CheckCompleted
from opsdash.tui.panes.health import HealthPane
from tests.tui.conftest import SIZE, feed_sample, settle

HOSTILE = "\x1b[2J\x1b[H\x1b[32mALL CHECKS OK \x1b]52;c;ZXZpbA==\x07[link=https://evil.example/]click[/link]"


async def test_a_hostile_health_body_is_shown_not_obeyed(sample_app: OpsdashApp) -> None:
    result, _state = sample_results()[0]
    hostile = dataclasses.replace(
        result, severity=Severity.CRIT, summary=f"[BODY].status == UP (actual {HOSTILE})"
    )
    async with sample_app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await feed_sample(pilot.app)
        await pilot.press("3")
        pilot.app.query_one(HealthPane).post_message(
            CheckCompleted(hostile, SustainedState().update(hostile, 1, 1))
        )
        await settle(pilot)
        screen = sample_app.export_screenshot()
    assert "\\x1b[2J" in screen  # ... the sequence is shown as an escape
    assert "\\x1b]52;c;" in screen  # the clipboard write too (OSC 52)
    assert "[link=https://evil.example/]" in screen  # markup shown as typed, not a link
    assert "https://evil.example/" not in screen.replace("[link=https://evil.example/]", "")
