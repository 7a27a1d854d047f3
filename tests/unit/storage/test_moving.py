"""`opsdash history migrate --to postgresql://...`: a laptop's SQLite history copied into a team's
PostgreSQL database (a real server, tests/pg.py), read back through the same commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsdash.core.health.model import CheckResult
from opsdash.storage import glance
from opsdash.storage.history import History
from tests.conftest import EXAMPLE_PROFILE, Run
from tests.incident_record import T0, write_incident
from tests.pg import PgServer
from tests.servers import closed_port
from tests.unit.storage.conftest import report, result

# The source is SQLite by definition; the target is the test's own PostgreSQL schema (pg_url)
pytestmark = pytest.mark.sqlite_only(reason="copies from SQLite into PostgreSQL: runs once")

TABLES = (
    "runs",
    "findings",
    "env_keys",
    "check_results",
    "shared_facts",
    "runbook_sessions",
    "runbook_steps",
    "runbook_events",
    "alerts",
    "alert_deliveries",
    "audit_anchors",
    "webhook_seen",
    "webhook_failures",
    "trace_scans",
    "trace_objects",
    "trace_places",
)


def _record_a_laptop(data: Path) -> None:
    """A history with a row in every table the team shares."""
    with History.open(data) as history:
        write_incident(history)
        for day in range(1, 13):  # twelve runs, two checks each, certificate facts shared
            at = f"2026-11-{day:02d}T07:00:00.000+00:00"
            results: list[CheckResult] = [
                result("app", at, days=300 - day),
                result("api", at, failing=day % 5 == 0),
            ]
            history.runs.record(
                report("preflight", f"202611{day:02d}T070000-{day:06d}", at, results),
                operator="alice",
                results=results,
            )
        history.anchors.record("20261112T070000-000012", "log-1", 41, "mac-41")
        history.webhooks.seen("stripe", "evt_1", 3600, T0)
        history.webhooks.record_failure("203.0.113.9", "bad-signature", T0)
        history.trace.remember(
            "/srv/app/.git", "needles-1", ["ab" * 20], {"cd" * 20: [("c0ffee", "config.py")]}
        )
        glance.remember(history, "BetaSkill", "NO-GO", "payments-api down", "2026-12-01T14:05:00.000+00:00")


def _counts(history: History) -> dict[str, int]:
    return {t: int(history.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in TABLES}


def _listed(run: Run) -> tuple[str, str, str]:
    listed = run("history", "list", "-n", "1000")
    as_json = run("history", "list", "-n", "1000", "--json")
    shown = run("history", "show", "20261105T070000-000005", "--json")
    assert listed.code == as_json.code == shown.code == 0, (listed.err, as_json.err, shown.err)
    return listed.out, as_json.out, shown.out


def test_migrate_copies_everything_once_and_history_list_reads_the_same(
    run: Run, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = Path.cwd().parent / "home" / "data" / "opsdash"  # OPSDASH_DATA_DIR (tests/conftest.py)
    _record_a_laptop(data)
    before = _listed(run)
    with History.open(data) as local:
        local_counts = _counts(local)

    first = run("history", "migrate", "--to", pg_url)
    assert first.code == 0, first.err
    assert "13 runs copied" in first.out and "0 already there" in first.out
    assert "migrating: 13 of 13 runs (100%)" in first.err  # the progress, on stderr
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in first.out + first.err

    again = run("history", "migrate", "--to", pg_url)
    assert again.code == 0, again.err
    assert "0 runs copied" in again.out and "13 already there" in again.out
    with History.open(data, database=pg_url) as team:
        assert _counts(team) == local_counts  # every row once, none twice
        # the settled verdict came along
        assert team.conn.execute("SELECT value FROM meta WHERE key LIKE 'gate:%'").fetchone() is not None
        assert team.trace.clean(int(team.trace.scan_id("/srv/app/.git", "needles-1") or 0)) == {"ab" * 20}

    monkeypatch.setenv("OPSDASH_DATABASE_URL", pg_url)
    after = _listed(run)
    assert after == before


# what coordination adds to a row (v13, v14), compared row by row after the copy
_COORDINATION = {
    "runbook_sessions": ("id", "status", "exclusive_group", "target", "driver"),
    "alerts": ("rule", "key", "raised_at", "status", "target", "posted_at", "last_sent_at"),
    "audit_anchors": ("run_id", "log_id", "seq", "host_id"),
    "watches": ("run_id", "target", "started_at"),
    "webhook_failures": ("source", "at", "outcome", "target"),
}


def _coordination(history: History) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: sorted(
            (tuple(row) for row in history.conn.execute(f"SELECT {', '.join(cols)} FROM {table}")),
            key=repr,
        )
        for table, cols in _COORDINATION.items()
    }


def test_migrate_copies_what_coordination_records(run: Run, pg_url: str) -> None:
    """A session's driver (one that died, one parked cleanly), an alert's target and last re-post,
    the host of each anchor and the target of a watch's sweeps arrive as they were: without them a
    team's database would treat the dead driver's session as parked for ever, re-post the alert at
    once and lose whose log and whose sweeps they are."""
    data = Path.cwd().parent / "home" / "data" / "opsdash"
    _record_a_laptop(data)
    with History.open(data) as local:
        alert = local.alerts.record(
            "check-critical",
            "web",
            "CRIT",
            "web is failing",
            "HTTP 503",
            T0 + 900,
            sent_at=T0 + 900,
            target="BetaSkill",
        )
        assert alert is not None and local.alerts.claim_refresh(alert, T0 + 5000, 3600)
        local.anchors.record("20261112T070000-000012", "log-2", 7, "mac-7", host_id="host-alice")
        local.runs.watching("watch", "BetaSkill", "2026-11-30T07:00:00.000+00:00")
        for target in ("BetaSkill", "Other", None):  # whose profile saw the bad signature (v15)
            local.webhooks.record_failure("ikhokha", "bad-signature", T0 + 1000, target=target)
        with local.conn:
            for id_, status, driver, target in (  # one holder per group and target
                ("sess-died", "active", "alice@laptop:4242", "BetaSkill"),
                ("sess-parked", "active", None, "Staging"),
            ):
                local.conn.execute(
                    "INSERT INTO runbook_sessions (id, runbook_id, runbook_path, title, params, operator, "
                    "status, current_step, started_at, updated_at, exclusive_group, target, driver) "
                    "VALUES (?, 'rollback', 'runbooks/rollback.md', 'Rollback', '{}', 'alice', ?, 1, ?, ?, "
                    "'production-change', ?, ?)",
                    [
                        id_,
                        status,
                        "2026-12-01T10:00:00.000+00:00",
                        "2026-12-01T10:05:00.000+00:00",
                        target,
                        driver,
                    ],
                )
        laptop = _coordination(local)
    assert laptop["watches"] and any(r[-1] is not None for r in laptop["runbook_sessions"])
    assert {r[-1] for r in laptop["webhook_failures"]} == {None, "BetaSkill", "Other"}
    assert any(r[4] == "BetaSkill" and r[5] is not None for r in laptop["alerts"])  # target, posted_at

    assert run("history", "migrate", "--to", pg_url).code == 0
    with History.open(data, database=pg_url) as team:
        assert _coordination(team) == laptop
        # the group's holder is the dead driver's session, its driver named (a start here takes it over)
        (holder,) = team.sessions.holders("BetaSkill", "production-change")
        assert holder.driver == "alice@laptop:4242"
    again = run("history", "migrate", "--to", pg_url)
    assert again.code == 0, again.err
    with History.open(data, database=pg_url) as team:
        assert _coordination(team) == laptop  # nothing twice


def test_a_team_that_already_recorded_keeps_its_rows_and_gets_the_laptops(run: Run, pg_url: str) -> None:
    """Ids are the database's own: Bob's alert 1 does not collide with Alice's."""
    data = Path.cwd().parent / "home" / "data" / "opsdash"
    _record_a_laptop(data)
    with History.open(data.parent / "alice", database=pg_url) as team:
        team.alerts.record("check-down", "api", "CRIT", "api down", "", T0 - 100)
        at = "2026-10-01T07:00:00.000+00:00"
        team.runs.record(report("check", "20261001T070000-alice0", at, [result("db", at)]), operator="alice")
    assert run("history", "migrate", "--to", pg_url).code == 0
    with History.open(data, database=pg_url) as team:
        runs = [r.run_id for r in team.runs.recent(limit=100)]
        assert "20261001T070000-alice0" in runs and len(runs) == 14
        assert len(team.alerts.all()) == 2  # Alice's and the laptop's incident


def test_an_unreachable_server_is_a_clear_error_without_the_password(run: Run) -> None:
    url = f"postgresql://team:SuperSecretPw1@127.0.0.1:{closed_port()}/opsdash"
    data = Path.cwd().parent / "home" / "data" / "opsdash"
    History.open(data).close()
    result_ = run("history", "migrate", "--to", url)
    assert result_.code == 3
    assert "cannot connect" in result_.err and "127.0.0.1" in result_.err
    assert "SuperSecretPw1" not in result_.err + result_.out and "Traceback" not in result_.err


def test_a_wrong_password_is_refused_and_never_shown(run: Run, pg_server: PgServer) -> None:
    data = Path.cwd().parent / "home" / "data" / "opsdash"
    History.open(data).close()
    url = pg_server.admin_url.replace(pg_server.password, "NotThePassword42")
    result_ = run("history", "migrate", "--to", url)
    assert result_.code == 3
    assert "refused the credentials" in result_.err or "authentication" in result_.err
    assert "NotThePassword42" not in result_.err + result_.out and "Traceback" not in result_.err


@pytest.mark.parametrize("url", ["mysql://u:pw-xyz-123@db/app", "postgresql:/nohost", "not a url"])
def test_a_url_that_is_not_postgresql_is_refused(run: Run, url: str) -> None:
    data = Path.cwd().parent / "home" / "data" / "opsdash"
    History.open(data).close()
    result_ = run("history", "migrate", "--to", url)
    assert result_.code == 3
    assert "expected a postgresql:// URL" in result_.err and "Traceback" not in result_.err
    assert "pw-xyz-123" not in result_.err


def test_nothing_recorded_here_says_so(run: Run, pg_url: str) -> None:
    result_ = run("history", "migrate", "--to", pg_url)
    assert result_.code == 3 and "no local history to copy" in result_.err


def test_history_list_reads_the_team_database_set_in_the_profile(
    run: Run, pg_url: str, tmp_path: Path
) -> None:
    """`[opsdash] database =` in the profile: list reads the team's runs (the quick path too)."""
    with History.open(tmp_path / "elsewhere", database=pg_url) as team:
        at = "2026-10-01T07:00:00.000+00:00"
        team.runs.record(report("check", "20261001T070000-team00", at, [result("db", at)]), operator="bob")
    profile = tmp_path / "opsdash.toml"
    profile.write_text(f'[opsdash]\ndatabase = "{pg_url}"\n', encoding="utf-8")
    listed = json.loads(run("history", "list", "--config", profile, "--json").out)
    assert [r["run_id"] for r in listed] == ["20261001T070000-team00"]
    profile.write_text(
        EXAMPLE_PROFILE.read_text(encoding="utf-8").replace(
            "[opsdash]", f'[opsdash]\ndatabase = "{pg_url}"', 1
        ),
        encoding="utf-8",
    )
    shown = run("config", "show", "--config", profile)
    as_json = run("config", "show", "--config", profile, "--json")
    assert shown.code == as_json.code == 0, shown.err
    password = pg_url.split(":")[2].split("@")[0]
    assert password not in shown.out + shown.err + as_json.out
    (database,) = [row for row in json.loads(as_json.out) if row["key"] == "opsdash.database"]
    assert database["value"].startswith("postgresql://opsdash:") and "127.0.0.1" in database["value"]


def _paused_rollback(history: History, session_id: str, operator: str) -> None:
    with history.conn:
        history.conn.execute(
            "INSERT INTO runbook_sessions (id, runbook_id, runbook_path, title, params, operator, "
            "status, current_step, started_at, updated_at, exclusive_group, target, driver) "
            "VALUES (?, 'rollback', 'runbooks/rollback.md', 'Rollback', '{}', ?, 'active', 1, ?, ?, "
            "'production-change', 'BetaSkill', NULL)",
            [session_id, operator, "2026-12-01T10:00:00.000+00:00", "2026-12-01T10:05:00.000+00:00"],
        )


def test_migrate_never_makes_two_holders_of_one_exclusive_group(run: Run, pg_url: str) -> None:
    """alice paused a rollback on her laptop, bob paused one in the team database (the review's
    case): moved in as it was, the group had two active sessions, and both were driven at once.
    The one moved in is recorded as aborted, saying why; bob's keeps the group."""
    data = Path.cwd().parent / "home" / "data" / "opsdash"
    with History.open(data) as local:
        _paused_rollback(local, "sess-alice", "alice")
    with History.open(data.parent / "bob", database=pg_url) as team:
        _paused_rollback(team, "sess-bob", "bob")
    for _ in range(2):  # again: nothing twice
        assert run("history", "migrate", "--to", pg_url).code == 0
    with History.open(data, database=pg_url) as team:
        (holder,) = team.sessions.holders("BetaSkill", "production-change")
        rows = dict(team.conn.execute("SELECT id, status FROM runbook_sessions").fetchall())
        events = team.conn.execute(
            "SELECT event, detail FROM runbook_events WHERE session_id = 'sess-alice'"
        ).fetchall()
    assert holder.session_id == "sess-bob"
    assert rows == {"sess-alice": "aborted", "sess-bob": "active"}
    assert [e for e, _ in events] == ["abandoned"] and "sess-bob" in events[0][1]
