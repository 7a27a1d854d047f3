"""Deploy gates and alerts against the demo target: preflight, verify-deploy, rollback readiness,
and alerts delivered to a receiver the test starts."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsdash.demo import FAULTS
from opsdash.demo.control import set_fault
from opsdash.demo.httpserver import Request, Response
from tests.conftest import Demo, Run, json_object
from tests.servers import ThreadedHttpServer, closed_port


@pytest.fixture
def demo(demo_process: Demo) -> Iterator[Demo]:
    """The shared demo; each test keeps its own history (OPSDASH_DATA_DIR stays the test's own)."""
    yield demo_process
    for fault in FAULTS:
        set_fault(demo_process.data_dir, fault, False)


def fault(demo: Demo, name: str, on: bool = True) -> None:
    set_fault(demo.data_dir, name, on)


def gate(run: Run, *args: str | Path) -> tuple[int, dict[str, Any]]:
    result = run(*args, "--json")
    assert result.out, result.err
    return result.code, json_object(result.out)


def test_healthy_demo_passes_preflight(run: Run, demo: Demo) -> None:
    code, report = gate(run, "preflight", "--config", demo.profile)
    assert report["gate"] == "GO" and code in (0, 1)
    assert not [f for f in report["findings"] if f["severity"] == "CRIT"]
    assert report["summary"]["versions"]["previous"] == "2026.11.2"
    assert len(report["summary"]["checks"]) == 7


FAULT_REASONS = {
    "provider-down": ("check-failed", "ikhokha-api"),
    "provider-slow": ("check-failed", "ikhokha-api"),
    "credentials-rejected": ("check-failed", "ikhokha-api"),
    "cert-expired": ("tls-expired", "app-tls"),
    "webhook-unsigned": ("webhook-accepts-unsigned", "webhook-endpoint"),
    "app-down": ("check-failed", "app-health"),
    "payments-degraded": ("check-failed", "app-health"),
    "env-plan-shaped": ("secret-client-exposed", "VITE_IKHOKHA_API_SECRET"),
}


@pytest.mark.parametrize("fault_name", sorted(FAULT_REASONS))
def test_each_fault_is_a_no_go_with_its_reason(run: Run, demo: Demo, fault_name: str) -> None:
    set_fault(demo.data_dir, fault_name, True)
    code, report = gate(run, "preflight", "--config", demo.profile, "--no-history")
    assert (code, report["gate"]) == (2, "NO-GO")
    reasons = {(f["rule"], f["subject"]) for f in report["findings"] if f["severity"] == "CRIT"}
    assert FAULT_REASONS[fault_name] in reasons, reasons
    crit = [f for f in report["findings"] if f["severity"] == "CRIT"]
    assert all(f["remediation"] and f["runbook"] for f in crit)


def test_expiring_certificate_is_go_with_a_warning(run: Run, demo: Demo) -> None:
    fault(demo, "cert-expiring")
    code, report = gate(run, "preflight", "--config", demo.profile, "--no-history")
    assert report["gate"] == "GO" and code == 1
    assert ("tls-expiring-soon", "app-tls") in {(f["rule"], f["subject"]) for f in report["findings"]}


def test_human_preflight_lists_reasons(run: Run, demo: Demo) -> None:
    fault(demo, "provider-down")
    result = run("preflight", "--config", demo.profile, "--no-history")
    assert result.out.startswith("NO-GO  preflight for BetaSkill")
    assert "runbook: payment-provider-outage" in result.out


def test_rollback_readiness(run: Run, demo: Demo, tmp_path: Path) -> None:
    text = demo.profile.read_text()
    broken = tmp_path / "opsdash.toml"
    broken.write_text(
        text.replace('version_url = "', 'version_url = "https://127.0.0.1:1/nope" # "')
        .replace('rollback_runbook = "rollback"', 'rollback_runbook = "no-such-runbook"')
        .replace('ca_file = "demo-ca.pem"', f'ca_file = "{demo.profile.parent / "demo-ca.pem"}"')
        .replace('files = [".env.production"]', f'files = ["{demo.profile.parent / ".env.production"}"]')
    )
    _code, report = gate(run, "preflight", "--config", broken, "--no-history")
    rules = {f["rule"] for f in report["findings"]}
    assert {"rollback-version-unknown", "rollback-runbook-invalid"} <= rules
    assert report["gate"] == "NO-GO"


def test_verify_deploy_finds_latency_regression_and_changed_secret(run: Run, demo: Demo) -> None:
    gate(run, "preflight", "--config", demo.profile)  # warns: history has no green run yet
    code, green = gate(run, "preflight", "--config", demo.profile)
    assert green["gate"] == "GO" and green["verdict"] == "OK"  # the baseline: the last OK run
    fault(demo, "app-slow")
    fault(demo, "secret-rotated")
    code, report = gate(
        run,
        "verify-deploy",
        "--config",
        demo.profile,
        "--window",
        "30",
        "--interval",
        "0.5",
        "--stable",
        "2",
        "--expect-version",
        "2026.11.3",
    )
    findings = {(f["rule"], f["subject"]): f for f in report["findings"]}
    assert ("latency-regression", "app-health") in findings
    changed = findings[("env-changed", "IKHOKHA_API_SECRET")]
    assert changed["severity"] == "WARN" and changed["evidence"]["green_run"] == green["run_id"]
    assert report["summary"]["baseline"] == green["run_id"] and report["summary"]["stable"] == 2
    assert code == 1 and report["gate"] == "GO"
    secret = demo.profile.with_name(".env.production").read_text().split("IKHOKHA_API_SECRET=")[1].split()[0]
    assert secret not in json.dumps(report)


def test_verify_deploy_unstable_and_wrong_version_point_to_rollback(run: Run, demo: Demo) -> None:
    fault(demo, "app-down")
    code, report = gate(
        run,
        "verify-deploy",
        "--config",
        demo.profile,
        "--window",
        "3",
        "--interval",
        "0.5",
        "--stable",
        "2",
        "--expect-version",
        "2026.11.9",
    )
    rules = {f["rule"] for f in report["findings"] if f["severity"] == "CRIT"}
    assert {"deploy-unstable", "version-mismatch", "check-failed"} <= rules
    assert code == 2 and report["summary"]["next"] == "opsdash runbook run rollback"


def verify(run: Run, demo: Demo, *extra: str) -> tuple[int, dict[str, Any]]:
    return gate(
        run,
        "verify-deploy",
        "--config",
        demo.profile,
        "--window",
        "30",
        "--interval",
        "0.5",
        "--stable",
        "1",
        *extra,
    )


def test_verify_deploy_compares_with_the_last_ok_run_and_sees_a_certificate_drop(
    run: Run, demo: Demo
) -> None:
    gate(run, "preflight", "--config", demo.profile)  # WARN: no green run yet
    _code, ok = gate(run, "preflight", "--config", demo.profile)
    assert ok["verdict"] == "OK", ok["findings"]
    fault(demo, "cert-expiring")  # 365 days -> 20: inside the warning window
    _code, warned = gate(run, "preflight", "--config", demo.profile)
    assert warned["verdict"] == "WARN"

    _code, report = verify(run, demo)
    assert report["summary"]["baseline"] == ok["run_id"]  # not the newer run that ended in WARN
    dropped = {f["subject"]: f for f in report["findings"] if f["rule"] == "cert-days-dropped"}
    assert "app-tls" in dropped and "now has 20 days left, was 365" in dropped["app-tls"]["detail"]

    _code, latest = verify(run, demo, "--baseline", "last")
    assert latest["summary"]["baseline"] == report["run_id"]  # the newest, whatever its verdict
    _code, chosen = verify(run, demo, "--baseline", ok["run_id"][:-1])  # a prefix (one char short: unique)
    assert chosen["summary"]["baseline"] == ok["run_id"]


@pytest.mark.parametrize(
    ("baseline", "says"),
    [("19990101", "not found"), ("latest~x", "expected latest~N")],
)
def test_verify_deploy_with_an_unknown_baseline_stops_before_waiting(
    run: Run, demo: Demo, baseline: str, says: str
) -> None:
    result = run(
        "verify-deploy",
        "--config",
        demo.profile,
        "--window",
        "600",
        "--interval",
        "60",
        "--baseline",
        baseline,
    )
    assert result.code == 3 and says in result.err and "Traceback" not in result.err


def test_a_certificate_inside_the_warning_window_is_still_compared() -> None:
    from opsdash.core.findings import Severity
    from opsdash.core.health.model import CheckResult
    from opsdash.core.profile import DeploySection
    from opsdash.core.readiness import Baseline, baseline_from, compare

    expiring = CheckResult(
        "app-tls",
        "tls",
        "app:443",
        Severity.WARN,
        "expires in 20 days",
        "2026-11-26T00:00:00+00:00",
        5.0,
        metrics={"cert_days_left": 20.0},
    )
    now = baseline_from("new", [[expiring]])
    green = Baseline("green", {}, {"app-tls": {"cert_days_left": 365.0}})
    assert [f.rule for f in compare(green, now, DeploySection())] == ["cert-days-dropped"]


# ---------------------------------------------------------------- alerts


class Receiver(ThreadedHttpServer):
    """A webhook receiver on 127.0.0.1 in its own thread, recording every JSON body."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = status
        super().__init__(self._receive)

    async def _receive(self, req: Request) -> Response:
        self.bodies.append(json.loads(req.body))
        return Response(self.status, b"ok")

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def with_channels(demo: Demo, tmp_path: Path, channels: str, extra: str = "") -> Path:
    text = demo.profile.read_text().replace(
        "[alerts]\nreminder_interval = 3600\nsend_resolved = true\n",
        f"[alerts]\nreminder_interval = 3600\nsend_resolved = true\n{extra}{channels}",
    )
    text = text.replace('ca_file = "demo-ca.pem"', f'ca_file = "{demo.profile.parent / "demo-ca.pem"}"')
    text = text.replace(
        'files = [".env.production"]', f'files = ["{demo.profile.parent / ".env.production"}"]'
    )
    path = tmp_path / "opsdash.toml"
    path.write_text(text)
    return path


def test_alert_once_per_incident_then_resolved(
    run: Run, demo: Demo, tmp_path: Path, receiver: Receiver
) -> None:
    profile = with_channels(
        demo, tmp_path, f'[[alerts.channels]]\nname = "ops"\nkind = "webhook"\nurl = "{receiver.url}"\n'
    )
    fault(demo, "provider-down")
    for _ in range(3):
        assert run("check", "--config", profile, "ikhokha-api").code == 2
    firing = [b for b in receiver.bodies if b["status"] == "firing"]
    assert len(firing) == 1
    assert (firing[0]["rule"], firing[0]["key"], firing[0]["severity"]) == (
        "check-critical",
        "ikhokha-api",
        "CRIT",
    )
    assert firing[0]["runbook"] == "payment-provider-outage"
    fault(demo, "provider-down", False)
    assert run("check", "--config", profile, "ikhokha-api").code == 0
    assert run("check", "--config", profile, "ikhokha-api").code == 0
    statuses = [b["status"] for b in receiver.bodies]
    assert statuses == ["firing", "resolved"]
    assert receiver.bodies[1]["alert_id"] == firing[0]["alert_id"]


def test_credentials_rejected_alerts_to_slack_format(
    run: Run, demo: Demo, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SLACK_URL", receiver.url)
    profile = with_channels(
        demo, tmp_path, '[[alerts.channels]]\nname = "slack"\nkind = "slack"\nurl_env = "TEST_SLACK_URL"\n'
    )
    fault(demo, "credentials-rejected")
    result = run("check", "--config", profile, "ikhokha-api")
    assert result.code == 2
    (body,) = receiver.bodies
    assert set(body) == {"text"} and "iKhokha rejected our credentials" in body["text"]
    assert receiver.url not in result.out + result.err  # a Slack URL is a credential


def test_failing_channel_is_retried_reported_and_never_blocks(run: Run, demo: Demo, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/hook"
    profile = with_channels(
        demo,
        tmp_path,
        f'[[alerts.channels]]\nname = "dead"\nkind = "webhook"\nurl = "{dead}"\nretries = 1\ntimeout = 1\n',
    )
    fault(demo, "app-down")
    result = run("check", "--config", profile, "app-health")
    assert result.code == 2  # the check's verdict, whatever the channel did
    assert "not delivered to dead after 2 attempt(s)" in result.err
    from opsdash.storage.history import History

    with History.open(Path(os.environ["OPSDASH_DATA_DIR"])) as history:
        failed = [d for d in history.alerts.deliveries() if d.channel == "dead"]
    assert failed and failed[-1].ok == 0 and failed[-1].attempts == 2


def test_silenced_alert_is_recorded_not_sent(
    run: Run, demo: Demo, tmp_path: Path, receiver: Receiver
) -> None:
    silence = (
        '[[alerts.silences]]\nstart = "2020-01-01T00:00:00Z"\nend = "2099-01-01T00:00:00Z"\n'
        'reason = "maintenance"\n'
    )
    channel = f'[[alerts.channels]]\nname = "ops"\nkind = "webhook"\nurl = "{receiver.url}"\n'
    profile = with_channels(demo, tmp_path, channel, extra=silence)
    fault(demo, "app-down")
    run("check", "--config", profile, "app-health")
    assert receiver.bodies == []
    events = [json.loads(x) for x in run("audit", "tail", "-n", "30", "--json").out.splitlines()]
    assert any(e["action"] == "alert" and e["details"].get("silenced") == "maintenance" for e in events)


def test_reminder_after_the_interval(tmp_path: Path) -> None:
    from opsdash.core.alerts import Candidate, OpenAlert, plan
    from opsdash.core.findings import Severity

    c = Candidate("check-critical", "app-health", Severity.CRIT, "t", "d")
    open_ = {("check-critical", "app-health"): OpenAlert(1, "check-critical", "app-health", 0.0, 100.0)}
    assert plan([c], open_, set(), now=200.0, reminder_s=3600) == []
    (action,) = plan([c], open_, set(), now=3701.0, reminder_s=3600)
    assert action.kind == "remind"
