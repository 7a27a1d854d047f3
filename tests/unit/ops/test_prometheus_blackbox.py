"""blackbox_exporter's own scrape config and a stock blackbox alert rule, unchanged, against `opsdash
serve`'s /probe, in a real Prometheus (the Debian package; the test starts it and skips without it).

The scrape config is the one in blackbox_exporter's README (targets relabelled into `__param_target`
and `instance`, the exporter's address into `__address__`); the rules are awesome-prometheus-alerts'
BlackboxProbeFailed and BlackboxProbeHttpFailure. Each check is a target: the alert fires for the
failing check alone, with the check's name as `instance`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Project
from tests.servers import closed_port
from tests.waits import read_line, wait_until

PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs Prometheus (Debian package: apt-get install prometheus)"
)

SCRAPE = """
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ['{rules}']
scrape_configs:
  - job_name: blackbox
    metrics_path: /probe
    params:
      module: [http_2xx]
    static_configs:
      - targets: [healthy, failing]
    relabel_configs:
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__param_target]
        target_label: instance
      - target_label: __address__
        replacement: {exporter}
"""
RULES = """
groups:
  - name: blackbox
    rules:
      - alert: BlackboxProbeFailed
        expr: probe_success == 0
        for: 0m
        labels: {severity: critical}
        annotations:
          summary: Blackbox probe failed (instance {{ $labels.instance }})
      - alert: BlackboxProbeHttpFailure
        expr: probe_http_status_code <= 199 OR probe_http_status_code >= 400
        for: 0m
        labels: {severity: critical}
"""


@pytest.fixture
def app() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status = 503 if self.path.startswith("/failing") else 200
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_stock_blackbox_rule_fires_per_check_with_the_check_as_instance(
    project: Project, app: str, tmp_path: Path
) -> None:
    assert PROMETHEUS is not None
    project.profile.write_text(
        project.profile.read_text()
        + "".join(
            f'\n[[checks]]\nname = "{name}"\nkind = "http"\nurl = "{app}/{name}"\ninterval = 1\nretries = 0\n'
            for name in ("healthy", "failing")
        )
    )
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    serve = subprocess.Popen(
        [opsdash, "serve", "--config", str(project.profile), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    prometheus: subprocess.Popen[str] | None = None
    try:
        assert serve.stdout is not None
        exporter = read_line(serve.stdout).strip().removeprefix("http://")
        (tmp_path / "rules.yml").write_text(RULES)
        (tmp_path / "prometheus.yml").write_text(
            SCRAPE.format(rules=tmp_path / "rules.yml", exporter=exporter)
        )
        port = closed_port()
        prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "prometheus.log").open("w"),
            text=True,
        )

        def firing() -> dict[str, set[str]] | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as answer:
                    alerts = json.loads(answer.read())["data"]["alerts"]
            except OSError:
                return None
            out: dict[str, set[str]] = {}
            for alert in alerts:
                if alert["state"] == "firing":
                    out.setdefault(alert["labels"]["alertname"], set()).add(alert["labels"]["instance"])
            return out if len(out) == 2 else None

        def successes() -> dict[str, str] | None:
            query = urllib.parse.quote('probe_success{job="blackbox"}')
            try:
                url = f"http://127.0.0.1:{port}/api/v1/query?query={query}"
                with urllib.request.urlopen(url, timeout=5) as answer:
                    result = json.loads(answer.read())["data"]["result"]
            except OSError:
                return None
            found = {r["metric"]["instance"]: r["value"][1] for r in result}
            return found if len(found) == 2 else None

        log = tmp_path / "prometheus.log"
        series = wait_until(successes, "Prometheus has both checks' probe_success", 90)
        assert series == {"healthy": "1", "failing": "0"}, log.read_text()[-2000:]
        alerts = wait_until(firing, "both stock rules fire", 90)
        assert alerts == {"BlackboxProbeFailed": {"failing"}, "BlackboxProbeHttpFailure": {"failing"}}
    finally:
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(30)
        serve.terminate()
        serve.communicate(timeout=30)
