"""Retention never delays a verdict: a recording command purges one small batch after its run is
recorded; a long-running process purges in the background, woken by its recordings, and stops
between two batches."""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsdash.ops import retention
from opsdash.ops.base import Ops
from opsdash.storage.history import History
from opsdash.storage.retention import BATCH_RUNS
from tests.conftest import Project, Run
from tests.retention_data import DAYS, copy_data, count, dump, fill_year, old_runs, one_transaction_purge
from tests.waits import wait_until


@pytest.fixture
def data(isolated: Path) -> Path:
    return Path(os.environ["OPSDASH_DATA_DIR"])


@pytest.fixture
def year(data: Path) -> Path:
    fill_year(data, datetime.now(UTC))
    return data


def expected(year: Path, into: Path) -> dict[str, list[str]]:
    """What one transaction at the cutoff leaves of this year (on a copy)."""
    reference = copy_data(year, into)
    with History.open(reference) as history:
        one_transaction_purge(history, DAYS, datetime.now(UTC))
    return dump(reference)


def test_validate_on_a_year_old_history_purges_one_batch_after_its_verdict(
    run: Run, project: Project, year: Path
) -> None:
    before = old_runs(year, datetime.now(UTC))
    assert before > 3 * BATCH_RUNS
    first = run("validate", "--config", project.profile)
    assert first.code == 0 and first.out.startswith("OK  BetaSkill"), first.err
    after_first = old_runs(year, datetime.now(UTC))
    assert BATCH_RUNS <= before - after_first <= BATCH_RUNS + 1  # one batch (and a run tied with its last)
    assert count(year, "runs", "kind = 'validate'") == 1  # its own run is recorded
    second = run("validate", "--config", project.profile)
    assert second.code == 0
    assert BATCH_RUNS <= after_first - old_runs(year, datetime.now(UTC)) <= BATCH_RUNS + 1  # the next one


def test_the_background_purge_finishes_what_one_transaction_did(year: Path, tmp_path: Path) -> None:
    kept = expected(year, tmp_path / "reference")
    purge = retention.Background(Ops.bare(data_dir=year), wait_for_recording=False).start()
    try:
        assert purge.caught_up.wait(60), "the background purge never caught up"
    finally:
        purge.stop()
    assert not purge._thread or not purge._thread.is_alive()
    assert purge.batches > 3  # 180 runs, 50 at a time
    assert dump(year) == kept


def test_a_recording_in_the_same_process_wakes_it_instead_of_purging_itself(
    year: Path, tmp_path: Path
) -> None:
    kept = expected(year, tmp_path / "reference")
    ops = Ops.bare(data_dir=year)
    purge = retention.Background(ops)  # waits for the first recording
    before = old_runs(year, datetime.now(UTC))
    thread = threading.Thread(target=purge.run)
    thread.start()
    try:
        with ops.history() as history:
            assert retention.step(ops, history) == 0  # it woke the background purge, purged nothing
        assert purge.caught_up.wait(60)
    finally:
        purge.stop()
        thread.join(60)
    assert before > 0 and dump(year) == kept
    with ops.history() as history:  # stopped: it no longer stands in for a command's own batch
        assert retention.step(ops, history) == 0  # nothing left to purge
    assert retention._running == {}


def test_stopping_mid_purge_waits_for_one_batch_and_a_restart_finishes(year: Path, tmp_path: Path) -> None:
    kept = expected(year, tmp_path / "reference")
    before = old_runs(year, datetime.now(UTC))
    purge = retention.Background(Ops.bare(data_dir=year), runs=1, wait_for_recording=False).start()
    try:
        wait_until(lambda: purge.purged >= 3, "a few batches")
    finally:
        purge.stop()
    assert purge._thread is not None and not purge._thread.is_alive()
    assert 0 < before - old_runs(year, datetime.now(UTC)) < before  # part-way
    assert not purge.caught_up.is_set()
    with History.open(year) as history:
        assert [r[0] for r in history.conn.execute("PRAGMA integrity_check")] == ["ok"]
    current = dump(year)
    assert all(set(rows) <= set(current[table]) for table, rows in kept.items())  # nothing kept went
    again = retention.Background(Ops.bare(data_dir=year), wait_for_recording=False).start()
    try:
        assert again.caught_up.wait(60)
    finally:
        again.stop()
    assert dump(year) == kept


def test_a_stop_before_anything_was_recorded_ends_at_once(data: Path) -> None:
    purge = retention.Background(Ops.bare(data_dir=data)).start()
    purge.stop(timeout=60)
    assert purge._thread is not None and not purge._thread.is_alive()
    assert purge.batches == 0 and not (data / "history.db").exists()


def test_an_unusable_history_is_reported_and_retried_not_raised(data: Path) -> None:
    data.mkdir(parents=True)
    (data / "history.db").write_bytes(b"this is not a database" * 200)
    problems: list[str] = []
    purge = retention.Background(
        Ops.bare(data_dir=data), wait_for_recording=False, on_problem=problems.append
    )
    purge.start()
    try:
        wait_until(lambda: problems, "the problem is reported")
        assert purge._thread is not None and purge._thread.is_alive()  # still there for the next try
    finally:
        purge.stop()
    assert "history retention paused" in problems[0] and "corrupt" in problems[0]
    assert str(data / "history.db") in problems[0]


def test_history_purge_catches_up_at_once(run: Run, year: Path, tmp_path: Path) -> None:
    kept = expected(year, tmp_path / "reference")
    due = old_runs(year, datetime.now(UTC))
    result = run("history", "purge")
    assert result.code == 0, result.err
    batches = -(-due // BATCH_RUNS)
    assert f"history purged: {due:,} runs older than {DAYS} days in " in result.out
    assert int(result.out.split(" in ")[1].split()[0]) >= batches  # in batches, not one transaction
    assert dump(year) == kept
    again = run("history", "purge")
    assert again.code == 0 and "history purged: 0 runs" in again.out


def test_history_purge_on_a_corrupt_history_says_so(run: Run, data: Path) -> None:
    data.mkdir(parents=True)
    (data / "history.db").write_bytes(b"this is not a database" * 200)
    result = run("history", "purge")
    assert result.code == 3
    assert "history database is corrupt" in result.err and "Traceback" not in result.err
