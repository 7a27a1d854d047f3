"""Runbooks that change production are exclusive per target across processes: bob's rollback in one
terminal, and alice starting a rollback (or a credential rotation) in another, is refused with who,
since when and where bob is — while bob's session runs on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from opsdash.core.runbooks.executor import SessionState, SessionStatus
from opsdash.storage.history import History
from tests.conftest import Demo
from tests.waits import wait_until

OPSDASH = str(Path(sys.executable).with_name("opsdash"))
ROLLBACK = ["--param", "release=2026.11.2", "--param", "reason=checkout broken"]


def env(data: Path) -> dict[str, str]:
    return {**os.environ, "OPSDASH_DATA_DIR": str(data)}


def the_session(data: Path) -> SessionState | None:
    """The one session in the record (None before it is created)."""
    with History.open(data, write=False) as history:
        store = history.sessions
        rows = store.recent(limit=5)
        assert len(rows) <= 1, rows  # a refused start never leaves a session behind
        return store.load(rows[0].id) if rows else None


def hold_rollback(profile: Path, data: Path) -> tuple[subprocess.Popen[str], SessionState]:
    """bob runs `opsdash runbook run rollback`, confirms the announcement, and is on step 2 (of 7)."""
    proc = subprocess.Popen(
        [OPSDASH, "runbook", "run", "rollback", "--config", str(profile), "--operator", "bob", *ROLLBACK],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env(data),
    )
    assert proc.stdin is not None
    proc.stdin.write("c\n\n")  # step 1 (announce): confirm, no note
    proc.stdin.flush()

    def on_step_2() -> SessionState | None:
        assert proc.poll() is None, proc.communicate()[0]
        state = the_session(data)
        return state if state is not None and state.current == 1 else None

    return proc, wait_until(on_step_2, "bob's rollback reaches step 2")


def test_a_second_terminal_is_refused_while_the_first_runs_on(demo_process: Demo, tmp_path: Path) -> None:
    data = tmp_path / "data"
    holder, held = hold_rollback(demo_process.profile, data)
    try:
        started = held.started_at[:19].replace("T", " ") + " UTC"
        for book, params in (
            ("rollback", ROLLBACK),
            ("credential-rotation", ["--param", "variable=IKHOKHA_API_SECRET"]),
        ):
            second = subprocess.run(
                [
                    OPSDASH,
                    "runbook",
                    "run",
                    book,
                    "--config",
                    str(demo_process.profile),
                    "--operator",
                    "alice",
                    *params,
                ],
                input="",
                capture_output=True,
                text=True,
                env=env(data),
                timeout=60,
            )
            assert second.returncode == 3, second.stdout + second.stderr
            said = second.stderr
            assert "rollback is already running" in said
            assert f"session {held.id}, started {started} by bob, on step 2/7" in said
            assert "'production-change'" in said
            assert f"opsdash runbook run rollback --resume {held.id}" in said
            assert "Traceback" not in said and second.stdout == ""  # nothing started, nothing asked
        # bob's session is untouched and runs on: the check step, then an abort
        assert holder.poll() is None
        out = holder.communicate("c\na\nnot needed after all\n", timeout=120)[0]
        assert holder.returncode == 2, out
        state = the_session(data)
        assert state is not None and state.id == held.id and state.operator == "bob"
        # step 2 expects the release unhealthy; the demo is healthy, so it failed there (reconsider)
        assert state.status is SessionStatus.ABORTED and state.current == 1
        assert state.steps[1].detail.startswith("every check passed, but this step expects a failure")
        # an aborted session blocks nothing: alice starts now (and pauses at once)
        third = subprocess.run(
            [
                OPSDASH,
                "runbook",
                "run",
                "rollback",
                "--config",
                str(demo_process.profile),
                "--operator",
                "alice",
                *ROLLBACK,
            ],
            input="q\n",
            capture_output=True,
            text=True,
            env=env(data),
            timeout=60,
        )
        assert third.returncode == 3 and "paused; resume with" in third.stdout, third.stdout + third.stderr
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


@pytest.mark.parametrize("signal_name", ["SIGHUP", "SIGTERM"])
def test_a_closed_terminal_pauses_the_session_it_does_not_abandon_it(
    demo_process: Demo, tmp_path: Path, signal_name: str
) -> None:
    """bob's ssh session drops (SIGHUP) or his opsdash is stopped politely (SIGTERM) on step 2: the
    session is parked as `q` or Ctrl-C park it, so alice's start is refused (paused: resume it)
    and bob's --resume finds it where it was; it used to read as a dead driver, and alice's start
    took the group and recorded bob's rollback as aborted."""
    import signal

    data = tmp_path / "data"
    holder, held = hold_rollback(demo_process.profile, data)
    try:
        holder.send_signal(getattr(signal, signal_name))
        holder.communicate(timeout=60)
        with History.open(data, write=False) as history:
            (row,) = history.conn.execute("SELECT status, driver FROM runbook_sessions").fetchall()
        alice = subprocess.run(
            [
                OPSDASH,
                "runbook",
                "run",
                "rollback",
                "--config",
                str(demo_process.profile),
                "--operator",
                "alice",
                *ROLLBACK,
            ],
            input="",
            capture_output=True,
            text=True,
            timeout=60,
            env=env(data),
        )
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
    assert tuple(row) == ("active", None)  # parked: no driver, still the group's
    assert alice.returncode == 3 and "paused" in alice.stderr + alice.stdout, alice.stdout + alice.stderr
    state = the_session(data)
    assert (
        state is not None
        and state.id == held.id
        and state.status is SessionStatus.ACTIVE
        and state.current == 1
    )
