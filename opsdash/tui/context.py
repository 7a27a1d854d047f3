"""What every pane needs to know about the session: the `Ops` it works through, live or not, and
the live picture every view reads its verdict from (so no two views can disagree).

At start the `Ops` may not be loaded yet (`ready` is False): the profile is imported and validated
on a thread after the first frame, and until then the views show the last verdict recorded for the
target (`last_known`), marked as such, never as live.

Attached to a running `opsdash serve` (`service` set: `opsdash --server URL`), the picture is the
service's, pushed as it changes (ops/attach.py, tui/attached.py): nothing is probed or validated
here, and when the connection is gone the verdict is UNKNOWN, never the last one seen."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsdash.ops.base import Ops
from opsdash.ops.early import fresh

if TYPE_CHECKING:
    from opsdash.core.findings import Report, Severity
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.core.readiness import Verdict
    from opsdash.ops.config import LoadedConfig, OpsdashSettings
    from opsdash.ops.early import EarlyPicture, EarlyReport
    from opsdash.ops.glance import LastVerdict
    from opsdash.storage.rows import AlertRow, SessionRow


@dataclass
class LivePicture:
    """The latest validation, each check's state, the active alerts and whether polling is paused."""

    report: Report | None = None
    validated: bool = False  # a validation finished (report None then means it could not run)
    states: dict[str, SustainedState] = field(default_factory=dict)
    alerts: list[tuple[Severity, str]] = field(default_factory=list)
    paused: bool = False
    unfinished: str = ""  # a runbook session left active ("rollback, step 4 interrupted"), offered to resume


@dataclass(frozen=True)
class Shown:
    """What the header and the overview show: the live verdict, or the last known one (`live`
    False), which is marked as such with its age and what is happening now (`note`)."""

    label: str  # GO | NO-GO | UNKNOWN
    headline: str  # the label as shown ("GO (stale)" while polling is paused)
    reason: str
    live: bool = True
    note: str = ""  # for a last known verdict: "last known, 3 min ago — checking…"


@dataclass
class ServiceView:
    """The service this dashboard is attached to, and how the connection stands."""

    url: str
    wanted: str | None = None  # the target asked for (?target=NAME); None: the service's first
    target: str = ""  # the target shown, once the service has said what it serves
    environment: str = ""
    checks: list[str] = field(default_factory=list)
    connected: bool = False
    problem: str = "connecting…"  # why it is not connected
    retry_in: float | None = 0.0  # None: not retried (refused)
    newest: float | None = None  # time.time() of the newest data the service sent
    alerts: list[AlertRow] = field(default_factory=list)
    sessions: list[SessionRow] = field(default_factory=list)
    validation_problem: str | None = None  # the service could not validate: why

    def age(self, now: float | None = None) -> str:
        if self.newest is None:
            return "no data yet"
        seconds = max(0.0, (now if now is not None else time.time()) - self.newest)
        if seconds < 90:
            return f"newest data {seconds:.0f} s old"
        return f"newest data {seconds / 60:.0f} min old"

    def where(self) -> str:
        """For the header: which source, which target, and how old its newest data is."""
        target = f" · {self.target} ({self.environment})" if self.target else ""
        state = self.age() if self.connected else "NOT CONNECTED"
        return f"service {self.url}{target} · {state}"

    def lost(self) -> Shown:
        """The verdict while not connected: UNKNOWN, with why and what happens next."""
        if self.retry_in is None:
            doing = "not retrying"
        elif self.retry_in:
            doing = f"reconnecting in {self.retry_in:g} s"
        else:
            doing = "connecting"
        note = f"service {self.url}: {doing}"
        return Shown("UNKNOWN", "UNKNOWN", self.problem, live=False, note=note)


@dataclass
class DashboardContext:
    ops: Ops
    demo: bool = False
    live: bool = True  # False: no network work on mount (snapshots feed the panes themselves)
    record: bool = True
    error: str | None = None  # the configuration could not be loaded: shown instead of the panes
    picture: LivePicture = field(default_factory=LivePicture)
    last_known: LastVerdict | None = None  # the verdict recorded before this start, if one was read
    target_hint: str = ""  # the target's name as read before the profile loaded (for the header)
    service: ServiceView | None = None  # attached to a running `opsdash serve`: its picture, not probes
    # the start-up child (ops/early.py): at work, what it has sent so far (each with when it came)
    early_running: bool = False
    early: EarlyPicture | None = None
    early_report: tuple[EarlyReport, float] | None = None
    early_results: dict[str, tuple[CheckResult, float]] = field(default_factory=dict)
    _early_taken: set[str] = field(default_factory=set)

    def take_early_report(self) -> Report | None:
        """The child's validation for the Validation pane, once, while it is fresh."""
        if self.early_report is None or "report" in self._early_taken:
            return None
        sent, at = self.early_report
        if sent.report is None or not fresh(at):
            return None
        self._early_taken.add("report")
        return sent.report

    def early_report_pending(self) -> bool:
        """The child is still validating: wait for it rather than validate (and record) twice."""
        return self.early_running and self.early_report is None and "report" not in self._early_taken

    def take_early_results(self) -> list[CheckResult]:
        """The child's probe results so far for the watch's first round, once, the fresh ones."""
        if "results" in self._early_taken:
            return []
        self._early_taken.add("results")
        return [result for result, at in self.early_results.values() if fresh(at)]

    def adopt_early(self, early: EarlyPicture) -> None:
        """The start-up child's picture arrived: the verdict reads it until the panes' own work
        replaces it (what is already newer than it is kept)."""
        self.early = early
        p = self.picture
        if not p.states:
            p.states = dict(early.states)
        if not p.validated:
            p.report, p.validated = early.report, True
        if not p.alerts:
            p.alerts = list(early.alerts)

    @property
    def ready(self) -> bool:
        """The settings and profile are loaded (False only in the first instants of a start)."""
        return self.ops.loaded is not None

    @property
    def loaded(self) -> LoadedConfig | None:
        return self.ops.config

    @property
    def settings(self) -> OpsdashSettings:
        return self.ops.settings

    @property
    def operator(self) -> str:
        return self.ops.operator

    def check_names(self) -> list[str]:
        """The checks the verdict waits for: the profile's, or, attached, the service's."""
        if self.service is not None:
            return list(self.service.checks)
        return [c.name for c in self.loaded.profile.checks] if self.loaded else []

    def stale(self) -> bool:
        """The states shown are not current: polling is paused, or the service is not connected."""
        return self.picture.paused or (self.service is not None and not self.service.connected)

    def verdict(self) -> Verdict:
        """The one verdict: the header and the overview show this (and `opsdash serve` computes the
        same, as opsdash_gate, with the same function)."""
        from opsdash.core.readiness import dashboard_verdict

        p = self.picture
        expected = len(self.check_names())
        failed = p.validated and p.report is None
        return dashboard_verdict(
            p.report, p.states, expected, p.alerts, paused=p.paused, validation_failed=failed
        )

    def evaluated(self) -> bool:
        """Validation finished and every check has a result: the live verdict is what is known now,
        whatever it says (a check that cannot be evaluated leaves it UNKNOWN, for good reason)."""
        p = self.picture
        names = self.check_names()
        return p.validated and all(n in p.states and p.states[n].last is not None for n in names)

    def shown(self) -> Shown:
        """The live verdict once it says something (GO or NO-GO, or everything evaluated); until then
        the last known verdict, marked, if there is one. A profile that did not load turns the
        marker into that error, never into a live verdict."""
        if self.service is not None:  # the service's verdict while connected, whatever it says
            if not self.service.connected:
                return self.service.lost()
            live = self.verdict()
            return Shown(live.label, live.headline, live.reason)
        known = self.last_known
        if self.ready and self.error is None and self._live_says_something():
            live = self.verdict()
            return Shown(live.label, live.headline, live.reason)
        early = self.early
        if early is not None and self.error is None:  # worked out in this start: live, not last known
            return Shown(early.label, early.headline, early.reason)
        if self.ready and known is None:
            live = self.verdict()
            return Shown(live.label, live.headline, live.reason)
        if known is None:
            return Shown("UNKNOWN", "UNKNOWN", "loading the profile — checking…", live=False)
        from opsdash.ops.glance import age

        doing = "the configuration did not load (see below)" if self.error is not None else "checking…"
        return Shown(
            known.label, known.label, known.reason, live=False, note=f"last known, {age(known.at)} — {doing}"
        )

    def _live_says_something(self) -> bool:
        return self.verdict().label != "UNKNOWN" or self.evaluated()
