"""Helpers for the storage tests: check results and reports shaped like a real sweep's, to record.

Every storage test runs twice: on SQLite (the data directory's file) and on PostgreSQL (a server
the tests start themselves, tests/pg.py; skipped, saying how to install it, where the server
binaries are absent). On PostgreSQL, `History.open` and OPSDASH_DATABASE_URL point at a schema of
the test's own. A test about SQLite's file itself (permissions, corruption, WAL, the glance's
direct read) is marked `sqlite_only`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.health.conditions import ConditionResult
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.storage.history import History
from tests.pg import pg_server, pg_url  # noqa: F401 - fixtures

BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS, autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The backend this run of the test stores into."""
    if request.param == "sqlite":
        if request.node.get_closest_marker("postgresql_only"):
            pytest.skip("about PostgreSQL itself")
        yield "sqlite"
        return
    only = request.node.get_closest_marker("sqlite_only")
    if only:
        pytest.skip(only.kwargs.get("reason", "about SQLite's file itself"))
    url: str = request.getfixturevalue("pg_url")
    opened = History.open.__func__  # type: ignore[attr-defined]

    def open_postgres(cls: type[History], data_dir: Path, /, **kwargs: Any) -> History:
        return opened(cls, data_dir, **{**kwargs, "database": kwargs.get("database") or url})  # type: ignore[no-any-return]

    monkeypatch.setattr(History, "open", classmethod(open_postgres))
    monkeypatch.setenv("OPSDASH_DATABASE_URL", url)
    yield "postgresql"


def result(
    name: str, at: str, *, days: float = 365.0, failing: bool = False, latency: float = 18.76
) -> CheckResult:
    finding = Finding(
        "check-failed", Severity.CRIT, "checks", name, f"{name} is failing", "HTTP 503", "Fix it.", "outage"
    )
    return CheckResult(
        name=name,
        kind="http",
        target=f"https://{name}.example/health",
        severity=Severity.CRIT if failing else Severity.OK,
        summary="HTTP 503 in 19 ms" if failing else "HTTP 200 in 19 ms",
        started_at=at,
        duration_ms=20.94,
        error_class=ErrorClass.HTTP_5XX if failing else None,
        hint="up but unhealthy" if failing else None,
        runbook="outage" if failing else None,
        attempts=2 if failing else 1,
        phases={"connect": 2.571, "tls": 12.834},
        conditions=(ConditionResult("[STATUS] == 200", not failing, "503" if failing else "200"),),
        metrics={"response_time_ms": latency, "cert_days_left": days},
        facts={
            "ip": "127.0.0.1",
            "status": "503" if failing else "200",
            "cert_subject": "CN=app.example",
            "cert_days_left": f"{days:.1f}",
            "cert_not_after": "2027-11-26T17:51:12+00:00",
            "chain_earliest_days_left": f"{days:.1f}",
        },
        findings=(finding,) if failing else (),
    )


def report(kind: str, run_id: str, at: str, results: list[CheckResult]) -> Report:
    return Report(
        kind,
        "BetaSkill",
        run_id,
        at,
        5,
        tuple(f for r in results for f in r.findings),
        {"checks": [r.to_dict() for r in results], "validation": "OK"},
    )


def set_schema_version(history: History, version: int) -> None:
    """Make the record say it is at `version` (as an older opsdash left it), on either backend."""
    if history.dialect == "sqlite":
        history.conn.execute(f"PRAGMA user_version = {int(version)}")
    else:
        history.conn.execute("UPDATE opsdash_schema SET version = ?", [version])


def run_step(history: History, step: int) -> None:
    """Run migration `step` again on either backend (each is idempotent)."""
    from opsdash.storage.schema import MIGRATIONS, STEPS

    if history.dialect == "sqlite":
        MIGRATIONS[step](history.db)
        return
    with history.conn:
        for change in STEPS[step]:
            for statement in change.postgres():
                history.conn.execute(statement)
