"""Two targets in one record (profiles sharing a data directory or a database), each with a check of
the same name: every alert lookup is a target's (an open incident of one does not stop, remind or
resolve the other's), a failed webhook verification names its target and shows on that target's
timeline alone, and the `watches` rows go with retention once their results have gone. Rows that
name no target (written before the column existed) are every target's, as they always were."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from opsdash.core.alerts import CHECK_CRITICAL, INCIDENT_RULES, WEBHOOK_BURST
from opsdash.storage import retention
from opsdash.storage.history import History
from opsdash.storage.schema import SCHEMA_VERSION
from tests.unit.storage.conftest import result, set_schema_version

T0 = 1_800_000_000.0


def open_incident(history: History, target: str | None, at: float, key: str = "api") -> int | None:
    return history.alerts.record(
        CHECK_CRITICAL,
        key,
        "CRIT",
        f"{key} is failing ({target})",
        "HTTP 503",
        at,
        unless_open=INCIDENT_RULES,
        target=target,
        observed_at=at,
    )


def firing(history: History, target: str | None) -> list[str]:
    return sorted(a.title for a in history.alerts.firing(target))


def test_an_open_incident_of_one_target_does_not_stop_the_others(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        alpha = open_incident(history, "Alpha", T0)
        beta = open_incident(history, "Beta", T0 + 1)  # Beta's "api" goes down while Alpha's is down
        again = open_incident(history, "Alpha", T0 + 2)  # Alpha's own incident is still open
        assert alpha is not None and beta is not None and alpha != beta
        assert again is None
        assert firing(history, "Alpha") == ["api is failing (Alpha)"]
        assert firing(history, "Beta") == ["api is failing (Beta)"]
        assert len(history.alerts.firing()) == 2  # unscoped: every target's
        # Alpha's incident ends; Beta's stays open, and Alpha's evidence from before its resolve
        # does not re-open it, while Beta's does not count Alpha's resolve as its own
        assert history.alerts.claim(alpha, None, status="resolved", resolved_at=T0 + 10)
        assert open_incident(history, "Alpha", T0 + 5) is None  # older than its resolve
        assert firing(history, "Beta") == ["api is failing (Beta)"]
        assert history.alerts.claim(beta, None, status="resolved", resolved_at=T0 + 20)
        gamma = open_incident(history, "Gamma", T0 + 15)  # a third target: Beta's resolve is not its
        assert gamma is not None
        assert history.alerts.last_raised(CHECK_CRITICAL, "api", "Beta") == T0 + 1
        assert history.alerts.last_raised(CHECK_CRITICAL, "api", "Alpha") == T0
        assert history.alerts.last_raised(CHECK_CRITICAL, "api") == T0 + 15


def test_an_alert_that_names_no_target_is_every_targets_as_before(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        old = open_incident(history, None, T0, key="db")  # written before v13 (or with no profile)
        assert old is not None
        # it still stops every target from opening a second incident of "db" ...
        assert open_incident(history, "Alpha", T0 + 1, key="db") is None
        assert open_incident(history, "Beta", T0 + 1, key="db") is None
        # ... and every target sees it, next to its own
        assert open_incident(history, "Alpha", T0 + 2) is not None
        assert firing(history, "Alpha") == ["api is failing (Alpha)", "db is failing (None)"]
        assert firing(history, "Beta") == ["db is failing (None)"]
        assert history.alerts.last_raised(CHECK_CRITICAL, "db", "Beta") == T0


def test_each_timeline_shows_its_own_webhook_failures_and_those_of_no_target(tmp_path: Path) -> None:
    source = "203.0.113.9"
    with History.open(tmp_path) as history:
        counted = {
            "Alpha": history.webhooks.record_failure(source, "bad-signature", T0, 300, "Alpha"),
            "Beta": history.webhooks.record_failure(source, "replayed", T0 + 1, 300, "Beta"),
        }
        history.webhooks.record_failure(source, "stale", T0 + 2, 300, None)  # no profile: everyone's
        counted["Alpha again"] = history.webhooks.record_failure(
            source, "bad-signature", T0 + 3, 300, "Alpha"
        )
        t = history.timeline

        def seen(target: str) -> list[tuple[str, str]]:
            return [(e.title, e.evidence) for e in t.webhook_failures(T0 - 60, T0 + 60, target)]

        alpha, beta, everyone = seen("Alpha"), seen("Beta"), seen("")
    # a burst counts its own target's failures (and those of none), never another target's
    assert counted == {"Alpha": [T0], "Beta": [T0 + 1], "Alpha again": [T0, T0 + 2, T0 + 3]}
    assert alpha == [(f"3 failed webhook verification(s) from {source}", "bad-signature,stale")]
    assert beta == [(f"2 failed webhook verification(s) from {source}", "replayed,stale")]
    assert everyone == [(f"4 failed webhook verification(s) from {source}", "bad-signature,replayed,stale")]


def test_a_burst_alert_of_one_target_does_not_hold_back_the_others(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        history.alerts.record(WEBHOOK_BURST, "203.0.113.9", "CRIT", "burst", "d", T0, target="Alpha")
        assert history.alerts.last_raised(WEBHOOK_BURST, "203.0.113.9", "Beta") is None
        assert history.alerts.last_raised(WEBHOOK_BURST, "203.0.113.9", "Alpha") == T0


def test_a_record_an_older_opsdash_made_gains_the_failures_target(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        history.webhooks.record_failure("198.51.100.7", "bad-signature", T0, 300)
        history.conn.execute("ALTER TABLE webhook_failures DROP COLUMN target")
        set_schema_version(history, SCHEMA_VERSION - 1)
    with History.open(tmp_path) as history:
        assert history.schema_version == SCHEMA_VERSION
        # the failure it recorded names no target: every target's timeline still shows it
        for target in ("Alpha", "Beta"):
            (event,) = history.timeline.webhook_failures(T0 - 60, T0 + 60, target)
            assert event.source == "198.51.100.7"
        history.webhooks.record_failure("198.51.100.7", "replayed", T0 + 1, 300, "Alpha")
        assert [e.title[:1] for e in history.timeline.webhook_failures(T0 - 60, T0 + 60, "Beta")] == ["1"]
        assert [e.title[:1] for e in history.timeline.webhook_failures(T0 - 60, T0 + 60, "Alpha")] == ["2"]


NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
DAYS = 30


def _at(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).isoformat(timespec="milliseconds")


def watches(history: History) -> list[str]:
    return sorted(str(r[0]) for r in history.conn.execute("SELECT run_id FROM watches"))


def test_retention_takes_the_watches_whose_results_have_gone(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        for run_id, started, results in [
            ("w-gone", 200, [199, 150]),  # every result older than the window
            ("w-running", 200, [199, 100, 1]),  # started long ago, still recording
            ("w-recent", 2, [2, 1]),
            ("w-empty", 120, []),  # recorded nothing (a dashboard closed at once)
            ("w-empty-new", 1, []),  # recorded nothing yet: it may be starting
        ]:
            history.runs.watching(run_id, "Alpha", _at(started))
            if results:
                history.checks.record(run_id, [result("api", _at(d)) for d in results])
        assert len(watches(history)) == 5
        gone = history.purge(DAYS, NOW)
        assert gone == 0  # a watch is not a run
        assert watches(history) == ["w-empty-new", "w-recent", "w-running"]
        # the results kept are exactly those of the window, and each still names its target
        kept = history.conn.execute("SELECT run_id FROM check_results ORDER BY started_at").fetchall()
        assert [r[0] for r in kept] == ["w-recent", "w-running", "w-recent"]
        targets = history.conn.execute("SELECT DISTINCT target FROM watches").fetchall()
        assert [r[0] for r in targets] == ["Alpha"]


def test_watches_go_in_bounded_batches_that_move_on(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        with history.writing():
            for n in range(7):
                history.conn.execute(
                    "INSERT INTO watches (run_id, target, started_at) VALUES (?, 'Alpha', ?)",
                    [f"w-{n}", _at(90 + n)],
                )
        history.runs.watching("w-kept", "Alpha", _at(90))
        history.checks.record("w-kept", [result("api", _at(1))])
        batches = []
        while True:
            batch = retention.purge_batch(history, DAYS, NOW, rows=3)
            batches.append(len(watches(history)))
            if batch.done:
                break
            assert len(batches) < 10, "the purge does not move on"
        assert batches == [5, 2, 1]  # at most 3 a batch; the one that finds fewer is the last
        assert watches(history) == ["w-kept"]


def test_the_newest_result_and_run_read_for_a_target_are_its_own(tmp_path: Path) -> None:
    """A watch resuming an incident, the NO-GO gate settling and verify-deploy's baseline read the
    newest result of a check and the newest run of a kind: each its own target's, though another
    profile's "api" answered later and its preflight ran later (a watch that named no target,
    from before v13, is every target's)."""
    from opsdash.core.findings import Report, Severity

    def at(seconds: float) -> str:
        return datetime.fromtimestamp(T0 + seconds, UTC).isoformat(timespec="milliseconds")

    with History.open(tmp_path) as history:
        history.runs.watching("w-alpha", "Alpha", at(0))
        history.runs.watching("w-beta", "Beta", at(0))
        history.checks.record("w-alpha", [result("api", at(10), failing=True)], {"api": Severity.CRIT})
        history.checks.record("w-beta", [result("api", at(20))], {"api": Severity.OK})
        for target, offset in (("Alpha", 30), ("Beta", 40)):
            report = Report("preflight", target, f"preflight-{target}", at(offset), 5, ())
            history.runs.record(report, operator="dana")
        newest = {t: [r.run_id for r in history.checks.latest(["api"], t)] for t in ("Alpha", "Beta")}
        unscoped = [r.run_id for r in history.checks.latest(["api"])]
        runs = {t: history.runs.last(("preflight",), target=t) for t in ("Alpha", "Beta", "Gamma")}
        history.checks.record("w-old", [result("api", at(50))], {"api": Severity.OK})
        old = [r.run_id for r in history.checks.latest(["api"], "Alpha")]
    assert newest == {"Alpha": ["w-alpha"], "Beta": ["w-beta"]} and unscoped == ["w-beta"]
    assert runs == {"Alpha": "preflight-Alpha", "Beta": "preflight-Beta", "Gamma": None}
    assert old == ["w-old"]
