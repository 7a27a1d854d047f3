"""A runbook session of an exclusive group driven from several hosts, as real processes (the
reviewer's findings 1 and 3 on issue #34): every process that drives a session holds its lock, so
the session is alive while any of them lives; a session one of them ends frees the group at once;
and a PostgreSQL restart in the middle of a session neither lets another host take the group nor
walks the operator on through steps the record does not have.

Hosts a, b and c run `opsdash runbook run` on one record: on PostgreSQL one database with a data
directory each, on SQLite one data directory (tests/unit/cli/test_team.py's `team`)."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsdash.storage.coordination import session_driven
from opsdash.storage.history import History
from tests.conftest import Project
from tests.pg import PgServer, pg_server, pg_url, running_server, server_binaries  # noqa: F401 - fixtures
from tests.unit.cli import test_team
from tests.unit.cli.test_team import WAIT, Host, Team
from tests.waits import wait_until

BOOK = """+++
id = "team-rollback"
title = "Team rollback drill"
exclusive = "production-change"
+++

## Announce {#announce}
Tell the channel a rollback starts.

## Roll back {#roll}
Roll back.

## Verify {#verify}
Look at it.
"""
team = test_team.team  # the fixture: two hosts on one record, on each backend
CONFIRM = "c\n\n"  # confirm a manual step, no note


def host_c(team: Team, tmp_path: Path) -> Host:
    """A third host: its own directories on PostgreSQL, the same data directory on SQLite."""
    env = dict(team.b.env)
    if team.backend == "postgresql":
        env.update(
            OPSDASH_DATA_DIR=str(tmp_path / "c" / "data"), XDG_CONFIG_HOME=str(tmp_path / "c" / "config")
        )
    return Host("c", env)


def row(record: History, session_id: str) -> tuple[str, int | None, str | None]:
    """(status, current step, driver) of a session in the record."""
    found = record.conn.execute(
        "SELECT status, current_step, driver FROM runbook_sessions WHERE id = ?", [session_id]
    ).fetchone()
    assert found is not None
    return found[0], found[1], found[2]


def active(record: History) -> list[str]:
    ids = [
        r[0]
        for r in record.conn.execute(
            "SELECT id FROM runbook_sessions WHERE status = 'active' AND exclusive_group = 'production-change'"
        )
    ]
    assert len(ids) <= 1, ids  # never two of the group at once
    return ids


def started(host: Host, run: tuple[str | Path, ...], operator: str, *extra: str) -> subprocess.Popen[str]:
    return host.start(*run, "--operator", operator, *extra)


def say(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(text)
    proc.stdin.flush()


def one_active(team: Team) -> str:
    def look() -> str | None:
        with team.record() as record:
            ids = active(record)
        return ids[0] if ids else None

    return wait_until(look, "a session of the group is in the record", WAIT)


def driven_by(team: Team, session_id: str, pid: int) -> None:
    def look() -> bool:
        with team.record() as record:
            return (row(record, session_id)[2] or "").endswith(f":{pid}")

    wait_until(look, f"process {pid} drives session {session_id}", WAIT)


@pytest.fixture
def run(project: Project, tmp_path: Path) -> tuple[str | Path, ...]:
    book = tmp_path / "team-rollback.md"
    book.write_text(BOOK, encoding="utf-8")
    return ("runbook", "run", book, "--config", project.profile)


def test_a_resumed_session_is_not_taken_over_when_the_host_that_started_it_dies(
    team: Team, run: tuple[str | Path, ...], tmp_path: Path
) -> None:
    """(a): alice starts on a; bob is refused on b and resumes her session as the refusal says;
    alice's opsdash is killed; carol's start on c is refused (bob drives it), and bob finishes it."""
    carol = host_c(team, tmp_path)
    alice = started(team.a, run, "alice")
    bob: subprocess.Popen[str] | None = None
    try:
        held = one_active(team)
        refused = team.b.run(*run, "--operator", "bob")
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert "already running" in refused.stderr and f"--resume {held}" in refused.stderr
        bob = started(team.b, run, "bob", "--resume", held)
        driven_by(team, held, bob.pid)
        alice.kill()  # SIGKILL: alice's opsdash cleans nothing up
        alice.wait(WAIT)
        taken = carol.run(*run, "--operator", "carol")
        assert taken.returncode == 3, taken.stdout + taken.stderr
        assert "already running" in taken.stderr and held in taken.stderr
        assert "it is being driven now, by " in taken.stderr and f":{bob.pid})" in taken.stderr
        # bob was told so too, when his start was refused while alice drove it
        assert f"it is being driven now, by {socket.gethostname()}:{alice.pid})" in refused.stderr
        with team.record() as record:
            assert active(record) == [held] and row(record, held)[0] == "active"
        code, out, err = team.b.finish(bob, CONFIRM * 3)  # bob drives it to the end, recorded
        assert code == 0 and f"session {held} completed" in out, out + err
        assert "taken over" not in out + err
    finally:
        for proc in (alice, bob):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(WAIT)
    with team.record() as record:
        assert row(record, held) == ("completed", None, None)
        events = [
            r[0] for r in record.conn.execute("SELECT event FROM runbook_events WHERE session_id = ?", [held])
        ]
        assert "abandoned" not in events and events.count("confirmed") == 3
    team.assert_no_database_errors()


def test_a_session_another_host_completed_frees_the_group_while_its_starter_is_still_open(
    team: Team, run: tuple[str | Path, ...], tmp_path: Path
) -> None:
    """(b): alice waits at step 1; bob resumes her session and completes it; carol starts at once,
    while alice's opsdash is still open, and alice's late confirm is refused, not recorded, and
    guides her no further."""
    carol = host_c(team, tmp_path)
    alice = started(team.a, run, "alice")
    try:
        held = one_active(team)
        done = team.b.run(*run, "--operator", "bob", "--resume", held, stdin=CONFIRM * 3)
        assert done.returncode == 0 and f"session {held} completed" in done.stdout, done.stdout + done.stderr
        assert alice.poll() is None  # alice's opsdash is still open, on step 1
        fresh = carol.run(*run, "--operator", "carol", stdin="q\n")
        assert fresh.returncode == 3 and "paused; resume with" in fresh.stdout, fresh.stdout + fresh.stderr
        assert "held by another" not in fresh.stderr and "already running" not in fresh.stderr
        code, out, err = team.a.finish(alice, CONFIRM)  # alice confirms step 1, late
        assert code == 3, out + err
        assert f"session {held} ended meanwhile (completed" in out and "not recorded" in out
        assert "stopped: that transition is not in the record" in out
        assert "Step 2/3" not in out  # not walked on
    finally:
        if alice.poll() is None:
            alice.kill()
            alice.wait(WAIT)
    with team.record() as record:
        assert row(record, held) == ("completed", None, None)
        (carols,) = active(record)
        assert carols != held
        notes = record.conn.execute(
            "SELECT COUNT(*) FROM runbook_events WHERE session_id = ? AND event = 'confirmed'", [held]
        ).fetchone()[0]
        assert notes == 3  # bob's three, none of alice's


# ---------------------------------------------------------------- a PostgreSQL restart mid-session


@pytest.fixture
def own_server() -> Iterator[PgServer]:
    """A server of this test's own: it is stopped and started again under the test."""
    if server_binaries() is None:
        pytest.skip("PostgreSQL server binaries not found")
    with running_server() as server:
        yield server


def test_a_postgresql_restart_mid_session_is_recovered_from_and_no_other_host_takes_the_group(
    own_server: PgServer, project: Project, run: tuple[str | Path, ...], tmp_path: Path
) -> None:
    url = own_server.database_url()
    base = Team("postgresql", Host("a", {}), Host("b", {}), url)
    hosts = []
    for name in ("a", "c"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPSDASH_")}
        env.update(
            OPSDASH_DATA_DIR=str(tmp_path / name / "data"),
            XDG_CONFIG_HOME=str(tmp_path / name / "config"),
            OPSDASH_DATABASE_URL=url,
            OPSDASH_AUDIT_KEY="team-audit-key-" + "0" * 49,
        )
        hosts.append(Host(name, env))
    crew = dataclasses.replace(base, a=hosts[0], b=hosts[1])
    a, c = hosts
    alice = started(a, run, "alice")
    try:
        held = one_active(crew)
        driven_by(crew, held, alice.pid)
        own_server.halt()  # every connection ends: the history's and the lock's
        own_server.start()
        # at once: the lock may not be taken again yet, but nobody takes the group from alice
        first = c.run(*run, "--operator", "carol")
        assert first.returncode == 3 and "already running" in first.stderr, first.stdout + first.stderr
        assert held in first.stderr

        def lock_back() -> bool:
            with crew.record() as record:
                return session_driven(record, held)

        wait_until(lock_back, "alice's opsdash takes its lock again", WAIT)
        later = c.run(*run, "--operator", "carol")
        assert later.returncode == 3 and "it is being driven now" in later.stderr, later.stdout + later.stderr
        say(alice, CONFIRM)  # the first transition after the restart: recorded

        def recorded() -> bool:
            with crew.record() as record:
                return row(record, held)[1] == 1

        wait_until(recorded, "alice's confirm after the restart is in the record", WAIT)
        code, out, err = a.finish(alice, "q\n")  # and she pauses: the record says so
        assert code == 3 and "paused; resume with" in out, out + err
        assert "failed" not in out and "not recorded" not in out
        with crew.record() as record:
            assert row(record, held) == ("active", 1, None)  # paused on purpose: no driver
            assert active(record) == [held]
        parked = c.run(*run, "--operator", "carol")
        assert parked.returncode == 3 and "paused" in parked.stderr, parked.stdout + parked.stderr

        # the database is down when she confirms: clearly refused, and she is guided no further
        alice = started(a, run, "alice", "--resume", held)
        driven_by(crew, held, alice.pid)
        own_server.halt()
        try:
            code, out, err = a.finish(alice, CONFIRM * 2)
        finally:
            own_server.start()
        assert code == 3, out + err
        assert "not recorded" in out and "stopped: that transition is not in the record" in out
        assert "Step 3/3" not in out  # not walked on to the next step
        with crew.record() as record:
            status, current, _driver = row(record, held)
            assert (status, current) == ("active", 1)  # step 2 is not done in the record
    finally:
        if alice.poll() is None:
            alice.kill()
            alice.wait(WAIT)
