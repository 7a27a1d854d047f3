"""`opsdash serve`'s probe metrics held against Prometheus's blackbox_exporter on the same targets.

Not part of the test suite (it needs Debian's `prometheus-blackbox-exporter`; apt-get install
prometheus-blackbox-exporter). It starts the demo target, `opsdash serve` on the demo's profile and
blackbox_exporter (http_2xx with the demo's CA), then, for each http check of the profile and for
the demo's healthy state and each fault that changes what an http probe sees, compares:

- probe_success                      (the verdict: 1 up, 0 down)
- probe_http_status_code             (what the server said)
- probe_ssl_earliest_cert_expiry     (to the second: the same certificate chain)

opsdash's series come from its /metrics (parsed with prometheus_client's parser), blackbox's from
/probe?module=http_2xx&target=URL at the same moment. Exit 0 when every value agrees, 1 otherwise.

    python scripts/metrics_vs_blackbox.py
"""

# ruff: noqa: S603 - every process started here is opsdash or blackbox_exporter, with our own argv

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.parse
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

BIN = Path(sys.executable).parent
EXPORTERS = ("prometheus-blackbox-exporter", "blackbox_exporter")
COMPARED = ("probe_success", "probe_http_status_code", "probe_ssl_earliest_cert_expiry")
STATES = ("healthy", "app-down", "cert-expiring", "cert-expired")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=15) as answer:  # noqa: S310 (127.0.0.1, our own servers)
        return str(answer.read().decode())


def series(text: str, check: str | None = None) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in COMPARED and (check is None or sample.labels.get("check") == check):
                found[sample.name] = sample.value
    return found


def wait_port(port: int, what: str) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not start")


def main() -> int:
    exporter = next((found for name in EXPORTERS if (found := shutil.which(name))), None)
    if exporter is None:
        print("needs blackbox_exporter: apt-get install prometheus-blackbox-exporter", file=sys.stderr)
        return 3
    work = Path(tempfile.mkdtemp(prefix="opsdash-vs-blackbox-"))
    env = {**os.environ, "OPSDASH_DATA_DIR": str(work / "data"), "XDG_CONFIG_HOME": str(work / "config")}
    procs: list[subprocess.Popen[str]] = []
    try:
        demo = subprocess.Popen(
            [str(BIN / "opsdash"), "demo", "--no-tui", "--dir", str(work / "ws")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(demo)
        assert demo.stdout is not None
        profile = Path(demo.stdout.readline().strip())
        checks = {
            c["name"]: c["url"]
            for c in tomllib.loads(profile.read_text()).get("checks", [])
            if c.get("kind") == "http"
        }
        bb_port, serve_port = free_port(), free_port()
        (work / "blackbox.yml").write_text(
            "modules:\n  http_2xx:\n    prober: http\n    timeout: 10s\n    http:\n"
            "      preferred_ip_protocol: ip4\n      tls_config:\n"
            f"        ca_file: {profile.parent / 'demo-ca.pem'}\n"
        )
        procs.append(
            subprocess.Popen(
                [
                    exporter,
                    f"--config.file={work / 'blackbox.yml'}",
                    f"--web.listen-address=127.0.0.1:{bb_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
        procs.append(
            subprocess.Popen(
                [
                    str(BIN / "opsdash"),
                    "serve",
                    "--config",
                    str(profile),
                    "--listen",
                    f"127.0.0.1:{serve_port}",
                ],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        )
        wait_port(bb_port, "blackbox_exporter")
        wait_port(serve_port, "opsdash serve")
        intervals = {
            c["name"]: c.get("interval", 30) for c in tomllib.loads(profile.read_text()).get("checks", [])
        }
        settle = max(intervals[name] for name in checks) + 3  # every http check probed again
        disagreements = 0
        print(f"{'state':14} {'check':22} {'metric':32} {'opsdash':>14} {'blackbox':>14}")
        for state in STATES:
            fault = None if state == "healthy" else state
            if fault:
                subprocess.run(
                    [str(BIN / "opsdash"), "demo", "fault", fault, "on", "--config", str(profile)],
                    env=env,
                    check=True,
                    capture_output=True,
                )
            time.sleep(settle)
            metrics = fetch(f"http://127.0.0.1:{serve_port}/metrics")
            for name, url in sorted(checks.items()):
                ours = series(metrics, name)
                query = urllib.parse.urlencode({"module": "http_2xx", "target": url})
                theirs = series(fetch(f"http://127.0.0.1:{bb_port}/probe?{query}"))
                for metric in COMPARED:
                    a, b = ours.get(metric), theirs.get(metric)
                    if a is None and b is None:
                        continue
                    same = a is not None and b is not None and abs(a - b) < 1.0
                    # blackbox reports status 0 when nothing was answered; opsdash omits the series
                    if metric == "probe_http_status_code" and a is None and b == 0:
                        same = True
                    disagreements += not same
                    shown = [f"{v:14.0f}" if v is not None else f"{'-':>14}" for v in (a, b)]
                    print(
                        f"{state:14} {name:22} {metric:32} {shown[0]} {shown[1]}{'' if same else '  DIFFERS'}"
                    )
            if fault:
                subprocess.run(
                    [str(BIN / "opsdash"), "demo", "fault", fault, "off", "--config", str(profile)],
                    env=env,
                    check=True,
                    capture_output=True,
                )
        print(f"\n{disagreements} disagreement(s)")
        return 0 if disagreements == 0 else 1
    finally:
        for proc in reversed(procs):
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(15)


if __name__ == "__main__":
    sys.exit(main())
