"""The scripted session of tests/runbook_script.py through `opsdash runbook run` (real processes,
Ctrl-C as SIGINT, kill -9): the record must be EXPECTED, as the Runbooks pane leaves it."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from tests.conftest import Project
from tests.runbook_script import (
    BOOK_ID,
    OPSDASH,
    REASON,
    assert_expected,
    env,
    fix_env,
    killed_during_verify,
    read_until,
    setup,
)
from tests.waits import wait_for_path


def terminal(project: Project, data: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [OPSDASH, "runbook", "run", BOOK_ID, "--config", str(project.profile), *extra],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(data),
    )


def say(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(text)
    proc.stdin.flush()


def test_the_scripted_session_through_the_cli(project: Project, tmp_path: Path) -> None:
    books, data = tmp_path / "books", tmp_path / "data"
    setup(project, books)
    first = terminal(project, data)
    try:
        say(first, "c\nc\n")  # Build, then the gate (the env is in test mode: it fails)
        read_until(first, "FAIL  environment validation")
        fix_env(project)
        say(first, "r\n")  # retry the checks: they pass now
        read_until(first, "OK    environment validation")
        say(first, "c\n")  # Deploy
        wait_for_path(books / "deploy-started")
        first.send_signal(signal.SIGINT)  # Ctrl-C: asked, then interrupted with a reason
        read_until(first, "the command is still running")
        say(first, f"i\n{REASON}\n")
        read_until(first, f"interrupted by the operator: {REASON}")
        (books / "deploy-release").touch()
        say(first, "r\nc\n")  # retry, and run it again: it ends at once now
        read_until(first, "Step 4/6")
        say(first, "c\n")  # Migrate, left running
        wait_for_path(books / "migrate-started")
        first.send_signal(signal.SIGINT)
        read_until(first, "the command is still running")
        say(first, "l\n")
        rest = first.communicate(timeout=60)[0]
        assert first.returncode == 3 and "left running; paused" in rest, rest
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)

    killed_during_verify(project, books, data)

    last = terminal(project, data, "--resume", "latest")
    say(last, "c\n\n")  # once Verify is collected: Tell people, confirmed with no note
    read_until(last, "this step's command is still running (process group")
    (books / "verify-release").touch()
    out = last.communicate(timeout=60)[0]
    assert last.returncode == 0, out
    assert "the command ended: exit 0" in out and "verified" in out
    assert_expected(data)
