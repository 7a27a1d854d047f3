"""Messages the dashboard's workers post: typed and in the past tense."""

from __future__ import annotations

from textual.message import Message

from opsdash.core.findings import Report


class ValidationCompleted(Message):
    def __init__(self, report: Report) -> None:
        super().__init__()
        self.report = report


class ValidationFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class DemoFaultSwitched(Message):
    def __init__(
        self, fault: str, on: bool, active: list[str] | None = None, error: str | None = None
    ) -> None:
        super().__init__()
        self.fault = fault
        self.on = on
        self.active = active or []
        self.error = error
