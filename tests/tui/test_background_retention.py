"""The dashboard on a history whose retention window passed long ago: the verdict comes first, the
purge runs behind it in batches, and quitting stops it between two batches."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsdash.ops import retention
from opsdash.storage.history import History
from opsdash.tui.app import OpsdashApp
from tests.conftest import Project
from tests.retention_data import (
    DAYS,
    assert_purged_as_one_transaction,
    copy_data,
    dump,
    fill_year,
    old_runs,
    one_transaction_purge,
)
from tests.tui.conftest import SIZE, until
from tests.waits import wait_until


@pytest.fixture
def year(isolated: Path, tmp_path: Path) -> tuple[Path, dict[str, list[str]], dict[str, list[str]]]:
    """The data directory with a year in it, what it holds, and what one transaction would keep."""
    data = Path(os.environ["OPSDASH_DATA_DIR"])
    fill_year(data, datetime.now(UTC))
    reference = copy_data(data, tmp_path / "reference")
    with History.open(reference) as history:
        one_transaction_purge(history, DAYS, datetime.now(UTC))
    return data, dump(data), dump(reference)


async def test_the_verdict_comes_first_and_the_year_goes_behind_it(
    project: Project, year: tuple[Path, dict[str, list[str]], dict[str, list[str]]]
) -> None:
    data, original, kept = year
    app = OpsdashApp.on_profile(project.profile)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.ctx.picture.validated and "NO-GO" in app.sub_title)  # old alerts fire
        await until(pilot, lambda: old_runs(data, datetime.now(UTC)) == 0)
    wait_until(lambda: retention._running == {}, "the purge's worker ended with the dashboard")
    assert_purged_as_one_transaction(original, kept, dump(data))


async def test_quitting_mid_purge_stops_between_two_batches(
    project: Project,
    year: tuple[Path, dict[str, list[str]], dict[str, list[str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data, _original, kept = year
    before = old_runs(data, datetime.now(UTC))
    monkeypatch.setattr(retention, "MIN_PAUSE", 30.0)  # one batch, then a long pause: quit in it
    app = OpsdashApp.on_profile(project.profile)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: old_runs(data, datetime.now(UTC)) < before)
        await pilot.press("q")
    wait_until(lambda: retention._running == {}, "the purge's worker ended with the dashboard")
    assert 0 < old_runs(data, datetime.now(UTC)) < before  # it stopped part-way
    with History.open(data) as history:
        assert [r[0] for r in history.conn.execute("PRAGMA integrity_check")] == ["ok"]
    current = dump(data)
    assert all(set(rows) <= set(current[table]) for table, rows in kept.items() if table != "shared_facts")
