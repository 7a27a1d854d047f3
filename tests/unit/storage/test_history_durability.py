"""history.db under faults: a failed first creation, a corrupt file, a read-only data directory, and
retention that covers every table and gives the space back.

A half-made schema completed and retention's coverage run on both backends; the rest is about
SQLite's file (its bytes, its directory, its locks), each test marked with why."""

from __future__ import annotations

import errno
import json
import os
import random
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsdash.core.errors import InputError
from opsdash.core.findings import Report
from opsdash.storage import schema
from opsdash.storage.history import History
from opsdash.storage.schema import SCHEMA_VERSION
from tests.conftest import Project, Run, good_env
from tests.unit.storage.conftest import report, result

FILE = pytest.mark.sqlite_only  # reasons below, where it is used


@pytest.fixture
def data(isolated: Path) -> Path:
    return Path(os.environ["OPSDASH_DATA_DIR"])


def tables(path: Path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    finally:
        conn.close()


# ---------------------------------------------------------------- migrations


@FILE(reason="SQLite's migrations on a file that fills (PostgreSQL's run in one server transaction)")
def test_a_disk_that_fills_during_first_creation_leaves_nothing_half_made(
    run: Run, project: Project, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(_db: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    steps = list(schema.MIGRATIONS)
    monkeypatch.setattr(schema, "MIGRATIONS", [*steps[:4], disk_full, *steps[5:]])  # v1-v4 done, then full
    result_ = run("validate", "--config", project.profile)
    assert result_.code == 3
    assert "disk is full" in result_.err and "history.db" in result_.err and "Traceback" not in result_.err
    assert tables(data / "history.db") == set()  # v1-v4 rolled back with the failed step

    monkeypatch.setattr(schema, "MIGRATIONS", steps)  # space is back
    project.write_env(good_env())
    assert run("validate", "--config", project.profile).code in (0, 1)
    listed = run("history", "list", "--json")
    assert listed.code == 0 and len(json.loads(listed.out)) == 1
    with History.open(data) as history:
        assert history.schema_version == SCHEMA_VERSION


def test_a_database_an_older_opsdash_left_half_made_is_completed(
    data: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Older opsdash committed DDL step by step: runs existed at user_version 0, and every later
    command failed with 'table runs already exists'. On PostgreSQL the same: v1's first two tables
    there and no version recorded (made by hand, or by a tool that stopped part-way)."""
    if backend == "sqlite":
        data.mkdir(parents=True)
        conn = sqlite3.connect(data / "history.db")
        conn.execute(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, kind TEXT, target TEXT, operator TEXT, "
            "started_at TEXT, duration_ms INTEGER, verdict TEXT, counts TEXT, summary TEXT)"
        )
        conn.execute(  # ... and findings; the disk filled before env_keys
            "CREATE TABLE findings (id INTEGER PRIMARY KEY, run_id TEXT, rule TEXT, severity TEXT, "
            "category TEXT, subject TEXT, title TEXT, detail TEXT, remediation TEXT, runbook TEXT, evidence TEXT)"
        )
        conn.commit()
        conn.close()
    else:
        import psycopg

        runs, findings = schema.STEPS[0][:2]
        assert isinstance(runs, schema.Table) and isinstance(findings, schema.Table)
        with psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True) as server:
            for statement in (*runs.postgres(), *findings.postgres()):
                server.execute(statement)
    with History.open(data) as history:
        assert history.schema_version == SCHEMA_VERSION
        history.runs.record(Report("validate", "t", "r1", "2026-11-26T00:00:00+00:00", 1, ()), operator="op")
        assert [r.run_id for r in history.runs.recent()] == ["r1"]


# ---------------------------------------------------------------- corruption


def _fill(data: Path, runs: int = 40) -> None:
    with History.open(data) as history:
        for i in range(runs):
            at = f"2026-11-{1 + i % 28:02d}T07:{i % 60:02d}:00.000+00:00"
            results = [result(f"c{n}", at, failing=n == 3) for n in range(10)]
            history.runs.record(
                report("check", f"202611{i:02d}T0700-{i:06x}", at, results), operator="op", results=results
            )
        history.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


@FILE(reason="damaged bytes in SQLite's file")
def test_random_bytes_in_the_file_are_reported_with_the_file_and_the_recovery(
    run: Run, project: Project, data: Path
) -> None:
    _fill(data)
    path = data / "history.db"
    with History.open(data) as history:  # the daily check last ran two days ago
        history.conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'checked_at'",
            [(datetime.now(UTC) - timedelta(days=2)).isoformat(timespec="seconds")],
        )
        history.conn.commit()
        history.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = path.stat().st_size // 4096
    with path.open("r+b") as handle:
        handle.seek(4096 * (pages // 2))
        handle.write(random.Random(4).randbytes(4096))

    result_ = run("validate", "--config", project.profile)  # the day's first recording command checks
    assert result_.code == 3
    assert "history database is corrupt" in result_.err and str(path) in result_.err
    assert f"mv '{path}' '{path}.corrupt'" in result_.err  # the recovery, ready to paste
    assert "Traceback" not in result_.err and "internal error" not in result_.err

    path.rename(path.with_name("history.db.corrupt"))  # the documented recovery works
    assert run("history", "list").code == 0


@FILE(reason="SQLite's damaged-page error and its recovery")
def test_a_damaged_page_met_mid_query_is_the_same_clear_error(data: Path) -> None:
    _fill(data, runs=2)
    with pytest.raises(InputError, match="history database is corrupt"), History.open(data):
        raise sqlite3.DatabaseError("database disk image is malformed")


@FILE(reason="damaged bytes in SQLite's file")
def test_a_header_of_random_bytes_is_reported_on_open(run: Run, data: Path) -> None:
    _fill(data, runs=2)
    path = data / "history.db"
    with path.open("r+b") as handle:
        handle.write(random.Random(5).randbytes(4096))
    result_ = run("history", "show", "latest")
    assert result_.code == 3 and "corrupt" in result_.err and str(path) in result_.err


# ---------------------------------------------------------------- read-only data directory


@pytest.fixture
def read_only(data: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory opsdash may not write (as root, chmod would not stop it: the refusal the
    kernel gives is injected where opsdash meets it)."""
    _fill(data, runs=3)

    def refuse(path: Path, _flags: int) -> int:
        raise PermissionError(errno.EROFS, "Read-only file system", str(path))

    real_access = os.access
    monkeypatch.setattr("opsdash.storage.history.open_private", refuse)
    monkeypatch.setattr(
        "opsdash.storage.history.os.access",
        lambda p, mode: False if mode == os.W_OK and str(p).startswith(str(data)) else real_access(p, mode),
    )
    return data


@FILE(reason="a read-only data directory holding SQLite's file")
def test_read_commands_work_in_a_read_only_data_dir(run: Run, read_only: Path) -> None:
    before = (read_only / "history.db").read_bytes()
    listed = run("history", "list", "--json")
    assert listed.code == 0, listed.err
    runs = [r["run_id"] for r in json.loads(listed.out)]
    assert len(runs) == 3
    shown = run("history", "show", "latest", "--json")
    assert shown.code == 0 and len(json.loads(shown.out)["summary"]["checks"]) == 10
    assert run("history", "diff", runs[1], runs[0]).code in (0, 1)
    assert (read_only / "history.db").read_bytes() == before


@FILE(reason="a read-only data directory holding SQLite's file")
def test_recording_in_a_read_only_data_dir_says_so(run: Run, project: Project, read_only: Path) -> None:
    result_ = run("validate", "--config", project.profile)
    assert result_.code == 3
    assert "read-only" in result_.err and str(read_only) in result_.err and "--no-history" in result_.err
    assert "Traceback" not in result_.err


@FILE(reason="a chmod read-only data directory holding SQLite's file")
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod; the injected variant runs")
def test_read_commands_work_in_a_chmod_read_only_data_dir(run: Run, data: Path) -> None:
    _fill(data, runs=2)
    data.chmod(0o500)
    try:
        assert run("history", "list").code == 0
    finally:
        data.chmod(0o700)


@FILE(reason="a data directory with no file yet")
def test_no_history_yet_in_a_missing_data_dir_is_an_empty_list(run: Run, data: Path) -> None:
    result_ = run("history", "list")
    assert result_.code == 0 and "no runs in history yet" in result_.out
    assert not data.exists()  # reading created nothing


# ---------------------------------------------------------------- retention


def _age(history: History, old: str, old_ts: float, new: str, new_ts: float) -> None:
    """One old and one new row in every table retention covers."""
    conn = history.conn
    for at, ts, tag in ((old, old_ts, "old"), (new, new_ts, "new")):
        results = [result(f"c{n}-{tag}", at) for n in range(30)]
        history.runs.record(report("check", f"run-{tag}", at, results), operator="op", results=results)
        history.anchors.record(f"run-{tag}", "log1", 1, "mac")
        conn.execute("UPDATE audit_anchors SET recorded_at = ? WHERE run_id = ?", [at, f"run-{tag}"])
        alert = history.alerts.record("r", tag, "CRIT", "t", "d", ts)
        assert alert is not None
        history.alerts.mark(alert, status="resolved", resolved_at=ts)
        history.alerts.record_delivery(alert, "ops", "firing", True, 1, "", ts)
        history.webhooks.record_failure(f"src-{tag}", "bad", ts)
        for status in ("completed", "active"):
            sid = f"s-{tag}-{status}"
            conn.execute(
                "INSERT INTO runbook_sessions (id, runbook_id, runbook_path, title, params, operator, status, "
                "current_step, started_at, updated_at) VALUES (?, 'rb', 'p', 't', '{}', 'op', ?, 0, ?, ?)",
                [sid, status, at, at],
            )
            conn.execute(
                "INSERT INTO runbook_steps (session_id, step_index, status) VALUES (?, 0, 'done')", [sid]
            )
            conn.execute("INSERT INTO runbook_events (session_id, at, event) VALUES (?, ?, 'x')", [sid, at])
            conn.execute(
                "INSERT INTO runs (run_id, kind, target, operator, started_at, duration_ms, verdict, counts, "
                "summary) VALUES (?, 'runbook', 'rb', 'op', ?, 0, 'OK', '{}', '{}')",
                [sid, at],
            )
        conn.commit()
    firing = history.alerts.record("r", "still-firing", "CRIT", "t", "d", old_ts)
    assert firing


def count(history: History, table: str, where: str = "1=1") -> int:
    return int(history.conn.execute(f"SELECT COUNT(*) FROM {table} WHERE {where}").fetchone()[0])


def test_retention_covers_every_table_and_gives_the_space_back(data: Path, backend: str) -> None:
    """Every table on both backends; the space given back is SQLite's file (PostgreSQL's
    autovacuum reuses it)."""
    sqlite = backend == "sqlite"
    now = datetime(2026, 11, 26, tzinfo=UTC)
    old, new = now - timedelta(days=200), now - timedelta(days=1)
    outputs = data / "runbook-output"
    outputs.mkdir(parents=True)
    (outputs / "s-old-completed-0.out").write_text("old output")
    (outputs / "s-new-completed-0.out").write_text("new output")
    with History.open(data) as history:
        iso = "milliseconds"
        _age(
            history,
            old.isoformat(timespec=iso),
            old.timestamp(),
            new.isoformat(timespec=iso),
            new.timestamp(),
        )
        if sqlite:
            history.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            size = (data / "history.db").stat().st_size

        assert history.purge(90, now=now) == 2  # the old check run and the old ended session
        if sqlite:
            history.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        runs = {r.run_id for r in history.runs.recent(limit=100)}
        assert runs == {
            "run-new",
            "s-new-completed",
            "s-new-active",
            "s-old-active",
        }  # an active session stays
        assert count(history, "findings") == 0 and count(history, "env_keys") == 0
        assert count(history, "check_results", "check_name LIKE '%old'") == 0
        assert count(history, "check_results", "check_name LIKE '%new'") == 30
        assert count(history, "shared_facts") == 1  # one body: the new rows still use it
        assert {r[0] for r in history.conn.execute("SELECT key FROM alerts")} == {"new", "still-firing"}
        assert count(history, "alert_deliveries") == 1
        assert [r[0] for r in history.conn.execute("SELECT source FROM webhook_failures")] == ["src-new"]
        assert {r[0] for r in history.conn.execute("SELECT id FROM runbook_sessions")} == {
            "s-new-completed",
            "s-new-active",
            "s-old-active",
        }
        assert count(history, "runbook_steps") == 3 and count(history, "runbook_events") == 3
        assert count(history, "audit_anchors") == 1  # the log's newest anchor is kept
        if sqlite:
            assert history.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    if sqlite:
        assert (data / "history.db").stat().st_size < size
    assert sorted(p.name for p in outputs.iterdir()) == ["s-new-completed-0.out"]


def test_shared_facts_no_row_uses_any_more_are_dropped(data: Path) -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    old = (now - timedelta(days=200)).isoformat(timespec="milliseconds")
    new = (now - timedelta(days=1)).isoformat(timespec="milliseconds")
    with History.open(data) as history:
        history.runs.record(report("check", "old", old, []), operator="op", results=[result("a", old)])
        changed = result("a", new)
        changed = changed.__class__(
            **{**changed.__dict__, "facts": {**changed.facts, "cert_subject": "CN=renewed"}}
        )
        history.runs.record(report("check", "new", new, []), operator="op", results=[changed])
        assert count(history, "shared_facts") == 2
        history.purge(90, now=now)
        assert count(history, "shared_facts") == 1
        assert history.checks.latest(["a"])[0].as_result()["facts"]["cert_subject"] == "CN=renewed"


@FILE(reason="SQLite's auto_vacuum mode")
def test_an_old_database_without_auto_vacuum_is_converted(data: Path) -> None:
    data.mkdir(parents=True)
    conn = sqlite3.connect(data / "history.db")  # as an older opsdash made it: auto_vacuum off
    conn.execute("CREATE TABLE x (y)")
    conn.execute("DROP TABLE x")
    conn.close()
    with History.open(data) as history:
        assert history.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        history.purge(90)
        assert history.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on


@FILE(reason="SQLite's auto_vacuum mode and free pages")
def test_history_compact_converts_a_large_old_database(run: Run, data: Path) -> None:
    data.mkdir(parents=True)
    conn = sqlite3.connect(data / "history.db")  # auto_vacuum off, with pages to give back
    conn.execute("CREATE TABLE filler (x)")
    conn.executemany("INSERT INTO filler VALUES (?)", [("x" * 1000,)] * 2000)
    conn.commit()
    conn.execute("DROP TABLE filler")
    conn.commit()
    conn.close()
    result_ = run("history", "compact")
    assert result_.code == 0 and "MiB given back" in result_.out
    conn = sqlite3.connect(data / "history.db")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
    conn.close()


# ---------------------------------------------------------------- several processes


def _another_process_thinks_it_is_alone(db: Path) -> bool:
    """Whether a second process may take the database out of WAL mode, which SQLite allows only to
    a connection that finds no other connection's lock on the file (the same test that makes the
    last connection to close check-point and delete the WAL)."""
    probe = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1], timeout=0)\n"
        "try:\n"
        "    print(conn.execute('PRAGMA journal_mode = DELETE').fetchone()[0])\n"
        "except sqlite3.OperationalError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(db)], capture_output=True, text=True, timeout=60)
    return out.stdout.strip() == "delete"


@FILE(reason="SQLite's POSIX locks on its file")
def test_opening_history_again_keeps_this_process_s_locks(data: Path) -> None:
    """Closing any descriptor of a database file drops every POSIX lock the process holds on it:
    a second History opened in the same process (the dashboard opens several) must not, or another
    process believes itself alone and deletes the WAL under this one (the corruption testers saw)."""
    with History.open(data) as first:
        assert first.runs.recent() == []  # this connection has read: it holds its lock on the file
        assert not _another_process_thinks_it_is_alone(data / "history.db")
        with History.open(data, write=False), History.open(data):  # a reader and a writer open too
            pass
        assert not _another_process_thinks_it_is_alone(data / "history.db"), "the lock was dropped"
        assert first.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@FILE(reason="SQLite's file's mode and links")
def test_the_database_file_is_born_private_and_never_through_a_link(data: Path, tmp_path: Path) -> None:
    with History.open(data):
        pass
    assert (data / "history.db").stat().st_mode & 0o777 == 0o600
    assert not [p.name for p in data.iterdir() if p.name.endswith(".new")]  # no temporary left behind
    elsewhere = tmp_path / "elsewhere.db"
    other = tmp_path / "other-data"
    other.mkdir()
    (other / "history.db").symlink_to(elsewhere)
    with pytest.raises(InputError, match="symbolic link"):
        History.open(other)
    assert not elsewhere.exists()


@FILE(
    reason="scripts/torture.py on one data directory's file; two hosts on PostgreSQL: tests/unit/cli/test_team.py"
)
def test_torture_short_run_keeps_the_record_whole() -> None:
    """scripts/torture.py in brief: serves, a dashboard, CLI loops and SIGKILLs on one data
    directory; the record must be whole and every finished command's rows present after each round
    (make torture, or the script with --rounds 200, is the long version)."""
    script = Path(__file__).resolve().parents[3] / "scripts" / "torture.py"
    out = subprocess.run(
        [sys.executable, str(script), "--rounds", "2", "--seconds", "3", "--kills", "2", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0 and "2 rounds" in out.stdout and "0 rounds failed" in out.stdout, (
        out.stdout[-3000:] + out.stderr[-2000:]
    )
