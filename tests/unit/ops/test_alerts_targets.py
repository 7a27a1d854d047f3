"""Two profiles in one data directory, each with a check called "api": the alert dispatcher, a
watch resuming an open incident and the dashboard's open alerts each read their own target's
alerts (and those that name none, as before), never the other target's."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsdash.core.alerts import CHECK_CRITICAL, check_candidates, check_scope
from opsdash.core.findings import Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState
from opsdash.core.profile import AlertChannel
from opsdash.ops.alerts import AlertDispatcher
from opsdash.ops.base import Ops
from opsdash.ops.checks import resumed_states
from opsdash.ops.history import overview

T0 = 1_800_000_000.0
PROFILE = """
[target]
name = "{target}"
base_url = "https://{target}.example.com"

[[checks]]
name = "api"
kind = "http"
url = "https://{target}.example.com/health"
failure_threshold = 3
success_threshold = 2

[[alerts.channels]]
name = "pager"
kind = "webhook"
url = "https://pager.example.com/hook"
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Sent(list[tuple[str, Any]]):
    def deliver(self, channel: AlertChannel, body: Any) -> tuple[bool, int, str]:
        self.append((body["target"], body["status"]))
        return True, 1, ""


class Target:
    """One profile of the two, with its own dispatcher and sustained state of "api"."""

    def __init__(self, tmp_path: Path, name: str, clock: Clock, sent: Sent) -> None:
        path = tmp_path / f"{name.lower()}.toml"
        path.write_text(PROFILE.format(target=name))
        self.ops = Ops.open(path, operator="dana")
        self.ops.clock = clock
        self.ops.dispatcher = AlertDispatcher(
            self.ops.profile, self.ops.audit, deliver=sent.deliver, clock=clock
        )
        self.name, self.clock, self.state = name, clock, SustainedState()

    def poll(self, status: int) -> None:
        """One result of its "api", recorded and alerted on as the watch loop does."""
        self.clock.now += 10
        at = datetime.fromtimestamp(self.clock.now, UTC).isoformat()
        result = CheckResult(
            name="api",
            kind="http",
            target=f"https://{self.name}.example.com/health",
            severity=Severity.OK if status == 200 else Severity.CRIT,
            summary=f"HTTP {status}",
            started_at=at,
            duration_ms=12.0,
        )
        self.state = self.state.update(result, 3, 2)
        sustained = {"api": self.state.status}
        with self.ops.history() as history:
            history.runs.watching(f"watch-{self.name}", self.name, at)  # as the watch loop does
            history.checks.record(f"watch-{self.name}", [result], sustained)
            self.ops.alerts.process(
                history, check_candidates([result], sustained), check_scope([result], sustained)
            )

    def resumed(self) -> list[str]:
        with self.ops.history() as history:
            return sorted(resumed_states(history, self.ops.profile.checks, self.name))

    def header(self) -> list[str]:
        return [a.title for a in overview(self.ops).alerts]


def test_one_targets_incident_is_neither_resolved_nor_resumed_by_the_other(tmp_path: Path) -> None:
    clock, sent = Clock(), Sent()
    alpha, beta = Target(tmp_path, "Alpha", clock, sent), Target(tmp_path, "Beta", clock, sent)
    for _ in range(4):
        beta.poll(200)  # healthy: in scope to resolve "api", but Alpha's "api" is not its
        alpha.poll(503)
    assert sent == [("Alpha", "firing")]
    assert alpha.header() == ["api is failing"] and beta.header() == []
    # a watch (a new dashboard, a restarted serve) of Beta does not start Beta's "api" as down,
    # though the newest result of an "api" in the record is Alpha's failing one
    assert alpha.resumed() == ["api"]
    assert beta.resumed() == []
    beta.poll(200)  # and Alpha's resumes down, from its own newest result, not Beta's healthy one
    assert alpha.resumed() == ["api"]
    for _ in range(4):
        beta.poll(503)  # Beta's "api" goes down while Alpha's incident is open: its own incident
        alpha.poll(503)
    assert sent == [("Alpha", "firing"), ("Beta", "firing")]
    for _ in range(3):
        alpha.poll(200)
        beta.poll(503)
    assert sent == [("Alpha", "firing"), ("Beta", "firing"), ("Alpha", "resolved")]
    assert beta.header() == ["api is failing"] and alpha.header() == []
    for _ in range(3):
        beta.poll(200)
    assert sent[-1] == ("Beta", "resolved") and len(sent) == 4
    with alpha.ops.history() as history:
        rows = history.conn.execute("SELECT target, status FROM alerts ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("Alpha", "resolved"), ("Beta", "resolved")]


def test_an_incident_that_names_no_target_is_every_targets_as_before(tmp_path: Path) -> None:
    clock, sent = Clock(), Sent()
    alpha, beta = Target(tmp_path, "Alpha", clock, sent), Target(tmp_path, "Beta", clock, sent)
    with alpha.ops.history() as history:  # opened before v13: no target
        history.alerts.record(CHECK_CRITICAL, "api", "CRIT", "api is failing", "HTTP 503", T0, sent_at=T0)
    assert alpha.header() == beta.header() == ["api is failing"]
    for _ in range(2):
        beta.poll(200)  # either target's healthy "api" ends it, as one profile's did before
    assert sent == [("Beta", "resolved")]
    assert alpha.header() == beta.header() == []
