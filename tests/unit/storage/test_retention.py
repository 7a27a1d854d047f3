"""Retention in batches: the same rows go as in one transaction, a batch is bounded and always moves
on, the space goes back in steps, and other processes keep writing while it runs (or dies).

On both backends (tests/unit/storage/conftest.py): on PostgreSQL each data directory a test uses
is a schema of its own (the year, and the reference purged in one transaction), and the child
processes are given its URL. Only the space given back in steps is SQLite's file alone."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.findings import Report
from opsdash.storage import retention
from opsdash.storage.history import History
from tests import retention_data
from tests.pg import PgServer
from tests.retention_data import DAYS, TABLES, fill_year, one_transaction_purge
from tests.waits import read_line

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def databases(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[Path, str]]:
    """On PostgreSQL: each data directory its own schema (the first one the test's own, the one
    OPSDASH_DATABASE_URL names), so a reference purged in one transaction is apart from the year."""
    urls: dict[Path, str] = {}
    if backend != "postgresql":
        yield urls
        return
    server: PgServer = request.getfixturevalue("pg_server")
    first: str = request.getfixturevalue("pg_url")
    opened = History.open.__func__  # type: ignore[attr-defined]  # the backend fixture's

    def url_of(data_dir: Path) -> str:
        key = data_dir.resolve()
        if key not in urls:
            urls[key] = server.database_url() if urls else first
        return urls[key]

    def open_own(cls: type[History], data_dir: Path, /, **kwargs: Any) -> History:
        return opened(cls, data_dir, **{**kwargs, "database": kwargs.get("database") or url_of(data_dir)})  # type: ignore[no-any-return]

    monkeypatch.setattr(History, "open", classmethod(open_own))
    yield urls
    for url in urls.values():
        if url != first:
            server.drop(url)


def database(data: Path, urls: dict[Path, str]) -> str:
    """What a child process passes to History.open: the data directory's schema ("" on SQLite)."""
    if not urls:
        return ""
    History.open(data).close()  # made (and its schema mapped) if it was not yet
    return urls[data.resolve()]


def dump(data: Path) -> dict[str, Any]:
    """Every row of every table retention touches, and the runbook output files."""
    with History.open(data, write=False) as history:
        if history.dialect == "sqlite":
            return retention_data.dump(data)  # the file read as it is
        tables = {t: sorted(map(repr, history.conn.execute(f"SELECT * FROM {t}"))) for t in TABLES}
    folder = data / "runbook-output"
    return {**tables, "runbook-output": sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []}


def count(data: Path, table: str, where: str = "1=1", args: tuple[Any, ...] = ()) -> int:
    with History.open(data, write=False) as history:
        return int(
            history.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}", list(args)).fetchone()[0]
        )


def old_runs(data: Path, now: datetime) -> int:
    """Runs older than the window that retention will take (an active session's run stays)."""
    cutoff = (now - timedelta(days=DAYS)).isoformat(timespec="seconds")
    return count(
        data,
        "runs",
        "started_at < ? AND run_id NOT IN (SELECT id FROM runbook_sessions WHERE status = 'active')",
        (cutoff,),
    )


def copy_data(source: Path, into: Path) -> Path:
    """A second data directory holding the same year: the file copied on SQLite; on PostgreSQL
    the same year filled again into a schema of its own (fill_year is deterministic)."""
    with History.open(source, write=False) as history:
        sqlite = history.dialect == "sqlite"
    if sqlite:
        return retention_data.copy_data(source, into)
    fill_year(into, NOW)
    return into


def assert_whole(data: Path) -> None:
    """SQLite's own check of the file (PostgreSQL checks its pages itself: nothing to ask)."""
    with History.open(data) as history:
        if history.dialect == "sqlite":
            assert [r[0] for r in history.conn.execute("PRAGMA integrity_check")] == ["ok"]


@pytest.fixture
def year(tmp_path: Path) -> Path:
    data = tmp_path / "year"
    fill_year(data, NOW)
    return data


def test_batches_leave_exactly_what_one_transaction_left(year: Path, tmp_path: Path) -> None:
    reference = copy_data(year, tmp_path / "reference")
    with History.open(reference) as history:
        expected_gone = one_transaction_purge(history, DAYS, NOW)
    batches: list[retention.Batch] = []
    with History.open(year) as history:
        gone = history.purge(DAYS, NOW, runs=7, on_batch=batches.append)
    assert gone == expected_gone > 150
    assert dump(year) == dump(reference)
    assert len(batches) > gone // 8  # in many small transactions, not one
    assert [b.done for b in batches] == [False] * (len(batches) - 1) + [True]
    # what is kept whatever its age is there: the active sessions (and their runs), the firing
    # alerts, each log's newest anchor, the new half of everything
    kept = dump(year)
    assert any("s-old-active" in row for row in kept["runs"])
    assert any("firing-old" in row for row in kept["alerts"])
    assert count(year, "audit_anchors") >= 2 and count(year, "audit_anchors", "log_id = 'log-b'") >= 1
    assert "s-old-active-0.out" in kept["runbook-output"]
    assert "s-old-completed-0.out" not in kept["runbook-output"]


def test_a_batch_takes_the_oldest_runs_and_at_most_its_share(year: Path) -> None:
    cutoff = (NOW - timedelta(days=DAYS)).isoformat(timespec="seconds")
    before = old_runs(year, NOW)
    with History.open(year) as history:
        oldest = [
            r[0] for r in history.conn.execute("SELECT run_id FROM runs ORDER BY started_at, run_id LIMIT 12")
        ]
        batch = history.purge_batch(DAYS, NOW, runs=10)
        left = {r[0] for r in history.conn.execute("SELECT run_id FROM runs")}
    assert not batch.done
    assert 10 <= batch.runs <= 11  # ten, and the one that started with the tenth (a tie)
    assert before - old_runs(year, NOW) == batch.runs
    assert not left & set(oldest[: batch.runs])  # the oldest went first
    # the watch's one check has a result every 6 hours: a batch takes at most 50 of them
    assert count(year, "check_results", "check_name = 'watch-probe' AND started_at < ?", (cutoff,)) > 0


def test_a_tie_larger_than_a_batch_still_moves_on(tmp_path: Path) -> None:
    at = (NOW - timedelta(days=200)).isoformat(timespec="seconds")
    with History.open(tmp_path) as history:
        with history.writing():
            for n in range(30):  # thirty runs that started in the same second
                history.runs.record(Report("validate", "t", f"r{n:02d}", at, 1, ()), operator="op")
        batch = history.purge_batch(DAYS, NOW, runs=10)
        assert batch.runs == 30
        assert history.purge_batch(DAYS, NOW, runs=10).done


def test_a_flood_of_webhook_failures_goes_in_bounded_batches(tmp_path: Path) -> None:
    old = (NOW - timedelta(days=200)).timestamp()
    with History.open(tmp_path) as history:
        with history.writing():
            history.conn.executemany(
                "INSERT INTO webhook_failures (source, at, outcome) VALUES ('flood', ?, 'bad')",
                [(old + n,) for n in range(25)],
            )
        sizes = []
        while True:
            before = count(tmp_path, "webhook_failures")
            batch = retention.purge_batch(history, DAYS, NOW, rows=10)
            sizes.append(before - count(tmp_path, "webhook_failures"))
            if batch.done:
                break
    assert sizes == [10, 10, 5]


@pytest.mark.sqlite_only(
    reason="SQLite's free pages given back to the file; PostgreSQL's autovacuum reuses them"
)
def test_the_space_goes_back_in_steps(year: Path) -> None:
    with History.open(year) as history:
        while not history.purge_batch(DAYS, NOW).done:
            pass
        free = [int(history.conn.execute("PRAGMA freelist_count").fetchone()[0])]
        assert free[0] > 40
        while free[-1]:
            free.append(history.vacuum_step(pages=16).left)
        assert all(a - b <= 16 for a, b in itertools.pairwise(free))
        assert len(free) > 3  # several steps, each its own short transaction


# ---------------------------------------------------------------- other processes meanwhile

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from opsdash.core.findings import Report
    from opsdash.storage.history import History
    from tests.unit.storage.conftest import result

    data, stop, database = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] or None
    n = 0
    with History.open(data, database=database) as history:
        while not stop.exists():
            at = datetime.now(UTC).isoformat(timespec="milliseconds")
            results = [result(f"w{c}", at) for c in range(5)]
            history.runs.record(Report("check", "t", f"writer-{n:05d}", at, 1, ()), operator="w", results=results)
            n += 1
            if n == 1:
                print("writing", flush=True)
    print(n, flush=True)
    """
)


def test_a_process_recording_meanwhile_loses_nothing_and_never_waits_long(
    year: Path, tmp_path: Path, databases: dict[Path, str]
) -> None:
    reference = copy_data(year, tmp_path / "reference")
    stop = tmp_path / "stop-writing"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(year), str(stop), database(year, databases)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        assert read_line(writer.stdout) == "writing\n"
        batches: list[retention.Batch] = []
        with History.open(year) as history:
            history.purge(DAYS, NOW, runs=5, on_batch=batches.append)
        stop.touch()
        written = int(read_line(writer.stdout))
        assert writer.wait(60) == 0
        errors = writer.stderr.read() if writer.stderr else ""
    finally:
        writer.kill()
        writer.wait()
    assert "locked" not in errors and "Traceback" not in errors, errors
    assert count(year, "runs", "run_id LIKE 'writer-%'") == written
    assert count(year, "check_results", "run_id LIKE 'writer-%'") == written * 5
    with History.open(reference) as history:
        one_transaction_purge(history, DAYS, NOW)
    mine, theirs = dump(year), dump(reference)
    for table in ("runs", "check_results"):  # all but the writer's rows
        mine[table] = [row for row in mine[table] if "writer-" not in row]
    mine["shared_facts"] = theirs["shared_facts"] = []  # the writer's rows share facts bodies too
    assert mine == theirs


PURGER = textwrap.dedent(
    """
    import sys
    from datetime import datetime
    from pathlib import Path
    from opsdash.storage.history import History

    with History.open(Path(sys.argv[1]), database=sys.argv[3] or None) as history:
        history.purge(90, datetime.fromisoformat(sys.argv[2]), runs=1, on_batch=lambda b: print(b.runs, flush=True))
    """
)


def test_a_purge_killed_mid_batch_loses_nothing_to_keep_and_a_restart_finishes(
    year: Path, tmp_path: Path, databases: dict[Path, str]
) -> None:
    reference = copy_data(year, tmp_path / "reference")
    with History.open(reference) as history:
        one_transaction_purge(history, DAYS, NOW)
    kept = dump(reference)
    before = old_runs(year, NOW)
    purger = subprocess.Popen(
        [sys.executable, "-c", PURGER, str(year), NOW.isoformat(), database(year, databases)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    try:
        for _ in range(5):  # a few batches committed, the next one under way
            read_line(purger.stdout)
        os.kill(purger.pid, signal.SIGKILL)
    finally:
        purger.wait()
    assert purger.returncode == -signal.SIGKILL
    now_left = old_runs(year, NOW)
    assert 0 < now_left < before  # killed part-way
    assert_whole(year)
    current = dump(year)
    for table, rows in kept.items():  # everything the purge keeps is still there
        assert set(rows) <= set(current[table]), table
    with History.open(year) as history:
        history.purge(DAYS, NOW)
    assert dump(year) == kept


def test_a_batch_that_cannot_get_the_lock_says_so_and_loses_nothing(year: Path, backend: str) -> None:
    """Busy past the timeout (another process holding the write lock): an InputError naming the
    database, never a raw driver error that would end the background purge's thread with a
    traceback; the batch rolled back whole and the next one, once the lock is free, goes on."""
    from opsdash.core.errors import InputError

    before = old_runs(year, NOW)
    with History.open(year) as holder, History.open(year) as history:
        if backend == "sqlite":
            history.conn.execute("PRAGMA busy_timeout = 50")
            holder.conn.execute("BEGIN IMMEDIATE")
            busy = r"history\.db: the history database is busy"
        else:  # the write lock is an advisory lock: lock_timeout bounds the wait for it
            history.conn.execute("SET lock_timeout = '50ms'")
            holder.conn.begin_writing()  # type: ignore[attr-defined]
            busy = r"database postgresql://opsdash:•••• \(.*\)@127\.0\.0\.1:\d+/.*: the database is busy"
        with pytest.raises(InputError, match=busy):
            history.purge_batch(DAYS, NOW)
        holder.conn.rollback()
        assert old_runs(year, NOW) == before
        assert history.purge_batch(DAYS, NOW).runs > 0


PURGER_ON_CUE = PURGER.replace("with History.open", "input()  # both start together\nwith History.open")


def test_two_processes_purging_at_once_leave_what_one_transaction_left(
    year: Path, tmp_path: Path, databases: dict[Path, str]
) -> None:
    """The dashboard, serve and `check --watch` each purge in the background: two on one data
    directory interleave their batches, never delete what the other must keep, and together end
    where one purge would."""
    reference = copy_data(year, tmp_path / "reference")
    with History.open(reference) as history:
        one_transaction_purge(history, DAYS, NOW)
    purgers = [
        subprocess.Popen(
            [sys.executable, "-c", PURGER_ON_CUE, str(year), NOW.isoformat(), database(year, databases)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[3],
        )
        for _ in range(2)
    ]
    for purger in purgers:  # both cued before either is waited for
        assert purger.stdin is not None
        purger.stdin.write("go\n")
        purger.stdin.close()
    outs = [purger.stdout.read() if purger.stdout else "" for purger in purgers]
    for purger in purgers:
        purger.wait(120)
    assert [purger.returncode for purger in purgers] == [0, 0]
    shares = [sum(int(n) for n in out.split()) for out in outs]
    assert sum(shares) > 0
    assert_whole(year)
    assert old_runs(year, NOW) == 0
    assert dump(year) == dump(reference)
