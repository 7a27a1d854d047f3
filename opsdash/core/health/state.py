"""Sustained check state: what the dashboard, --watch and alerts show, damped by thresholds.

A check is UNKNOWN until first evaluated. It goes down (to the failing result's severity) after
`failure_threshold` consecutive failures and recovers after `success_threshold` consecutive
successes; a single blip changes neither. A one-shot `opsdash check` reports what it saw instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from opsdash.core.findings import Severity
from opsdash.core.health.model import CheckResult


@dataclass(frozen=True)
class SustainedState:
    status: Severity = Severity.UNKNOWN
    since: str | None = None
    failures: int = 0
    successes: int = 0
    last: CheckResult | None = None

    def update(self, result: CheckResult, failure_threshold: int, success_threshold: int) -> SustainedState:
        if result.ok:
            successes, failures = self.successes + 1, 0
            recovering = self.status not in (Severity.OK, Severity.UNKNOWN) and successes < success_threshold
            status = self.status if recovering else Severity.OK
        else:
            successes, failures = 0, self.failures + 1
            if failures >= failure_threshold:
                status = result.severity
            elif self.status in (Severity.OK, Severity.UNKNOWN):
                status = self.status  # a blip: wait for the threshold
            else:
                status = max(self.status, result.severity, key=lambda s: s.rank)
        since = self.since if status is self.status and self.since else result.started_at
        return replace(self, status=status, since=since, failures=failures, successes=successes, last=result)
