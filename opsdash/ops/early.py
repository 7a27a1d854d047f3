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
import threading
import time
from collections.abc import Sequence
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

    def fresh(self, now: float | None = None) -> bool:
        """Young enough to seed the watch: its results stand for the watch's first round."""
        return ((now if now is not None else time.time()) - self.finished) < FRESH_FOR


class Early:
    """The child at work: `wait()` reads its picture (or None, if it had none to give)."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self._fd = pid, fd

    def cancel(self) -> None:
        """The dashboard is leaving: a child still at work (a check waiting out its timeout) stops
        now rather than finish for no one. Its recording is a transaction and an fsynced append:
        a stop between them loses nothing recorded."""
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGTERM)

    def wait(self) -> EarlyPicture | None:
        """Block until the child has written its picture and ended. None when it failed, died or
        had nothing to say; the caller then works without it."""
        chunks: list[bytes] = []
        try:
            while chunk := os.read(self._fd, 1 << 16):
                chunks.append(chunk)
        except OSError:
            chunks = []
        finally:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(self.pid, 0)
        try:
            # the bytes come from our own forked child, over a pipe no one else holds
            picture = pickle.loads(b"".join(chunks)) if chunks else None  # noqa: S301
        except Exception:
            return None
        return picture if isinstance(picture, EarlyPicture) else None


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
    """Work out the picture, write it, and leave without running the parent's exit handlers. The
    terminal is the dashboard's: nothing of the child's may reach it."""
    status = 0
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(devnull, std)
        data = pickle.dumps(picture(config, data_dir))
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    except BaseException:  # any failure: the dashboard does it all itself
        status = 1
    finally:
        os._exit(status)


def picture(config: Path, data_dir: Path | None = None) -> EarlyPicture | None:
    """Validate (recorded) and probe each check once (not recorded), at the same time; None when
    the profile does not load (the dashboard says why itself)."""
    from opsdash.core.errors import OpsdashError
    from opsdash.ops.base import Ops

    try:
        ops = Ops.open(config, data_dir=data_dir)
    except OpsdashError:
        return None
    from opsdash.core.health.runner import run_sync

    return run_sync(_gather(ops))


async def _gather(ops: Ops) -> EarlyPicture:
    from opsdash.core.health.runner import run_once
    from opsdash.core.readiness import dashboard_verdict
    from opsdash.core.secrets import redactor
    from opsdash.ops import validation
    from opsdash.ops.checks import resumed_states

    def validate() -> tuple[Report | None, str | None, list[tuple[Severity, str]], dict[str, SustainedState]]:
        try:
            report = validation.run(ops, record=True).report
        except Exception as exc:
            return None, redactor.redact(str(exc)), [], {}
        with ops.history(write=False) as history:
            return report, None, _open_alerts(history), resumed_states(history, checks)

    profile = ops.profile
    checks: Sequence[Check] = profile.checks
    probing = run_once(checks, ops.probe_context(), concurrency=profile.health.concurrency)
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


def _new_state() -> SustainedState:
    from opsdash.core.health.state import SustainedState

    return SustainedState()


def _open_alerts(history: History) -> list[tuple[Severity, str]]:
    return [a.contribution() for a in history.alerts.firing()]
