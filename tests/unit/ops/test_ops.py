"""`Ops` takes fakes: a clock and a delivery function stand in for time and the network, and the
alert dispatcher's fire → remind → resolve is recorded in history and the audit trail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opsdash.core.alerts import CHECK_CRITICAL, Candidate
from opsdash.core.audit.tail import tail
from opsdash.core.errors import ConfigError
from opsdash.core.findings import Severity
from opsdash.core.profile import AlertChannel
from opsdash.ops.alerts import AlertDispatcher
from opsdash.ops.base import Ops
from opsdash.ops.config import OpsdashSettings

PROFILE = """
[target]
name = "drill"
base_url = "https://app.example.com"

[alerts]
reminder_interval = 600

[[alerts.channels]]
name = "pager"
kind = "webhook"
url = "https://pager.example.com/hook"
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ops(tmp_path: Path) -> Ops:
    path = tmp_path / "opsdash.toml"
    path.write_text(PROFILE)
    return Ops.open(path, operator="dana")


def test_dispatcher_fires_reminds_and_resolves_on_the_given_clock(ops: Ops) -> None:
    sent: list[tuple[str, dict[str, Any]]] = []

    def deliver(channel: AlertChannel, body: dict[str, Any]) -> tuple[bool, int, str]:
        sent.append((channel.name, body))
        return (len(sent) != 2, 1, "" if len(sent) != 2 else "HTTP 502")  # the reminder fails

    clock = Clock()
    ops.clock = clock
    ops.dispatcher = AlertDispatcher(ops.profile, ops.audit, deliver=deliver, clock=clock)
    down = [Candidate(CHECK_CRITICAL, "app-health", Severity.CRIT, "app-health is failing", "503")]
    scope = {(CHECK_CRITICAL, "app-health")}
    with ops.history() as history:
        assert [a.kind for a in ops.alerts.process(history, down, scope)] == ["fire"]
        clock.now += 60
        assert ops.alerts.process(history, down, scope) == []  # deduplicated: one incident, one alert
        clock.now += 600
        assert [a.kind for a in ops.alerts.process(history, down, scope)] == ["remind"]
        clock.now += 30
        assert [a.kind for a in ops.alerts.process(history, [], scope)] == ["resolve"]
        (alert,) = history.alerts.all()
        deliveries = history.alerts.deliveries(alert.id)
    assert [body["status"] for _name, body in sent] == ["firing", "reminder", "resolved"]
    assert alert.status == "resolved" and alert.raised_at == 1_800_000_000.0
    assert alert.resolved_at == 1_800_000_690.0
    assert [(d.event, d.ok, d.error) for d in deliveries] == [
        ("firing", 1, ""),
        ("reminder", 0, "HTTP 502"),
        ("resolved", 1, ""),
    ]
    audit = [e.record for e in tail(ops.audit.path, 100) if e.record is not None]
    actions = [(r["action"], r["outcome"], r["operator"]) for r in audit if r["action"] != "genesis"]
    assert actions == [
        ("alert", "CRIT", "dana"),
        ("alert-delivery-failed", "failed", "dana"),
        ("alert-resolved", "resolved", "dana"),
    ]


def test_the_audit_key_is_read_once(ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    from opsdash.ops import audit

    reads: list[OpsdashSettings] = []
    real = audit.audit_key

    def counted(settings: OpsdashSettings) -> bytes:
        reads.append(settings)
        return real(settings)

    monkeypatch.setattr(audit, "audit_key", counted)
    for n in range(5):
        ops.audit.event("operator_action", "drill", subject=str(n))
    assert len(reads) == 1
    assert len([e for e in tail(ops.audit.path, 100) if e.record and e.record["action"] == "drill"]) == 5


def test_without_a_profile_commands_that_need_one_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ops = Ops.open(None, require=False)
    assert ops.config is None and ops.profile_or_none is None
    with pytest.raises(ConfigError, match="pass --config"):
        _ = ops.profile
    with pytest.raises(ConfigError, match="no configuration found"):
        Ops.open(None)
