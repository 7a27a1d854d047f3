"""Messages the dashboard's workers and panes post: typed, in the past tense. Each is a dataclass
(Textual's `Message.__post_init__` makes that work), so its fields are its type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:  # annotations only: the first frame imports this module, and not the health engine
    from opsdash.core.findings import Finding, Report, Severity
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.ops.attach import Event as ServiceEvent
    from opsdash.ops.base import Ops
    from opsdash.ops.early import Frame
    from opsdash.ops.sources import Reload
    from opsdash.tui.context import LivePicture


@dataclass
class ProfileLoaded(Message):
    """The profile was loaded (and validated) on the start thread: `ops` is the session; `error`
    is what kept it from loading (the session then has settings only)."""

    ops: Ops
    error: str | None


@dataclass
class EarlyFrameArrived(Message):
    """A part of the start-up child's work (ops/early.py): its validation, a check's result, or
    the whole picture and its verdict."""

    frame: Frame


class EarlyEnded(Message):
    """The start-up child has ended (whatever it sent or failed to send)."""


@dataclass
class ServiceEventArrived(Message):
    """What the attached service pushed (ops/attach.py): a snapshot, a change, or the connection's end."""

    event: ServiceEvent


@dataclass
class ValidationCompleted(Message):
    report: Report


@dataclass
class ValidationFailed(Message):
    error: str


@dataclass
class TraceCompleted(Message):
    """The credential trace ended: its findings (each with where it was found), or why it could not run."""

    findings: tuple[Finding, ...]
    error: str | None = None


@dataclass
class CheckCompleted(Message):
    result: CheckResult
    state: SustainedState

    def can_replace(self, message: Message) -> bool:
        """A newer result of the same check supersedes one still waiting in the queue."""
        return isinstance(message, CheckCompleted) and message.result.name == self.result.name


@dataclass
class AlertsRaised(Message):
    titles: list[str]


@dataclass
class AlertsResolved(Message):
    keys: list[str]  # what recovered (for a check's alert, the check's name)


@dataclass
class SourcesReloaded(Message):
    """The profile or env files changed on disk and the watch read them again: `change.ops` is the
    session now, `change.checks` what it polls."""

    change: Reload


@dataclass
class SourcesReloadFailed(Message):
    """The profile or env files changed on disk but do not read (`change.problem`, file:line): the
    watch goes on with the last good state."""

    change: Reload


@dataclass
class AuditLinesAppended(Message):
    """New lines in the audit log (coalesced: only the newest count matters). `event` is what the
    tail engine saw: "appended", "rotated", "reset" (truncated or replaced)."""

    lines: int
    event: str | None = None

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AuditLinesAppended) and message.event is None


@dataclass
class AuditScanProgressed(Message):
    """How far a read of the whole audit log has got (coalesced: only the newest matters), and
    when it has `finished`."""

    done: int
    total: int
    finished: bool = False

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AuditScanProgressed) and not self.finished


@dataclass
class AuditVerified(Message):
    ok: bool
    text: str


@dataclass
class DemoFaultSwitched(Message):
    fault: str
    on: bool
    active: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class OpenRunbook(Message):
    """A finding or check asks for its runbook to be shown."""

    runbook_id: str


# What the one verdict is computed from. The app takes each into the live picture
# (`DashboardContext.picture`) and shows the verdict again; each kind says how it changes it.


class PictureChanged(Message):
    """Something the verdict reads changed."""

    def apply(self, picture: LivePicture) -> None:
        raise NotImplementedError


@dataclass
class ValidationShown(PictureChanged):
    """The Validation pane shows a new result; None: validation could not run (UNKNOWN)."""

    report: Report | None

    def apply(self, picture: LivePicture) -> None:
        picture.report, picture.validated = self.report, True


@dataclass
class CheckStatesChanged(PictureChanged):
    """Each check's sustained state, as the Health pane now shows it (high-rate: the newest wins)."""

    states: dict[str, SustainedState]

    def apply(self, picture: LivePicture) -> None:
        picture.states = dict(self.states)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, CheckStatesChanged)


@dataclass
class PollingPaused(PictureChanged):
    """Health polling was paused (True) or resumed (False): the states shown are stale while paused."""

    paused: bool

    def apply(self, picture: LivePicture) -> None:
        picture.paused = self.paused


@dataclass
class OpenAlertsRead(PictureChanged):
    """The open alerts, read from history: (severity, title) each."""

    alerts: list[tuple[Severity, str]]

    def apply(self, picture: LivePicture) -> None:
        picture.alerts = list(self.alerts)

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OpenAlertsRead)
