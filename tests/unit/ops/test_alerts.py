"""Alerts as a pager sees them: one alert per incident (also when the demo's credentials fault
comes and goes), a silence that ends mid-incident gives a `firing`, and Alertmanager channels get
Alertmanager's v2 shape, re-posted while the alert is open and ended when it resolves."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opsdash.core.alerts import (
    CHECK_CRITICAL,
    CREDENTIALS_REJECTED,
    PREFLIGHT_NO_GO,
    check_candidates,
    check_scope,
)
from opsdash.core.findings import Severity
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.profile import AlertChannel
from opsdash.demo.httpserver import Request, Response
from opsdash.ops.alerts import ALERTMANAGER_RESEND, AlertDispatcher, deliver
from opsdash.ops.base import Ops
from tests.conftest import Demo, Run
from tests.servers import ThreadedHttpServer, assert_postable_alert

T0 = 1_800_000_000.0
PROFILE = """
[target]
name = "drill"
base_url = "https://app.example.com"

[alerts]
reminder_interval = 600
{silence}

[[alerts.channels]]
name = "pager"
kind = "webhook"
url = "https://pager.example.com/hook"

[[alerts.channels]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:9093"
"""
SILENCE = """
[[alerts.silences]]
start = "{start}"
end = "{end}"
reason = "maintenance window"
"""


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Sent(list[tuple[str, Any]]):
    def deliver(self, channel: AlertChannel, body: Any) -> tuple[bool, int, str]:
        self.append((channel.name, body))
        return True, 1, ""

    def to(self, channel: str) -> list[Any]:
        return [body for name, body in self if name == channel]


def drill(tmp_path: Path, silence: str = "") -> tuple[Ops, Clock, Sent]:
    path = tmp_path / "opsdash.toml"
    path.write_text(PROFILE.format(silence=silence))
    ops = Ops.open(path, operator="dana")
    clock, sent = Clock(), Sent()
    ops.clock = clock
    ops.dispatcher = AlertDispatcher(ops.profile, ops.audit, deliver=sent.deliver, clock=clock)
    return ops, clock, sent


def provider_result(status: int) -> CheckResult:
    rejected = status == 401
    return CheckResult(
        name="ikhokha-api",
        kind="provider",
        target="https://api.example.com",
        severity=Severity.CRIT if status != 200 else Severity.OK,
        summary="credentials rejected (401)"
        if rejected
        else f"HTTP {status}"
        if status != 200
        else "reachable",
        started_at="2027-01-15T08:00:00+00:00",
        duration_ms=12.0,
        error_class=ErrorClass.HTTP_AUTH if rejected else ErrorClass.HTTP_5XX if status != 200 else None,
    )


def watch_through(ops: Ops, clock: Clock, statuses: list[int]) -> None:
    """What the watch loop does with each result: sustained state (3 to go down, 2 to recover),
    then alerts on that state."""
    state = SustainedState()
    with ops.history() as history:
        for status in statuses:
            clock.now += 10
            result = provider_result(status)
            state = state.update(result, 3, 2)
            ops.alerts.process(
                history, check_candidates([result], {result.name: state.status}), check_scope([result])
            )


def test_credentials_rejected_then_recovered_is_one_alert(tmp_path: Path) -> None:
    ops, clock, sent = drill(tmp_path)
    watch_through(ops, clock, [401, 401, 401, 401, 200, 200, 200])
    with ops.history() as history:
        alerts = history.alerts.all()
    assert [(a.rule, a.status) for a in alerts] == [(CREDENTIALS_REJECTED, "resolved")]
    assert [b["status"] for b in sent.to("pager")] == ["firing", "resolved"]
    assert alerts[0].resolved_at == T0 + 60  # on the second success, not the first


def test_an_outage_that_turns_into_rejected_credentials_stays_one_incident(tmp_path: Path) -> None:
    ops, clock, sent = drill(tmp_path)
    watch_through(ops, clock, [503, 503, 503, 401, 401, 200, 200])
    with ops.history() as history:
        alerts = history.alerts.all()
    assert [(a.rule, a.status) for a in alerts] == [(CHECK_CRITICAL, "resolved")]
    assert [b["status"] for b in sent.to("pager")] == ["firing", "resolved"]


def test_a_blip_below_the_threshold_raises_nothing(tmp_path: Path) -> None:
    ops, clock, sent = drill(tmp_path)
    watch_through(ops, clock, [401, 401, 200, 200])
    with ops.history() as history:
        assert history.alerts.all() == []
    assert sent == []


def test_demo_credentials_fault_on_then_off_raises_one_alert(demo_process: Demo, tmp_path: Path) -> None:
    """The incident the dashboard showed two alerts for, against the real demo: the credentials
    fault on for three polls (the check goes down), then off until the check has recovered."""
    from opsdash.demo.control import set_fault
    from opsdash.ops.checks import Watch

    ops = Ops.open(demo_process.profile, operator="dana")
    ops.dispatcher = AlertDispatcher(ops.profile, ops.audit, deliver=Sent().deliver)
    set_fault(demo_process.data_dir, "credentials-rejected", True)
    seen: list[tuple[str | None, Severity]] = []
    watch = Watch(ops, names=["ikhokha-api"], interval=1, polls=6)

    def on_result(result: CheckResult, state: SustainedState) -> None:
        seen.append((result.error_class.value if result.error_class else None, state.status))
        if len(seen) == 3:
            set_fault(demo_process.data_dir, "credentials-rejected", False)

    try:
        asyncio.run(watch.run(on_result))
    finally:
        watch.close()
        set_fault(demo_process.data_dir, "credentials-rejected", False)
    assert seen[2] == ("http-auth", Severity.CRIT) and seen[-1] == (None, Severity.OK)
    with ops.history() as history:
        alerts = history.alerts.all()
    assert [(a.rule, a.key, a.status) for a in alerts] == [(CREDENTIALS_REJECTED, "ikhokha-api", "resolved")]


def test_an_incident_that_outlives_its_silence_is_sent_as_firing(tmp_path: Path) -> None:
    silence = SILENCE.format(start=iso(T0 - 100), end=iso(T0 + 45))
    ops, clock, sent = drill(tmp_path, silence)
    watch_through(ops, clock, [503, 503, 503, 503, 503, 503, 503])  # down at T0+30, silence ends T0+45
    pager = sent.to("pager")
    assert [b["status"] for b in pager] == ["firing"]  # never a reminder first
    assert "started inside a silence" in pager[0]["detail"]
    assert f"to {iso(T0 + 45).replace('+00:00', 'Z')}" in pager[0]["detail"]
    assert "maintenance window" in pager[0]["detail"]
    (am,) = sent.to("am")[0]
    assert am["annotations"]["silenced"].startswith("silenced from ")
    assert am["startsAt"] == iso(T0 + 30).replace("+00:00", "Z")  # when the incident began


def test_alertmanager_gets_its_v2_shape_refreshes_and_an_end(tmp_path: Path) -> None:
    ops, clock, sent = drill(tmp_path)
    ops.alerts.generator_url = "http://127.0.0.1:9477"
    # fires at T0+30; re-posted once at T0+90 (the resend period after); resolves at T0+110
    watch_through(ops, clock, [503] * 9 + [200, 200])
    posts = sent.to("am")
    assert len(posts) == 3
    for post in posts:
        assert isinstance(post, list) and len(post) == 1
        assert_postable_alert(post[0])
    firing, refresh, resolved = (p[0] for p in posts)
    assert firing["labels"] == {
        "alertname": "check-critical",
        "check": "ikhokha-api",
        "target": "drill",
        "severity": "critical",
    }
    assert firing["annotations"]["summary"] == "ikhokha-api is failing"
    assert firing["generatorURL"] == "http://127.0.0.1:9477"
    assert datetime.fromisoformat(firing["endsAt"]).timestamp() > T0 + 30  # still active
    assert datetime.fromisoformat(refresh["endsAt"]).timestamp() >= T0 + 30 + ALERTMANAGER_RESEND
    assert resolved["labels"] == firing["labels"]
    assert datetime.fromisoformat(resolved["endsAt"]).timestamp() == T0 + 110
    with ops.history() as history:
        (alert,) = history.alerts.all()
        events = [d.event for d in history.alerts.deliveries(alert.id)]
    assert events == ["firing", "firing", "resolved", "resolved"]  # refreshes are not new notices


@pytest.mark.parametrize("url", ["http://127.0.0.1:9093", "http://127.0.0.1:9093/api/v2/alerts"])
def test_alertmanager_url_is_its_base_or_the_alerts_endpoint(url: str) -> None:
    from opsdash.ops.alerts import channel_url

    channel = AlertChannel(name="am", kind="alertmanager", url=url)
    assert channel_url(channel) == "http://127.0.0.1:9093/api/v2/alerts"


def _open_gate_alerts(profile: Path) -> list[str]:
    with Ops.open(profile).history() as history:
        return [a.key for a in history.alerts.firing() if a.rule == PREFLIGHT_NO_GO]


@pytest.mark.parametrize(
    ("fault", "not_yet", "clears"),
    [("app-down", ["validate"], "check"), ("env-plan-shaped", ["check"], "validate")],
)
def test_a_no_go_preflight_alert_resolves_once_its_causes_are_gone(
    run: Run, demo_process: Demo, fault: str, not_yet: list[str], clears: str
) -> None:
    """The header stayed NO-GO after recovery until someone ran preflight again: now a later sweep
    (for a failing check) or validation (for an environment finding) that shows every blocking
    reason gone resolves it, and one that does not leaves it open."""
    from opsdash.demo.control import set_fault

    profile = demo_process.profile
    set_fault(demo_process.data_dir, fault, True)
    try:
        assert run("preflight", "--config", profile).code == 2
        assert _open_gate_alerts(profile) == ["BetaSkill"]
        for command in [*not_yet, clears]:  # the cause still there: nothing resolves
            run(command, "--config", profile)
        assert _open_gate_alerts(profile) == ["BetaSkill"]
    finally:
        set_fault(demo_process.data_dir, fault, False)
    for command in not_yet:  # the wrong kind of evidence does not clear it
        run(command, "--config", profile)
        assert _open_gate_alerts(profile) == ["BetaSkill"]
    assert run(clears, "--config", profile).code == 0
    assert _open_gate_alerts(profile) == []


def test_a_rollback_readiness_reason_waits_for_the_next_gate() -> None:
    from opsdash.core.alerts import gate_cause_gone
    from opsdash.core.findings import Finding

    check = Finding("check-failed", Severity.CRIT, "health", "app-health", "down", "", "")
    readiness = Finding("rollback-no-runbook", Severity.CRIT, "deploy", "rollback", "missing", "", "")
    env = Finding("secret-client-exposed", Severity.CRIT, "secrets", "VITE_X", "exposed", "", "")
    assert gate_cause_gone([check], ["app-health"], ["app-health"], None)
    assert not gate_cause_gone([check], ["app-health"], [], None)
    assert not gate_cause_gone([check, readiness], ["app-health"], ["app-health"], None)
    assert not gate_cause_gone([env], [], [], None)  # no validation since


class _Busy(ThreadedHttpServer):
    """A receiver that answers `statuses` in turn (then 200), with `headers` on each answer."""

    def __init__(self, statuses: list[int], headers: dict[str, str] | None = None) -> None:
        self.statuses, self.headers, self.requests = list(statuses), headers or {}, 0
        super().__init__(self._answer)

    async def _answer(self, _req: Request) -> Response:
        self.requests += 1
        status = self.statuses.pop(0) if self.statuses else 200
        return Response(status, b"busy" if status >= 300 else b"ok", dict(self.headers))


def _waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits deliver() asks for between tries, taken instead of slept."""
    waits: list[float] = []
    monkeypatch.setattr("opsdash.ops.alerts.time.sleep", waits.append)
    return waits


@pytest.mark.parametrize("header", ["2", "HTTP-DATE"])
def test_delivery_waits_as_retry_after_asks(monkeypatch: pytest.MonkeyPatch, header: str) -> None:
    from email.utils import formatdate

    at = float(int(time.time()) + 3)  # a whole second, as an HTTP-date says it
    value = formatdate(at, usegmt=True) if header == "HTTP-DATE" else header
    receiver = _Busy([429], {"Retry-After": value})
    waits = _waits(monkeypatch)
    try:
        channel = AlertChannel(
            name="hook", kind="webhook", url=f"{receiver.base_url}/hook", retries=2, timeout=10
        )
        before = time.time()
        ok, attempts, _error = deliver(channel, {"text": "x"})
        after = time.time()
    finally:
        receiver.close()
    assert (ok, attempts, receiver.requests) == (True, 2, 2)
    # what it asked for: 2 s, or up to the date from the moment it read the answer
    expected = (2.0, 2.0) if header == "2" else (at - after, at - before)
    assert len(waits) == 1 and expected[0] <= waits[0] <= expected[1], (waits, expected)


def test_a_retry_after_past_the_channels_timeout_gives_up_at_once_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver = _Busy([503, 503], {"Retry-After": "120"})
    waits = _waits(monkeypatch)
    try:
        channel = AlertChannel(
            name="hook", kind="webhook", url=f"{receiver.base_url}/hook", retries=3, timeout=5
        )
        ok, attempts, error = deliver(channel, {"text": "x"})
    finally:
        receiver.close()
    assert (ok, attempts, waits) == (False, 1, [])
    assert error == "HTTP 503 (Retry-After 120 s is past the channel's timeout)"


def test_retries_without_retry_after_back_off_with_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Full jitter: each wait is anywhere from 0 to 0.4 s x 2^(try-1), so processes that lost one
    receiver together do not come back to it in step."""
    receiver = _Busy([500] * 60)
    waits = _waits(monkeypatch)
    try:
        channel = AlertChannel(
            name="hook", kind="webhook", url=f"{receiver.base_url}/hook", retries=3, timeout=30
        )
        for _ in range(15):
            deliver(channel, {"text": "x"})
    finally:
        receiver.close()
    firsts = waits[::3]
    assert len(waits) == 45 and all(0 <= w <= 0.4 * 2**i for n, w in enumerate(waits) for i in [n % 3])
    assert len(set(firsts)) > 10  # not one fixed backoff


@pytest.mark.parametrize("value", ["²", "-5", "garbage", "", "1e9"])
def test_a_retry_after_that_is_not_seconds_or_a_date_is_ignored(value: str) -> None:
    from opsdash.ops.alerts import retry_after

    assert retry_after(value, time.time()) is None


@pytest.mark.parametrize(
    "link",
    [
        "https://wiki.example.com/runbooks",  # no {runbook}
        "http://{runbook}",  # no host once filled in
        "https:// wiki.example.com/{runbook}",
        "https://ops:hunter2@wiki.example.com/{runbook}",  # credentials, sent with every alert
        "https://wiki.example.com/{runbook}\u001b[31m",
    ],
)
def test_a_runbook_url_that_cannot_be_a_link_is_refused_at_load(tmp_path: Path, link: str) -> None:
    import json

    from opsdash.ops.config import parse_config

    path = tmp_path / "opsdash.toml"
    text = f'[target]\nname = "x"\nbase_url = "https://a.example.com"\n[alerts]\nrunbook_url = {json.dumps(link)}\n'
    _parsed, problems = parse_config(path, text)
    assert problems and "runbook_url" in problems[0], problems
    assert "hunter2" not in " ".join(problems)
