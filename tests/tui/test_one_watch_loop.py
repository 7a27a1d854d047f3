"""`opsdash check --watch` and the dashboard run one watch loop: the same scripted incident through
both leaves the same history rows, alerts, alert deliveries and audit records.

The incident: a health endpoint on 127.0.0.1 answers 200, then 503 for three polls, then 200
again. With failure_threshold 3 and success_threshold 2 the check goes down on the fourth poll
(one alert fires and is delivered) and recovers on the sixth (the alert resolves, and the
resolution is delivered). The dashboard here gets its `Ops` from the test: no demo process.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsdash.cli import main
from opsdash.ops.base import Ops
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.health import HealthPane
from tests.tui.conftest import SIZE, until

POLLS = 6
FAILING = {2, 3, 4}  # which polls the endpoint fails


class Incident:
    """The target (GET /health, scripted by request number) and an alert receiver (POST /hook)."""

    def __init__(self) -> None:
        self.health_requests = 0
        self.deliveries: list[dict[str, Any]] = []
        incident = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                incident.health_requests += 1
                failing = incident.health_requests in FAILING
                body = b'{"status":"DOWN"}' if failing else b'{"status":"UP"}'
                self.send_response(503 if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                incident.deliveries.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def profile(self, directory: Path) -> Path:
        directory.mkdir(parents=True)
        path = directory / "opsdash.toml"
        path.write_text(
            f"""
[opsdash]
data_dir = "{directory / "data"}"

[target]
name = "incident-drill"
base_url = "https://app.example.com"

[[checks]]
name = "app-health"
kind = "http"
url = "{self.url}/health"
conditions = ["[STATUS] == 200", "[BODY].status == UP"]
interval = 1
retries = 0
failure_threshold = 3
success_threshold = 2

[[alerts.channels]]
name = "ops-hook"
kind = "webhook"
url = "{self.url}/hook"
retries = 0
"""
        )
        return path

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def incident() -> Iterator[Incident]:
    server = Incident()
    yield server
    server.close()


def recorded(data_dir: Path) -> dict[str, list[Any]]:
    """What an operator can see afterwards, minus what differs by nature (ids, times, run ids)."""
    from opsdash.core.audit.tail import tail
    from opsdash.storage.history import History

    with History.open(data_dir) as history:
        checks = history.checks.recent("app-health", limit=100)[:POLLS]
        alerts = history.alerts.all()
        deliveries = history.alerts.deliveries()
    watched = {"app-health", "alert", "alert-resolved", "alert-delivery-failed"}
    audit = [e.record for e in tail(data_dir / "audit.log", 10_000) if e.record is not None]
    return {
        "checks": [(r.check_name, r.severity, r.sustained, r.error_class) for r in checks],
        "alerts": [(a.rule, a.key, a.severity, a.title, a.status, a.resolved_at is not None) for a in alerts],
        "deliveries": [(d.channel, d.event, d.ok) for d in deliveries],
        "audit": [
            (r["kind"], r["action"], r["outcome"], (r.get("details") or {}).get("rule"))
            for r in audit
            if r["action"] in watched
        ],
    }


def expected_incident() -> dict[str, list[Any]]:
    """What the scripted incident must leave, whichever path ran it."""
    sustained = ["OK", "OK", "OK", "CRIT", "CRIT", "OK"]
    return {
        "checks": [
            ("app-health", "CRIT" if n in FAILING else "OK", s, "http-5xx" if n in FAILING else None)
            for n, s in zip(range(1, POLLS + 1), sustained, strict=True)
        ],
        "alerts": [("check-critical", "app-health", "CRIT", "app-health is failing", "resolved", True)],
        "deliveries": [("ops-hook", "firing", 1), ("ops-hook", "resolved", 1)],
        "audit": [
            ("check_result", "app-health", "OK", None),
            ("check_result", "app-health", "CRIT", None),
            ("system", "alert", "CRIT", "check-critical"),
            ("check_result", "app-health", "OK", None),
            ("system", "alert-resolved", "resolved", "check-critical"),
        ],
    }


def test_cli_watch_and_dashboard_record_one_incident_identically(
    incident: Incident, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSDASH_DATA_DIR")  # each path keeps its data where its profile says
    # the CLI path: opsdash check --watch, stopped after six polls
    cli_profile = incident.profile(tmp_path / "cli")
    with pytest.raises(SystemExit) as exited:
        main(["check", "--config", str(cli_profile), "--watch", "1", "--count", str(POLLS)])
    assert exited.value.code == 0  # recovered: the worst sustained state at the end is OK
    assert "app-health" in capsys.readouterr().out
    via_cli = recorded(tmp_path / "cli" / "data")

    # the dashboard path, on a fresh endpoint with the same script
    first_deliveries = list(incident.deliveries)
    incident.health_requests, incident.deliveries = 0, []
    ops = Ops.open(incident.profile(tmp_path / "tui"))

    async def drive() -> None:
        app = OpsdashApp(ops)
        async with app.run_test(size=SIZE) as pilot:
            pane = await app.ensure_pane("health")  # mounted just after the first paint
            assert isinstance(pane, HealthPane)
            await until(pilot, lambda: len(pane.results) == 1 and incident.health_requests >= POLLS)
            await until(
                pilot,
                lambda: (
                    pane.states["app-health"].status.value == "OK"
                    and pane.states["app-health"].successes >= 2
                ),
            )

    import asyncio

    asyncio.run(drive())
    via_dashboard = recorded(tmp_path / "tui" / "data")

    assert via_cli == expected_incident()
    assert via_dashboard == via_cli
    assert [d["status"] for d in first_deliveries] == [d["status"] for d in incident.deliveries]
    assert [d["status"] for d in first_deliveries] == ["firing", "resolved"]
