"""The runbook defects of issue #29, each held by a test that failed before the fix: an interrupt
of a command found running after a restart is recorded as an interrupt; retrying a failed check
block runs the checks again; a check block that expects a failure (a rollback's "confirm it is
unhealthy") is done when it finds one, and the rollback exits 0; the step driver reports every
transition as it is committed."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from opsdash.core.runbooks import executor as executor_module
from opsdash.core.runbooks.executor import DETACHED, Executor, StepStatus
from opsdash.core.runbooks.parser import parse
from opsdash.core.runbooks.process import _kill_group
from opsdash.ops.runbooks.driver import StepDriver
from opsdash.ops.runbooks.events import ActionDone, Event, GateEvaluated, Recorded, StepEnded, StepStarted
from opsdash.storage.history import History
from opsdash.storage.sessions import RunbookSessions
from tests.conftest import Project, good_env, not_none
from tests.runbook_drill import BOOK, Gates, start
from tests.runbook_script import OPSDASH, env
from tests.waits import wait_until

LONG = "echo begun; touch begun; until [ -e release ]; do sleep 0.05; done; echo ended"


def left_running(book_path: Path, shared: History) -> Executor:
    """Step 2's command started by an opsdash that then went away (detached), still running; a
    second opsdash resumes the session."""
    book_path.write_text(BOOK.replace("printf '%s' {{message}} > out.txt && echo wrote", LONG))
    ex = start(book_path, shared.sessions, Gates(True))
    ex.confirm()
    worker = threading.Thread(target=ex.confirm)
    worker.start()
    wait_until(lambda: not_none(ex.current_state()).pid is not None)
    ex.detach()
    worker.join(10)
    book, _ = parse(book_path)
    assert book is not None
    resumed = Executor.resume(book, ex.state.id, shared.sessions, Gates(True))
    assert resumed.running_pid() is not None
    return resumed


def test_interrupting_a_command_found_running_is_recorded_as_an_interrupt(
    book_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher that sees the command gone may settle the step between the kill and the
    interrupt's own record (the dashboard's once-a-second settle did): it is still an interrupt."""
    shared = History.open(tmp_path / "shared", shared=True)
    resumed = left_running(book_path, shared)
    kill = _kill_group

    def kill_then_watcher_looks(pgid: int, grace: float = 2.0) -> None:
        kill(pgid, grace)
        resumed.settle_detached()  # a watcher's look, landing right after the kill

    monkeypatch.setattr(executor_module, "_kill_group", kill_then_watcher_looks)
    resumed.interrupt("wrong release")
    st = resumed.state.steps[1]
    assert st.status is StepStatus.INTERRUPTED
    assert st.detail == "interrupted by the operator: wrong release"
    events = not_none(shared.sessions.load(resumed.state.id)).events
    interrupted = [e["detail"] for e in events if e["event"] == "interrupted"]
    assert interrupted == ["interrupted by the operator: wrong release: not re-run automatically"]
    assert not any(DETACHED in e["detail"] for e in events)
    shared.close()


def test_the_driver_watches_a_command_found_running_and_interrupts_it(
    book_path: Path, tmp_path: Path
) -> None:
    shared = History.open(tmp_path / "shared", shared=True)
    resumed = left_running(book_path, shared)
    seen: list[Event] = []
    driver = StepDriver(resumed)
    driver.subscribe(seen.append)
    driver.start()
    wait_until(lambda: any(isinstance(e, StepStarted) and e.elsewhere for e in seen), "watching")
    assert driver.command_running and driver.busy
    driver.interrupt("stop it")
    assert driver.wait_idle(30)
    ended = [e for e in seen if isinstance(e, StepEnded)]
    assert [(e.status, e.detail) for e in ended] == [
        (StepStatus.INTERRUPTED, "interrupted by the operator: stop it")
    ]
    assert "begun" in ended[0].output
    assert [e.event for e in seen if isinstance(e, Recorded)] == ["interrupt-requested", "interrupted"]
    assert resumed.allowed() == ["retry", "mark-done", "skip", "abort"]
    assert not (book_path.parent / "release").exists()
    driver.close()
    shared.close()


def test_the_driver_reports_each_transition_as_it_is_committed(book_path: Path, tmp_path: Path) -> None:
    """The front ends learn that a step runs from the driver, not from reading the database."""
    book_path.write_text(BOOK.replace("```check on_fail=goto:recover", "```check"))
    shared = History.open(tmp_path / "shared", shared=True)  # the driver's thread saves on it
    store = shared.sessions
    ex = start(book_path, store, Gates(False, True))
    seen: list[Event] = []
    driver = StepDriver(ex)

    def look(event: Event) -> None:
        seen.append(event)
        if isinstance(event, StepStarted) and event.kind == "command":
            # reported while it runs: the record already says running, the process may not exist yet
            saved = store.load(ex.state.id)
            assert saved is not None and saved.steps[event.index].status is StepStatus.RUNNING

    driver.subscribe(look)
    driver.start()
    for action in ("confirm", "confirm", "confirm", "retry"):
        driver.act(action, "")
        assert driver.wait_idle(30)
    kinds = [type(e).__name__ for e in seen if not isinstance(e, Recorded)]
    assert kinds == [
        "StepEnded", "ActionDone",  # the manual step
        "StepStarted", "Output", "StepEnded", "ActionDone",  # the command
        "StepStarted", "GateEvaluated", "StepEnded", "ActionDone",  # the gate fails ...
        "StepStarted", "GateEvaluated", "StepEnded", "ActionDone",  # ... and retrying runs it again
    ]  # fmt: skip
    gates = [e for e in seen if isinstance(e, GateEvaluated)]
    assert [g.ok for g in gates] == [False, True]
    assert ex.state.current == 3
    refused = [e.refused for e in seen if isinstance(e, ActionDone) and e.refused]
    assert refused == []
    driver.close()
    shared.close()


def test_retrying_a_failed_check_block_runs_the_checks_again(book_path: Path, store: RunbookSessions) -> None:
    """ "Retry this step until it passes": one retry is one more evaluation, not a reset that
    still needs "do it"."""
    book_path.write_text(BOOK.replace("```check on_fail=goto:recover", "```check"))
    gates = Gates(False, True)
    ex = start(book_path, store, gates)
    ex.confirm()
    ex.confirm()
    failed = ex.confirm()
    assert failed.status is StepStatus.FAILED and ex.allowed() == ["retry", "abort"]
    ex.retry()
    assert len(gates.calls) == 2
    assert ex.state.steps[2].status is StepStatus.DONE and not_none(ex.current_step).id == "finish"


EXPECTS_FAILURE = """+++
id = "rollback-drill"
title = "Rollback drill"
+++

## Confirm the release is unhealthy {#confirm-failure skippable}
```check expect=fail
validate
```

## Deploy the previous release {#deploy}
```command timeout=30
echo rolled back
```

## Verify the rollback {#verify}
```check
validate
```
"""


def test_a_rollback_that_found_the_expected_failure_and_recovered_exits_0(
    project: Project, tmp_path: Path
) -> None:
    good = good_env()
    (tmp_path / "good.env").write_text(project.write_env(good).read_text())
    project.write_env({**good, "VITE_IKHOKHA_TEST_MODE": "true"})  # the release is broken
    path = tmp_path / "rollback-drill.md"  # rolling back mends it
    path.write_text(EXPECTS_FAILURE.replace("echo rolled back", f"cp {tmp_path}/good.env {project.env_file}"))
    done = subprocess.run(
        [OPSDASH, "runbook", "run", str(path), "--config", str(project.profile)],
        input="c\nc\nc\n",
        capture_output=True,
        text=True,
        env=env(tmp_path / "data"),
        timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "found the expected failure: 1 of 1 checks failed" in out
    assert "completed" in out and "failed or skipped" not in out


def test_a_check_that_expects_a_failure_and_finds_none_fails(book_path: Path, store: RunbookSessions) -> None:
    book_path.write_text(BOOK.replace("```check on_fail=goto:recover", "```check expect=fail"))
    ex = start(book_path, store, Gates(True))
    ex.confirm()
    ex.confirm()
    st = ex.confirm()
    assert st.status is StepStatus.FAILED
    assert st.detail == "every check passed, but this step expects a failure: reconsider before going on"


def test_a_step_another_opsdash_is_still_starting_is_not_taken_for_one_left_behind(
    book_path: Path, store: RunbookSessions
) -> None:
    """Between its claim and its command's start, another opsdash owns the step: a resume in that
    moment waits for it instead of recording the step interrupted under it."""
    from dataclasses import replace

    from opsdash.core.runbooks.process import _started

    ex = start(book_path, store, Gates(True))
    ex.confirm()
    other = subprocess.Popen(["sleep", "60"])  # stands in for the other opsdash, alive
    try:
        state = store.load(ex.state.id)
        assert state is not None
        state.steps[1] = replace(state.steps[1], status=StepStatus.RUNNING)
        store.save(state, 1, "command-started", "claimed by the other opsdash")
        owner = store.output_path(ex.state.id, 1).with_suffix(".owner")
        owner.parent.mkdir(parents=True, exist_ok=True)
        owner.write_text(f"{other.pid} {_started(other.pid)}")
        book, _ = parse(book_path)
        assert book is not None
        resumed = Executor.resume(book, ex.state.id, store, Gates(True))
        assert resumed.state.steps[1].status is StepStatus.RUNNING  # not interrupted under it
        assert resumed.starting_elsewhere() == other.pid
        events = [(e["event"], e["detail"]) for e in not_none(store.load(ex.state.id)).events]
        assert ("found-running", f"another opsdash (process {other.pid}) is starting it") in events
    finally:
        other.kill()
        other.wait(10)
    resumed.settle_detached()  # the other opsdash died before it started the command
    settled = resumed.state.steps[1]
    assert settled.status.value == "interrupted"
