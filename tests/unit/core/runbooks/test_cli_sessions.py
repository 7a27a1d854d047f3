"""`opsdash runbook run` as separate processes, the way two operators or one nervous one use it:
two terminals on one session, and Ctrl-C while a command is deploying."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from opsdash.core.runbooks.executor import SessionState, SessionStatus, StepStatus
from opsdash.core.runbooks.process import _live_members
from opsdash.storage.history import History
from tests.waits import wait_for_path, wait_until

OPSDASH = str(Path(sys.executable).with_name("opsdash"))

BOOK = """+++
id = "deploy-drill"
title = "Deploy drill"
+++

## Deploy {#deploy}
```command timeout=60
echo run >> runs.log; touch started; echo deploying; sleep {{seconds}}; echo deployed; touch finished
```

## Tell people {#tell}
Say it is out.
"""


def book(tmp_path: Path, seconds: int | None) -> Path:
    """`seconds=None`: the command runs until the test creates `release` beside the runbook."""
    wait = "until [ -e release ]; do sleep 0.05; done; true" if seconds is None else str(seconds)
    path = tmp_path / "deploy.md"
    path.write_text(BOOK.replace("sleep {{seconds}}", wait if seconds is None else f"sleep {wait}"))
    return path


def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OPSDASH_DATA_DIR": str(tmp_path / "data")}


def run_it(path: Path, tmp_path: Path, output: int = subprocess.PIPE) -> subprocess.Popen[str]:
    """`opsdash runbook run PATH`, with "run it" already answered for the first (command) step."""
    proc = subprocess.Popen(
        [OPSDASH, "runbook", "run", str(path)],
        stdin=subprocess.PIPE,
        stdout=output,
        stderr=subprocess.STDOUT if output == subprocess.PIPE else subprocess.DEVNULL,
        text=True,
        env=env(tmp_path),
    )
    assert proc.stdin is not None
    proc.stdin.write("c\n")
    proc.stdin.flush()
    return proc


def session(tmp_path: Path) -> SessionState:
    with History.open(tmp_path / "data") as history:
        store = history.sessions
        state = store.load(store.recent("deploy-drill")[0].id)
    assert state is not None
    return state


def test_two_terminals_resuming_one_session_run_its_command_once(tmp_path: Path) -> None:
    path = book(tmp_path, None)
    paused = subprocess.run(
        [OPSDASH, "runbook", "run", str(path)], input="q\n", capture_output=True, text=True, env=env(tmp_path)
    )
    assert paused.returncode == 3, paused.stdout + paused.stderr
    # both operators press "run it" on the same pending step at the same moment
    procs = [
        subprocess.Popen(
            [OPSDASH, "runbook", "run", str(path), "--resume", "latest"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env(tmp_path),
        )
        for _ in range(2)
    ]
    outs = ["", ""]

    def collect(i: int) -> None:
        stream = procs[i].stdout
        assert stream is not None
        for line in stream:
            outs[i] += line

    readers = [threading.Thread(target=collect, args=(i,), daemon=True) for i in range(2)]
    for proc, reader in zip(procs, readers, strict=True):
        reader.start()
        assert proc.stdin is not None
        proc.stdin.write("c\n")
        proc.stdin.flush()
    wait_for_path(tmp_path / "started")
    told = ("was started by another opsdash on this session", "still running (process group")
    # the command runs until both have acted on "run it": one started it, the other was told
    wait_until(lambda: any(t in " ".join(outs) for t in told), "the second opsdash is told")
    (tmp_path / "release").touch()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(60)
    for reader in readers:
        reader.join(10)
    assert (tmp_path / "runs.log").read_text() == "run\n", outs  # one deploy, not two
    state = session(tmp_path)
    assert [e["event"] for e in state.events].count("command-started") == 1
    assert state.steps[0].status is StepStatus.DONE and state.steps[0].exit_code == 0
    loser = " ".join(outs)
    # the other one was told, instead of starting it again
    assert (
        "was started by another opsdash on this session" in loser or "still running (process group" in loser
    )


def test_ctrl_c_during_a_command_asks_and_interrupt_stops_it(tmp_path: Path) -> None:
    path = book(tmp_path, 30)
    proc = run_it(path, tmp_path)
    wait_for_path(tmp_path / "started")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C sends the foreground opsdash (not the command)
    out = proc.communicate("i\nwrong release\nq\n", timeout=60)[0]
    assert "the command is still running" in out
    assert proc.returncode == 3, out  # paused on the failed step, for the operator to decide
    assert not (tmp_path / "finished").exists()
    state = session(tmp_path)
    step = state.steps[0]
    assert step.status is StepStatus.FAILED
    assert step.detail == "interrupted by the operator: wrong release"
    assert "deploying" in step.output and step.exit_code not in (None, 0)
    assert state.status is SessionStatus.ACTIVE


def test_ctrl_c_then_leave_it_running_and_resume_collects_the_result(tmp_path: Path) -> None:
    path = book(tmp_path, 2)
    proc = run_it(path, tmp_path)
    wait_for_path(tmp_path / "started")
    proc.send_signal(signal.SIGINT)
    out = proc.communicate("l\n", timeout=60)[0]
    assert proc.returncode == 3 and "left running; paused" in out, out
    assert session(tmp_path).steps[0].status is StepStatus.RUNNING
    resumed = subprocess.run(
        [OPSDASH, "runbook", "run", str(path), "--resume", "latest"],
        input="c\n\n",  # the command's result is collected; then "Tell people", with no note
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = session(tmp_path)
    # whether it was still running at the resume (waited for) or had ended (collected at once)
    finished = [e["detail"] for e in state.events if e["event"] == "command-finished"]
    assert finished == ["exit 0; finished while no opsdash was watching"]
    assert state.steps[0].exit_code == 0 and "deployed" in state.steps[0].output
    assert (tmp_path / "runs.log").read_text() == "run\n"
    assert state.status is SessionStatus.COMPLETED


@pytest.mark.parametrize("action", ["retry", "skip"])
def test_after_kill_9_a_live_command_is_reported_and_only_interrupt_is_allowed(
    tmp_path: Path, action: str
) -> None:
    from opsdash.core.runbooks.executor import Executor, StepNotAllowed
    from opsdash.core.runbooks.parser import parse

    path = book(tmp_path, 30)
    proc = run_it(path, tmp_path, output=subprocess.DEVNULL)
    wait_for_path(tmp_path / "started")
    proc.send_signal(signal.SIGKILL)  # the operator's opsdash dies; the deploy goes on
    proc.wait(10)
    parsed, _ = parse(path)
    assert parsed is not None
    with History.open(tmp_path / "data") as history:
        store = history.sessions
        other = Executor.resume(parsed, store.recent("deploy-drill")[0].id, store, lambda gates: [])
        pid = other.running_pid()
        assert pid is not None  # the live child is reported ...
        assert other.allowed() == ["interrupt"]  # ... and nothing may start it again or pass it by
        with pytest.raises(StepNotAllowed):
            other.retry() if action == "retry" else other.skip("no")
        other.interrupt("stop it from the second terminal")
        step = other.state.steps[0]
        assert step.status is StepStatus.INTERRUPTED
        assert step.detail == "interrupted by the operator: stop it from the second terminal"
        assert "deploying" in step.output
        assert other.allowed() == ["retry", "mark-done", "skip", "abort"]
    assert _live_members(pid) == set()  # the deploy's whole process group is gone
    assert not (tmp_path / "finished").exists()


HOSTILE_BOOK = """+++
id = "hostile-output"
title = "Hostile output"
+++

## Print escapes {#print}
```command timeout=60
printf 'before\\033[2J\\033]52;c;ZXZpbA==\\007after\\n'
```
"""


def test_a_commands_escape_sequences_are_shown_not_obeyed(tmp_path: Path) -> None:
    """A command's output is untrusted text: the terminal shows its escapes (a screen clear, an OSC 52
    clipboard write) as text, live while it runs, as the dashboard does."""
    path = tmp_path / "hostile.md"
    path.write_text(HOSTILE_BOOK)
    done = subprocess.run(
        [OPSDASH, "runbook", "run", str(path)], input="c\n", capture_output=True, text=True, env=env(tmp_path)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "before\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07after" in done.stdout
    assert "\x1b" not in done.stdout + done.stderr
