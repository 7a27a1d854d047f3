"""What a runbook session is made of: step and session states, the store it is saved in, and
what a check gate returns. Plain data; the executor (executor.py) changes it."""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from opsdash.core.runbooks.gates import Gate

MAX_OUTPUT = 256 * 1024
DETACHED = "its command ended while no opsdash was watching; its exit status is unknown"


class StepStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"
    INTERRUPTED = "interrupted"


# how a step's status reads in a list: pending, running, done, failed, skipped, interrupted
STATUS_MARK: dict[StepStatus, str] = dict(zip(StepStatus, " …✓✗-!", strict=True))


class SessionStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    ESCALATED = "escalated"  # ended on a branch a failure led to (on_fail=goto:...), not the main path
    ABORTED = "aborted"


ESCALATION = "; on_fail=goto:"  # how a failure that took a branch reads in the session's events


@dataclass(frozen=True)
class StepState:
    status: StepStatus = StepStatus.PENDING
    started_at: str | None = None
    finished_at: str | None = None
    exit_code: int | None = None
    output: str = ""
    note: str = ""
    detail: str = ""
    pid: int | None = None  # a running command's process group, so a restart can tell it still runs


@dataclass
class SessionState:
    """One session of a runbook (built with keywords: the store and the executor do)."""

    id: str
    operator: str
    # the runbook it runs, as it was when the session started, and the values it was given
    runbook_id: str
    title: str
    runbook_path: str
    params: dict[str, str]
    # where it stands: the current step (None once ended) and each step's state
    status: SessionStatus
    current: int | None
    steps: list[StepState]
    started_at: str
    updated_at: str
    events: list[dict[str, Any]] = field(default_factory=list)
    escalated: bool = False  # a failure sent the session down an on_fail=goto branch
    exclusive: str | None = None  # the runbook's exclusive group, held for `target` while active
    target: str = ""  # the profile's target name


@dataclass
class CommandControl:
    """What another thread (a front end) may ask of the command this executor is running."""

    interrupt: threading.Event = field(default_factory=threading.Event)
    detach: threading.Event = field(default_factory=threading.Event)
    reason: str = ""

    def reset(self) -> None:
        self.interrupt.clear()
        self.detach.clear()
        self.reason = ""


class Store(Protocol):
    def create(self, state: SessionState) -> None:
        """Insert a new session; raises ExclusiveConflict (atomically, across processes) when its
        exclusive group is held for its target by another active session."""

    def save(self, state: SessionState, index: int | None, event: str, detail: str) -> None:
        """Persist the session, step `index`'s state, and one event — atomically."""

    def load(self, session_id: str) -> SessionState | None: ...

    def claim(self, session_id: str, index: int, expected: StepStatus, step: StepState) -> bool:
        """Set step `index` to `step` only if it is still `expected` (atomically, across processes)."""

    def output_path(self, session_id: str, index: int) -> Path:
        """Where a command step's output goes while it runs (beside it, `.status` gets its exit code),
        so a command that outlives its opsdash keeps both for the next one to collect."""


@dataclass(frozen=True)
class GateResult:
    label: str
    ok: bool
    summary: str
    evidence: tuple[str, ...] = ()  # one line per condition: what was required, what was seen

    def lines(self) -> list[str]:
        head = f"{'OK  ' if self.ok else 'FAIL'}  {self.label}: {self.summary}"
        return [head, *(f"      {line}" for line in self.evidence)]


GateRunner = Callable[[Sequence[Gate]], list[GateResult]]
AuditHook = Callable[[str, str, str, Mapping[str, Any]], None]  # action, subject, outcome, details


class StepNotAllowed(Exception):
    """The operator asked for something this step does not allow now (skip a required step ...)."""


@dataclass(frozen=True)
class Transition:
    """One transition as it was committed (the same words as the session's recorded event), handed
    to the executor's `on_transition` at that moment, so a front end never polls for it."""

    session_id: str
    index: int | None  # the step, or None for the session's own events
    event: str
    detail: str
    step_status: StepStatus | None
    session_status: SessionStatus


def exit_code(state: SessionState) -> int:
    """What `runbook run` exits with: 0 completed with every step done, 1 completed with a failed
    or skipped step, or escalated, 2 aborted, 3 still active (paused or left running)."""
    if state.status is SessionStatus.ABORTED:
        return 2
    if state.status is SessionStatus.ACTIVE:
        return 3
    failed = any(s.status in (StepStatus.FAILED, StepStatus.SKIPPED) for s in state.steps)
    return 0 if state.status is SessionStatus.COMPLETED and not failed else 1
