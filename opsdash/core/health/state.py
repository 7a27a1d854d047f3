"""Sustained check state: what the dashboard, --watch and alerts show, damped by thresholds.

A check is UNKNOWN until first evaluated. It goes down (to the failing result's severity) after
`failure_threshold` consecutive failures and recovers after `success_threshold` consecutive
successes; a single blip changes neither. A one-shot `opsdash check` reports what it saw instead.

The state between those is shown too, never hidden behind the sustained status: a check that is
up but has failed once reads "failing 1 of 3" at once, and one that is down but answered once
reads "recovering 1 of 2" (in the colour of its sustained severity). Every view (row, detail,
overview, header) reads `label` and `shown`, so they cannot disagree.
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
    failure_threshold: int = 1
    success_threshold: int = 1

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
        return replace(
            self,
            status=status,
            since=since,
            failures=failures,
            successes=successes,
            last=result,
            failure_threshold=failure_threshold,
            success_threshold=success_threshold,
        )

    @property
    def phase(self) -> str:
        """ "unknown", "ok", "failing" (not yet sustained), "down" (sustained) or "recovering"."""
        up = self.status in (Severity.OK, Severity.UNKNOWN)
        if up and self.failures > 0:
            return "failing"
        if self.status is Severity.UNKNOWN:
            return "unknown"
        if up:
            return "ok"
        return "recovering" if self.successes > 0 else "down"

    @property
    def label(self) -> str:
        """What an operator reads in the STATUS column: OK, failing 1 of 3, CRIT, recovering 1 of 2."""
        phase = self.phase
        if phase == "failing":
            return f"failing {self.failures} of {self.failure_threshold}"
        if phase == "recovering":
            return f"recovering {self.successes} of {self.success_threshold}"
        return self.status.value

    @property
    def shown(self) -> Severity:
        """The severity this state contributes to a verdict and is coloured with: a check failing
        before its threshold is a WARN (something is wrong, not yet an outage); a recovering one
        keeps its sustained severity until it has recovered."""
        if self.phase == "failing":
            return Severity.WARN if self.status is Severity.OK else Severity.UNKNOWN
        return self.status
