"""The repositories over one connection owner: writes that join one transaction land or vanish
together, each repository answers with typed rows in a stated order, and `history list` loads only
the repository it reads."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import opsdash.storage
from opsdash.core.findings import Report, Severity
from opsdash.core.health.model import CheckResult
from opsdash.storage.history import History
from opsdash.storage.rows import CheckRow, SessionEvent
from tests.unit.storage.conftest import report, result
from tests.unit.storage.test_exclusive_sessions import book, start

AT = "2026-11-26T07:00:00.000+00:00"


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    with History.open(tmp_path / "data") as opened:
        yield opened


def count(history: History, table: str) -> int:
    return int(history.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_a_run_whose_check_results_cannot_be_stored_is_not_recorded_at_all(history: History) -> None:
    good = result("app", AT)
    unstorable = dataclasses.replace(result("api", AT), metrics={"response_time_ms": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        history.runs.record(report("check", "r1", AT, [good]), operator="op", results=[good, unstorable])
    assert history.runs.recent() == []  # the run went with its results: no run without its checks
    assert count(history, "check_results") == 0 and count(history, "findings") == 0
    history.runs.record(report("check", "r2", AT, [good]), operator="op", results=[good])
    assert [r.run_id for r in history.runs.recent()] == ["r2"]  # the connection is usable after it


def test_writes_of_several_repositories_in_one_writing_block_roll_back_together(history: History) -> None:
    with pytest.raises(RuntimeError), history.writing():
        history.runs.record(Report("validate", "t", "r1", AT, 1, ()), operator="op")
        history.alerts.record("check-down", "app", "CRIT", "app is down", "HTTP 503", 1000.0)
        raise RuntimeError("the caller failed after both writes")
    assert history.runs.recent() == [] and history.alerts.all() == []
    with history.writing():
        history.runs.record(Report("validate", "t", "r1", AT, 1, ()), operator="op")
        alert_id = history.alerts.record("check-down", "app", "CRIT", "app is down", "HTTP 503", 1000.0)
    assert [r.run_id for r in history.runs.recent()] == ["r1"]
    assert alert_id is not None and history.alerts.get(alert_id).title == "app is down"


def test_another_connection_sees_each_repository_s_writes(history: History, tmp_path: Path) -> None:
    history.runs.record(report("check", "r1", AT, []), operator="op", results=[result("app", AT)])
    history.anchors.record("r1", "log-1", 7, "mac-7")
    assert history.webhooks.seen("standard", "msg_1", 600, 1000.0) is False
    with History.open(tmp_path / "data", write=False) as other:
        assert [(r.check_name, r.severity) for r in other.checks.of_run("r1")] == [("app", "OK")]
        anchor = other.anchors.latest()
        assert anchor is not None and (anchor.run_id, anchor.seq, anchor.mac) == ("r1", 7, "mac-7")
        assert other.webhooks.seen("standard", "msg_1", 600, 1001.0) is True  # a replay, seen by the other


def test_latest_answers_in_the_order_asked_and_leaves_out_checks_never_run(history: History) -> None:
    results: list[CheckResult] = [result("b", AT), result("a", AT, failing=True)]
    history.checks.record("r1", results)
    rows = history.checks.latest(["a", "never-ran", "b"])
    assert all(isinstance(r, CheckRow) for r in rows)
    assert [(r.check_name, r.severity) for r in rows] == [("a", "CRIT"), ("b", "OK")]


def test_as_reported_keeps_the_last_result_of_each_check_in_first_run_order(history: History) -> None:
    later = "2026-11-26T07:00:05.000+00:00"
    history.runs.record(Report("verify-deploy", "BetaSkill", "r1", AT, 5, ()), operator="op")
    history.checks.record("r1", [result("b", AT, failing=True), result("a", AT)])
    history.checks.record("r1", [result("b", later), result("a", later, failing=True)])
    rows = history.checks.as_reported("r1")
    assert [(r.check_name, r.started_at, r.severity) for r in rows] == [
        ("b", later, "OK"),
        ("a", later, "CRIT"),
    ]
    shown = history.runs.report(history.runs.resolve("r1"))  # what `history show` prints
    assert [(c["name"], c["severity"]) for c in shown.summary["checks"]] == [("b", "OK"), ("a", "CRIT")]


def test_env_keys_are_typed_rows_by_name_with_fingerprints_only(history: History) -> None:
    from opsdash.core.envfiles import EnvSnapshot, EnvValue

    secret = "sk_live_" + "q" * 24
    env = EnvSnapshot(
        {
            "B_URL": EnvValue("B_URL", "https://x", ".env:1"),
            "A_SECRET": EnvValue("A_SECRET", secret, ".env:2"),
        }
    )
    history.runs.record(
        Report("validate", "t", "r1", AT, 1, ()), operator="op", env=env, is_secret=lambda k: k == "A_SECRET"
    )
    keys = history.runs.env_keys("r1")
    assert [(k.key, k.source, k.secret) for k in keys] == [
        ("A_SECRET", ".env:2", True),
        ("B_URL", ".env:1", False),
    ]
    assert secret not in repr(keys) and keys[0].fingerprint in history.runs.secret_fingerprints(5)


def test_session_repository_holders_last_and_events(history: History, tmp_path: Path) -> None:
    assert history.sessions.last("rollback") is None  # never run
    first = start(history.sessions, book(tmp_path, "rollback"), operator="bob")
    start(history.sessions, book(tmp_path, "db-failover", group="database-change"))
    first.confirm("announced")
    held = history.sessions.holders("BetaSkill")
    assert [(h.group, h.operator) for h in held] == [
        ("production-change", "bob"),
        ("database-change", "alice"),
    ]
    assert history.sessions.holders("BetaSkill staging") == []
    last = history.sessions.last("rollback")
    assert last is not None and last.id == first.state.id
    events = history.sessions.events(first.state.id)
    assert all(isinstance(e, SessionEvent) for e in events)
    assert [e.event for e in events][-1] == "confirmed" and events[-1].operator == "bob"
    assert events[-1].detail == "announced" and events[-1].step_index == 0


def test_history_list_loads_only_the_runs_repository(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from opsdash.storage.history import History\n"
        f"h = History.open(Path({str(tmp_path / 'data')!r}), write=False); h.runs.recent()\n"
        "print(*(m for m in sys.modules if m.startswith(('opsdash.storage.', 'opsdash.core.runbooks'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = set(out.split())
    assert "opsdash.storage.runs" in loaded
    assert not loaded & {
        "opsdash.storage.sessions",
        "opsdash.storage.alerts",
        "opsdash.storage.checks",
        "opsdash.core.runbooks.executor",
    }


def test_no_repository_method_returns_a_dict_and_no_storage_module_is_over_500_lines() -> None:
    folder = Path(opsdash.storage.__file__).parent
    repositories = []
    for module in sorted(folder.glob("*.py")):
        text = module.read_text(encoding="utf-8")
        assert text.count("\n") <= 500, f"{module.name} is over 500 lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(b, ast.Name) and b.id == "Repository" for b in node.bases
            ):
                repositories.append(node.name)
                for method in node.body:
                    if isinstance(method, ast.FunctionDef) and not method.name.startswith("_"):
                        returns = ast.unparse(method.returns) if method.returns else ""
                        assert not returns.startswith(("dict", "list[dict")), f"{node.name}.{method.name}"
    assert sorted(repositories) == [
        "Alerts",
        "Anchors",
        "Checks",
        "RunbookSessions",
        "Runs",
        "Timeline",
        "Trace",
        "Webhooks",
    ]


def test_a_verdict_set_afterwards_is_what_the_list_shows(history: History) -> None:
    history.runs.record(Report("validate", "t", "r1", AT, 1, ()), operator="op")
    history.runs.set_verdict("r1", Severity.CRIT)
    assert [r.verdict for r in history.runs.recent()] == [Severity.CRIT]
    assert history.runs.last_green(("validate",)) is None and history.runs.last(("validate",)) == "r1"
