"""`opsdash serve` with the real Prometheus and Alertmanager (not CI: it needs the Debian packages).

    apt-get install prometheus prometheus-alertmanager
    .venv/bin/python scripts/prometheus_integration.py

Everything runs on 127.0.0.1 with temporary configs and data: the demo target (`opsdash demo
--no-tui`), `opsdash serve` on its profile with an `alertmanager` channel, Alertmanager, and
Prometheus scraping /metrics every 2 s with one alerting rule (probe_success == 0). It switches the
demo's `provider-down` fault on, waits for `probe_success{check="ikhokha-api"} == 0` in Prometheus
and for alerts in Alertmanager's /api/v2/alerts (opsdash's own `check-critical`, and Prometheus'
rule), switches it off and waits for both to clear. It prints each timing; exit 0 when the
acceptance holds (Prometheus sees the failure within two check intervals, everything clears).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHECK = "ikhokha-api"
CHECK_INTERVAL = 10.0  # the demo profile's interval for ikhokha-api
WAIT = 120.0
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (loopback)
        return json.loads(answer.read())


def until(what: str, condition: Callable[[], bool], since: float) -> float:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        try:
            if condition():
                took = time.monotonic() - since
                print(f"  {what:58} after {took:5.1f} s")
                return took
        except (OSError, ValueError, KeyError, IndexError):
            pass
        time.sleep(0.25)
    raise SystemExit(f"FAILED: {what} did not happen within {WAIT:g} s")


def main() -> int:
    prometheus, alertmanager = shutil.which("prometheus"), shutil.which("prometheus-alertmanager")
    alertmanager = alertmanager or shutil.which("alertmanager")
    if not prometheus or not alertmanager:
        print(
            "needs the Debian packages: apt-get install prometheus prometheus-alertmanager", file=sys.stderr
        )
        return 3
    work = Path(tempfile.mkdtemp(prefix="opsdash-prometheus-"))
    env = {**os.environ, "OPSDASH_DATA_DIR": str(work / "data"), "XDG_CONFIG_HOME": str(work / "config")}
    procs: list[subprocess.Popen[str]] = []
    logs = contextlib.ExitStack()

    def start(*argv: str, out: Any = subprocess.DEVNULL) -> subprocess.Popen[str]:
        log = logs.enter_context((work / f"{Path(argv[0]).name}-{len(procs)}.log").open("w"))
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=log, text=True)  # noqa: S603 (our own argv)
        procs.append(proc)
        return proc

    try:
        demo = start(str(BIN / "opsdash"), "demo", "--no-tui", "--dir", str(work / "ws"), out=subprocess.PIPE)
        assert demo.stdout is not None
        profile = Path(demo.stdout.readline().strip())
        am_port, prom_port, serve_port = free_port(), free_port(), free_port()
        am_url = f"http://127.0.0.1:{am_port}"
        with profile.open("a") as f:
            f.write(
                f'\n[[alerts.channels]]\nname = "alertmanager"\nkind = "alertmanager"\nurl = "{am_url}"\n'
            )
        (work / "alertmanager.yml").write_text(
            'route:\n  receiver: "null"\n  group_wait: 1s\n  group_interval: 1s\n'
            'receivers:\n  - name: "null"\n'
        )
        start(
            alertmanager,
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'am'}",
            f"--web.listen-address=127.0.0.1:{am_port}",
            "--cluster.listen-address=",
        )
        (work / "rules.yml").write_text(
            "groups:\n  - name: opsdash\n    rules:\n      - alert: OpsdashProbeFailed\n"
            "        expr: probe_success == 0\n        labels: {severity: critical}\n"
        )
        (work / "prometheus.yml").write_text(
            "global: {scrape_interval: 2s, evaluation_interval: 2s}\n"
            f"rule_files: ['{work / 'rules.yml'}']\n"
            f"alerting: {{alertmanagers: [{{static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]}}]}}\n"
            "scrape_configs:\n  - job_name: opsdash\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{serve_port}']}}]\n"
        )
        start(
            prometheus,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'prom'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        )
        start(str(BIN / "opsdash"), "serve", "--config", str(profile), "--listen", f"127.0.0.1:{serve_port}")
        prom_url = f"http://127.0.0.1:{prom_port}"

        def probe_success() -> float:
            query = urllib.parse.quote(f'probe_success{{check="{CHECK}"}}')
            result = get_json(f"{prom_url}/api/v1/query?query={query}")["data"]["result"]
            return float(result[0]["value"][1])

        def alerts() -> list[dict[str, Any]]:
            return [a for a in get_json(f"{am_url}/api/v2/alerts") if a["labels"].get("check") == CHECK]

        def named(name: str) -> bool:
            return any(a["labels"]["alertname"] == name for a in alerts())

        t = time.monotonic()
        print("start-up")
        until(f'Prometheus has probe_success{{check="{CHECK}"}} == 1', lambda: probe_success() == 1, t)
        print("demo fault provider-down on")
        subprocess.run(  # noqa: S603 (our own argv)
            [BIN / "opsdash", "demo", "fault", "provider-down", "on", "--config", str(profile)],
            env=env,
            check=True,
            capture_output=True,
        )
        t = time.monotonic()
        seen = until(f'Prometheus has probe_success{{check="{CHECK}"}} == 0', lambda: probe_success() == 0, t)
        until("Alertmanager has Prometheus' OpsdashProbeFailed", lambda: named("OpsdashProbeFailed"), t)
        until("Alertmanager has opsdash's check-critical", lambda: named("check-critical"), t)
        print("demo fault provider-down off")
        subprocess.run(  # noqa: S603 (our own argv)
            [BIN / "opsdash", "demo", "fault", "provider-down", "off", "--config", str(profile)],
            env=env,
            check=True,
            capture_output=True,
        )
        t = time.monotonic()
        until(f'Prometheus has probe_success{{check="{CHECK}"}} == 1', lambda: probe_success() == 1, t)
        until("Alertmanager has no alert for the check", lambda: not alerts(), t)
        ok = seen <= 2 * CHECK_INTERVAL
        print(
            f"acceptance: failure visible in Prometheus within two intervals ({2 * CHECK_INTERVAL:g} s): {ok}"
        )
        return 0 if ok else 1
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
