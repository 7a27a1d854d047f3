"""What the runbook step driver tells its front ends: typed, frozen, past tense. The CLI prints
them, the Runbooks pane posts them as messages; neither asks the database what happened."""

from __future__ import annotations

from dataclasses import dataclass

from opsdash.core.runbooks.state import GateResult, SessionStatus, StepStatus


@dataclass(frozen=True)
class Recorded:
    """A transition the executor committed (the session's recorded event, word for word)."""

    session_id: str
    index: int | None
    event: str
    detail: str


@dataclass(frozen=True)
class StepStarted:
    """A step's command or check block started (claimed and saved first), or a command left
    running by an opsdash that has gone is being watched (`elsewhere`)."""

    session_id: str
    index: int
    kind: str
    started_at: str
    elsewhere: bool = False
    pid: int | None = None  # the process group of a command watched elsewhere


@dataclass(frozen=True)
class Output:
    """Output of the running command, masked (still untrusted text: escapes are for the renderer)."""

    session_id: str
    index: int
    text: str


@dataclass(frozen=True)
class GateEvaluated:
    session_id: str
    index: int
    results: tuple[GateResult, ...]
    ok: bool


@dataclass(frozen=True)
class StepEnded:
    """A step has a result: done, failed, skipped or interrupted (with its exit code, if a command)."""

    session_id: str
    index: int
    status: StepStatus
    exit_code: int | None
    detail: str
    output: str


@dataclass(frozen=True)
class Detached:
    """The driver stopped watching a running command; it runs on and the next opsdash collects it."""

    session_id: str
    index: int


@dataclass(frozen=True)
class ActionDone:
    """An action asked of the driver is over (`refused` says why it was not allowed, if it was not).
    The session now allows `allowed`."""

    session_id: str
    action: str
    refused: str
    allowed: tuple[str, ...]
    # the action's transition could not be recorded (taken over, ended elsewhere, the database
    # gone): the session stays where its record is, and a front end stops guiding
    unrecorded: bool = False


@dataclass(frozen=True)
class SessionEnded:
    session_id: str
    status: SessionStatus
    exit_code: int  # what `runbook run` exits with (state.exit_code)


Event = Recorded | StepStarted | Output | GateEvaluated | StepEnded | Detached | ActionDone | SessionEnded
