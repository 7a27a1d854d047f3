"""History: runs are recorded, listed, shown and diffed; the database is WAL, versioned and purged."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.errors import InputError
from opsdash.core.findings import Report
from opsdash.storage.history import History
from opsdash.storage.schema import SCHEMA_VERSION
from tests.conftest import Project, Run, good_env, json_object


def _validate(run: Run, project: Project, **changes: str) -> dict[str, Any]:
    project.write_env({**good_env(), **changes} if changes else good_env())
    result = run("validate", "--config", project.profile, "--json")
    assert result.code in (0, 1, 2), result.err
    return json_object(result.out)


def test_runs_are_listed_newest_first(run: Run, project: Project) -> None:
    first = _validate(run, project)
    second = _validate(run, project, VITE_IKHOKHA_TEST_MODE="true")
    result = run("history", "list", "--json")
    assert result.code == 0
    runs = json.loads(result.out)
    assert [r["run_id"] for r in runs] == [second["run_id"], first["run_id"]]
    assert [r["verdict"] for r in runs] == ["CRIT", "OK"]
    text = run("history", "list").out
    assert second["run_id"] in text and "CRIT" in text


def test_empty_history_says_what_to_do(run: Run) -> None:
    result = run("history", "list")
    assert result.code == 0
    assert "opsdash validate" in result.out


def test_show_by_prefix_and_latest(run: Run, project: Project) -> None:
    report = _validate(run, project, ENFORCE_HTTPS="false")
    shown = json.loads(run("history", "show", report["run_id"][:17], "--json").out)
    assert shown["findings"] == report["findings"]
    assert shown["verdict"] == "CRIT"
    assert json.loads(run("history", "show", "latest", "--json").out)["run_id"] == report["run_id"]


def test_show_unknown_run_is_a_clear_error(run: Run, project: Project) -> None:
    _validate(run, project)
    result = run("history", "show", "19990101")
    assert result.code == 3
    assert "not found" in result.err and "opsdash history list" in result.err
    assert run("history", "show", "latest~5").code == 3


def test_diff_reports_new_resolved_changed_and_env_fingerprints(run: Run, project: Project) -> None:
    env = good_env()
    project.write_env({**env, "ENFORCE_HTTPS": "false", "MONITORING_ENABLED": "false"})
    a = json.loads(run("validate", "--config", project.profile, "--json").out)
    rotated = {
        **env,
        "IKHOKHA_API_SECRET": good_env()["IKHOKHA_API_SECRET"],
        "VITE_IKHOKHA_TEST_MODE": "true",
        "MONITORING_ENABLED": "maybe",
    }
    project.write_env(rotated)
    b = json.loads(run("validate", "--config", project.profile, "--json").out)

    result = run("history", "diff", a["run_id"], b["run_id"], "--json")
    assert result.code == 1
    diff = json.loads(result.out)
    assert [f["rule"] for f in diff["new"]] == ["test-mode-enabled"]
    assert [(f["rule"], f["subject"]) for f in diff["resolved"]] == [("policy-violation", "ENFORCE_HTTPS")]
    assert [c["after"]["subject"] for c in diff["changed"]] == ["MONITORING_ENABLED"]
    assert diff["env_changed"] == [
        "ENFORCE_HTTPS",
        "IKHOKHA_API_SECRET",
        "MONITORING_ENABLED",
        "VITE_IKHOKHA_TEST_MODE",
    ]
    text = run("history", "diff", a["run_id"]).out  # RUN_B defaults to the latest run
    assert "env values changed" in text and "IKHOKHA_API_SECRET" in text
    assert env["IKHOKHA_API_SECRET"] not in text


def test_diff_of_identical_runs_exits_zero(run: Run, project: Project) -> None:
    project.write_env(good_env())
    a = json.loads(run("validate", "--config", project.profile, "--json").out)
    b = json.loads(run("validate", "--config", project.profile, "--json").out)
    result = run("history", "diff", a["run_id"], b["run_id"])
    assert result.code == 0
    assert "no differences" in result.out


def test_no_history_flag_records_nothing(run: Run, project: Project) -> None:
    run("validate", "--config", project.profile, "--no-history")
    assert json.loads(run("history", "list", "--json").out) == []


@pytest.mark.sqlite_only
def test_database_is_wal_and_versioned(tmp_path: Path) -> None:
    with History.open(tmp_path / "data") as history:
        assert history.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(tmp_path / "data" / "history.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[1] for r in conn.execute("SELECT * FROM sqlite_master WHERE type = 'index'")}
    assert "idx_runs_kind_started_at" in indexes


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(InputError, match="newer than this opsdash"):
        History(path)


@pytest.mark.sqlite_only
def test_corrupt_database_is_a_clear_error(
    run: Run, project: Project, isolated: Path, tmp_path: Path
) -> None:
    data = tmp_path / "home" / "data" / "opsdash"
    data.mkdir(parents=True)
    (data / "history.db").write_bytes(b"this is not a database" * 100)
    result = run("validate", "--config", project.profile)
    assert result.code == 3
    assert "history database is corrupt" in result.err and str(data / "history.db") in result.err
    assert "Traceback" not in result.err


def test_purge_removes_old_runs_only(tmp_path: Path) -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    with History.open(tmp_path) as history:
        for days, run_id in ((200, "old"), (1, "new")):
            started = (now - timedelta(days=days)).isoformat(timespec="seconds")
            history.runs.record(Report("validate", "t", run_id, started, 1, ()), operator="op")
        assert history.purge(90, now=now) == 1
        assert [r.run_id for r in history.runs.recent()] == ["new"]


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("", "no run given"),
        ("x" * 100_000, "not found"),
        ("latest~²", "expected latest~N"),
        ("latest~99999999999999999999", "expected latest~N"),
    ],
    ids=["empty", "100k-chars", "superscript", "huge-offset"],
)
def test_odd_run_references_are_clear_errors(run: Run, project: Project, ref: str, says: str) -> None:
    _validate(run, project)
    result = run("history", "show", ref)
    assert result.code == 3, result.err
    assert says in result.err and "internal error" not in result.err
    assert len(result.err) < 300  # a 100,000-character id is not echoed back whole


def test_audit_tail_since_further_back_than_any_date_shows_everything(run: Run, project: Project) -> None:
    _validate(run, project)
    everything = run("audit", "tail", "-n", "5")
    result = run("audit", "tail", "-n", "5", "--since", "99999999d")
    assert result.code == 0, result.err
    assert result.out == everything.out and result.out
    assert run("audit", "tail", "--since", "³d").code == 3


def test_history_poisoned_by_an_old_nan_time_still_counts_webhook_failures(tmp_path: Path) -> None:
    """Before '--now nan' was refused, it stored NULL times; they must not crash later rejections."""
    from opsdash.storage.history import History

    with History.open(tmp_path) as history:
        history.conn.execute(
            "INSERT INTO webhook_failures (source, at, outcome) VALUES ('203.0.113.9', NULL, 'x')"
        )
        history.conn.execute(
            "INSERT INTO webhook_seen (scheme, delivery_id, seen_at, expires_at) VALUES ('s', 'd1', 1, NULL)"
        )
        assert history.webhooks.record_failure("203.0.113.9", "bad-signature", 1000.0) == [1000.0]
        assert history.webhooks.seen("s", "d1", 300, 2000.0) is False  # not a replay for ever


@pytest.mark.sqlite_only
def test_the_burst_counter_reads_only_its_window(tmp_path: Path) -> None:
    """A flood of stored failures slowed every later verification (each read them all): only the
    window is read now, through the (source, at) index."""
    from opsdash.storage.history import History

    with History.open(tmp_path) as history:
        history.conn.executemany(
            "INSERT INTO webhook_failures (source, at, outcome) VALUES ('198.51.100.1', ?, 'x')",
            [(float(t),) for t in range(5000)],
        )
        history.conn.commit()
        assert history.webhooks.record_failure("198.51.100.1", "x", 10_000.0, 300.0) == [10_000.0]
        assert history.webhooks.record_failure("198.51.100.1", "x", 10_100.0, 300.0) == [10_000.0, 10_100.0]
        plan = " ".join(
            str(r[-1])
            for r in history.conn.execute(
                "EXPLAIN QUERY PLAN SELECT at FROM webhook_failures WHERE source = ? AND at >= ? ORDER BY at",
                ["198.51.100.1", 0.0],
            )
        )
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
