"""The scripted incident (demo/replay.py) through the real watch loop, alert dispatcher and runbook
executor, against a health endpoint on 127.0.0.1 that fails from the moment the outage starts until
the rollback runbook's command has run; then the incident derived from what they recorded: its
window, its phases and its events in order, each matching the record's own rows."""

from __future__ import annotations

import json
import shlex
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsdash.core import incidents as core
from opsdash.demo.replay import Script, play
from opsdash.ops import incidents
from opsdash.ops.base import Ops
from opsdash.storage.history import History
from opsdash.storage.timeline import epoch


class Outage:
    """GET /health fails while the outage is on and the rollback has not happened; POST /hook
    takes the alert notices."""

    def __init__(self, rolled_back: Path) -> None:
        self.on = False
        self.rolled_back = rolled_back
        self.notices: list[str] = []
        outage = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                failing = outage.on and not outage.rolled_back.exists()
                body = b'{"status":"DOWN"}' if failing else b'{"status":"UP"}'
                self.send_response(503 if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                outage.notices.append(json.loads(self.rfile.read(length))["status"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.on = True


@pytest.fixture
def outage(tmp_path: Path) -> Iterator[Outage]:
    server = Outage(tmp_path / "rolled-back")
    yield server
    server.server.shutdown()
    server.server.server_close()


def profile(outage: Outage, directory: Path) -> Path:
    directory.mkdir()
    path = directory / "opsdash.toml"
    path.write_text(
        f"""
[opsdash]
data_dir = "{directory / "data"}"

[target]
name = "incident-drill"
base_url = "https://app.example.com"

[[checks]]
name = "payments-api"
kind = "http"
url = "{outage.url}/health"
conditions = ["[STATUS] == 200", "[BODY].status == UP"]
interval = 1
retries = 0
failure_threshold = 3
success_threshold = 2

[[alerts.channels]]
name = "ops-hook"
kind = "webhook"
url = "{outage.url}/hook"
retries = 0
"""
    )
    return path


def test_the_scripted_incident_is_derived_with_its_window_phases_and_events(
    outage: Outage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPSDASH_DATA_DIR")
    ops = Ops.open(profile(outage, tmp_path / "drill"), operator="ana")
    played = play(
        ops,
        Script("payments-api", outage.start, f"touch {shlex.quote(str(outage.rolled_back))}"),
        tmp_path,
        interval=1,
    )
    assert played.down_polls == 3  # failure_threshold
    assert played.recovery_polls == 2  # success_threshold, the incident resumed as down
    assert outage.notices == ["firing", "resolved"]

    with History.open(tmp_path / "drill" / "data") as history:
        rows = history.checks.recent("payments-api", limit=100)
        [alert] = history.alerts.all()
        steps = [e for e in history.sessions.events(played.session_id) if e.step_index is not None]
    failing = [r for r in rows if r.severity == "CRIT"]
    down = next(r for r in rows if r.sustained == "CRIT")
    back = [r for r in rows if r.severity == "OK" and r.started_at > failing[-1].started_at]
    assert alert.resolved_at is not None

    [found] = incidents.incidents(ops)
    assert found.target == "incident-drill"
    assert found.first_failure_at == epoch(failing[0].started_at)
    assert found.opened_at == epoch(down.started_at)
    assert found.recovered_at == max(epoch(back[1].started_at), alert.resolved_at)
    assert found.checks == ("payments-api",) and found.alerts == ("check-critical:payments-api",)
    phases = {p.name: p.end for p in found.phases}
    assert phases == {
        "detect": alert.raised_at,
        "act": epoch(steps[0].at),
        "mitigate": epoch(back[0].started_at),
        "recover": found.recovered_at,
    }
    assert all(p.seconds is not None and p.seconds >= 0 for p in found.phases)

    shown = incidents.show(ops, found.id)
    assert shown.sessions == [played.session_id]
    order = [(e.kind, e.title) for e in shown.events if e.kind != core.DELIVERY]
    assert order[:4] == [
        (core.CHECK, failing[0].summary),
        (core.CHECK, failing[1].summary),
        (core.CHECK, failing[2].summary),
        (core.ALERT_FIRED, "payments-api is failing"),
    ]
    runbook = [t for k, t in order if k in (core.SESSION, core.STEP)]
    started = next(n for n, t in enumerate(runbook) if "step 1 command-started" in t)
    assert runbook[0].endswith("started") and started == 1
    assert runbook[started + 1 :] == [
        "Roll back the release: step 1 command-running",
        "Roll back the release: step 1 command-finished",
        "Roll back the release: step 2 confirmed",
        "Roll back the release: completed",
    ]
    assert [k for k, _t in order[-3:]] == [core.CHECK, core.CHECK, core.ALERT_RESOLVED]
    assert [e.at for e in shown.events] == sorted(e.at for e in shown.events)
    assert {e.operator for e in shown.events if e.kind in (core.SESSION, core.STEP)} == {"ana"}
