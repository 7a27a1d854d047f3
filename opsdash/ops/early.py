"""The dashboard's first live verdict, worked out on the second core while the first one starts
the terminal UI.

Importing Textual and painting the first frame keeps one core busy for the first ~0.2 s of a
dashboard start; loading the profile's models, validating and the first probe round take as long
again, and on one interpreter they can only follow each other (the GIL). `start()` forks a child
process before the UI is imported; the child loads the profile, validates (recorded, exactly as
the Validation pane would) and probes every check once (not recorded: the dashboard's watch
records these results as its own first round, so nothing is probed or recorded twice), and hands
back an `EarlyPicture`: the report, the results and the verdict they make. The parent shows that
verdict as live the moment it arrives, seeds its watch with the results and its Validation pane
with the report, and from then on everything is the dashboard's own.

Where there is no `fork` (Windows), or one core, or threads already run (forking them is unsafe),
or `OPSDASH_EARLY=0`, or anything in the child fails, there is no early picture and the dashboard
does it all itself."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opsdash.core.findings import Report, Severity
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.core.profile import Check
    from opsdash.ops.base import Ops
    from opsdash.storage.history import History

SWITCH = "OPSDASH_EARLY"  # "0": no start-up child (the dashboard does it all itself)
FRESH_FOR = 5.0  # seconds: results older than this do not seed a watch (it probes them again)


@dataclass(frozen=True)
class EarlyPicture:
    """What the child found: the validation report (None: it could not validate, `problem` says
    why), one result per check and the state it leaves the check in, the open alerts, and the
    verdict they make."""

    label: str  # GO | NO-GO | UNKNOWN
    headline: str
    reason: str
    report: Report | None
    results: list[CheckResult] = field(default_factory=list)
    states: dict[str, SustainedState] = field(default_factory=dict)
    alerts: list[tuple[Severity, str]] = field(default_factory=list)
    problem: str | None = None
    finished: float = 0.0  # time.time() when the probes were in

    def fresh(self) -> bool:
        return fresh(self.finished)


def fresh(at: float) -> bool:
    """Sent (or worked out) at `at` (time.time()), and young enough to stand for the dashboard's
    own first validation or probe."""
    return time.time() - at < FRESH_FOR


@dataclass(frozen=True)
class EarlyReport:
    """The child's validation, sent the moment it is recorded (before the probes are all in):
    `report` None when it could not validate (`problem` says why)."""

    report: Report | None
    problem: str | None = None


@dataclass(frozen=True)
class EarlyResult:
    """One check's result, sent as its probe ends."""

    result: CheckResult


# What the child sends, in order: an EarlyReport, each EarlyResult as its probe ends (the two
# interleave), then the EarlyPicture. Each frame is a 4-byte length and a pickle.
Frame = EarlyReport | EarlyResult | EarlyPicture
_LENGTH = struct.Struct("!I")


class Early:
    """The child at work: `frames()` reads what it sends as it sends it; `wait()` only its
    picture (or None, if it had none to give)."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self._fd = pid, fd
        self._lock = threading.Lock()
        self._reaped = False

    def cancel(self) -> None:
        """The dashboard is leaving: a child still at work (a check waiting out its timeout) stops
        now rather than finish for no one. Its recording is a transaction and an fsynced append:
        a stop between them loses nothing recorded. A child already reaped is not signalled (its
        process id may be another process's by now)."""
        with self._lock, contextlib.suppress(OSError):
            if not self._reaped:
                os.kill(self.pid, signal.SIGTERM)

    def frames(self) -> Iterator[Frame]:
        """Each frame as the child sends it, until it ends (then it is reaped). A frame that does
        not read ends the stream: the caller works without the rest."""
        reader = os.fdopen(self._fd, "rb", buffering=1 << 16)
        try:
            while len(head := reader.read(_LENGTH.size)) == _LENGTH.size:
                body = reader.read(_LENGTH.unpack(head)[0])
                try:
                    # the bytes come from our own forked child, over a pipe no one else holds
                    frame = pickle.loads(body)  # noqa: S301
                except Exception:
                    return
                if isinstance(frame, Frame):
                    yield frame
        except OSError:
            return
        finally:
            reader.close()
            self._reap()

    def wait(self) -> EarlyPicture | None:
        """Block until the child has ended; its picture, or None when it failed, died or had
        nothing to say."""
        found = None
        for frame in self.frames():
            if isinstance(frame, EarlyPicture):
                found = frame
        return found

    def _reap(self) -> None:
        with self._lock, contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, 0)
            self._reaped = True


def start(config: Path, *, data_dir: Path | None = None) -> Early | None:
    """Fork the child that works out the first picture; None where that is not safe or possible."""
    if os.environ.get(SWITCH, "1") == "0":
        return None
    if not hasattr(os, "fork") or threading.active_count() > 1 or _cores() < 2:
        return None  # one core: the child would only take turns with the parent
    try:
        read, write = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the child: it never returns
        os.close(read)
        _child(config, data_dir, write)
    os.close(write)
    return Early(pid, read)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS has no affinity: what the machine has
        return os.cpu_count() or 1


def _child(config: Path, data_dir: Path | None, fd: int) -> None:
    """Work out the picture, sending each part as it is known, and leave without running the
    parent's exit handlers. The terminal is the dashboard's: nothing of the child's may reach it."""
    status = 0
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(devnull, std)
        lock = threading.Lock()  # the validating thread and the probes' loop both send

        def send(frame: Frame) -> None:
            data = pickle.dumps(frame)
            view = memoryview(_LENGTH.pack(len(data)) + data)
            with lock:
                while view:
                    view = view[os.write(fd, view) :]

        found = picture(config, data_dir, send=send)
        if found is not None:
            send(found)
    except BaseException:  # any failure (the parent gone included): the dashboard does it all itself
        status = 1
    finally:
        os._exit(status)


def picture(
    config: Path, data_dir: Path | None = None, *, send: Callable[[Frame], None] | None = None
) -> EarlyPicture | None:
    """Validate (recorded) and probe each check once (not recorded), at the same time, giving
    `send` the report as soon as it is recorded and each result as its probe ends; None when the
    profile does not load (the dashboard says why itself)."""
    from opsdash.core.errors import OpsdashError
    from opsdash.ops.base import Ops

    try:
        ops = Ops.open(config, data_dir=data_dir)
    except OpsdashError:
        return None
    from opsdash.core.health.runner import run_sync

    return run_sync(_gather(ops, send or (lambda _frame: None)))


async def _gather(ops: Ops, send: Callable[[Frame], None]) -> EarlyPicture:
    from opsdash.core.health.runner import run_once
    from opsdash.core.readiness import dashboard_verdict
    from opsdash.core.secrets import redactor
    from opsdash.ops import validation
    from opsdash.ops.checks import resumed_states

    def validate() -> tuple[Report | None, str | None, list[tuple[Severity, str]], dict[str, SustainedState]]:
        try:
            report = validation.run(ops, record=True).report
        except Exception as exc:
            problem = redactor.redact(str(exc))
            send(EarlyReport(None, problem))
            return None, problem, [], {}
        send(EarlyReport(report))
        with ops.history(write=False) as history:
            target = profile.target.name
            return report, None, _open_alerts(history, target), resumed_states(history, checks, target)

    profile = ops.profile
    checks: Sequence[Check] = profile.checks
    probing = run_once(
        checks,
        ops.probe_context(),
        concurrency=profile.health.concurrency,
        on_result=lambda result: send(EarlyResult(result)),
    )
    (report, problem, alerts, states), results = await asyncio.gather(asyncio.to_thread(validate), probing)
    by_name = {c.name: c for c in checks}
    for result in results:
        check = by_name[result.name]
        before = states.get(result.name)
        states[result.name] = (before or _new_state()).update(
            result, check.failure_threshold, check.success_threshold
        )
    verdict = dashboard_verdict(report, states, len(checks), alerts, validation_failed=report is None)
    return EarlyPicture(
        verdict.label,
        verdict.headline,
        verdict.reason,
        report,
        list(results),
        states,
        alerts,
        problem,
        time.time(),
    )


def _new_state() -> SustainedState:  # imported here: the parent imports this module before forking
    from opsdash.core.health.state import SustainedState

    return SustainedState()


def _open_alerts(history: History, target: str) -> list[tuple[Severity, str]]:
    return [a.contribution() for a in history.alerts.firing(target)]
