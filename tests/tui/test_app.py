"""The dashboard's validation pane, driven with Textual's pilot the way an operator uses it."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable, Static

from opsdash.demo import write_demo_workspace
from opsdash.tui.app import OpsdashApp
from opsdash.tui.messages import ValidationCompleted
from tests.conftest import Project, good_env

SIZE = (120, 36)


def _verdict(app: OpsdashApp) -> str:
    return str(app.query_one("#verdict", Static).render())


async def test_demo_shows_the_plans_mistakes_without_secrets(tmp_path: Path) -> None:
    profile = write_demo_workspace(tmp_path / "demo")
    env_values = [
        line.split("=", 1)[1]
        for line in (tmp_path / "demo" / ".env.production").read_text().splitlines()
        if "SECRET" in line or "API_KEY" in line
    ]
    messages = []
    app = OpsdashApp(profile, demo=True)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any(isinstance(m, ValidationCompleted) for m in messages)
        assert _verdict(app).startswith("NO-GO  CRIT")
        table = app.query_one("#findings", DataTable)
        rules = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert {"secret-client-exposed", "secret-reused", "url-not-https"} <= rules
        screen = app.export_screenshot()
        assert "secret-client-exposed" in screen
        for value in env_values:
            assert value not in screen


async def test_moving_the_cursor_shows_that_findings_detail(tmp_path: Path) -> None:
    app = OpsdashApp(write_demo_workspace(tmp_path / "demo"))
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        table = app.query_one("#findings", DataTable)
        last = table.row_count - 1
        for _ in range(last):
            await pilot.press("down")
        await pilot.pause()
        detail = str(app.query_one("#detail", Static).render())
        assert app.findings[last].detail.split(":")[0] in detail
        assert "fix:" in detail


async def test_rerun_picks_up_a_fixed_env_file(project: Project) -> None:
    env = good_env()
    project.write_env({**env, "VITE_IKHOKHA_TEST_MODE": "true"})
    app = OpsdashApp(project.profile)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert _verdict(app).startswith("NO-GO")
        project.write_env(env)
        await pilot.press("r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert _verdict(app).startswith("GO  OK")
        assert app.query_one("#findings", DataTable).row_count == 0
        assert "passes every rule" in str(app.query_one("#detail", Static).render())


async def test_broken_env_file_shows_unknown_with_the_reason(project: Project) -> None:
    project.env_file.write_bytes(b"\x00\x01binary")
    app = OpsdashApp(project.profile)
    async with app.run_test(size=SIZE) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        verdict = _verdict(app)
        assert verdict.startswith("UNKNOWN") and "binary content" in verdict


async def test_first_run_offers_demo_and_init() -> None:
    app = OpsdashApp(None)
    async with app.run_test(size=SIZE) as pilot:
        text = str(app.query_one("#first-run", Static).render())
        assert "opsdash demo" in text and "opsdash init" in text
        await pilot.press("q")
    assert app.return_code == 0
