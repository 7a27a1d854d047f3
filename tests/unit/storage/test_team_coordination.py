"""Coordination through the database, raced by real processes: one incident per alert key, one
claim per notice and per Alertmanager re-post, one acceptance per webhook delivery id, and stale
evidence that does not re-open an incident another process resolved. Each test runs on SQLite
(processes on one file) and, where the PostgreSQL server binaries are installed, on one PostgreSQL
database (tests/unit/storage/conftest.py; the processes stand in for hosts: READ COMMITTED, where a
look-then-insert is not safe by itself)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.alerts import INCIDENT_RULES
from opsdash.storage.history import History

RACERS = 6


def open_history(where: str) -> History:
    """The record: the data directory `where` (SQLite), or the test's PostgreSQL database (the
    storage tests' `backend` fixture sets OPSDASH_DATABASE_URL, which spawned racers inherit)."""
    return History.open(Path(where), database=os.environ.get("OPSDASH_DATABASE_URL"))


@pytest.fixture
def where(tmp_path: Path) -> str:
    location = str(tmp_path / "data")
    open_history(location).close()  # created and migrated once: the racers only write
    return location


def _racer(where: str, task: str, barrier: Any, results: Any, arg: Any) -> None:
    with open_history(where) as history:
        barrier.wait(60)
        results.put(TASKS[task](history, arg))


def _open_incident(history: History, key: str) -> Any:
    return history.alerts.record(
        "check-critical", key, "CRIT", f"{key} is failing", "HTTP 503", 1000.0, unless_open=INCIDENT_RULES
    )


def _claim_reminder(history: History, alert_id: int) -> Any:
    return history.alerts.claim(alert_id, 1000.0, last_sent_at=2000.0)


def _claim_resolve(history: History, alert_id: int) -> Any:
    return history.alerts.claim(alert_id, 1000.0, status="resolved", resolved_at=2000.0)


def _claim_refresh(history: History, alert_id: int) -> Any:
    return history.alerts.claim_refresh(alert_id, 2000.0, 60.0)


def _replay(history: History, delivery: str) -> Any:
    return history.webhooks.seen("standard", delivery, 300.0, 5000.0)


TASKS: dict[str, Callable[[History, Any], Any]] = {
    "open": _open_incident,
    "remind": _claim_reminder,
    "resolve": _claim_resolve,
    "refresh": _claim_refresh,
    "replay": _replay,
}


def race(where: str, task: str, arg: Any) -> list[Any]:
    """RACERS processes do `task` at the same moment; what each got."""
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(RACERS), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(where, task, barrier, results, arg)) for _ in range(RACERS)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    return [results.get(timeout=60) for _ in procs]


def test_one_incident_per_key_whoever_sees_it(where: str) -> None:
    for key in ("flaky", "api"):
        opened = [r for r in race(where, "open", key) if r is not None]
        assert len(opened) == 1, opened
    with open_history(where) as history:
        assert sorted(a.key for a in history.alerts.firing()) == ["api", "flaky"]


@pytest.mark.parametrize("task", ["remind", "resolve", "refresh"])
def test_each_notice_is_claimed_by_exactly_one_process(where: str, task: str) -> None:
    with open_history(where) as history:
        alert_id = _open_incident(history, "flaky")
        history.alerts.mark(alert_id, last_sent_at=1000.0)
    assert sorted(race(where, task, alert_id)) == [False] * (RACERS - 1) + [True]
    with open_history(where) as history:
        row = history.alerts.get(alert_id)
    if task == "resolve":
        assert (row.status, row.resolved_at) == ("resolved", 2000.0)
    elif task == "refresh":
        assert row.posted_at == 2000.0 and row.last_sent_at == 1000.0


def test_a_replayed_delivery_is_accepted_by_exactly_one_process(where: str) -> None:
    outcomes = race(where, "replay", "msg_42")
    assert sorted(outcomes) == [False] + [True] * (RACERS - 1)  # one first sight, the rest replays


def test_evidence_older_than_a_resolve_does_not_reopen_the_incident(where: str) -> None:
    with open_history(where) as history:
        alert_id = _open_incident(history, "flaky")
        history.alerts.mark(alert_id, last_sent_at=1000.0)
        assert history.alerts.claim(alert_id, 1000.0, status="resolved", resolved_at=1500.0)
        alerts, rules = history.alerts, INCIDENT_RULES
        assert (
            alerts.record(
                "check-critical", "flaky", "CRIT", "t", "d", 1501.0, unless_open=rules, observed_at=1499.0
            )
            is None
        )
        # a failure seen after the resolve is a new incident
        assert alerts.record(
            "check-critical", "flaky", "CRIT", "t", "d", 1601.0, unless_open=rules, observed_at=1600.0
        )
        assert [a.raised_at for a in history.alerts.firing()] == [1601.0]
