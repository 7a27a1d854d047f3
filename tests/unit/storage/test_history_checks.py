"""A year of runs: check results live only in their table, `history show` still shows all of them,
and every query the CLI and the dashboard make is answered through an index."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.health.model import CheckResult
from opsdash.ops import history as past
from opsdash.ops.base import Ops
from opsdash.storage.history import History
from tests.conftest import Run
from tests.unit.storage.conftest import report, result


@pytest.fixture
def data(isolated: Path) -> Path:
    import os

    return Path(os.environ["OPSDASH_DATA_DIR"])


def recorded_dict(result: CheckResult) -> dict[str, Any]:
    """A result as history gives it back: everything but its queue time, which says how busy this
    opsdash was, not how the target behaved, and is not recorded."""
    return {k: v for k, v in result.to_dict().items() if k != "queue_ms"}


def test_show_gives_back_every_check_result_from_the_table_alone(run: Run, data: Path) -> None:
    at = "2026-11-26T07:00:00.000+00:00"
    results = [result("app", at), result("api", at, failing=True, days=20.0)]
    recorded = report("preflight", "20261126T070000-aaaaaa", at, results)
    with History.open(data) as history:
        history.runs.record(recorded, operator="alice", results=results)
        stored = history.conn.execute("SELECT summary FROM runs").fetchone()[0]
    assert "checks" not in json.loads(stored)  # the summary no longer copies them

    shown = json.loads(run("history", "show", "latest", "--json").out)
    assert shown["summary"]["checks"] == [recorded_dict(r) for r in results]
    assert shown["summary"]["validation"] == "OK"
    assert shown["counts"] == recorded.to_dict()["counts"]
    assert shown["findings"] == recorded.to_dict()["findings"]


def test_a_run_of_several_sweeps_shows_its_final_sweep(run: Run, data: Path) -> None:
    sweeps = [
        [
            result("app", f"2026-11-26T07:00:0{i}.000+00:00", latency=10.0 + i),
            result("api", f"2026-11-26T07:00:0{i}.000+00:00"),
        ]
        for i in range(3)
    ]
    final = sweeps[-1]
    recorded = report("verify-deploy", "20261126T070000-bbbbbb", final[0].started_at, final)
    with History.open(data) as history:
        history.runs.record(recorded, operator="alice", results=[r for s in sweeps for r in s])
        assert len(history.checks.of_run(recorded.run_id)) == 6  # every sweep kept for the baseline
    shown = json.loads(run("history", "show", recorded.run_id, "--json").out)
    assert shown["summary"]["checks"] == [recorded_dict(r) for r in final]


def test_runs_recorded_before_the_split_still_show_their_checks(run: Run, data: Path) -> None:
    """A run an older opsdash wrote keeps its checks in the summary; show and list still work."""
    at = "2026-11-26T07:00:00.000+00:00"
    old = report("check", "20261126T070000-cccccc", at, [result("app", at)])
    with History.open(data) as history:
        history.conn.execute(
            "INSERT INTO runs VALUES (?, 'check', 'BetaSkill', 'bob', ?, 5, 'OK', ?, ?)",
            [old.run_id, at, json.dumps(old.counts()), json.dumps(dict(old.summary))],
        )
        history.conn.commit()
    shown = json.loads(run("history", "show", "latest", "--json").out)
    assert shown["summary"]["checks"] == old.to_dict()["summary"]["checks"]
    (listed,) = json.loads(run("history", "list", "--json").out)
    assert "checks" not in listed["summary"] and listed["summary"]["validation"] == "OK"


def test_certificate_facts_are_stored_once_and_read_back_whole(data: Path) -> None:
    with History.open(data) as history:
        for day in range(20):
            at = f"2026-11-{day + 1:02d}T07:00:00.000+00:00"
            history.runs.record(
                report("check", f"202611{day + 1:02d}T070000-dddddd", at, []),
                operator="op",
                results=[result("app", at, days=365.0 - day)],
            )
        shared = history.conn.execute("SELECT COUNT(*) FROM shared_facts").fetchone()[0]
        (latest,) = history.checks.latest(["app"])
        series = history.checks.recent("app", limit=3)
    assert shared == 1  # only the days left changed: the rest is one body
    assert latest.as_result()["facts"] == result("app", "x", days=346.0).to_dict()["facts"]
    assert list(latest.as_result()["facts"]) == list(result("app", "x").facts)  # in the probe's order
    assert [r.metrics_dict()["cert_days_left"] for r in series] == [348.0, 347.0, 346.0]


def _certificates(at: str, minutes: int = 0) -> list[CheckResult]:
    """Three checks, three certificates (three shared bodies), probed a minute apart from `at`."""
    base = datetime.fromisoformat(at)
    return [
        dataclasses.replace(
            result(f"svc{n}", (base + timedelta(minutes=minutes + n)).isoformat(timespec="milliseconds")),
            facts={**result(f"svc{n}", at).facts, "cert_subject": f"CN=svc{n}.example"},
        )
        for n in range(3)
    ]


def _last_used(history: History) -> dict[str, str]:
    rows = history.conn.execute("SELECT body, last_used FROM shared_facts").fetchall()
    return {json.loads(body)["cert_subject"]: str(used) for body, used in rows}


def test_a_body_used_again_a_day_later_is_touched_to_its_newest_row(data: Path) -> None:
    """Retention drops a shared body once its last_used is a day older than what it purges, so
    the record must move last_used on as the body is used: within a day, nothing is written; a
    day later, every body to the newest row using it (each its own time, in one statement)."""
    first, soon, later = (
        "2026-11-01T07:00:00.000+00:00",
        "2026-11-01T19:00:00.000+00:00",
        "2026-11-03T07:00:00.000+00:00",
    )
    with History.open(data) as history:
        for n, (at, minutes) in enumerate(((first, 0), (soon, 0), (later, 0), (later, 5))):
            results = _certificates(at, minutes)
            history.runs.record(report("check", f"run-{n}", at, []), operator="op", results=results)
            if at == soon:  # within a day of the first: nothing to write yet
                assert set(_last_used(history).values()) == {
                    f"2026-11-01T07:0{k}:00.000+00:00" for k in range(3)
                }
        assert _last_used(history) == {
            f"CN=svc{k}.example": f"2026-11-03T07:0{k}:00.000+00:00" for k in range(3)
        }  # the first sweep two days on; the one 5 minutes later is within a day of it
        assert history.conn.execute("SELECT COUNT(*) FROM shared_facts").fetchone()[0] == 3
        latest = {
            row.check_name: row.as_result()["facts"]["cert_subject"]
            for row in history.checks.latest(["svc0", "svc1", "svc2"])
        }
    assert latest == {f"svc{k}": f"CN=svc{k}.example" for k in range(3)}


def test_a_body_another_process_s_retention_dropped_is_stored_again(data: Path) -> None:
    """This process remembers body ids; another process's purge may have dropped one meanwhile.
    A day later the touch finds it gone: the body is stored again and the new rows read back whole."""
    with History.open(data) as history:
        history.runs.record(
            report("check", "run-0", "2026-11-01T07:00:00.000+00:00", []),
            operator="op",
            results=_certificates("2026-11-01T07:00:00.000+00:00"),
        )
        with History.open(data) as other, other.writing():  # the other process's purge
            other.conn.execute("DELETE FROM shared_facts WHERE body LIKE ?", ["%CN=svc1.example%"])
        history.runs.record(
            report("check", "run-1", "2026-11-03T07:00:00.000+00:00", []),
            operator="op",
            results=_certificates("2026-11-03T07:00:00.000+00:00"),
        )
        assert sorted(_last_used(history)) == [f"CN=svc{k}.example" for k in range(3)]
        again = history.checks.of_run("run-1")
    assert [r.as_result()["facts"]["cert_subject"] for r in again] == [f"CN=svc{k}.example" for k in range(3)]
    assert [r.as_result()["facts"] for r in again] == [
        r.to_dict()["facts"] for r in _certificates("2026-11-03T07:00:00.000+00:00")
    ]


# ---------------------------------------------------------------- every query has an index


@pytest.fixture
def year(data: Path) -> Iterator[History]:
    """A small history shaped like a year's: runs of every kind, check results, findings, env."""
    with History.open(data) as history:
        for i in range(60):
            at = f"2026-{1 + i // 6:02d}-{1 + i % 6:02d}T07:00:00.000+00:00"
            kind = ("check", "preflight", "verify-deploy", "validate")[i % 4]
            results = (
                [] if kind == "validate" else [result(f"c{n}", at, failing=n == i % 7) for n in range(7)]
            )
            history.runs.record(
                report(kind, f"2026{i:04d}T070000-{i:06x}", at, results), operator="op", results=results
            )
        yield history


def plans(history: History, call: Callable[[], object]) -> list[str]:
    """The query plan of every SELECT `call` makes."""
    statements: list[str] = []
    history.db.conn.set_trace_callback(statements.append)
    try:
        call()
    finally:
        history.db.conn.set_trace_callback(None)
    probe = sqlite3.connect(history.path)
    out = []
    for sql in statements:
        if sql.lstrip().upper().startswith(("SELECT", "WITH")):
            out += [f"{sql[:60]} :: {r[3]}" for r in probe.execute(f"EXPLAIN QUERY PLAN {sql}")]
    probe.close()
    assert out, "no query was traced"
    return out


BIG = ("runs", "check_results", "findings", "env_keys", "c")


@pytest.mark.parametrize(
    "query",
    [
        "list",
        "list-kind",
        "list-500",
        "latest~5",
        "prefix",
        "show",
        "diff",
        "latest-per-check",
        "check-history",
        "last-ok",
        "run-checks",
    ],
)
@pytest.mark.sqlite_only
def test_every_query_the_cli_and_dashboard_make_uses_an_index(year: History, query: str) -> None:
    calls = {
        "list": lambda: year.runs.recent(),
        "list-kind": lambda: year.runs.recent(kind="preflight"),
        "list-500": lambda: year.runs.recent(limit=500),
        "latest~5": lambda: year.runs.resolve("latest~5"),
        "prefix": lambda: year.runs.resolve("20260007"),
        "show": lambda: year.runs.report(year.runs.resolve("latest~1")),
        "diff": lambda: (
            year.runs.findings("20260003T070000-000003"),
            year.runs.env_keys("20260003T070000-000003"),
        ),
        "latest-per-check": lambda: year.checks.latest([f"c{n}" for n in range(7)]),
        "check-history": lambda: year.checks.recent("c3", 50),
        "last-ok": lambda: year.runs.last(("preflight", "verify-deploy"), ("OK", "INFO")),
        "run-checks": lambda: year.checks.as_reported("20260001T070000-000001"),
    }
    for line in plans(year, calls[query]):
        step = line.partition(" :: ")[2]
        assert "TEMP B-TREE" not in step, line  # no sort of every row
        if step.startswith("SCAN "):
            table = step.split()[1]
            assert table not in BIG or "USING" in step, line  # no full scan of a big table


@pytest.mark.sqlite_only
def test_the_history_pane_and_list_read_no_check_results(year: History, data: Path) -> None:
    statements: list[str] = []
    year.db.conn.set_trace_callback(statements.append)
    year.runs.recent(limit=500)
    year.db.conn.set_trace_callback(None)
    assert statements and not any("check_results" in s for s in statements)
    assert len(past.runs(Ops.bare(data_dir=data), limit=500)) == 60
