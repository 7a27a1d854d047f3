"""Exclusive runbooks in the record: one active session per (group, target), claimed in the same
write transaction that creates the session, so racing processes cannot both win."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.runbooks.exclusive import ExclusiveConflict
from opsdash.core.runbooks.executor import Executor, SessionStatus
from opsdash.core.runbooks.model import Runbook
from opsdash.core.runbooks.parser import parse
from opsdash.storage.history import History
from opsdash.storage.sessions import RunbookSessions
from tests.conftest import not_none
from tests.unit.storage.conftest import run_step, set_schema_version

BOOK = """+++
id = "{id}"
title = "{id} drill"
{exclusive}
+++

## Announce {{#announce}}
Say it.

## Change it {{#change}}
Change it.

## Tell people {{#tell}}
Say it is done.
"""


def book(tmp_path: Path, book_id: str, group: str | None = "production-change") -> Runbook:
    path = tmp_path / f"{book_id}.md"
    path.write_text(
        BOOK.format(id=book_id, exclusive=f'exclusive = "{group}"' if group else ""), encoding="utf-8"
    )
    parsed, problems = parse(path)
    assert parsed is not None, problems
    return parsed


def start(
    store: RunbookSessions, runbook: Runbook, operator: str = "alice", target: str = "BetaSkill"
) -> Executor:
    return Executor.start(runbook, {}, operator, store, lambda gates: [], target=target)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunbookSessions]:
    with History.open(tmp_path / "data") as history:
        yield history.sessions


def test_a_second_start_in_the_group_names_who_when_and_which_step(
    tmp_path: Path, store: RunbookSessions
) -> None:
    first = start(store, book(tmp_path, "rollback"), operator="bob")
    first.confirm("announced")  # bob is on step 2 now
    with pytest.raises(ExclusiveConflict) as refused:
        start(store, book(tmp_path, "deploy"))  # another runbook of the group, the same target
    holder = refused.value.holder
    assert (holder.session_id, holder.operator, holder.step, holder.steps) == (first.state.id, "bob", 1, 3)
    message = str(refused.value)
    assert first.state.id in message and "by bob" in message and "on step 2/3" in message
    assert first.state.started_at[:19].replace("T", " ") + " UTC" in message
    assert "'production-change'" in message
    with pytest.raises(ExclusiveConflict):
        start(store, book(tmp_path, "rollback"))  # and the same runbook again
    assert [s.id for s in store.recent(limit=10)] == [first.state.id]  # nothing half-created
    assert (
        store.holders("BetaSkill", "production-change")[0]
        .summary()
        .startswith(f"rollback running since {first.state.started_at[11:16]} UTC by bob, step 2/3")
    )


@pytest.mark.parametrize("status", ["completed", "aborted", "escalated"])
def test_a_session_that_ended_does_not_block(tmp_path: Path, store: RunbookSessions, status: str) -> None:
    first = start(store, book(tmp_path, "rollback"))
    if status == "aborted":
        first.abort("wrong release")
    else:
        for _ in range(3):
            first.confirm()
        if status == "escalated":  # as a session that ended on a failure's branch is recorded
            store.history.conn.execute(
                "UPDATE runbook_sessions SET status = 'escalated' WHERE id = ?", [first.state.id]
            )
    assert not_none(store.load(first.state.id)).status is SessionStatus(status)
    second = start(store, book(tmp_path, "rollback"))
    assert second.state.status is SessionStatus.ACTIVE


def test_another_group_another_target_or_no_group_does_not_block(
    tmp_path: Path, store: RunbookSessions
) -> None:
    start(store, book(tmp_path, "rollback"), target="BetaSkill")
    start(store, book(tmp_path, "rollback"), target="BetaSkill staging")  # another target
    start(store, book(tmp_path, "db-failover", group="database-change"), target="BetaSkill")  # another group
    start(store, book(tmp_path, "outage", group=None), target="BetaSkill")  # not exclusive at all
    start(store, book(tmp_path, "outage", group=None), target="BetaSkill")
    assert len(store.recent(limit=10)) == 5
    assert [h.group for h in store.holders("BetaSkill")] == ["production-change", "database-change"]


def test_the_group_and_target_survive_a_resume(tmp_path: Path, store: RunbookSessions) -> None:
    runbook = book(tmp_path, "rollback")
    first = start(store, runbook)
    resumed = Executor.resume(runbook, first.state.id, store, lambda gates: [])
    resumed.confirm("announced")  # a save after the resume keeps the claim
    with pytest.raises(ExclusiveConflict):
        start(store, runbook)


def _race(data_dir: str, path: str, target: str, barrier: Any, results: Any) -> None:
    """One process: open the record, wait for the others, then try to start the session."""
    runbook, _ = parse(Path(path))
    assert runbook is not None
    with History.open(Path(data_dir), database=os.environ.get("OPSDASH_DATABASE_URL")) as history:
        store = history.sessions
        barrier.wait(60)
        try:
            start(store, runbook, operator=f"op-{multiprocessing.current_process().pid}", target=target)
            results.put(("won", target))
        except ExclusiveConflict as exc:
            results.put(("refused", exc.holder.target))


def test_racing_processes_exactly_one_wins(tmp_path: Path) -> None:
    runbook = book(tmp_path, "rollback")
    data = tmp_path / "data"
    History.open(data).close()  # created and migrated once; the racers only write
    ctx = multiprocessing.get_context("spawn")
    racers, rounds = 6, 4
    barrier, results = ctx.Barrier(racers), ctx.Queue()
    for n in range(rounds):  # each round a new target: every round is a fresh race for it
        procs = [
            ctx.Process(target=_race, args=(str(data), str(runbook.path), f"target-{n}", barrier, results))
            for _ in range(racers)
        ]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(120)
            assert proc.exitcode == 0
    outcomes = [results.get(timeout=60) for _ in range(racers * rounds)]
    for n in range(rounds):
        won = [o for o, t in outcomes if t == f"target-{n}" and o == "won"]
        assert len(won) == 1, outcomes
    with History.open(data) as history:
        rows = history.conn.execute(
            "SELECT target, COUNT(*) FROM runbook_sessions WHERE status = 'active' GROUP BY target"
        ).fetchall()
    assert sorted(rows) == [(f"target-{n}", 1) for n in range(rounds)]


@pytest.mark.parametrize("value", ['"Production Change"', "3", '""', '"-x"'])
def test_a_bad_group_name_is_a_problem_with_the_file(tmp_path: Path, value: str) -> None:
    path = tmp_path / "bad.md"
    path.write_text(BOOK.format(id="bad", exclusive=f"exclusive = {value}"), encoding="utf-8")
    parsed, problems = parse(path)
    assert parsed is None
    assert [p.message for p in problems] == [
        "front matter: exclusive must be a group name of lowercase letters, digits and hyphens "
        '(e.g. "production-change")'
    ]


def test_the_shipped_runbooks_that_change_production_share_one_group() -> None:
    from opsdash.ops.runbooks import load_runbooks, shipped_runbooks_dir

    shipped = shipped_runbooks_dir()
    assert shipped is not None
    books, problems = load_runbooks([shipped])
    assert not problems
    groups = {b.id: b.exclusive for b in books}
    assert groups["rollback"] == groups["credential-rotation"] == "production-change"
    # the checklists only read production: they must not block the rollback they may lead to
    assert groups["pre-deploy-checklist"] is groups["post-deploy-verification"] is None


def test_v9_migrates_an_older_record_and_its_active_sessions_block_nothing(tmp_path: Path) -> None:
    """A v8 database with an active rollback (from before groups existed) gains the columns, and a
    v9 step run twice (a failed first open) changes nothing."""
    from opsdash.storage.schema import SCHEMA_VERSION

    data = tmp_path / "data"
    with History.open(data) as history:
        old = start(history.sessions, book(tmp_path, "rollback", group=None))
        history.conn.execute("DROP INDEX idx_runbook_sessions_exclusive_group_target_status")
        history.conn.execute("ALTER TABLE runbook_sessions DROP COLUMN exclusive_group")
        history.conn.execute("ALTER TABLE runbook_sessions DROP COLUMN target")
        set_schema_version(history, 8)
    with History.open(data) as history:
        assert history.schema_version == SCHEMA_VERSION
        run_step(history, 8)  # idempotent
        store = history.sessions
        assert not_none(store.load(old.state.id)).exclusive is None
        new = start(store, book(tmp_path, "rollback"))
        assert [h.session_id for h in store.holders("BetaSkill", "production-change")] == [new.state.id]


# ---------------------------------------------------------------- a holder that dies, or pauses


def _hold_then(data_dir: str, path: str, how: str, step_running: bool) -> None:
    """One process: start the session, then die (SIGKILL, nothing cleaned up) or pause (close)."""
    import signal

    runbook, _ = parse(Path(path))
    assert runbook is not None
    history = History.open(Path(data_dir), database=os.environ.get("OPSDASH_DATABASE_URL"))
    executor = start(history.sessions, runbook, operator="bob")
    if step_running:  # as the executor records a command step it has started
        history.conn.execute(
            "UPDATE runbook_steps SET status = 'running' WHERE session_id = ? AND step_index = 0",
            [executor.state.id],
        )
        history.conn.commit()
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    history.close()  # `q` in `runbook run`, the dashboard quitting: the session is parked


def holder_that(tmp_path: Path, how: str, *, step_running: bool = False) -> tuple[Path, Runbook, str]:
    runbook = book(tmp_path, "rollback")
    data = tmp_path / "data"
    History.open(data).close()
    proc = multiprocessing.get_context("spawn").Process(
        target=_hold_then, args=(str(data), str(runbook.path), how, step_running)
    )
    proc.start()
    proc.join(120)
    assert proc.exitcode == (-9 if how == "kill" else 0)
    with History.open(data) as history:
        (row,) = history.sessions.recent(limit=5)
    return data, runbook, row.id


def test_a_holder_killed_with_sigkill_releases_the_group_and_is_recorded_as_abandoned(tmp_path: Path) -> None:
    data, runbook, dead = holder_that(tmp_path, "kill")
    with History.open(data) as history:
        store = history.sessions
        assert [h.session_id for h in store.holders("BetaSkill", "production-change")] == [dead]
        second = start(store, runbook, operator="alice")  # the lock was free: taken over
        assert not_none(store.load(dead)).status is SessionStatus.ABORTED
        (event,) = [e for e in store.events(dead) if e.event == "abandoned"]
        detail = not_none(event.detail)
        assert "its opsdash died" in detail and second.state.id in detail and "alice" in detail
        assert [h.session_id for h in store.holders("BetaSkill", "production-change")] == [second.state.id]
        active = history.conn.execute("SELECT COUNT(*) FROM runbook_sessions WHERE status = 'active'")
        assert active.fetchone()[0] == 1  # never two sessions of the group at once
        second.state.status = SessionStatus.COMPLETED  # the new one ends too
        store.save(second.state, None, "completed", "")
    locks = data / "runbook-locks"  # SQLite: a lock file a session; none left for ended ones
    assert not locks.exists() or list(locks.iterdir()) == []


def test_a_holder_that_paused_keeps_the_group(tmp_path: Path) -> None:
    data, runbook, parked = holder_that(tmp_path, "close")
    with History.open(data) as history:
        with pytest.raises(ExclusiveConflict) as refused:
            start(history.sessions, runbook, operator="alice")
        assert refused.value.holder.session_id == parked and "paused" in str(refused.value)
        assert not_none(history.sessions.load(parked)).status is SessionStatus.ACTIVE
        resumed = Executor.resume(runbook, parked, history.sessions, lambda gates: [])
        assert history.sessions.hold(resumed.state)  # bob resumes it: his process drives it again
        resumed.abort("not needed")  # and ends it: the group is free at once
        assert start(history.sessions, runbook, operator="alice").state.status is SessionStatus.ACTIVE


def test_a_holder_that_died_while_a_command_ran_keeps_the_group(tmp_path: Path) -> None:
    data, runbook, dead = holder_that(tmp_path, "kill", step_running=True)
    with History.open(data) as history:
        with pytest.raises(ExclusiveConflict) as refused:
            start(history.sessions, runbook, operator="alice")
        message = str(refused.value)
        assert refused.value.holder.session_id == dead
        assert "has gone while step 1's command was running" in message and "resume it" in message
        assert not_none(history.sessions.load(dead)).status is SessionStatus.ACTIVE


def test_a_driver_that_lost_its_lock_does_not_bring_a_taken_over_session_back(tmp_path: Path) -> None:
    """A network cut longer than the server's keepalives (or a DBA ending the connection) frees the
    lock of a holder that still runs: another start takes over, and the first one's next step is
    refused, never recorded as if its session were still the one of the group."""
    from opsdash.core.errors import InputError

    runbook = book(tmp_path, "rollback")
    with History.open(tmp_path / "a") as first, History.open(tmp_path / "a") as second:
        bobs = start(first.sessions, runbook, operator="bob")
        (lock,) = first.sessions._locks.values()
        lock.release()  # the lock is gone, bob's opsdash is not
        alices = start(second.sessions, runbook, operator="alice")
        with pytest.raises(InputError, match=f"session {bobs.state.id} was taken over"):
            bobs.confirm("announced")
        assert not_none(second.sessions.load(bobs.state.id)).status is SessionStatus.ABORTED
        holders = second.sessions.holders("BetaSkill", "production-change")
        assert [h.session_id for h in holders] == [alices.state.id]


# ---------------------------------------------------------------- co-drivers: liveness per session


def drop_lock(history: History, session_id: str) -> None:
    """As if this process had died: its lock on the session goes, the record is left as it was."""
    history.sessions._locks.pop(session_id).release()


def test_a_session_resumed_elsewhere_is_not_taken_over_when_its_starter_dies(tmp_path: Path) -> None:
    """The reviewer's (a): bob resumes alice's live session; alice's opsdash dies; carol's start is
    refused, because bob drives it, and bob's next step is recorded."""
    runbook = book(tmp_path, "rollback")
    with (
        History.open(tmp_path / "a") as alice,
        History.open(tmp_path / "a") as bob,
        History.open(tmp_path / "a") as carol,
    ):
        alices = start(alice.sessions, runbook, operator="alice")
        bobs = Executor.resume(runbook, alices.state.id, bob.sessions, lambda gates: [])
        assert bob.sessions.hold(bobs.state)
        drop_lock(alice, alices.state.id)  # alice's opsdash is gone
        with pytest.raises(ExclusiveConflict) as refused:
            start(carol.sessions, runbook, operator="carol")
        assert refused.value.holder.session_id == alices.state.id
        assert "it is being driven now" in str(refused.value)
        bobs.confirm("announced")  # and bob goes on, recorded
        assert not_none(carol.sessions.load(alices.state.id)).steps[0].note == "announced"
        assert [e.event for e in carol.sessions.events(alices.state.id)].count("abandoned") == 0


def test_a_session_completed_by_its_resumer_frees_the_group_while_its_starter_stays_open(
    tmp_path: Path,
) -> None:
    """The reviewer's (b): alice waits at a step, bob resumes and completes the session; carol
    starts at once although alice's opsdash is still open, and the ended session names no driver."""
    runbook = book(tmp_path, "rollback")
    with (
        History.open(tmp_path / "a") as alice,
        History.open(tmp_path / "a") as bob,
        History.open(tmp_path / "a") as carol,
    ):
        alices = start(alice.sessions, runbook, operator="alice")
        bobs = Executor.resume(runbook, alices.state.id, bob.sessions, lambda gates: [])
        assert bob.sessions.hold(bobs.state)
        for _ in range(3):
            bobs.confirm()
        assert bobs.state.status is SessionStatus.COMPLETED
        carols = start(carol.sessions, runbook, operator="carol")  # no wait, no refusal
        assert carols.state.status is SessionStatus.ACTIVE
        row = carol.conn.execute(
            "SELECT status, driver FROM runbook_sessions WHERE id = ?", [alices.state.id]
        ).fetchone()
        assert tuple(row) == ("completed", None)
        # alice's opsdash, still open on step 1, cannot bring the session back to life
        from opsdash.core.errors import InputError

        with pytest.raises(InputError, match=r"ended meanwhile \(completed"):
            alices.confirm("late")
        assert alices.state.current == 0  # nor does it move on in memory
        assert not_none(carol.sessions.load(alices.state.id)).status is SessionStatus.COMPLETED


def test_a_co_driver_quitting_leaves_the_session_driven_and_the_last_one_parks_it(tmp_path: Path) -> None:
    runbook = book(tmp_path, "rollback")
    with History.open(tmp_path / "a") as carol:
        alice, bob = History.open(tmp_path / "a"), History.open(tmp_path / "a")
        alices = start(alice.sessions, runbook, operator="alice")
        bobs = Executor.resume(runbook, alices.state.id, bob.sessions, lambda gates: [])
        assert bob.sessions.hold(bobs.state)
        bob.close()  # `q` in bob's terminal: alice still drives it
        with pytest.raises(ExclusiveConflict, match="it is being driven now"):
            start(carol.sessions, runbook, operator="carol")
        driver = "SELECT driver FROM runbook_sessions WHERE id = ?"
        assert carol.conn.execute(driver, [alices.state.id]).fetchone()[0] is not None
        alice.close()  # the last driver pauses it: it keeps the group, parked
        assert carol.conn.execute(driver, [alices.state.id]).fetchone()[0] is None
        with pytest.raises(ExclusiveConflict, match="paused"):
            start(carol.sessions, runbook, operator="carol")


def test_a_takeover_landing_inside_a_save_is_serialised_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reviewer's finding 4: bob's lock is gone (a network cut); alice's start is made to run
    right after bob's save has checked "was I taken over?" and before it writes. The takeover must
    land wholly before or wholly after bob's write: never two active sessions of the group."""
    import threading

    from tests.waits import wait_until

    runbook = book(tmp_path, "rollback")
    with History.open(tmp_path / "a") as first, History.open(tmp_path / "a", shared=True) as second:
        bobs = start(first.sessions, runbook, operator="bob")
        drop_lock(first, bobs.state.id)  # bob's lock is gone, bob's opsdash is not
        entering = threading.Event()
        writing = second.writing

        def announced_writing() -> Any:
            entering.set()
            return writing()

        monkeypatch.setattr(second, "writing", announced_writing)
        original = RunbookSessions._refuse_if_taken_over
        outcome: list[object] = []

        def alice_starts() -> None:
            try:
                outcome.append(start(second.sessions, runbook, operator="alice"))
            except Exception as exc:  # said in the assertion below
                outcome.append(exc)

        racer = threading.Thread(target=alice_starts)

        def racing(self: RunbookSessions, state: Any) -> None:
            original(self, state)  # bob's save: not taken over (yet)
            if self is first.sessions and not racer.is_alive() and not outcome:
                racer.start()  # alice's takeover, now
                wait_until(entering.is_set, "alice's start reaches the write lock")
                # it either lands here (the check is not under the write lock) or waits for bob's
                # commit: the wait is bounded, not asserted
                with contextlib.suppress(AssertionError):
                    wait_until(lambda: not racer.is_alive(), "alice's start lands", deadline=3)

        monkeypatch.setattr(RunbookSessions, "_refuse_if_taken_over", racing)
        refused = ""
        try:
            bobs.confirm("announced")
        except Exception as exc:  # refused: the takeover landed first
            refused = str(exc)
        racer.join(60)
        monkeypatch.setattr(RunbookSessions, "_refuse_if_taken_over", original)
        active = first.conn.execute(
            "SELECT id FROM runbook_sessions WHERE status = 'active' AND exclusive_group = ?",
            ["production-change"],
        ).fetchall()
        assert len(active) == 1, active  # never two of the group at once
        (alices,) = outcome
        if isinstance(alices, ExclusiveConflict):  # bob's save first: his opsdash lives and drives it
            assert not refused and "it is being driven now" in str(alices)
            assert active[0][0] == bobs.state.id
            assert not_none(first.sessions.load(bobs.state.id)).steps[0].note == "announced"
        else:  # alice's takeover first: bob's save is refused, nothing of it recorded
            assert "was taken over" in refused, refused
            assert active[0][0] == alices.state.id  # type: ignore[attr-defined]
            taken = not_none(first.sessions.load(bobs.state.id))
            assert taken.status is SessionStatus.ABORTED and taken.steps[0].note == ""


def test_a_transition_the_store_cannot_save_leaves_the_session_where_the_record_is(
    tmp_path: Path, store: RunbookSessions, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    from opsdash.core.runbooks.executor import NotRecorded

    runbook = book(tmp_path, "rollback")
    ex = start(store, runbook)
    saving = store.save

    def lost(*_args: Any) -> None:
        raise sqlite3.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(store, "save", lost)
    with pytest.raises(NotRecorded, match=r"server closed the connection.*not recorded"):
        ex.confirm("announced")
    assert ex.state.current == 0 and ex.state.steps[0].status.value == "pending"  # not moved on
    assert ex.allowed()[0] == "confirm"
    monkeypatch.setattr(store, "save", saving)
    ex.confirm("announced")  # the same step, once the database answers
    assert not_none(store.load(ex.state.id)).current == 1
