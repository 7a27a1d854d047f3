"""The dashboard, driven with Textual's pilot the way an operator uses it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from textual.command import CommandList
from textual.widgets import Button, DataTable, Input, Static, TabbedContent
from textual.worker import WorkerFailed, WorkerState

from opsdash.core.runbooks.executor import SessionState
from opsdash.demo.control import set_fault
from opsdash.tui.app import HelpScreen, OpsdashApp
from opsdash.tui.messages import ValidationCompleted
from opsdash.tui.panes.audit import AuditPane
from opsdash.tui.panes.health import HealthPane
from opsdash.tui.panes.history import HistoryPane
from opsdash.tui.panes.runbooks import RunbooksPane
from opsdash.tui.widgets.logview import LogView
from tests.conftest import Demo, Project, Run, good_env, plan_shaped_env
from tests.tui.conftest import SIZE, fast_demo_profile, settle, until
from tests.waits import wait_until


def text_of(app: OpsdashApp, selector: str) -> str:
    return str(app.query_one(selector, Static).render())


def session_of(pane: RunbooksPane) -> SessionState:
    """The session the Runbooks pane is driving, as it stands now."""
    assert pane.executor is not None, "the pane is driving no session"
    return pane.executor.state


def stop_polling(app: OpsdashApp) -> None:
    watcher = app.query_one(HealthPane).watcher
    assert watcher is not None, "the health pane never started its watch"
    watcher.stop()


async def test_validation_pane_shows_the_plans_mistakes_and_reruns(project: Project) -> None:
    env = plan_shaped_env()
    project.write_env({**good_env(), **env})
    messages: list[object] = []
    app = OpsdashApp.on_profile(project.profile)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await pilot.press("2")
        await until(pilot, lambda: text_of(app, "#verdict").startswith("NO-GO  CRIT"))
        assert any(isinstance(m, ValidationCompleted) for m in messages)
        table = app.query_one("#findings", DataTable)
        assert "secret-client-exposed" in {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert "NO-GO" in app.sub_title
        screen = app.export_screenshot()
        assert all(v not in screen for v in env.values() if len(v) > 16)
        project.write_env(good_env())
        await pilot.press("r")
        await until(pilot, lambda: text_of(app, "#verdict").startswith("GO  OK"))
        assert app.query_one("#findings", DataTable).row_count == 0


async def test_finding_opens_its_runbook(project: Project) -> None:
    project.write_env({**good_env(), "VITE_IKHOKHA_API_SECRET": "0f1e2d3c4b5a69788796a5b4c3d2e1f0"})
    app = OpsdashApp.on_profile(project.profile)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("5")  # let the runbook list load
        await settle(pilot)
        await pilot.press("2")
        await pilot.press("o")
        await settle(pilot)
        assert app.query_one("#panes", TabbedContent).active == "runbooks"
        books = app.query_one("#runbook-list", DataTable)
        assert str(books.coordinate_to_cell_key(books.cursor_coordinate)[0].value) == "credential-rotation"
        assert "Rotate iKhokha credentials" in text_of(app, "#session-title")


@pytest.mark.parametrize("book_id", ["payment-provider-outage", "tls-certificate", "pre-deploy-checklist"])
async def test_a_runbook_link_opens_exactly_that_runbook(project: Project, book_id: str) -> None:
    """The link that Overview, Validation and Health post (OpenRunbook) selects the runbook it names,
    even while the list is (re)loading — it used to land on the first row."""
    from opsdash.tui.messages import OpenRunbook

    app = OpsdashApp.on_profile(project.profile, live=False, record=False)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.post_message(OpenRunbook(book_id))
        await settle(pilot)
        assert app.query_one("#panes", TabbedContent).active == "runbooks"
        books = app.query_one("#runbook-list", DataTable)
        assert str(books.coordinate_to_cell_key(books.cursor_coordinate)[0].value) == book_id
        app.query_one(RunbooksPane).load()  # a reload (as switching panes does) keeps it
        await settle(pilot)
        assert str(books.coordinate_to_cell_key(books.cursor_coordinate)[0].value) == book_id


async def test_health_pane_shows_a_failing_check_after_a_demo_fault(
    demo_process: Demo, tmp_path: Path
) -> None:
    app = OpsdashApp.on_profile(fast_demo_profile(demo_process, tmp_path), record=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.query_one("#checks", DataTable)
        await until(pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "OK")
        set_fault(demo_process.data_dir, "provider-down", True)
        try:
            await until(pilot, lambda: table.get_cell("ikhokha-api", "error") == "http-5xx")
            # the first failure shows at once, before the check is down: never "OK" beside an error
            assert str(table.get_cell("ikhokha-api", "status")) in (
                "failing 1 of 3",
                "failing 2 of 3",
                "CRIT",
            )
            await until(pilot, lambda: str(table.get_cell("app-health", "status")) == "OK")
            await until(
                pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "CRIT"
            )  # after 3 failures
            await until(
                pilot, lambda: app.sub_title.startswith("NO-GO") and "ikhokha-api CRIT" in app.sub_title
            )
            await pilot.press("p")
            assert "PAUSED" in text_of(app, "#health-status")
            assert app.sub_title.startswith("NO-GO (stale)")
        finally:
            set_fault(demo_process.data_dir, "provider-down", False)
        stop_polling(app)


RUNBOOK = """+++
id = "tui-drill"
title = "TUI drill"
+++

## Say hello {#hello}
Tell the channel.

## The app must be up {#gate}
```check
app-health
```

## Record it {#record end}
```command timeout=10
echo drill-output-{{x}} 2>/dev/null || echo drill-output
```
"""


async def test_runbook_stepped_from_start_to_end_with_a_check_gate(
    demo_process: Demo, tmp_path: Path
) -> None:
    books = tmp_path / "books"
    books.mkdir()
    (books / "drill.md").write_text(RUNBOOK.replace("-{{x}} 2>/dev/null || echo drill-output", ""))
    profile = fast_demo_profile(demo_process, tmp_path).read_text()
    profile = profile.replace('dirs = ["runbooks"]', f'dirs = ["{books}"]')
    path = tmp_path / "opsdash.toml"
    path.write_text(profile)
    app = OpsdashApp.on_profile(path, record=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")  # the pane is mounted when first shown
        await settle(pilot)
        pane = app.query_one(RunbooksPane)
        pane.open_runbook("tui-drill")
        await pilot.press("enter")
        await settle(pilot)
        assert pane.executor is not None

        def idle() -> bool:
            busy = [
                w
                for w in app.workers
                if w.group == "runbook" and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
            ]
            return not busy and not app.query_one("#step-confirm", Button).disabled

        for index in range(3):
            await until(pilot, idle)
            # Button.press(): what a click does, without aiming at coordinates a busy layout may move
            app.query_one("#step-confirm", Button).press()

            def step_ended(i: int = index) -> bool:
                return session_of(pane).steps[i].status.value not in ("pending", "running")

            await until(pilot, step_ended)
            step = session_of(pane).steps[index]
            assert step.status.value == "done", (index, step)
        await until(pilot, lambda: session_of(pane).status.value == "completed")
        await settle(pilot)
        state = session_of(pane)
        assert state.status.value == "completed"
        assert [s.status.value for s in state.steps] == ["done", "done", "done"]
        assert "drill-output" in state.steps[2].output
        assert "completed" in text_of(app, "#session-title")


async def test_audit_tail_filters(project: Project, run: Run) -> None:
    project.write_env({**good_env(), "ENFORCE_HTTPS": "false"})
    for _ in range(3):
        run("validate", "--config", project.profile)
    app = OpsdashApp.on_profile(project.profile, record=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("4")
        log = app.query_one("#audit-log", LogView)
        await until(pilot, lambda: log.row_count == 7)  # genesis + (crit-findings + validate) x 3
        pane = app.query_one(AuditPane)
        grep = app.query_one("#audit-grep", Input)
        grep.value = "crit-findings"
        await pilot.press("slash")
        await pilot.press("enter")
        await until(pilot, lambda: log.row_count == 3)
        assert all("crit-findings" in (e.text() if (e := log.entry_at(i)) else "") for i in range(3))
        assert "not verified yet" in text_of(
            app, "#audit-status"
        )  # nothing verified behind the operator's back
        log.focus()
        await pilot.press("v")
        await until(pilot, lambda: "verified: 7 records intact" in text_of(app, "#audit-status"))
        run("validate", "--config", project.profile)  # the tail follows appends, filter still applied
        await until(pilot, lambda: log.row_count == 4)
        assert pane.filter.grep == "crit-findings"


async def test_history_diff_of_two_runs(project: Project, run: Run) -> None:
    project.write_env(good_env())
    run("validate", "--config", project.profile)
    project.write_env({**good_env(), "VITE_IKHOKHA_TEST_MODE": "true"})
    run("validate", "--config", project.profile)
    app = OpsdashApp.on_profile(project.profile, record=False, live=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        await settle(pilot)
        table = app.query_one("#runs", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        await pilot.press("space", "down", "space", "d")
        await settle(pilot)
        detail = text_of(app, "#run-detail")
        assert "+ CRIT    test-mode-enabled  VITE_IKHOKHA_TEST_MODE" in detail
        assert "env VITE_IKHOKHA_TEST_MODE: value changed" in detail
        await pilot.press("enter")
        await settle(pilot)
        assert "validate" in text_of(app, "#run-detail")
        assert len(app.query_one(HistoryPane).marked) == 2


async def test_first_run_offers_demo_and_init() -> None:
    app = OpsdashApp.on_profile(None)
    async with app.run_test(size=SIZE) as pilot:
        text = text_of(app, "#first-run")
        assert "opsdash demo" in text and "opsdash init" in text
        await pilot.press("q")
    assert app.return_code == 0


async def test_broken_configuration_shows_what_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "opsdash.toml"
    bad.write_text('[target]\nname = "x"\nbase_url = "not a url"\n')
    app = OpsdashApp.on_profile(bad)
    async with app.run_test(size=SIZE):
        text = text_of(app, "#startup-error")
        assert f"{bad}:3: target.base_url" in text


async def test_help_lists_bindings_and_keymap_remaps(project: Project, tmp_path: Path) -> None:
    text = project.profile.read_text().replace("[opsdash]\n", '[opsdash]\nkeymap = { "app.help" = "f1" }\n')
    project.profile.write_text(text)
    app = OpsdashApp.on_profile(project.profile, live=False, record=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        table = app.screen.query_one("#help-table", DataTable)
        ids = {str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert {
            "app.help",
            "validation.rerun",
            "health.pause",
            "audit.verify",
            "runbooks.open",
            "history.diff",
        } <= ids
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_ansi_theme_from_settings(project: Project) -> None:
    text = project.profile.read_text().replace("[opsdash]\n", '[opsdash]\ntheme = "ansi-dark"\n')
    project.profile.write_text(text)
    app = OpsdashApp.on_profile(project.profile, live=False, record=False)
    async with app.run_test(size=SIZE):
        assert app.theme == "ansi-dark"


async def test_demo_fault_from_the_command_palette(tmp_path: Path) -> None:
    from opsdash.demo.control import BackgroundDemo, list_faults
    from opsdash.ops.config import load_settings

    data_dir = load_settings().resolved_data_dir()
    background = BackgroundDemo(tmp_path / "demo", data_dir, [])
    try:
        app = OpsdashApp.on_profile(background.profile, demo=True, record=False)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("2")
            await until(pilot, lambda: text_of(app, "#verdict").startswith("GO"))
            await pilot.press("ctrl+p")
            await pilot.press(*"env-plan-shaped on")
            await until(  # the search has found the command and highlighted it
                pilot, lambda: app.screen.query_one(CommandList).highlighted is not None
            )
            await pilot.press("enter")
            await until(pilot, lambda: text_of(app, "#verdict").startswith("NO-GO"))
            assert list_faults(data_dir) == ["env-plan-shaped"]
            stop_polling(app)
    finally:
        background.stop()


async def test_a_crashing_worker_is_reported_on_screen(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_args: object) -> list[str]:
        raise RuntimeError("control endpoint exploded")

    monkeypatch.setattr("opsdash.demo.control.set_fault", explode)
    app = OpsdashApp.on_profile(project.profile, demo=True, live=False, record=False)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        app.switch_fault("app-down", True)
        with contextlib.suppress(WorkerFailed):
            await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("control endpoint exploded" in n.message for n in app._notifications)


def test_dashboard_exits_cleanly_when_its_terminal_goes_away(project: Project) -> None:
    """An SSH session that drops closes the terminal: the dashboard must end, not spin or hang."""
    import os
    import pty
    import select
    import signal
    import sys
    import time

    opsdash = str(Path(sys.executable).with_name("opsdash"))
    pid, master = pty.fork()
    if pid == 0:  # the child: the dashboard on a real terminal
        os.execv(opsdash, [opsdash, "--config", str(project.profile)])
    seen = b""
    deadline = time.monotonic() + 30  # hang guard, not a timing assertion
    while b"Overview" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    assert b"Overview" in seen, seen[-500:]
    os.close(master)  # the terminal goes away: the kernel sends SIGHUP

    def reaped() -> tuple[int, int] | None:
        ended = os.waitpid(pid, os.WNOHANG)
        return ended if ended[0] else None

    try:
        _, status = wait_until(reaped, "the dashboard ends", 30)
    except AssertionError:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    assert os.WIFEXITED(status) or os.WTERMSIG(status) == signal.SIGHUP


async def test_latency_sparkline_continues_the_history_without_repeating_live_results(
    demo_process: Demo, tmp_path: Path
) -> None:
    """The sparkline starts from the latencies history holds (read once the first results are in,
    so it never delays the first verdict) and the watch's own results, which it records as they
    arrive, are not counted twice."""
    from collections import deque
    from dataclasses import replace

    from opsdash.core.findings import Severity
    from opsdash.core.health.model import CheckResult
    from opsdash.storage.history import History

    data = tmp_path / "data"
    earlier = [101.0, 102.0, 103.0, 104.0, 105.0]
    base = CheckResult("app-health", "http", "demo", Severity.OK, "ok", "2026-11-20T10:00:00", 1.0)
    with History.open(data) as history:
        history.checks.record(
            "earlier-run",
            [
                replace(base, started_at=f"2026-11-20T10:00:0{i}", metrics={"response_time_ms": ms})
                for i, ms in enumerate(earlier)
            ],
        )
    app = OpsdashApp.on_profile(fast_demo_profile(demo_process, tmp_path), data_dir=data, record=True)
    async with app.run_test(size=SIZE) as pilot:
        pane = await app.ensure_pane("health")
        await until(pilot, lambda: len(pane.latencies.get("app-health", ())) >= len(earlier) + 1)
        assert list(pane.latencies["app-health"])[: len(earlier)] == earlier  # read after the first results

        # a slow read that finds the watch's own results already recorded must not count them twice
        run_id = pane.watcher.run_id

        def recorded() -> list[float]:
            with History.open(data, write=False) as history:
                return [r.latency_ms for r in history.checks.recent("app-health") if r.run_id == run_id]

        await until(pilot, lambda: len(recorded()) >= 2)
        pane.watcher.close()  # waits until every result so far is recorded
        live = recorded()
        pane.latencies["app-health"] = deque(live)
        pane.load_history(["app-health"])
        await until(pilot, lambda: len(pane.latencies["app-health"]) > len(live))
        await settle(pilot)
        assert list(pane.latencies["app-health"]) == earlier + live


async def test_quitting_while_the_audit_pane_is_built_in_idle_time_is_quiet(sample_app: OpsdashApp) -> None:
    """The Audit pane is built 1.5 s after start; an operator who quits at that moment must not get
    an error from a pane mounted into a screen that is being taken down."""
    from textual.widgets import TabbedContent

    async with sample_app.run_test(size=SIZE) as pilot:
        await sample_app.query_one(TabbedContent).remove_pane("audit")  # as shutting down removes it
        await sample_app._mount_idle()
        await pilot.pause()
        assert not sample_app.query(AuditPane)


async def test_an_alert_that_ends_leaves_the_verdict(demo_process: Demo, tmp_path: Path) -> None:
    """The provider goes down (an alert fires: NO-GO, and the header names the alert) and comes
    back: once the check has recovered and its alert is resolved, the header returns to GO. Before,
    the resolved alert stayed in the verdict (NO-GO beside an all-OK Health pane) until something
    else happened to refresh the overview."""
    app = OpsdashApp.on_profile(
        fast_demo_profile(demo_process, tmp_path), data_dir=tmp_path / "data", record=True
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.query_one("#checks", DataTable)
        await until(pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "OK")
        set_fault(demo_process.data_dir, "provider-down", True)
        try:
            await until(pilot, lambda: "alert: ikhokha-api" in app.sub_title)
            assert app.sub_title.startswith("NO-GO")
        finally:
            set_fault(demo_process.data_dir, "provider-down", False)
        await until(pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "OK")
        await until(pilot, lambda: app.sub_title.startswith("GO"))
        assert "alert" not in app.sub_title
        assert any(n.title == "Alert resolved" for n in app._notifications)
        stop_polling(app)
