"""One scripted runbook session, driven through both front ends (`opsdash runbook run` in
tests/unit/cli/test_one_step_driver.py, the Runbooks pane in tests/tui/test_one_step_driver.py):
a command that succeeds, a gate that fails and then passes, a command interrupted, a command left
running (detached), a resume that collects it and is killed -9 during the next command, and a
resume after that. Both must leave the same record: EXPECTED, event for event."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from opsdash.core.runbooks.state import SessionState
from opsdash.storage.history import History
from tests.conftest import Project, good_env
from tests.waits import read_line, wait_for_path, wait_until

OPSDASH = str(Path(sys.executable).with_name("opsdash"))
BOOK_ID = "one-engine"
REASON = "wrong release"

BOOK = """+++
id = "one-engine"
title = "One engine drill"
+++

## Build {#build}
```command timeout=60
echo built
```

## Validate the environment {#gate}
```check
validate
```

## Deploy {#deploy}
```command timeout=60
touch deploy-started; until [ -e deploy-release ]; do sleep 0.05; done; echo deployed
```

## Migrate {#migrate}
```command timeout=60
touch migrate-started; until [ -e migrate-release ]; do sleep 0.05; done; echo migrated
```

## Verify {#verify}
```command timeout=60
touch verify-started; until [ -e verify-release ]; do sleep 0.05; done; echo verified
```

## Tell people {#tell}
Say it is out.
"""

# (step index, event, detail with every number as N); None: any detail
EXPECTED: list[tuple[int | None, str, str | None]] = [
    (None, "session-started", "parameters: none"),
    (0, "command-started", "echo built"),
    (0, "command-running", "process group N"),
    (0, "command-finished", "exit N"),
    (1, "checks-started", ""),
    (1, "checks-finished", None),  # failed: the env is in test mode
    (1, "retry", ""),
    (1, "checks-started", ""),
    (1, "checks-finished", "all passed"),
    (2, "command-started", None),
    (2, "command-running", "process group N"),
    (2, "interrupt-requested", REASON),
    (2, "command-finished", f"exit -N; interrupted by the operator: {REASON}"),
    (2, "retry", ""),
    (2, "command-started", None),
    (2, "command-running", "process group N"),
    (2, "command-finished", "exit N"),
    (3, "command-started", None),
    (3, "command-running", "process group N"),
    (3, "detached", "left running; its result is collected on the next start"),
    # the next opsdash (a terminal) finds it running, collects it, and is killed -9 on step 5
    (3, "found-running", "its command is still running (process group N)"),
    (3, "session-resumed", ""),
    (3, "command-finished", "exit N; finished while no opsdash was watching"),
    (4, "command-started", None),
    (4, "command-running", "process group N"),
    # the front end under test resumes: the command outlived the killed opsdash
    (4, "found-running", "its command is still running (process group N)"),
    (4, "session-resumed", ""),
    (4, "command-finished", "exit N; finished while no opsdash was watching"),
    (5, "confirmed", ""),
    (None, "completed", ""),
]


def setup(project: Project, books: Path) -> None:
    """The drill in a runbook directory of the project's profile; the env in test mode, so the
    gate fails until `fix_env`."""
    books.mkdir(exist_ok=True)
    (books / "one-engine.md").write_text(BOOK)
    text = project.profile.read_text().replace('dirs = ["runbooks"]', f'dirs = ["{books}"]')
    assert str(books) in text
    project.profile.write_text(text)
    project.write_env({**good_env(), "VITE_IKHOKHA_TEST_MODE": "true"})


def fix_env(project: Project) -> None:
    project.write_env(good_env())


def env(data: Path) -> dict[str, str]:
    return {**os.environ, "OPSDASH_DATA_DIR": str(data)}


def read_until(proc: subprocess.Popen[str], marker: str) -> str:
    seen = ""
    while marker not in (line := read_line(proc.stdout)):
        assert line, f"ended before {marker!r}:\n{seen}"
        seen += line
    return seen + line


def killed_during_verify(project: Project, books: Path, data: Path) -> None:
    """A terminal resumes the detached session: it finds Migrate still running, collects it when
    it ends, runs Verify, and is killed -9 while Verify runs (Verify runs on)."""
    proc = subprocess.Popen(
        [OPSDASH, "runbook", "run", BOOK_ID, "--config", str(project.profile), "--resume", "latest"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(data),
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write("c\n")  # run Verify, once Migrate has been collected
        proc.stdin.flush()
        read_until(proc, "this step's command is still running (process group")
        (books / "migrate-release").touch()
        wait_for_path(books / "verify-started")
        # the command touches the file before opsdash has recorded its process group: kill -9
        # only once it has, so the record is the same however the machine schedules the two
        wait_until(
            lambda: any(i == 4 and e == "command-running" for i, e, _d in recorded(data)),
            "Verify's process group recorded",
        )
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
        assert proc.stdout is not None
        proc.stdout.close()


def recorded(data: Path) -> list[tuple[int | None, str, str]]:
    """The session's recorded events, numbers as N (pids, exit codes, ports differ run to run)."""
    state = session(data)
    return [(e["step_index"], e["event"], re.sub(r"\d+", "N", e["detail"].strip())) for e in state.events]


def session(data: Path) -> SessionState:
    with History.open(data, write=False) as history:
        rows = history.sessions.recent(BOOK_ID)
        assert len(rows) == 1, rows
        state = history.sessions.load(rows[0].id)
    assert state is not None
    return state


def assert_expected(data: Path) -> None:
    got = recorded(data)
    assert [(i, e) for i, e, _d in got] == [(i, e) for i, e, _d in EXPECTED], got
    for (index, event, detail), (_i, _e, wanted) in zip(got, EXPECTED, strict=True):
        if wanted is not None:
            assert detail == re.sub(r"\d+", "N", wanted), (index, event, detail)
    state = session(data)
    assert state.status.value == "completed"
    assert [s.status.value for s in state.steps] == ["done"] * 6
    assert [s.exit_code for s in state.steps[:5]] == [0, None, 0, 0, 0]
    assert "migrated" in state.steps[3].output and "verified" in state.steps[4].output
