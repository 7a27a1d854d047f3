"""Messages the dashboard's workers post: typed, in the past tense."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

from opsdash.core.findings import Report
from opsdash.core.health.model import CheckResult
from opsdash.core.health.state import SustainedState

if TYPE_CHECKING:
    from opsdash.ops.sources import Reload


class ValidationCompleted(Message):
    def __init__(self, report: Report) -> None:
        super().__init__()
        self.report = report


class ValidationFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class CheckCompleted(Message):
    def __init__(self, result: CheckResult, state: SustainedState) -> None:
        super().__init__()
        self.result = result
        self.state = state

    def can_replace(self, message: Message) -> bool:
        """A newer result of the same check supersedes one still waiting in the queue."""
        return isinstance(message, CheckCompleted) and message.result.name == self.result.name


class AlertsRaised(Message):
    def __init__(self, titles: list[str]) -> None:
        super().__init__()
        self.titles = titles


class AlertsResolved(Message):
    def __init__(self, keys: list[str]) -> None:
        super().__init__()
        self.keys = keys  # what recovered (for a check's alert, the check's name)


class SourcesReloaded(Message):
    """The profile or env files changed on disk and the watch read them again: `change.ops` is the
    session now, `change.checks` what it polls."""

    def __init__(self, change: Reload) -> None:
        super().__init__()
        self.change = change


class SourcesReloadFailed(Message):
    """The profile or env files changed on disk but do not read (`change.problem`, file:line): the
    watch goes on with the last good state."""

    def __init__(self, change: Reload) -> None:
        super().__init__()
        self.change = change


class AuditLinesAppended(Message):
    """New lines in the audit log (coalesced: only the newest count matters)."""

    def __init__(self, lines: int, event: str | None = None) -> None:
        super().__init__()
        self.lines = lines
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AuditLinesAppended) and message.event is None


class AuditVerified(Message):
    def __init__(self, ok: bool, text: str) -> None:
        super().__init__()
        self.ok = ok
        self.text = text


class RunbookStepFinished(Message):
    def __init__(self, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id


class RunbookOutputReceived(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class DemoFaultSwitched(Message):
    def __init__(
        self, fault: str, on: bool, active: list[str] | None = None, error: str | None = None
    ) -> None:
        super().__init__()
        self.fault = fault
        self.on = on
        self.active = active or []
        self.error = error


class OpenRunbook(Message):
    """A finding or check asks for its runbook to be shown."""

    def __init__(self, runbook_id: str) -> None:
        super().__init__()
        self.runbook_id = runbook_id


class OverviewChanged(Message):
    """Something the overview summarises changed (high-rate: only the newest per source matters)."""

    def __init__(self, source: str, data: Any = None) -> None:
        super().__init__()
        self.source = source
        self.data = data

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, OverviewChanged) and message.source == self.source
