"""`opsdash serve` as Prometheus and Alertmanager meet it: a real process, scraped over HTTP and
parsed with prometheus_client's own parser, posting to an Alertmanager-API receiver, stopped with
SIGTERM. The target and the receiver are servers this test starts on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opsdash.storage.history import History
from tests.conftest import Project, Run
from tests.retention_data import (
    DAYS,
    assert_purged_as_one_transaction,
    copy_data,
    dump,
    fill_year,
    old_runs,
    one_transaction_purge,
)
from tests.servers import assert_postable_alert, closed_port
from tests.waits import read_line, wait_until

WAIT = 60  # seconds any one condition may take on a loaded machine before the test gives up


class Stage:
    """The target (/healthy always 200; /flaky 503 until `fixed`) and an Alertmanager v2 API."""

    def __init__(self) -> None:
        self.requests: dict[str, int] = {"/healthy": 0, "/flaky": 0}
        self.fixed = False
        self.alerts: list[dict[str, Any]] = []
        self.notices: list[dict[str, Any]] = []
        stage = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                path = self.path.partition("?")[0]
                stage.requests[path] = stage.requests.get(path, 0) + 1
                failing = path == "/flaky" and not stage.fixed
                self._answer(503 if failing else 200, b'{"status":"UP"}')

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.partition("?")[0] == "/hook":  # a generic webhook channel: one POST per notice
                    stage.notices.append(json.loads(body))
                    self._answer(200, b"")
                    return
                if self.path != "/api/v2/alerts":
                    self._answer(404, b"{}")
                    return
                stage.alerts.extend(json.loads(body))
                self._answer(200, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stage() -> Iterator[Stage]:
    s = Stage()
    yield s
    s.close()


def write_profile(project: Project, stage: Stage, target: str = "BetaSkill") -> Path:
    text = project.profile.read_text().replace('name = "BetaSkill"', f'name = "{target}"', 1)
    project.profile.write_text(
        text
        + f"""
[serve]
validate_interval = 10

[[checks]]
name = "healthy"
kind = "http"
url = "{stage.url}/healthy"
interval = 1
retries = 0

[[checks]]
name = "flaky"
kind = "http"
url = "{stage.url}/flaky"
interval = 1
retries = 0
failure_threshold = 2
success_threshold = 1

[[alerts.channels]]
name = "alertmanager"
kind = "alertmanager"
url = "{stage.url}"
retries = 0
"""
    )
    return project.profile


class Serve:
    def __init__(self, *args: str | Path, open_files: int | None = None) -> None:
        opsdash = str(Path(sys.executable).with_name("opsdash"))
        command = [opsdash, "serve", "--listen", "127.0.0.1:0", *map(str, args)]
        if open_files is not None:  # as `ulimit -n` in the service's unit or shell
            command = ["sh", "-c", f'ulimit -n {open_files} && exec "$0" "$@"', *command]
        self.proc = subprocess.Popen(
            command,
            env=dict(os.environ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = read_line(self.proc.stdout).strip()
        assert self.url.startswith("http://127.0.0.1:"), self.proc.stderr.read() if self.proc.stderr else ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as answer:
                return answer.status, answer.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        status, text = self.get("/metrics")
        assert status == 200
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        _out, err = self.proc.communicate(timeout=WAIT)
        return self.proc.returncode, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def until(condition: Callable[[], Any], what: str) -> Any:
    return wait_until(condition, what, WAIT)


def env_values(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {k.strip(): v.strip().strip('"') for k, v in pairs}


def series(target: str, check: str, **extra: str) -> frozenset[tuple[str, str]]:
    return frozenset({"target": target, "check": check, **extra}.items())


def test_metrics_alerts_and_a_clean_stop(project: Project, stage: Stage) -> None:
    serve = Serve("--config", write_profile(project, stage))
    try:
        down = ("opsdash_check_state", series("BetaSkill", "flaky"))
        samples = until(lambda: (s := serve.samples()).get(down) == 2 and s, "flaky is down")
        healthy, flaky = series("BetaSkill", "healthy"), series("BetaSkill", "flaky")
        assert samples[("probe_success", healthy)] == 1 and samples[("probe_success", flaky)] == 0
        assert samples[("probe_http_status_code", healthy)] == 200
        assert samples[("probe_http_status_code", flaky)] == 503
        assert samples[("opsdash_check_state", healthy)] == 0
        assert samples[("probe_duration_seconds", healthy)] > 0
        phases = {dict(labels)["phase"] for name, labels in samples if name == "probe_http_duration_seconds"}
        assert {"connect", "processing", "transfer"} <= phases
        gate = frozenset({"target": "BetaSkill", "verdict": "NO-GO"}.items())
        assert samples[("opsdash_gate", gate)] == 1
        firing = ("opsdash_alerts_firing", frozenset({"target": "BetaSkill"}.items()))
        until(lambda: serve.samples().get(firing) == 1, "the alert is counted")
        assert serve.samples()[("opsdash_audit_verified", frozenset({"target": "BetaSkill"}.items()))] == 1

        first = until(lambda: stage.alerts and stage.alerts[0], "Alertmanager hears of the alert")
        assert_postable_alert(first)
        assert first["labels"] == {
            "alertname": "check-critical",
            "check": "flaky",
            "target": "BetaSkill",
            "severity": "critical",
        }
        assert first["annotations"]["summary"] == "flaky is failing"
        assert first["generatorURL"] == serve.url
        assert datetime.fromisoformat(first["endsAt"]) > datetime.fromisoformat(first["startsAt"])

        stage.fixed = True
        up = until(
            lambda: [a for a in stage.alerts if a["labels"]["check"] == "flaky" and a is not first],
            "Alertmanager hears the end",
        )[-1]
        assert up["labels"] == first["labels"] and up["startsAt"] == first["startsAt"]
        # a resolve, not a re-send of the firing alert: it ends now (Alertmanager resolves it), in
        # RFC 3339 with a zone
        ended = datetime.fromisoformat(up["endsAt"])
        assert ended.tzinfo is not None and ended <= datetime.now(UTC)
        assert ended < datetime.fromisoformat(first["endsAt"])
        status, health = serve.get("/healthz")
        assert status == 200 and json.loads(health)["status"] == "ok"
        secrets = [v for k, v in env_values(project.env_file).items() if "SECRET" in k or "KEY" in k]
        assert secrets
        published = serve.get("/metrics")[1] + json.dumps(stage.alerts) + health
        assert not [s for s in secrets if s in published]

        code, err = serve.stop()
    finally:
        serve.kill()
    assert code == 0, err
    # Every probe the target answered, up to the last one in flight at SIGTERM, is in history.
    from opsdash.storage.history import History

    with History.open(Path(os.environ["OPSDASH_DATA_DIR"])) as history:
        recorded = {name: len(history.checks.recent(name, limit=100_000)) for name in ("healthy", "flaky")}
    assert recorded == {"healthy": stage.requests["/healthy"], "flaky": stage.requests["/flaky"]}


async def test_restarts_reloads_and_a_dashboard_continue_one_incident(project: Project, stage: Stage) -> None:
    """An incident is one incident in the record, whoever watches it: serve restarted, serve
    reloaded, and a dashboard opened beside it on the same data directory neither resolve the alert
    while the check still fails nor raise a second one; the receiver hears one firing, then one
    resolved when the check recovers."""
    from opsdash.tui.app import OpsdashApp
    from tests.waits import until_async

    profile = write_profile(project, stage)
    profile.write_text(
        profile.read_text()
        + f"""
[[alerts.channels]]
name = "pager"
kind = "webhook"
url = "{stage.url}/hook"
retries = 0
"""
    )

    def polls_of_flaky(more: int) -> Callable[[], bool]:
        goal = stage.requests["/flaky"] + more
        return lambda: stage.requests["/flaky"] >= goal

    def events() -> list[tuple[str, str]]:
        return [(n["status"], n["key"]) for n in stage.notices if n["key"] == "flaky"]

    first = Serve("--config", profile)
    try:
        until(lambda: events(), "the pager hears of the incident")
        assert first.stop()[0] == 0
    finally:
        first.kill()
    second = Serve("--config", profile)  # restarted: it finds the incident open in the record
    try:
        until(polls_of_flaky(3), "the restarted serve probes flaky")
        second.proc.send_signal(signal.SIGHUP)  # reloaded
        until(polls_of_flaky(3), "the reloaded serve probes flaky")
        app = OpsdashApp.on_profile(profile, record=True)
        async with app.run_test(size=(120, 36)) as pilot:  # a dashboard opened mid-incident
            await until_async(polls_of_flaky(4), "both watch flaky", pause=pilot.pause)
            assert events() == [("firing", "flaky")]
            stage.fixed = True
            await until_async(
                lambda: ("resolved", "flaky") in events(), "the pager hears the end", pause=pilot.pause
            )
            await until_async(polls_of_flaky(3), "both see it healthy", pause=pilot.pause)
        code, err = second.stop()
    finally:
        second.kill()
    assert code == 0, err
    assert events() == [("firing", "flaky"), ("resolved", "flaky")]


def request(url: str, method: str, path: str) -> http.client.HTTPResponse:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request(method, path)
    answer = conn.getresponse()
    answer.read()
    conn.close()
    return answer


def test_head_answers_as_get_without_a_body_and_other_methods_get_405(project: Project, stage: Stage) -> None:
    serve = Serve("--config", write_profile(project, stage), "--no-validate")
    try:
        for path in ("/metrics", "/healthz"):
            got = request(serve.url, "GET", path)
            head = request(serve.url, "HEAD", path)
            assert (head.status, head.read()) == (200, b"")
            assert head.getheader("Content-Type") == got.getheader("Content-Type")
            assert int(head.getheader("Content-Length") or -1) > 0
        posted = request(serve.url, "POST", "/metrics")
        assert posted.status == 405 and posted.getheader("Allow") == "GET, HEAD"
        code, err = serve.stop()
    finally:
        serve.kill()
    assert code == 0 and "Traceback" not in err, err


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (what it sent before is read and dropped)."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        while data := sock.recv(65536, socket.MSG_DONTWAIT):
            del data
        return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_sigterm_with_scrape_connections_open_exits_0_without_a_traceback(
    project: Project, stage: Stage
) -> None:
    serve = Serve("--config", write_profile(project, stage), "--no-validate")
    parts = urllib.parse.urlsplit(serve.url)
    address = (parts.hostname or "", parts.port or 0)
    try:
        scraper = http.client.HTTPConnection(*address, timeout=10)  # kept alive after a scrape
        scraper.request("GET", "/metrics")
        assert scraper.getresponse().read()
        idle = socket.create_connection(address)  # connected, nothing sent
        halfway = socket.create_connection(address)  # a request head begun
        halfway.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        until(lambda: request(serve.url, "GET", "/healthz").status == 200, "serve answers")
        code, err = serve.stop()
        assert closed(idle) and closed(halfway)
    finally:
        serve.kill()
    assert code == 0 and "Traceback" not in err, err


def test_idle_and_slow_connections_are_closed_after_the_idle_timeout(project: Project, stage: Stage) -> None:
    serve = Serve("--config", write_profile(project, stage), "--no-validate", "--idle-timeout", "1")
    parts = urllib.parse.urlsplit(serve.url)
    address = (parts.hostname or "", parts.port or 0)
    try:
        idle = socket.create_connection(address)
        slow = socket.create_connection(address)
        slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")

        def slow_is_closed() -> bool:  # a slowloris: one more byte of its header on each look
            try:
                slow.send(b"a")
            except OSError:
                return True
            return closed(slow)

        until(lambda: closed(idle), "the idle connection is closed")
        until(slow_is_closed, "the slow request head is closed")
        assert request(serve.url, "GET", "/healthz").status == 200
        code, err = serve.stop()
    finally:
        serve.kill()
    assert code == 0 and "Traceback" not in err, err


def test_idle_connections_beyond_the_descriptor_limit_do_not_stop_probes(
    project: Project, stage: Stage
) -> None:
    """More idle connections than the service has descriptors: probes keep being made and recorded
    healthy, and /healthz still answers."""
    from opsdash.storage.history import History

    serve = Serve("--config", write_profile(project, stage), "--no-validate", open_files=256)
    parts = urllib.parse.urlsplit(serve.url)
    address = (parts.hostname or "", parts.port or 0)
    sockets: list[socket.socket] = []

    def healthy_recorded() -> int:
        with History.open(Path(os.environ["OPSDASH_DATA_DIR"])) as history:
            rows = history.checks.recent("healthy", limit=100_000)
        return sum(1 for row in rows if row.severity == "OK" and row.error_class is None)

    try:
        until(healthy_recorded, "a first healthy result")
        for _ in range(400):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)  # under way: the backlog may be full
            sockets.append(sock)
        before = healthy_recorded()
        until(lambda: healthy_recorded() >= before + 3, "healthy results keep being recorded")

        def healthz() -> bool:
            try:
                return request(serve.url, "GET", "/healthz").status == 200
            except OSError:
                return False

        until(healthz, "/healthz answers")
        code, err = serve.stop()
    finally:
        for sock in sockets:
            sock.close()
        serve.kill()
    assert code == 0 and "Traceback" not in err, err


def test_no_profile_url_secret_in_metrics_alerts_or_logs(project: Project, stage: Stage) -> None:
    """Credentials inside the profile's URLs (a check's userinfo and ?api_key=, a channel's) reach
    neither /metrics, nor what Alertmanager and a webhook receiver are sent, nor serve's log."""
    import secrets

    names = ("check_pw", "check_key", "am_pw", "hook_token", "gone_pw", "gone_token")
    canary = {n: f"canary{secrets.token_hex(12)}" for n in names}
    port = stage.url.rsplit(":", 1)[1]
    profile = write_profile(project, stage)
    text = profile.read_text().replace(
        f'url = "{stage.url}/flaky"',
        f'url = "http://ops:{canary["check_pw"]}@127.0.0.1:{port}/flaky?api_key={canary["check_key"]}"',
    )
    text = text.replace(f'url = "{stage.url}"', f'url = "http://am:{canary["am_pw"]}@127.0.0.1:{port}"')
    profile.write_text(
        text
        + f"""
[[alerts.channels]]
name = "pager"
kind = "webhook"
url = "{stage.url}/hook?token={canary["hook_token"]}"
retries = 0

[[alerts.channels]]
name = "gone"
kind = "webhook"
url = "http://ops:{canary["gone_pw"]}@127.0.0.1:{closed_port()}/hook?token={canary["gone_token"]}"
retries = 0
"""
    )
    serve = Serve("--config", profile)
    try:
        until(lambda: stage.alerts and stage.notices, "both receivers hear of the incident")
        metrics = serve.get("/metrics")[1]
        assert 'check="flaky"' in metrics
        code, err = serve.stop()
    finally:
        serve.kill()
    assert code == 0, err
    assert "not delivered to gone" in err  # a delivery that failed is reported, its URL masked
    seen = metrics + json.dumps(stage.alerts) + json.dumps(stage.notices) + err
    assert [n for n, v in canary.items() if v in seen] == []


def test_two_profiles_in_one_process_are_labelled_by_target(
    project: Project, stage: Stage, tmp_path: Path
) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    other = Project(staging, staging / "opsdash.toml", staging / ".env.production")
    other.profile.write_text(project.profile.read_text())
    other.env_file.write_text(project.env_file.read_text())
    first = write_profile(project, stage)
    second = write_profile(other, stage, target="staging")
    # one data directory for both: fine while their checks have names of their own
    second.write_text(second.read_text().replace('name = "healthy"', 'name = "staging-healthy"'))
    second.write_text(second.read_text().replace('name = "flaky"', 'name = "staging-flaky"'))
    serve = Serve("--config", first, "--config", second, "--no-validate")
    try:
        targets = until(
            lambda: (
                {dict(labels)["target"] for name, labels in serve.samples() if name == "probe_success"}
                == {"BetaSkill", "staging"}
            ),
            "both targets' checks are scraped",
        )
        assert targets
    finally:
        assert serve.stop()[0] == 0
        serve.kill()


def test_two_profiles_with_one_target_name_are_refused(run: Run, project: Project, stage: Stage) -> None:
    path = write_profile(project, stage)
    result = run("serve", "--config", path, "--config", path, "--listen", "127.0.0.1:0")
    assert result.code == 3 and "both name their target 'BetaSkill'" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize("listen", ["9477", "localhost:http", "127.0.0.1:70000"])
def test_a_bad_listen_address_is_a_usage_error(run: Run, project: Project, listen: str) -> None:
    result = run("serve", "--config", project.profile, "--listen", listen)
    assert result.code == 3 and "is not HOST:PORT" in result.err


def test_sighup_reloads_and_a_broken_profile_keeps_the_old_one(project: Project, stage: Stage) -> None:
    path = write_profile(project, stage)
    serve = Serve("--config", path, "--no-validate")
    try:
        until(lambda: ("probe_success", series("BetaSkill", "flaky")) in serve.samples(), "flaky scraped")
        path.write_text(path.read_text().replace('name = "flaky"', 'name = "renamed"'))
        serve.proc.send_signal(signal.SIGHUP)
        until(lambda: ("probe_success", series("BetaSkill", "renamed")) in serve.samples(), "renamed scraped")
        assert ("probe_success", series("BetaSkill", "flaky")) not in serve.samples()
        path.write_text(path.read_text() + "\n[[checks]\nbroken")
        serve.proc.send_signal(signal.SIGHUP)
        probed = stage.requests["/flaky"]  # the old profile is still being watched, not just remembered
        until(lambda: stage.requests["/flaky"] >= probed + 2, "still probing after the refused reload")
        assert ("probe_success", series("BetaSkill", "renamed")) in serve.samples()
        code, err = serve.stop()
    finally:
        serve.kill()
    assert code == 0
    assert "still serving it as it was" in err


def test_an_edited_env_file_is_validated_at_once_without_a_signal(project: Project, stage: Stage) -> None:
    """The env file the target's checks and validation read is followed: edited, it is validated
    again at once (the next validation is an hour away), and a half-saved one is reported."""
    path = write_profile(project, stage)
    path.write_text(path.read_text().replace("validate_interval = 10", "validate_interval = 3600"))
    serve = Serve("--config", path)
    not_production = (
        "opsdash_validation_findings",
        frozenset({"target": "BetaSkill", "severity": "CRIT", "rule": "env-not-production"}.items()),
    )
    validated = ("opsdash_validation_timestamp_seconds", frozenset({"target": "BetaSkill"}.items()))
    try:
        until(lambda: validated in serve.samples(), "validated at start")
        assert not_production not in serve.samples()
        good = project.env_file.read_text()
        project.env_file.write_text(good.replace("VITE_NODE_ENV=production", "VITE_NODE_ENV=development"))
        until(lambda: serve.samples().get(not_production) == 1, "the edit is validated")
        lines = good.count("\n")
        project.env_file.write_text(good + 'HALF_SAVED="\n')
        while "cannot parse" not in (warning := read_line(serve.proc.stderr)):
            assert warning, "serve ended"  # past the start-up announcement, to the warning
        assert f"{project.env_file}:{lines + 1}: cannot parse the value of HALF_SAVED" in warning
        assert warning.rstrip().endswith("still serving it as it was")
        probed = stage.requests["/healthy"]
        until(lambda: stage.requests["/healthy"] >= probed + 2, "still probing after the broken edit")
        assert serve.samples().get(not_production) == 1  # the last good validation stands
        code, _err = serve.stop()
    finally:
        serve.kill()
    assert code == 0


def test_a_profile_without_checks_is_refused_before_listening(run: Run, project: Project) -> None:
    result = run("serve", "--config", project.profile, "--listen", "127.0.0.1:0")
    assert result.code == 3 and "no [[checks]]" in result.err and result.out == ""


def test_opsdash_gate_counts_open_alerts_as_the_header_does() -> None:
    """An open CRIT alert that is not a check's state (a failed preflight, keyed by the target) makes
    the dashboard's header NO-GO; a scrape must say the same."""
    import dataclasses

    from opsdash.core.findings import Severity
    from opsdash.core.readiness import dashboard_verdict
    from opsdash.demo.sample import sample_report
    from opsdash.ops.config import load_config
    from opsdash.ops.serve.metrics import TargetStatus
    from tests.conftest import EXAMPLE_PROFILE

    report = dataclasses.replace(sample_report(load_config(EXAMPLE_PROFILE).profile), findings=())
    alerts = [(Severity.CRIT, "preflight NO-GO for BetaSkill")]
    status = TargetStatus("BetaSkill", 0, {}, validation=report, alerts=alerts)
    assert status.gate() == dashboard_verdict(report, {}, 0, alerts).label == "NO-GO"
    assert dataclasses.replace(status, alerts=[]).gate() == "GO"


def test_probe_answers_one_check_as_blackbox_exporter_does(project: Project, stage: Stage) -> None:
    """blackbox_exporter's scrape config points at /probe?target=...&module=...: the answer is that
    check's series with no target/check labels (relabelling makes the check the `instance`), every one
    of blackbox's HTTP phases, and a clear 4xx for a missing or unknown target."""
    serve = Serve("--config", write_profile(project, stage))
    try:

        def probe(query: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            status, text = serve.get(f"/probe?{query}")
            if status != 200:
                return None
            return {
                (s.name, frozenset(s.labels.items())): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }

        healthy = until(lambda: probe("target=healthy&module=http_2xx"), "healthy has a result")
        none: frozenset[tuple[str, str]] = frozenset()
        assert healthy[("probe_success", none)] == 1
        assert healthy[("probe_http_status_code", none)] == 200
        assert healthy[("probe_http_ssl", none)] == 0 and healthy[("probe_http_version", none)] == 1.1
        assert healthy[("probe_ip_protocol", none)] == 4
        assert healthy[("probe_failed_due_to_regex", none)] == 0
        assert healthy[("probe_http_redirects", none)] == 0
        body = len(b'{"status":"UP"}')  # what Stage answers, with its Content-Length
        assert healthy[("probe_http_content_length", none)] == body
        assert healthy[("probe_http_uncompressed_body_length", none)] == body
        phases = {dict(labels)["phase"] for name, labels in healthy if name == "probe_http_duration_seconds"}
        assert phases == {"resolve", "connect", "tls", "processing", "transfer"}
        assert not [labels for _name, labels in healthy if {"target", "check"} & dict(labels).keys()]
        flaky = until(lambda: probe("target=flaky"), "flaky has a result")
        assert flaky[("probe_success", none)] == 0 and flaky[("probe_http_status_code", none)] == 503
        assert serve.get("/probe")[0] == 400
        status, text = serve.get("/probe?target=helthy")
        assert status == 404 and "did you mean 'healthy'?" in text
        validated = ("opsdash_validation_timestamp_seconds", frozenset({"target": "BetaSkill"}.items()))
        until(lambda: validated in serve.samples(), "the env (and so its secrets) is read")
        secret = next(v for k, v in env_values(project.env_file).items() if "SECRET" in k)
        query = urllib.parse.urlencode({"target": f"https://x.example/?api_key={secret}"})
        status, text = serve.get(f"/probe?{query}")
        assert status == 404 and secret not in text  # a blackbox config's target URL, echoed masked
        # /metrics carries the same new families, labelled by target and check
        samples = serve.samples()
        assert samples[("probe_http_version", series("BetaSkill", "healthy"))] == 1.1
    finally:
        serve.kill()


def test_a_critical_validation_alerts_through_the_channels_and_a_clean_one_resolves(
    project: Project, stage: Stage
) -> None:
    """serve's validation reaches the channels as its checks do: one `validation-no-go` alert per
    target (rule ids in its text, never values), with the profile's runbook link as Alertmanager's
    `runbook_url`, resolved by the next clean validation."""
    path = write_profile(project, stage)
    text = path.read_text().replace(
        "send_resolved = true",
        'send_resolved = true\nrunbook_url = "https://wiki.example.com/rb/{runbook}"',
        1,
    )
    path.write_text(text.replace("validate_interval = 10", "validate_interval = 3600"))
    good = project.env_file.read_text()
    project.env_file.write_text(good.replace("ENFORCE_HTTPS=true", "ENFORCE_HTTPS=false"))
    serve = Serve("--config", path)
    try:

        def validation_alerts() -> list[dict[str, Any]]:
            return [a for a in stage.alerts if a["labels"]["alertname"] == "validation-no-go"]

        first = until(
            lambda: validation_alerts() and validation_alerts()[0], "the NO-GO reaches Alertmanager"
        )
        assert first["labels"]["subject"] == "BetaSkill" and first["labels"]["severity"] == "critical"
        assert "policy-violation" in first["annotations"]["description"]
        assert first["annotations"]["runbook_url"].startswith("https://wiki.example.com/rb/")
        assert first["annotations"]["runbook_url"].endswith(first["annotations"]["runbook"])
        project.env_file.write_text(good)  # fixed: followed and validated again at once
        until(
            lambda: [
                a for a in validation_alerts() if datetime.fromisoformat(a["endsAt"]) <= datetime.now(UTC)
            ],
            "a clean validation resolves it (endsAt now, not ahead)",
        )
        secrets = [v for k, v in env_values(project.env_file).items() if "SECRET" in k or "KEY" in k]
        assert secrets and not [s for s in secrets if s in json.dumps(stage.alerts)]
    finally:
        serve.kill()


def test_a_year_late_purge_runs_in_the_background_while_it_serves(
    project: Project, stage: Stage, tmp_path: Path
) -> None:
    data = Path(os.environ["OPSDASH_DATA_DIR"])
    # 750 runs due: one batch per validation (every 10 s) would take minutes; the background, seconds
    fill_year(data, datetime.now(UTC), runs=1000)
    original = dump(data)
    reference = copy_data(data, tmp_path / "reference")
    with History.open(reference) as history:
        one_transaction_purge(history, DAYS, datetime.now(UTC))
    serve = Serve("--config", write_profile(project, stage))
    try:
        until(lambda: old_runs(data, datetime.now(UTC)) == 0, "the backlog is purged")
        probes = stage.requests["/healthy"]
        until(lambda: stage.requests["/healthy"] > probes + 1, "the checks still run")
        code, err = serve.stop()
    finally:
        serve.kill()
    assert code == 0 and "Traceback" not in err and "locked" not in err, err
    # its own results and alerts share facts bodies: those rows change as it records
    assert_purged_as_one_transaction(original, dump(reference), dump(data), skip=("shared_facts",))
