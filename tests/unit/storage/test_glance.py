"""The last known verdict the dashboard's first frame shows: read with sqlite3 alone, the newest of
what the dashboard settled on for the target in its environment and the target's critical runs, never
another target's or environment's, never a GO from a run, and nothing at all from a database it
cannot read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opsdash.core.findings import Finding, Report, Severity
from opsdash.ops.glance import age, last_known, quick_target
from opsdash.storage.glance import LastVerdict, read_last_verdict, remember
from opsdash.storage.history import DB_NAME, History

# SQLite only: the first frame reads the SQLite file directly
pytestmark = pytest.mark.sqlite_only

NOW = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)


def at(minutes_ago: float) -> str:
    return (NOW - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds")


def run(data: Path, kind: str, target: str, severity: Severity, minutes_ago: float) -> None:
    finding = Finding("check-failed", severity, "checks", "api", "api", "detail", "fix")
    report = Report(kind, target, f"r-{kind}-{minutes_ago}", at(minutes_ago), 5, (finding,))
    with History.open(data) as history:
        history.runs.record(report, operator="alice")


def settled(data: Path, target: str, label: str, minutes_ago: float) -> None:
    with History.open(data) as history:
        remember(history, target, label, f"{label} because", at(minutes_ago))


def test_the_dashboards_settled_verdict_is_read_back(tmp_path: Path) -> None:
    settled(tmp_path, "BetaSkill", "NO-GO", 3)
    assert read_last_verdict(tmp_path, "BetaSkill") == LastVerdict(
        "NO-GO", "NO-GO because", at(3), "dashboard"
    )


def test_another_targets_verdict_is_never_shown(tmp_path: Path) -> None:
    settled(tmp_path, "OtherShop", "NO-GO", 1)
    run(tmp_path, "preflight", "OtherShop", Severity.CRIT, 1)
    assert read_last_verdict(tmp_path, "BetaSkill") is None


def test_a_passing_validate_or_check_run_is_not_a_go(tmp_path: Path) -> None:
    """Validation alone passing says nothing about the checks: no verdict rather than a wrong GO."""
    run(tmp_path, "validate", "BetaSkill", Severity.OK, 1)
    run(tmp_path, "check", "BetaSkill", Severity.WARN, 2)
    assert read_last_verdict(tmp_path, "BetaSkill") is None


def test_a_critical_run_of_any_kind_is_a_no_go(tmp_path: Path) -> None:
    run(tmp_path, "validate", "BetaSkill", Severity.CRIT, 4)
    found = read_last_verdict(tmp_path, "BetaSkill")
    assert found is not None and (found.label, found.source, found.at) == ("NO-GO", "validate", at(4))


def test_the_newest_verdict_wins(tmp_path: Path) -> None:
    settled(tmp_path, "BetaSkill", "GO", 30)
    run(tmp_path, "preflight", "BetaSkill", Severity.CRIT, 10)
    found = read_last_verdict(tmp_path, "BetaSkill")
    assert found is not None and (found.label, found.source) == ("NO-GO", "preflight")
    settled(tmp_path, "BetaSkill", "GO", 1)
    found = read_last_verdict(tmp_path, "BetaSkill")
    assert found is not None and (found.label, found.source) == ("GO", "dashboard")


def test_a_run_never_gives_a_go(tmp_path: Path) -> None:
    """Runs record the target's name, not its environment: a passing preflight (staging's, say)
    must not paint GO on production; only the dashboard's settled verdict for the environment can."""
    run(tmp_path, "preflight", "BetaSkill", Severity.OK, 1)
    run(tmp_path, "verify-deploy", "BetaSkill", Severity.INFO, 2)
    assert read_last_verdict(tmp_path, "BetaSkill") is None


def test_another_environments_settled_verdict_is_never_shown(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        remember(history, "BetaSkill", "GO", "staging is fine", at(1), "staging")
    assert read_last_verdict(tmp_path, "BetaSkill", "production") is None
    found = read_last_verdict(tmp_path, "BetaSkill", "staging")
    assert found is not None and (found.label, found.reason) == ("GO", "staging is fine")


def test_no_database_is_no_verdict_and_creates_nothing(tmp_path: Path) -> None:
    assert read_last_verdict(tmp_path / "data", "BetaSkill") is None
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    "content", [b"this is not a database" * 200, b"SQLite format 3\x00" + b"\xff" * 4000, b""]
)
def test_a_corrupt_database_is_no_verdict_and_no_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / DB_NAME).write_bytes(content)
    assert read_last_verdict(tmp_path, "BetaSkill") is None


def test_a_mangled_record_is_no_verdict(tmp_path: Path) -> None:
    settled(tmp_path, "BetaSkill", "NO-GO", 3)
    with History.open(tmp_path) as history, history.conn:
        history.conn.execute("UPDATE meta SET value = '{\"label\": \"MAYBE\"}' WHERE key LIKE 'gate:%'")
    assert read_last_verdict(tmp_path, "BetaSkill") is None


def test_the_profile_is_read_simply_or_not_at_all(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSDASH_DATA_DIR")  # the profile says where its data lives
    profile = tmp_path / "opsdash.toml"
    data = tmp_path / "data"
    profile.write_text(f'[target]\nname = "BetaSkill"\n[opsdash]\ndata_dir = "{data}"\n')
    settled(data, "BetaSkill", "GO", 2)
    assert quick_target(profile) == ("BetaSkill", "production")
    found = last_known(profile)
    assert found is not None and found.label == "GO"
    for unclear in (
        "[target]\nname = 3\n",
        "[target\nname = 'x'",
        "name = 'BetaSkill'\n",
        "",
        "[target]\nname = 'BetaSkill'\nenvironment = 7\n",
    ):
        profile.write_text(unclear)
        assert quick_target(profile) is None
        assert last_known(profile) is None
    profile.write_text('[target]\nname = "BetaSkill"\n[opsdash]\nnot_a_setting = 1\n')
    assert last_known(profile) is None  # where its data lives is unclear: the settings decide, later
    assert last_known(tmp_path / "missing.toml") is None


@pytest.mark.parametrize(
    ("minutes_ago", "said"),
    [(0.2, "just now"), (3, "3 min ago"), (59.9, "59 min ago"), (90, "1 h ago"), (60 * 50, "2 days ago")],
)
def test_age_reads_as_an_operator_says_it(minutes_ago: float, said: str) -> None:
    assert age(at(minutes_ago), NOW) == said
    assert age("yesterday", NOW) == "at an unknown time"


def test_a_database_locked_by_another_process_is_no_verdict_and_no_long_wait(tmp_path: Path) -> None:
    """`history compact`'s VACUUM (an exclusive lock) must not hold the first frame for SQLite's
    usual 15 s: the glance waits a moment, then shows no verdict."""
    import sqlite3
    from contextlib import closing

    from opsdash.storage.glance import BUSY_TIMEOUT

    settled(tmp_path, "BetaSkill", "NO-GO", 3)
    glance = History(tmp_path / DB_NAME, read_only=True, busy_timeout=BUSY_TIMEOUT)
    assert glance.conn.execute("PRAGMA busy_timeout").fetchone() == (int(BUSY_TIMEOUT * 1000),)
    glance.conn.close()
    with closing(sqlite3.connect(tmp_path / DB_NAME, isolation_level=None)) as holder:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE meta SET value = value WHERE key LIKE 'gate:%'")
        assert read_last_verdict(tmp_path, "BetaSkill") is None
        holder.execute("COMMIT")
        holder.execute("PRAGMA locking_mode = NORMAL")
        holder.execute("SELECT 1 FROM meta").fetchone()  # the mode changes at the next access
    found = read_last_verdict(tmp_path, "BetaSkill")
    assert found is not None and found.label == "NO-GO"
