"""What every pane needs to know about the session: the `Ops` it works through, live or not, and
the live picture every view reads its verdict from (so no two views can disagree)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opsdash.core.findings import Report, Severity
from opsdash.core.health.state import SustainedState
from opsdash.core.readiness import Verdict, dashboard_verdict
from opsdash.ops.base import Ops

if TYPE_CHECKING:
    from opsdash.ops.config import LoadedConfig, OpsdashSettings


@dataclass
class LivePicture:
    """The latest validation, each check's state, the active alerts and whether polling is paused."""

    report: Report | None = None
    validated: bool = False  # a validation finished (report None then means it could not run)
    states: dict[str, SustainedState] = field(default_factory=dict)
    alerts: list[tuple[Severity, str]] = field(default_factory=list)
    paused: bool = False
    unfinished: str = ""  # a runbook session left active ("rollback, step 4 interrupted"), offered to resume


@dataclass
class DashboardContext:
    ops: Ops
    demo: bool = False
    live: bool = True  # False: no network work on mount (snapshots feed the panes themselves)
    record: bool = True
    error: str | None = None  # the configuration could not be loaded: shown instead of the panes
    picture: LivePicture = field(default_factory=LivePicture)

    @property
    def loaded(self) -> LoadedConfig | None:
        return self.ops.config

    @property
    def settings(self) -> OpsdashSettings:
        return self.ops.settings

    @property
    def operator(self) -> str:
        return self.ops.operator

    def verdict(self) -> Verdict:
        """The one verdict: the header and the overview show this (and `opsdash serve` computes the
        same, as opsdash_gate, with the same function)."""
        p = self.picture
        expected = len(self.loaded.profile.checks) if self.loaded else 0
        failed = p.validated and p.report is None
        return dashboard_verdict(
            p.report, p.states, expected, p.alerts, paused=p.paused, validation_failed=failed
        )
