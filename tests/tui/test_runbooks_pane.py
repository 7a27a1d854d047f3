"""The Runbooks pane in a nervous operator's hands: a running command cannot start twice, a stray
Enter never aborts, quitting mid-command asks and loses nothing, parameters say what they want, and
the guided view fits 80x24 to 200x50 (snapshots)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Button, DataTable, Input, Label, Log, Static, TabbedContent

from opsdash.core.runbooks.executor import Executor, SessionStatus, StepStatus
from opsdash.core.runbooks.parser import parse
from opsdash.storage.history import History
from opsdash.tui.app import OpsdashApp, VerdictBar
from opsdash.tui.panes.runbooks import (
    ConfirmAction,
    ParametersScreen,
    QuitDuringCommand,
    RunbooksPane,
    SessionHeld,
)
from tests.conftest import Demo, Project, good_env, not_none
from tests.tui.conftest import SIZE, SnapCompare, fast_demo_profile, screen_of, settle, until
from tests.waits import until_async

BOOK = """+++
id = "tui-deploy"
title = "TUI deploy drill"
+++

## Deploy {#deploy}
```command timeout=60
{command}
```

## Tell people {#tell end}
Say it is out.
"""


def app_with(project: Project, tmp_path: Path, command: str) -> OpsdashApp:
    books = tmp_path / "books"
    books.mkdir(exist_ok=True)
    (books / "deploy.md").write_text(BOOK.replace("{command}", command))
    text = project.profile.read_text().replace('dirs = ["runbooks"]', f'dirs = ["{books}"]')
    assert str(books) in text
    project.profile.write_text(text)
    return OpsdashApp.on_profile(project.profile, live=False, record=False, data_dir=tmp_path / "data")


async def open_book(pilot: Pilot[None], book_id: str = "tui-deploy", params: bool = False) -> RunbooksPane:
    await pilot.press("5")
    await settle(pilot)
    pane = pilot.app.query_one(RunbooksPane)
    pane.open_runbook(book_id)
    await pilot.press("enter")
    if params:  # the parameters dialog: the defaults are fine
        await until(pilot, lambda: isinstance(pilot.app.screen, ParametersScreen))
        await settle(pilot)
        await pilot.press("enter")
    await until(pilot, lambda: pane.executor is not None and not pane._busy)
    await settle(pilot)
    return pane


def buttons(app: App[None]) -> set[str]:
    return {b.id.removeprefix("step-") for b in app.query("#step-buttons Button") if not b.disabled and b.id}


def executor_of(pane: RunbooksPane) -> Executor:
    assert pane.executor is not None, "the pane is driving no session"
    return pane.executor


async def until_driving(pilot: Pilot[None], pane: RunbooksPane) -> None:
    """Until the pane drives a session and is idle (`pane` a parameter: no narrowing carried in)."""
    await until(pilot, lambda: pane.executor is not None and not pane._busy)


def events(tmp_path: Path, session_id: str) -> list[str]:
    with History.open(tmp_path / "data") as history:
        return [e.event for e in history.sessions.events(session_id)]


async def test_a_running_command_cannot_be_started_again(project: Project, tmp_path: Path) -> None:
    # runs until the test releases it: the running state is seen because it is reported, not
    # because the command happened to last long enough for a look
    release = tmp_path / "release"
    wait = f"until [ -e {release} ]; do sleep 0.05; done"
    app = app_with(project, tmp_path, f"echo run >> {tmp_path}/runs.log; echo deploying; {wait}")
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_book(pilot)
        assert pane.executor is not None
        await pilot.press("c")  # Do it
        await until(pilot, lambda: pane._command_running() and "interrupt" in buttons(app))
        for key in ("c", "enter", "c", "enter", "r", "s", "d"):  # a nervous operator, hammering keys
            await pilot.press(key)
        assert buttons(app) == {"interrupt"}  # nothing but interrupt while it runs
        steps = app.query_one("#steps", DataTable)
        assert str(steps.get_cell("deploy", "state")).startswith("running")
        assert not isinstance(app.screen, ConfirmAction)  # s (skip) asks nothing while it runs
        release.touch()
        await until(pilot, lambda: executor_of(pane).state.steps[0].status is StepStatus.DONE)
        await settle(pilot)
        session_id = executor_of(pane).state.id
    assert (tmp_path / "runs.log").read_text() == "run\n"  # one deploy
    assert events(tmp_path, session_id).count("command-started") == 1


async def test_after_a_failed_command_enter_never_aborts(project: Project, tmp_path: Path) -> None:
    app = app_with(project, tmp_path, "echo broken >&2; exit 3")
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_book(pilot)
        await pilot.press("c")
        await until(
            pilot, lambda: executor_of(pane).state.steps[0].status is StepStatus.FAILED and not pane._busy
        )
        await settle(pilot)
        assert buttons(app) == {"retry", "abort"}
        assert app.focused is not None and app.focused.id == "steps"  # never Abort, not even Retry
        await pilot.press("enter", "enter")  # a stray Enter (or two) changes nothing
        await settle(pilot)
        assert executor_of(pane).state.steps[0].status is StepStatus.FAILED
        assert executor_of(pane).state.status is SessionStatus.ACTIVE
        assert not app.query_one("#step-abort", Button).can_focus
        # "a" asks first; Enter on the dialog is Cancel, which has the focus
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(screen_of(app), ConfirmAction)
        assert app.focused is not None and app.focused.id == "confirm-cancel"
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmAction)
        assert executor_of(pane).state.status is SessionStatus.ACTIVE
        # Esc cancels too; only the explicit button aborts, with the reason typed
        await pilot.press("a")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert executor_of(pane).state.status is SessionStatus.ACTIVE
        await pilot.press("a")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmAction), (app.screen, app.focused, buttons(app))
        app.screen.query_one("#confirm-reason", Input).value = "wrong runbook"
        app.screen.query_one("#confirm-yes", Button).press()
        await until(pilot, lambda: executor_of(pane).state.status is SessionStatus.ABORTED)
        session_id = executor_of(pane).state.id
    with History.open(tmp_path / "data") as history:
        aborted = [e for e in history.sessions.events(session_id) if e.event == "aborted"]
    assert [e.detail for e in aborted] == ["wrong runbook"]


@pytest.mark.parametrize("choice", ["wait", "detach"])
async def test_quitting_during_a_command_asks_and_its_result_is_recorded(
    project: Project, tmp_path: Path, choice: str
) -> None:
    release = tmp_path / "release"
    wait = f"until [ -e {release} ]; do sleep 0.05; done"
    app = app_with(project, tmp_path, f"echo begun; {wait}; echo ended; touch {tmp_path}/ended")
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_book(pilot)
        await pilot.press("c")
        await until(pilot, lambda: pane._command_running() and "interrupt" in buttons(app))
        session_id = executor_of(pane).state.id
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, QuitDuringCommand)  # asked, not frozen
        assert app.focused is not None and app.focused.id == "quit-stay"
        app.screen.query_one(f"#quit-{choice}", Button).press()
        if choice == "wait":
            await settle(pilot)
            assert app.is_running and pane.command_running() is not None  # waiting for it to end
            release.touch()
        await until(pilot, lambda: not app.is_running)  # it quits once settled
    release.touch()  # left running, it ends after the dashboard has gone
    book, _ = parse(tmp_path / "books" / "deploy.md")
    assert book is not None
    with History.open(tmp_path / "data") as history:
        store = history.sessions
        if choice == "detach":  # left running: the next opsdash collects its output and exit status
            resumed = Executor.resume(book, session_id, store, lambda gates: [])
            await until_async(lambda: resumed.running_pid() is None, "the command left running ends")
            resumed.settle_detached()
        state = store.load(session_id)
    assert state is not None
    step = state.steps[0]
    assert (step.status, step.exit_code) == (StepStatus.DONE, 0)
    assert step.output.split() == ["begun", "ended"]


async def test_parameters_say_what_they_want_and_esc_closes(demo_process: Demo, tmp_path: Path) -> None:
    app = OpsdashApp.on_profile(fast_demo_profile(demo_process, tmp_path), live=False, record=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(RunbooksPane)
        pane.open_runbook("rollback")
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, ParametersScreen))
        await settle(pilot)
        labels = " ".join(str(label.render()) for label in app.screen.query(Static))
        assert "The last known-good release: year.month.build; e.g. 2026.11.2" in labels
        assert "^[0-9]{4}" not in labels  # no raw regex
        # pre-filled from [deploy] version_url (the demo serves {"previous": ...})
        from opsdash.demo.target import PREVIOUS_VERSION

        field = app.screen.query_one("#param-release", Input)
        await until(pilot, lambda: field.value == PREVIOUS_VERSION)  # looked up while the dialog is up
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, ParametersScreen)
        assert pane.executor is None  # nothing started


# ---------------------------------------------------------------- the guided view at three sizes

GUIDED = """+++
id = "rollback-drill"
title = "Roll back (drill)"

[[parameters]]
name = "release"
prompt = "Release to roll back to"
default = "2026.11.2"
+++

## Deploy the previous release {#deploy}
Put {{release}} back in front of learners.

```command timeout=30
echo rolling back --release {{release}} --reason 'checkout returns 500 since the last deploy' --confirm-production --wait-for-healthy --timeout 600 --notify incident-room --then verify
```

## Verify the rollback {#verify}
The environment must validate clean.

```check on_fail=goto:escalate
validate
```

## Announce {#announce end}
Say it is done.

## Escalate {#escalate}
Call the on-call lead.
"""

SIZES = [(80, 24), (120, 36), (200, 50)]


def guided_app(project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> OpsdashApp:
    """Deterministic: a fixed session id, and a validation gate that fails on a planted finding."""
    project.write_env({**good_env(), "VITE_IKHOKHA_TEST_MODE": "true"})
    monkeypatch.setattr("opsdash.core.runbooks.executor.new_run_id", lambda: "20261126T030000-d1e2a3")
    books = tmp_path / "books"
    books.mkdir()
    (books / "rollback-drill.md").write_text(GUIDED)
    text = project.profile.read_text().replace('dirs = ["runbooks"]', f'dirs = ["{books}"]')
    project.profile.write_text(text)
    return OpsdashApp.on_profile(project.profile, live=False, record=False, data_dir=tmp_path / "data")


def at_step(steps_done: int, unfocus: bool = True) -> Callable[[Pilot[None]], Awaitable[None]]:
    async def run_before(pilot: Pilot[None]) -> None:
        pane = await open_book(pilot, "rollback-drill", params=True)
        for _ in range(steps_done):
            await pilot.press("c")
            await until(pilot, lambda: not pane._busy and "confirm" in buttons(pilot.app))
        await settle(pilot)
        if unfocus:  # no focus ring, no blinking cursor in a snapshot
            pilot.app.set_focus(None)

    return run_before


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_guided_view_long_command(
    snap_compare: SnapCompare,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    """The command about to run, wrapped in full (`--then verify` at the end is visible)."""
    assert snap_compare(guided_app(project, tmp_path, monkeypatch), terminal_size=size, run_before=at_step(0))


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_guided_view_failed_gate(
    snap_compare: SnapCompare,
    project: Project,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    size: tuple[int, int],
) -> None:
    """After the gate failed: the escalation step says which step failed and why, with evidence."""
    assert snap_compare(guided_app(project, tmp_path, monkeypatch), terminal_size=size, run_before=at_step(2))


async def test_the_failed_gate_and_the_long_command_are_on_screen_in_full(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = guided_app(project, tmp_path, monkeypatch)
    async with app.run_test(size=(80, 24)) as pilot:
        await at_step(0, unfocus=False)(pilot)
        command = str(app.query_one("#step-command", Static).render())
        assert "--then verify" in command.replace("\n", " ")  # wrapped, never clipped
        assert "incident-room" in command
        assert app.query_one("#step-confirm", Button).region.bottom <= 24  # the actions are reachable
        pane = app.query_one(RunbooksPane)
        await pilot.press("c")
        # idle again, not only moved on: a key pressed while the step's save is under way is not taken
        await until(pilot, lambda: executor_of(pane).state.current == 1 and not pane._busy)
        await pilot.press("c")
        await until(pilot, lambda: executor_of(pane).state.current == 3 and not pane._busy)
        await settle(pilot)
        notice = str(app.query_one("#step-notice", Static).render())
        assert "reached because step 2 (Verify the rollback) failed" in notice
        assert "test-mode-enabled" in notice  # the evidence: which finding failed it
        await pilot.press("c")  # escalate: done
        await until(pilot, lambda: executor_of(pane).finished)
        await settle(pilot)
        title = str(app.query_one("#session-title", Static).render())
        assert "escalated" in title and "completed" not in title


async def test_o_on_a_failing_check_opens_exactly_its_runbook(sample_app: OpsdashApp) -> None:
    """From Health, `o` on ikhokha-api (CRIT, runbook payment-provider-outage) opens that runbook —
    not the first row, even though the Runbooks pane is mounted (and its list loads) only now."""
    from opsdash.tui.sample import feed_sample

    async with sample_app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await feed_sample(sample_app)
        await pilot.press("3")
        await settle(pilot)
        table = sample_app.query_one("#checks", DataTable)
        table.move_cursor(row=table.get_row_index("ikhokha-api"))
        await settle(pilot)
        await pilot.press("o")
        await until(
            pilot,
            lambda: bool(sample_app.query(RunbooksPane)) and bool(sample_app.query_one(RunbooksPane).books),
        )
        await settle(pilot)
        assert sample_app.query_one("#panes", TabbedContent).active == "runbooks"
        books = sample_app.query_one("#runbook-list", DataTable)
        assert (
            str(books.coordinate_to_cell_key(books.cursor_coordinate)[0].value) == "payment-provider-outage"
        )
        assert "(payment-provider-outage)" in str(sample_app.query_one("#session-title", Static).render())


async def test_a_secret_printed_by_a_command_or_typed_as_a_parameter_is_never_on_screen(
    project: Project, tmp_path: Path
) -> None:
    env = good_env()
    secret = env["IKHOKHA_API_SECRET"]
    project.write_env(env)
    books = tmp_path / "books"
    books.mkdir()
    (books / "leak.md").write_text(
        '+++\nid = "leak-drill"\ntitle = "Leak drill"\n[[parameters]]\nname = "reason"\nprompt = "Why"\n+++\n'
        f"## Print it {{#print}}\nFor {{{{reason}}}}.\n```command timeout=10\nprintf '%s\\n' '{secret}' {{{{reason}}}}\n```\n"
    )
    project.profile.write_text(
        project.profile.read_text().replace('dirs = ["runbooks"]', f'dirs = ["{books}"]')
    )
    app = OpsdashApp.on_profile(project.profile, live=False, record=False, data_dir=tmp_path / "data")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(RunbooksPane)
        pane.open_runbook("leak-drill")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ParametersScreen))
        app.screen.query_one("#param-reason", Input).value = secret  # typed by a tired operator
        await pilot.press("enter")
        await until(pilot, lambda: pane.executor is not None and not pane._busy)
        await settle(pilot)
        assert secret not in app.export_screenshot()
        await pilot.press("c")
        await until(pilot, lambda: executor_of(pane).finished)
        await settle(pilot)
        screen = app.export_screenshot()
        shown = "\n".join(app.query_one("#step-output", Log).lines)
    assert secret not in screen and secret not in shown
    assert len(shown.splitlines()) == 2  # the output's own lines, not escaped into one
    for path in (tmp_path / "data").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("start", ["loaded", "loading"])
async def test_an_unfinished_session_is_offered_on_start(
    project: Project, tmp_path: Path, start: str
) -> None:
    """Also when the dashboard starts as `opsdash` does (the profile loading after the first frame,
    the session looked for once start-up is over: here no live verdict ever comes)."""
    app = app_with(project, tmp_path, "echo hi")
    if start == "loading":
        app = OpsdashApp.starting(project.profile, live=False, record=False, data_dir=tmp_path / "data")
    book, _ = parse(tmp_path / "books" / "deploy.md")
    assert book is not None
    with History.open(tmp_path / "data") as history:  # an operator paused (or lost) this session
        Executor.start(book, {}, "alice", history.sessions, lambda gates: [])
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            lambda: (
                "tui-deploy unfinished" in " ".join(str(w.render()) for w in app.query("#overview-deploy"))
            ),
        )
        await settle(pilot)
        assert "press 5, then Enter, to resume" in str(app.query_one("#overview-deploy", Static).render())
        header = str(app.query_one(VerdictBar).render())
        assert "runbook tui-deploy unfinished (step 1): 5 resumes" in header
        await pilot.press("5")
        await settle(pilot)
        pane = app.query_one(RunbooksPane)
        pane.open_runbook("tui-deploy")
        await pilot.press("enter")  # resumes it (no new session)
        await until(pilot, lambda: pane.executor is not None)
        with History.open(tmp_path / "data") as history:
            assert len(history.sessions.recent("tui-deploy")) == 1


async def test_the_dashboard_refuses_a_change_another_terminal_is_making(
    demo_process: Demo, tmp_path: Path
) -> None:
    """bob's `opsdash runbook run rollback` (a real process) is on step 2; alice's dashboard on the
    same data directory shows it beside the list, refuses to start credential-rotation (same
    exclusive group and target) with who, since when and which step, and opens bob's session."""
    from tests.unit.cli.test_runbook_exclusive import hold_rollback, the_session

    profile, data = fast_demo_profile(demo_process, tmp_path), tmp_path / "data"
    holder, held = hold_rollback(profile, data)
    try:
        app = OpsdashApp.on_profile(profile, live=False, record=False, data_dir=data)
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("5")
            await settle(pilot)
            pane = app.query_one(RunbooksPane)
            line = f"rollback running since {held.started_at[11:16]} UTC by bob, step 2/7"
            await until(pilot, lambda: line in str(app.query_one("#runbook-held", Static).render()))
            pane.open_runbook("credential-rotation")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ParametersScreen))
            await settle(pilot)
            await pilot.press("enter")  # the default variable
            await until(pilot, lambda: isinstance(app.screen, SessionHeld))
            await settle(pilot)
            said = str(app.screen.query_one("#held-question", Label).render())
            started = held.started_at[:19].replace("T", " ")
            assert f"session {held.id}, started {started} UTC by bob, on step 2/7" in said
            assert f"opsdash runbook run rollback --resume {held.id}" in said
            assert pane.executor is None
            assert not_none(the_session(data)).id == held.id  # nothing else started
            await pilot.press("enter")  # "Open that session" has the focus
            await until_driving(pilot, pane)
            await settle(pilot)
            assert executor_of(pane).state.id == held.id
            assert executor_of(pane).runbook.id == "rollback"
            assert executor_of(pane).state.current == 1
        assert holder.poll() is None  # bob's terminal runs on, and can still end its session
        out = holder.communicate("a\nalice has it now\n", timeout=60)[0]
        assert holder.returncode == 2, out
        assert not_none(the_session(data)).status is SessionStatus.ABORTED
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
