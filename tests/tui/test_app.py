"""The dashboard's validation pane, driven with Textual's pilot the way an operator uses it."""

from __future__ import annotations

import contextlib
from pathlib import Path

from textual.widgets import DataTable, Static
from textual.worker import WorkerFailed

from opsdash.tui.app import OpsdashApp
from opsdash.tui.messages import ValidationCompleted
from tests.conftest import Project, good_env, plan_shaped_env

SIZE = (120, 36)


def _verdict(app: OpsdashApp) -> str:
    return str(app.query_one("#verdict", Static).render())


async def test_plan_shaped_env_shows_its_mistakes_without_secrets(project: Project) -> None:
    env = plan_shaped_env()
    project.write_env({**good_env(), **env, "PAYMENT_CANCEL_URL": "http://localhost:5173/cancelled"})
    messages: list[object] = []
    app = OpsdashApp(project.profile)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any(isinstance(m, ValidationCompleted) for m in messages)
        assert _verdict(app).startswith("NO-GO  CRIT")
        table = app.query_one("#findings", DataTable)
        rules = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert {"secret-client-exposed", "secret-reused", "url-not-https"} <= rules
        await pilot.pause()
        screen = app.export_screenshot()
        assert "NO-GO" in screen and "VITE_IKHOKHA_API_SECRET" in screen
        for value in env.values():
            if len(value) > 12:
                assert value not in screen


async def test_moving_the_cursor_shows_that_findings_detail(project: Project) -> None:
    project.write_env(plan_shaped_env())
    app = OpsdashApp(project.profile)
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


async def test_demo_fault_from_the_command_palette(tmp_path: Path) -> None:
    from opsdash.config import load_settings
    from opsdash.demo.control import BackgroundDemo, list_faults

    data_dir = load_settings().resolved_data_dir()
    background = BackgroundDemo(tmp_path / "demo", data_dir, [])
    try:
        app = OpsdashApp(background.profile, demo=True)
        async with app.run_test(size=SIZE) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert _verdict(app).startswith("GO  OK")
            await pilot.press("ctrl+p")
            await pilot.press(*"env-plan-shaped on")
            await pilot.pause(0.3)
            await pilot.press("enter")
            for _ in range(100):  # the switch and the re-run are two workers, one after the other
                await app.workers.wait_for_complete()
                await pilot.pause(0.05)
                if _verdict(app).startswith("NO-GO"):
                    break
            assert list_faults(data_dir) == ["env-plan-shaped"]
            assert _verdict(app).startswith("NO-GO  CRIT")  # the re-run saw the plan's env file
    finally:
        background.stop()


async def test_a_crashing_worker_is_reported_on_screen(project: Project, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def explode(*_args: object) -> list[str]:
        raise RuntimeError("control endpoint exploded")

    monkeypatch.setattr("opsdash.demo.control.set_fault", explode)
    app = OpsdashApp(project.profile, demo=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.workers.wait_for_complete()
        app.switch_fault("app-down", True)
        with contextlib.suppress(WorkerFailed):
            await app.workers.wait_for_complete()
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any("control endpoint exploded" in m for m in messages)


async def test_no_demo_running_is_a_notification_not_a_crash(project: Project) -> None:
    app = OpsdashApp(project.profile, demo=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await app.workers.wait_for_complete()
        app.switch_fault("app-down", True)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("no running demo" in n.message for n in app._notifications)
