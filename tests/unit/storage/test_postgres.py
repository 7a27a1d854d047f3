"""PostgreSQL behind the seam: the dialect translation, two "hosts" (two connections) deciding the
same thing at once, migrations racing, retention, and errors that never show the password."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opsdash.core.errors import InputError
from opsdash.storage.history import History
from opsdash.storage.postgres import translate
from opsdash.storage.schema import SCHEMA_VERSION
from tests.pg import PgServer
from tests.servers import closed_port
from tests.unit.storage.conftest import report, result

pytestmark = pytest.mark.postgresql_only


@pytest.mark.parametrize(
    ("sqlite", "postgresql"),
    [
        ("SELECT a FROM t WHERE b = ? AND c LIKE 'x%'", "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%'"),
        ("SELECT '?' FROM t WHERE a = ?", "SELECT '?' FROM t WHERE a = %s"),
        (
            "INSERT OR IGNORE INTO webhook_seen (scheme, delivery_id) VALUES (?, ?)",
            "INSERT INTO webhook_seen (scheme, delivery_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        ),
        (
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            "INSERT INTO meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        ),
        (
            "UPDATE alerts SET x = ? WHERE last_sent_at IS ?",
            "UPDATE alerts SET x = %s WHERE last_sent_at IS NOT DISTINCT FROM %s",
        ),
        (
            "SELECT run_id FROM runs WHERE +verdict = ? ORDER BY started_at DESC, rowid DESC",
            "SELECT run_id FROM runs WHERE verdict = %s ORDER BY started_at DESC, ctid DESC",
        ),
        (
            "SELECT CAST(at / 60 AS INTEGER), group_concat(DISTINCT outcome) FROM w",
            "SELECT CAST(trunc(at / 60) AS BIGINT), string_agg(DISTINCT outcome, ',') FROM w",
        ),
        ("BEGIN IMMEDIATE", "BEGIN"),
        (  # sqlite3's named placeholders (the timeline's queries), never inside a literal
            "SELECT a FROM t WHERE at >= :since AND b = ':kept' AND c = :target",
            "SELECT a FROM t WHERE at >= %(since)s AND b = ':kept' AND c = %(target)s",
        ),
    ],
)
def test_sqlite_statements_are_translated_once(sqlite: str, postgresql: str) -> None:
    assert translate(sqlite) == postgresql


def test_two_hosts_open_one_incident_per_key(pg_url: str, tmp_path: Path) -> None:
    """Eight connections (hosts) see the same failure at once: exactly one opens the incident."""
    hosts = [History.open(tmp_path / f"host-{n}", database=pg_url) for n in range(8)]
    barrier = threading.Barrier(len(hosts))
    opened: list[int | None] = []

    def decide(history: History) -> None:
        barrier.wait(30)
        opened.append(
            history.alerts.record(
                "check-down", "api", "CRIT", "api down", "", 1000.0, unless_open=("check-down",)
            )
        )

    threads = [threading.Thread(target=decide, args=(h,)) for h in hosts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert len(opened) == 8 and len([o for o in opened if o is not None]) == 1, opened
        assert len(hosts[0].alerts.firing()) == 1
    finally:
        for history in hosts:
            history.close()


def test_a_delivery_replayed_to_another_host_is_refused(pg_url: str, tmp_path: Path) -> None:
    with (
        History.open(tmp_path / "a", database=pg_url) as a,
        History.open(tmp_path / "b", database=pg_url) as b,
    ):
        assert a.webhooks.seen("stripe", "evt_1", 300, 1000.0) is False
        assert b.webhooks.seen("stripe", "evt_1", 300, 1010.0) is True  # the replay, on the other host
        assert b.webhooks.seen("stripe", "evt_2", 300, 1010.0) is False


def test_two_hosts_migrating_at_once_both_open_one_schema(pg_url: str, tmp_path: Path) -> None:
    barrier = threading.Barrier(4)
    versions: list[int] = []
    errors: list[BaseException] = []

    def open_(n: int) -> None:
        barrier.wait(30)
        try:
            with History.open(tmp_path / f"h{n}", database=pg_url) as history:
                versions.append(history.schema_version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and versions == [SCHEMA_VERSION] * 4


def test_retention_purges_the_team_database(pg_url: str, tmp_path: Path) -> None:
    with History.open(tmp_path, database=pg_url) as history:
        for month, day in ((1, 5), (6, 1), (11, 20)):
            at = f"2026-{month:02d}-{day:02d}T07:00:00.000+00:00"
            history.runs.record(
                report("check", f"2026{month:02d}{day:02d}T070000-aaaaaa", at, [result("app", at)]),
                operator="op",
                results=[result("app", at)],
            )
        gone = history.purge(90, datetime(2026, 12, 1, tzinfo=UTC))
        assert gone == 2
        assert [r.run_id for r in history.runs.recent()] == ["20261120T070000-aaaaaa"]
        assert len(history.checks.recent("app")) == 1
        assert history.compact() == 0  # a plain VACUUM: nothing given back to the file system


def test_a_server_that_is_not_there_is_one_sentence_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://team:Hunter2Secret@127.0.0.1:{closed_port()}/opsdash"
    with pytest.raises(InputError) as caught:
        History.open(tmp_path, database=url)
    text = str(caught.value)
    assert "cannot connect" in text and "Hunter2Secret" not in text and "127.0.0.1" in text


def test_a_missing_database_says_create_it(pg_server: PgServer, tmp_path: Path) -> None:
    url = pg_server.admin_url.rsplit("/", 1)[0] + "/no_such_db"
    with pytest.raises(InputError, match="no such database") as caught:
        History.open(tmp_path, database=url)
    assert pg_server.password not in str(caught.value)


def test_the_first_frame_reads_the_teams_settled_verdict(pg_url: str, tmp_path: Path) -> None:
    """Alice's dashboard settled on NO-GO; Bob's next start shows it before checking."""
    from opsdash.storage import glance

    with History.open(tmp_path / "alice", database=pg_url) as alice:
        glance.remember(alice, "BetaSkill", "NO-GO", "payments down", "2026-12-01T14:05:00.000+00:00")
    seen = glance.read_last_verdict(tmp_path / "bob", "BetaSkill", database=pg_url)
    assert seen is not None and (seen.label, seen.reason) == ("NO-GO", "payments down")
    assert glance.read_last_verdict(tmp_path / "bob", "BetaSkill") is None  # Bob's own file: nothing
    gone = f"postgresql://u:pw@127.0.0.1:{closed_port()}/x"
    assert glance.read_last_verdict(tmp_path / "bob", "BetaSkill", database=gone) is None  # no guess


def test_reading_a_database_with_nothing_yet_creates_nothing(pg_url: str, tmp_path: Path) -> None:
    """`history list` against a new team database (or one a read-only user sees) is an empty
    history, as a missing file is: no tables made by a read."""
    import psycopg

    def tables() -> int:
        with psycopg.connect(pg_url) as conn:
            row = conn.execute(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()"
            ).fetchone()
        return int(row[0]) if row else -1

    with History.open(tmp_path, write=False, database=pg_url) as history:
        assert history.runs.recent() == []
    assert tables() == 0
    with History.open(tmp_path, database=pg_url) as history:  # the first writer makes the schema
        assert history.schema_version == SCHEMA_VERSION
    assert tables() > 10


def test_a_percent_sign_in_a_statement_without_parameters_is_one_percent_sign(
    pg_url: str, tmp_path: Path
) -> None:
    with History.open(tmp_path, database=pg_url) as history:
        history.conn.execute("INSERT INTO meta (key, value) VALUES ('gate:%x', '1')")
        history.conn.execute("INSERT INTO meta (key, value) VALUES ('gate:x', '2')")
        assert history.conn.execute("SELECT key FROM meta WHERE key LIKE 'gate:\\%%' ").fetchall() == [
            ("gate:%x",)
        ]
        assert history.conn.execute("SELECT '100%'").fetchone() == ("100%",)


BOUNDS = ("lock_timeout", "idle_in_transaction_session_timeout", "tcp_keepalives_idle")


def test_a_write_behind_a_frozen_holder_is_refused_in_time_not_waited_on_for_ever(
    pg_url: str, tmp_path: Path
) -> None:
    """A process stopped inside its write transaction (Ctrl-Z, a laptop lid) held the team's write
    lock and every other host's write waited with no end (the reviewer's `frozen_writer.py`): a
    write now waits opsdash's busy timeout, as on SQLite, then says busy; the server ends a session
    idle inside a transaction after two minutes, so the lock cannot be held for hours. A URL that
    sets its own lock_timeout keeps it."""
    with History.open(tmp_path, database=pg_url) as holder:
        waiting = History(tmp_path / "history.db", database=pg_url, busy_timeout=1)
        holder.conn.begin_writing()  # type: ignore[attr-defined]  # and then nothing: frozen
        settings = dict(
            waiting.conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN (?, ?, ?)", list(BOUNDS)
            )
        )
        try:  # as every command writes: the History's exit names the database and says busy
            with pytest.raises(InputError, match="the database is busy"), waiting, waiting.writing():
                pass
        finally:
            holder.conn.rollback()
    own = History(
        tmp_path / "history.db", database=pg_url.replace("options=", "options=-clock_timeout%3D3s%20")
    )
    try:
        chosen = own.conn.execute("SELECT setting FROM pg_settings WHERE name = 'lock_timeout'").fetchone()[0]
    finally:
        own.close()
    assert settings == {  # a vanished host's connection (and the locks on it) dropped in about a minute
        "lock_timeout": "1000",
        "idle_in_transaction_session_timeout": "120000",
        "tcp_keepalives_idle": "30",
    }
    assert chosen == "3000"
