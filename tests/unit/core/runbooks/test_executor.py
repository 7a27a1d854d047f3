"""The executor: real SQLite sessions, real subprocesses, gates, branches, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest

from opsdash.core.runbooks.executor import (
    Executor,
    SessionStatus,
    StepNotAllowed,
    StepStatus,
    command_alive,
)
from opsdash.core.runbooks.parser import parse
from opsdash.core.runbooks.process import _live_members
from opsdash.storage.history import History
from opsdash.storage.sessions import RunbookSessions
from tests.conftest import Demo, Run, not_none
from tests.runbook_drill import BOOK, Gates, start
from tests.waits import read_line, wait_for_path, wait_until


def test_end_to_end_with_every_step_kind(book_path: Path, store: RunbookSessions) -> None:
    ex = start(book_path, store, Gates(True))
    ex.confirm("announced in #deploys")
    result = ex.confirm()
    assert (result.status, result.exit_code, result.output.strip()) == (StepStatus.DONE, 0, "wrote")
    assert (book_path.parent / "out.txt").read_text() == "hello"
    ex.confirm()
    ex.confirm()
    assert ex.finished and ex.state.status is SessionStatus.COMPLETED
    saved = store.load(ex.state.id)
    assert saved is not None
    assert [s.status for s in saved.steps] == [StepStatus.DONE] * 4 + [StepStatus.PENDING]
    assert saved.steps[0].note == "announced in #deploys"
    events = [e["event"] for e in saved.events]
    assert events == [
        "session-started",
        "confirmed",
        "command-started",
        "command-running",
        "command-finished",
        "checks-started",
        "checks-finished",
        "confirmed",
        "completed",
    ]


def test_failing_gate_takes_the_on_fail_branch_and_the_session_says_it_escalated(
    book_path: Path, store: RunbookSessions
) -> None:
    ex = start(book_path, store, Gates(False))
    ex.confirm()
    ex.confirm()
    result = ex.confirm()
    # the failure names what failed and how: each condition with the value seen
    assert result.status is StepStatus.FAILED
    assert result.detail == "1 of 1 checks failed: check app-health (down)"
    assert "✗ [STATUS] == 200  (actual: 503)" in result.output
    assert ex.current_step is not None and ex.current_step.id == "recover"
    # the branch says why the session is there
    assert not_none(ex.current_state()).detail.startswith("reached because step 3 (Gate) failed: 1 of 1")
    ex.confirm("rolled back")
    assert ex.state.status is SessionStatus.ESCALATED  # not "completed": the main path did not hold
    saved = store.load(ex.state.id)
    assert saved is not None and saved.status is SessionStatus.ESCALATED
    assert saved.escalated  # read back from the store, as `history show --json` reports it
    assert saved.steps[3].status is StepStatus.PENDING
    assert [e["event"] for e in saved.events][-1] == "escalated"


def test_an_escalated_session_resumed_on_its_branch_still_ends_escalated(
    book_path: Path, store: RunbookSessions
) -> None:
    ex = start(book_path, store, Gates(False))
    for _ in range(3):
        ex.confirm()
    book, _ = parse(book_path)
    assert book is not None
    resumed = Executor.resume(book, ex.state.id, store, Gates())
    resumed.confirm("rolled back")
    assert resumed.state.status is SessionStatus.ESCALATED


def test_failing_command_blocks_until_retried(book_path: Path, store: RunbookSessions) -> None:
    book_path.write_text(
        BOOK.replace("printf '%s' {{message}} > out.txt && echo wrote", "echo broken >&2; exit 7")
    )
    ex = start(book_path, store, Gates(True))
    ex.confirm()
    failed = ex.confirm()
    assert (failed.status, failed.exit_code, failed.output.strip()) == (StepStatus.FAILED, 7, "broken")
    assert ex.allowed() == ["retry", "abort"]
    with pytest.raises(StepNotAllowed):
        ex.skip("impatient")  # not skippable
    with pytest.raises(StepNotAllowed):
        ex.confirm()
    ex.retry()
    assert ex.confirm().status is StepStatus.FAILED
    ex.abort("cannot fix now")
    assert not_none(store.load(ex.state.id)).status is SessionStatus.ABORTED


def test_command_timeout_stops_the_process_group(book_path: Path, store: RunbookSessions) -> None:
    book_path.write_text(
        BOOK.replace("```command timeout=10", "```command timeout=0.5").replace(
            "printf '%s' {{message}} > out.txt && echo wrote", "sleep 30 & sleep 30"
        )
    )
    ex = start(book_path, store, Gates(True))
    ex.confirm()
    result = ex.confirm()
    assert result.status is StepStatus.FAILED and "timed out after 0.5 s" in result.detail


@pytest.mark.parametrize(
    "value",
    [
        "; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "a' ; touch pwned; '",
        "--help && touch pwned",
        "$HOME | touch pwned",
    ],
)
def test_parameters_cannot_inject_commands(book_path: Path, store: RunbookSessions, value: str) -> None:
    ex = start(book_path, store, Gates(True), message=value)
    ex.confirm()
    assert ex.confirm().status is StepStatus.DONE
    assert (book_path.parent / "out.txt").read_text() == value  # the value arrived as one literal argument
    assert not (book_path.parent / "pwned").exists()


def test_parameters_are_validated_before_a_session_starts(book_path: Path, store: RunbookSessions) -> None:
    book_path.write_text(BOOK.replace('prompt = "Message"', "prompt = \"Message\"\npattern = '^[a-z]+$'"))
    book, _ = parse(book_path)
    assert book is not None
    with pytest.raises(ValueError, match="does not match"):
        Executor.start(book, {"message": "hello; rm -rf /"}, "alice", store, Gates())
    with pytest.raises(ValueError, match="has no value"):
        Executor.start(book, {}, "alice", store, Gates())


def test_secrets_in_command_output_are_masked(book_path: Path, store: RunbookSessions) -> None:
    from opsdash.core.secrets import redactor

    canary = "canary-runbook-secret-5d2e8f"
    redactor.register(canary)
    book_path.write_text(
        BOOK.replace("printf '%s' {{message}} > out.txt && echo wrote", f"echo token={canary}")
    )
    ex = start(book_path, store, Gates(True))
    ex.confirm()
    result = ex.confirm()
    assert canary not in result.output and "token=••••" in result.output
    assert canary.encode() not in store.history.path.read_bytes()


def test_resume_marks_a_running_command_interrupted(book_path: Path, store: RunbookSessions) -> None:
    ex = start(book_path, store, Gates(True))
    ex.confirm()
    # simulate a crash after "command-started" was committed: the state says running
    state = store.load(ex.state.id)
    assert state is not None
    from dataclasses import replace

    state.steps[1] = replace(state.steps[1], status=StepStatus.RUNNING)
    store.save(state, 1, "command-started", "simulated")
    book, _ = parse(book_path)
    assert book is not None
    resumed = Executor.resume(book, ex.state.id, store, Gates(True))
    assert resumed.current_step is not None and resumed.current_step.id == "write"
    assert not_none(resumed.current_state()).status is StepStatus.INTERRUPTED
    assert resumed.allowed() == ["retry", "mark-done", "skip", "abort"]
    resumed.mark_done("checked out.txt by hand")
    assert resumed.current_step.id == "gate"


def test_a_running_step_allows_nothing_and_a_second_executor_loses_the_claim(
    book_path: Path, store: RunbookSessions, tmp_path: Path
) -> None:
    """Two operators (or two presses) on one session: the command runs once."""
    import threading

    slow = BOOK.replace("printf '%s' {{message}} > out.txt && echo wrote", "echo run >> runs.log; sleep 1")
    book_path.write_text(slow)
    shared = History.open(tmp_path / "data", shared=True)  # the first executor works from a thread
    first = start(book_path, shared.sessions, Gates(True))
    first.confirm()  # the manual step
    book, _ = parse(book_path)
    assert book is not None
    with History.open(tmp_path / "data") as other_history:  # a second process's own connection
        second = Executor.resume(book, first.state.id, other_history.sessions, Gates(True))
        assert second.allowed()[0] == "confirm"  # it saw the step pending
        worker = threading.Thread(target=first.confirm)
        worker.start()
        wait_until(
            lambda: not_none(first.current_state()).status is StepStatus.RUNNING,
            "the first executor has the step",
        )
        # no second start, no skip, no abort under a running command: only interrupting it
        assert first.allowed() == ["interrupt"]
        with pytest.raises(StepNotAllowed):
            first.abort("panic")
        with pytest.raises(StepNotAllowed, match="started by another opsdash"):
            second.confirm()
        worker.join(10)
    shared.close()
    assert (book_path.parent / "runs.log").read_text() == "run\n"
    saved = store.load(first.state.id)
    assert saved is not None
    assert [e["event"] for e in saved.events].count("command-started") == 1
    assert saved.steps[1].status is StepStatus.DONE and saved.steps[1].pid is not None


def test_resume_refuses_a_changed_runbook(book_path: Path, store: RunbookSessions) -> None:
    ex = start(book_path, store, Gates(True))
    book_path.write_text(BOOK.replace("## Recover {#recover}\nRoll back.\n", ""))
    book, _ = parse(book_path)
    assert book is not None
    with pytest.raises(ValueError, match="has changed"):
        Executor.resume(book, ex.state.id, store, Gates())


# ---------------------------------------------------------------- through the CLI, against the demo

DEMO_BOOK = BOOK.replace("app-health", "app-health\nikhokha-api").replace(
    "printf '%s' {{message}} > out.txt && echo wrote",
    # runs until the test says (a fixed sleep was outlasted by a slow resume on a loaded machine)
    "echo run >> runs.log; touch started; until [ -e release ]; do sleep 0.05; done; echo finished; touch finished",
)


def test_cli_run_then_kill_9_during_a_command_then_resume(
    demo_process: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "drill.md"
    path.write_text(DEMO_BOOK)
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    env = {**os.environ, "OPSDASH_DATA_DIR": str(tmp_path / "data")}
    args = [opsdash, "runbook", "run", str(path), "--config", str(demo_process.profile)]
    proc = subprocess.Popen(
        [*args, "--param", "message=hi"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write("c\nannounced\nc\n")  # confirm step 1 with a note, then run the command
    proc.stdin.flush()
    started = tmp_path / "started"
    wait_for_path(started)  # the command is running
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)

    resumed = subprocess.Popen(
        [*args, "--resume", "latest"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    lines: list[str] = []
    # the command outlived the killed opsdash: reported as running, waited for, never started again
    while "this step's command is still running (process group" not in (line := read_line(resumed.stdout)):
        assert line, "".join(lines)
        lines.append(line)
    (tmp_path / "release").touch()
    rest, err = resumed.communicate("c\nc\n\n", timeout=120)  # on to the checks, then the last step
    out = "".join(lines) + line + rest
    assert resumed.returncode == 0, out + err
    assert (tmp_path / "finished").exists()
    # the command kept writing (no pipe to a dead opsdash) and its exit status was collected
    assert "the command ended: exit 0" in out and "    finished" in out
    assert "[✓] 1. Announce" in out and "note: announced" in out  # earlier steps intact
    assert "OK    check ikhokha-api" in out, out
    assert (tmp_path / "runs.log").read_text() == "run\n"  # never re-run silently

    monkeypatch.setenv("OPSDASH_DATA_DIR", str(tmp_path / "data"))
    with History.open(tmp_path / "data") as history:
        session = history.sessions.recent("drill")[0]
        state = history.sessions.load(session.id)
    assert state is not None and state.status is SessionStatus.COMPLETED
    events = [(e["event"], e["detail"]) for e in state.events]
    finished = [d for e, d in events if e == "command-finished"]
    assert finished == ["exit 0; finished while no opsdash was watching"]
    assert [e for e, _ in events].count("command-started") == 1 and ("found-running", mock.ANY) in events
    assert "finished" in state.steps[1].output and state.steps[1].exit_code == 0
    assert not list((tmp_path / "data" / "runbook-output").iterdir())  # the raw output file is gone
    listed = subprocess.run([opsdash, "history", "list", "--json"], capture_output=True, text=True, env=env)
    assert any(r["kind"] == "runbook" and r["run_id"] == state.id for r in json.loads(listed.stdout))
    audit = subprocess.run(
        [opsdash, "audit", "tail", "-n", "50", "--json"], capture_output=True, text=True, env=env
    )
    actions = [json.loads(line)["action"] for line in audit.stdout.splitlines()]
    assert {
        "runbook-command-started",
        "runbook-found-running",
        "runbook-command-finished",
        "runbook-completed",
    } <= set(actions)
    verify = subprocess.run([opsdash, "audit", "verify"], capture_output=True, text=True, env=env)
    assert verify.returncode == 0, verify.stdout


def test_cli_failing_gate_against_the_demo_takes_the_branch(
    demo_process: Demo,
    tmp_path: Path,
    run: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "drill.md"
    path.write_text(BOOK)
    monkeypatch.setenv("OPSDASH_DATA_DIR", str(demo_process.data_dir))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(demo_process.config_home))  # the key its audit log has
    assert run("demo", "fault", "app-down", "on").code == 0
    try:
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO("c\n\nc\nc\nc\n\n"))
        result = run("runbook", "run", str(path), "--config", demo_process.profile, "--param", "message=hi")
    finally:
        run("demo", "fault", "app-down", "off")
    assert "FAIL  check app-health" in result.out
    assert "Step 5/5 [manual] Recover" in result.out
    assert "reached because step 3 (Gate) failed: 1 of 1 checks failed: check app-health" in result.out
    assert "escalated; 1 step(s) failed or skipped; it ended on the branch a failure led to" in result.out
    assert result.code == 1  # escalated: through the failure branch, not the main path


def test_dry_run_runs_checks_but_no_command(demo_process: Demo, tmp_path: Path, run: Run) -> None:
    path = tmp_path / "drill.md"
    path.write_text(BOOK)
    result = run(
        "runbook",
        "run",
        str(path),
        "--config",
        demo_process.profile,
        "--dry-run",
        "--param",
        "message=it's here",
    )
    assert result.code == 0, result.out
    assert "would run $ printf '%s' 'it'\"'\"'s here' > out.txt" in result.out
    assert "OK    check app-health" in result.out
    assert not (tmp_path / "out.txt").exists()


def test_end_of_input_pauses_and_says_how_to_resume(
    tmp_path: Path, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "drill.md"
    path.write_text(BOOK)
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("c\nnoted\n"))
    result = run("runbook", "run", str(path), "--param", "message=hi")
    assert result.code == 3
    assert "paused; resume with: opsdash runbook run drill --resume " in result.out
    session_id = result.out.rsplit("--resume ", 1)[1].split()[0]
    shown = run("history", "show", session_id)
    assert "[✓] 1. Announce  note: noted" in shown.out and "active" in shown.out


def test_unknown_parameter_and_bad_value_are_usage_errors(tmp_path: Path, run: Run) -> None:
    path = tmp_path / "drill.md"
    path.write_text(BOOK.replace('prompt = "Message"', "prompt = \"Message\"\npattern = '^[a-z]+$'"))
    bad = run("runbook", "run", str(path), "--param", "message=Hi There")
    assert bad.code == 3 and "does not match" in bad.err
    unknown = run("runbook", "run", str(path), "--param", "colour=red")
    assert unknown.code == 3 and "has no parameter colour" in unknown.err
    assert run("runbook", "run", "no-such-runbook").code == 3


def test_a_file_named_like_a_runbook_id_does_not_replace_it(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rollback").write_text(
        BOOK.replace('id = "drill"', 'id = "rollback"')
    )  # a deploy script, say
    shown = run("runbook", "show", "rollback")
    assert shown.code == 0 and "Drill" not in shown.out and "(rollback," in shown.out  # the shipped one
    (tmp_path / "drill.md").write_text(BOOK)
    assert "Drill" in run("runbook", "show", "./drill.md").out  # a path that looks like one is a path


def test_run_refuses_a_runbook_with_problems_before_its_first_step(run: Run, tmp_path: Path) -> None:
    broken = tmp_path / "broken.md"
    broken.write_text(BOOK.replace("on_fail=goto:recover", "on_fail=goto:nowhere"))
    result = run("runbook", "run", str(broken), "--param", "message=hi")
    assert result.code == 3
    assert f"{broken}:" in result.err and "nowhere" in result.err
    assert run("history", "list", "--json").out.strip() == "[]"  # no session was started


def test_a_secret_parameter_is_stored_masked_and_comes_back_only_from_the_env(
    book_path: Path, store: RunbookSessions
) -> None:
    from opsdash.core.secrets import redactor

    secret = "s3cr3t-" + "x9" * 12
    redactor.register(secret)  # the target's env files hold it (runbook runs load them first)
    ex = start(book_path, store, Gates(True), message=secret)
    ex.confirm()
    assert secret.encode() not in store.history.path.read_bytes()
    book, _ = parse(book_path)
    assert book is not None
    redactor.clear()  # a later opsdash whose env no longer has that secret
    with pytest.raises(ValueError, match="held a secret"):
        Executor.resume(book, ex.state.id, store, Gates(True))
    redactor.register(secret)
    resumed = Executor.resume(book, ex.state.id, store, Gates(True))
    assert resumed.state.params["message"] == secret  # the command gets the real value back


def test_interrupting_a_running_command_stops_its_process_group_and_records_why(
    book_path: Path, store: RunbookSessions, tmp_path: Path
) -> None:
    import threading

    book_path.write_text(
        BOOK.replace(
            "printf '%s' {{message}} > out.txt && echo wrote",
            "(sleep 30; touch late) & echo started; sleep 30; touch finished",
        )
    )
    shared = History.open(tmp_path / "shared", shared=True)
    ex = start(book_path, shared.sessions, Gates(True))
    ex.confirm()
    worker = threading.Thread(target=ex.confirm)
    worker.start()
    wait_until(lambda: not_none(ex.current_state()).pid is not None)
    pid = not_none(ex.current_state()).pid
    with pytest.raises(StepNotAllowed):
        ex.skip("no")
    ex.interrupt("wrong release")
    worker.join(15)
    assert not worker.is_alive()
    st = ex.state.steps[1]
    assert st.status is StepStatus.FAILED and st.detail == "interrupted by the operator: wrong release"
    assert st.exit_code is not None and st.exit_code != 0
    # the whole group is gone, the background child too (zombies awaiting a reaper aside)
    assert pid is not None and not command_alive(pid, ex.state.id)
    assert _live_members(pid) == set()
    assert not (book_path.parent / "finished").exists() and not (book_path.parent / "late").exists()
    events = [e["event"] for e in not_none(shared.sessions.load(ex.state.id)).events]
    assert "interrupt-requested" in events and events.count("command-started") == 1
    assert ex.allowed() == ["retry", "abort"]
    shared.close()


def test_a_detached_command_runs_on_and_a_resume_collects_its_output_and_status(
    book_path: Path, store: RunbookSessions, tmp_path: Path
) -> None:
    import threading

    book_path.write_text(
        BOOK.replace("printf '%s' {{message}} > out.txt && echo wrote", "echo begun; sleep 1; echo ended")
    )
    shared = History.open(tmp_path / "shared", shared=True)
    ex = start(book_path, shared.sessions, Gates(True))
    ex.confirm()
    worker = threading.Thread(target=ex.confirm)
    worker.start()
    wait_until(lambda: not_none(ex.current_state()).pid is not None)
    ex.detach()  # as the dashboard does when the operator quits and leaves it running
    worker.join(10)
    assert ex.state.steps[1].status is StepStatus.RUNNING
    book, _ = parse(book_path)
    assert book is not None
    resumed = Executor.resume(book, ex.state.id, shared.sessions, Gates(True))
    assert resumed.running_pid() is not None and resumed.allowed() == ["interrupt"]
    wait_until(lambda: resumed.running_pid() is None)
    resumed.settle_detached()
    st = resumed.state.steps[1]
    assert (st.status, st.exit_code) == (StepStatus.DONE, 0)
    assert st.output.split() == ["begun", "ended"]  # written while no one watched, collected
    shared.close()
