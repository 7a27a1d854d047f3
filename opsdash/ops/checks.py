"""Live health checks: one sweep (`opsdash check`), and the one watch loop that `check --watch`,
`opsdash serve` and the dashboard's Health pane all run."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from opsdash.core.alerts import INCIDENT_RULES, check_candidates, check_scope
from opsdash.core.errors import ConfigError
from opsdash.core.findings import Report, Severity, new_run_id
from opsdash.core.health.model import CheckResult
from opsdash.core.health.runner import ResultCallback, Watcher, report_for, run_once
from opsdash.core.health.state import SustainedState
from opsdash.core.profile import Check, Profile
from opsdash.core.text import did_you_mean
from opsdash.ops import retention
from opsdash.ops.base import Ops
from opsdash.ops.sources import Reload, Sources

if TYPE_CHECKING:
    from opsdash.storage.history import History


T = TypeVar("T")
RECORD_GATHER = 0.05  # seconds a result may wait to be recorded with the ones arriving after it
FOLLOW_EVERY = 1.0  # seconds between looks at the profile's and env files' stamps (checks poll >= 1 s)


def select_checks(profile: Profile, names: Sequence[str] = ()) -> list[Check]:
    if not profile.checks:
        raise ConfigError("the profile has no [[checks]]; add some (see 'opsdash config schema')")
    if not names:
        return list(profile.checks)
    known = {c.name: c for c in profile.checks}
    unknown = [n for n in names if n not in known]
    if unknown:
        hint = did_you_mean(unknown[0], known) if len(unknown) == 1 else ""
        raise ConfigError(f"no check named {', '.join(unknown)}{hint}; the profile has: {', '.join(known)}")
    return [known[n] for n in names]


async def run(
    ops: Ops,
    *,
    names: Sequence[str] = (),
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
    record: bool = True,
    on_result: Callable[[CheckResult], None] | None = None,
) -> tuple[Report, list[CheckResult]]:
    """Probe the checks once; with `record`, keep the results, audit them and raise alerts."""
    profile = ops.profile
    checks = select_checks(profile, names)
    ctx = ops.probe_context(env_files=env_files, from_env=from_env)
    started, t0 = ops.now(), time.perf_counter()
    results = await run_once(checks, ctx, concurrency=profile.health.concurrency, on_result=on_result)
    report = report_for(results, profile.target.name, started, t0)
    if record:
        with ops.history() as history:
            history.runs.record(report, operator=ops.operator)
            history.checks.record(report.run_id, results)
            for r in results:
                ops.audit.event(
                    "check_result",
                    r.name,
                    subject=r.target,
                    outcome=r.severity.value,
                    details={
                        "error_class": r.error_class.value if r.error_class else None,
                        "run_id": report.run_id,
                    },
                )
            ops.audit.report(report, history)
            ops.alerts.process(history, check_candidates(results), check_scope(results))
            ops.alerts.settle_gate(history)
            retention.step(ops, history)  # one small batch, after the run is recorded
    return report, results


def resumed_states(history: History, checks: Sequence[Check], target: str) -> dict[str, SustainedState]:
    """The checks whose incident is still open in the record, as down as the process that last
    watched them left them: a new dashboard, a restarted or reloaded `serve`, or a second watcher
    of the same target continues that incident (a reminder, then one resolve when the check has
    recovered) instead of forgetting it and raising another. Only `target`'s incidents: another
    profile's check of the same name being down is not this one's."""
    down = {a.key for a in history.alerts.firing(target) if a.rule in INCIDENT_RULES}
    rows = {
        r.check_name: r for r in history.checks.latest((c.name for c in checks if c.name in down), target)
    }
    states: dict[str, SustainedState] = {}
    for check in checks:
        row = rows.get(check.name)
        status = Severity(row.sustained) if row is not None else Severity.UNKNOWN
        if row is None or status not in (Severity.CRIT, Severity.WARN):
            continue
        states[check.name] = SustainedState(
            status=status,
            since=row.started_at,
            failures=check.failure_threshold,
            failure_threshold=check.failure_threshold,
            success_threshold=check.success_threshold,
        )
    return states


class Watch:
    """The one watch loop. Each check polls on its own chain (the core's Watcher); every result is
    recorded in history with its sustained state, a change of sustained state is audited, and
    alerts fire, remind and resolve on that state. Recording runs on one background thread with
    its own connection, so a slow alert channel never delays a probe. `close()` waits for it.

    It follows the files it was read from (`ops.sources`): when the profile or an env file changes
    on disk, it reads them again, tells `on_reload`, and polls every check at once with what they
    now say (sustained states kept), so it agrees with a `check` run at that moment. Files that do
    not read leave it as it was; `on_reload` gets the problem."""

    def __init__(
        self,
        ops: Ops,
        *,
        names: Sequence[str] = (),
        env_files: Sequence[Path] | None = None,
        from_env: bool | None = None,
        interval: float | None = None,
        polls: int | None = None,
        record: bool = True,
        on_alerts: Callable[[list[str], list[str]], None] | None = None,
        on_reload: Callable[[Reload], None] | None = None,
        seed: Sequence[CheckResult] = (),
    ) -> None:
        """`seed`: results probed a moment ago (ops/early.py), taken as each check's first probe."""
        self.sources = Sources(
            ops, lambda profile: select_checks(profile, names), env_files=env_files, from_env=from_env
        )
        self.ops, self.on_alerts, self.on_reload = ops, on_alerts, on_reload
        self.watcher = Watcher(
            self.sources.checks,
            self.sources.ctx,
            concurrency=ops.profile.health.concurrency,
            interval_override=interval,
            polls=polls,
            seed={r.name: r for r in seed},
        )
        self._reloaded: Reload | None = None  # read again: the watcher restarts on it
        self._stopped = False
        self.run_id = new_run_id()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="opsdash-record") if record else None
        self._history: History | None = None  # opened, used and closed on the pool's thread only
        self._pending: list[tuple[CheckResult, Severity, bool]] = []
        self._queue_lock = threading.Lock()
        self._flush_queued = False
        self._last: dict[str, Severity] = {}
        if self._pool is not None:  # an unusable data directory stops the watch now, not silently later
            try:
                self._pool.submit(self._open_history).result()
                self._pool.submit(self._resume_incidents).result()
            except BaseException:
                self._pool.shutdown()
                raise

    @property
    def checks(self) -> Sequence[Check]:
        return self.watcher.checks

    @property
    def states(self) -> dict[str, SustainedState]:
        return self.watcher.states

    @property
    def paused(self) -> bool:
        return self.watcher.paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self.watcher.paused = value

    async def run(self, on_result: ResultCallback) -> None:
        def each(result: CheckResult, state: SustainedState) -> None:
            before = self._last.get(result.name, Severity.UNKNOWN)
            self._last[result.name] = state.status
            on_result(result, state)
            if self._pool is not None:
                self._queue((result, state.status, state.status is not before))

        follow = asyncio.create_task(self._follow())
        try:
            while True:
                await self.watcher.run(each)
                change, self._reloaded = self._reloaded, None
                if change is None or self._stopped:
                    return
                self._restart(change)
        finally:
            follow.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follow

    async def _follow(self) -> None:
        """Look at the files every FOLLOW_EVERY seconds; on a change, read them again (off the
        event loop) and have the polls restart on what they say once the probes in flight are in
        (a result of the old credentials never lands after one of the new)."""
        while True:
            await asyncio.sleep(FOLLOW_EVERY)
            change = await asyncio.to_thread(self.sources.reload)
            if change is None:
                continue
            if change.problem is None:
                self._reloaded = change
                self.watcher.stop()
            if self.on_reload is not None:
                self.on_reload(change)

    def _restart(self, change: Reload) -> None:
        old = self.watcher
        names = {c.name for c in change.checks}
        for gone in [n for n in old.states if n not in names]:  # the same dict: serve's status holds it
            del old.states[gone]
        self.ops = change.ops
        self.watcher = Watcher(
            change.checks,
            change.ctx,
            concurrency=change.ops.profile.health.concurrency,
            interval_override=old.interval_override,
            polls=old.polls,
            states=old.states,
            paused=old.paused,
            polled=old.polled,
        )

    def stop(self) -> None:
        self._stopped = True
        self.watcher.stop()

    def close(self) -> None:
        """Stop polling and wait until every result so far is recorded."""
        self.stop()
        if self._pool is not None:
            self._pool.submit(self._close_history)
            self._pool.shutdown(wait=True)
            self._pool = None

    def _queue(self, item: tuple[CheckResult, Severity, bool]) -> None:
        """Results wait for the recording thread together: under load (thousands of checks in
        `opsdash serve`) one transaction records many, instead of a commit per result."""
        assert self._pool is not None
        with self._queue_lock:
            self._pending.append(item)
            if self._flush_queued:
                return
            self._flush_queued = True
        self._pool.submit(self._record_pending)

    def _record_pending(self) -> None:
        time.sleep(RECORD_GATHER)  # let the results of one burst arrive, and record them together
        with self._queue_lock:
            batch, self._pending, self._flush_queued = self._pending, [], False
        chunk: list[tuple[CheckResult, Severity, bool]] = []
        names: set[str] = set()
        for item in batch:  # a check polled twice in one batch starts a new chunk: statuses go by name
            if item[0].name in names:
                self._record(chunk)
                chunk, names = [], set()
            chunk.append(item)
            names.add(item[0].name)
        if chunk:
            self._record(chunk)

    def _record(self, chunk: Sequence[tuple[CheckResult, Severity, bool]]) -> None:
        results = [result for result, _status, _changed in chunk]
        statuses = {result.name: status for result, status, _changed in chunk}

        def record(history: History) -> bool:
            history.checks.record(self.run_id, results, statuses)
            return True

        recorded = self._with_history(record, "results not recorded")
        if recorded is None:
            return
        try:
            for result, status, changed in chunk:
                if changed:
                    self.ops.audit.event(
                        "check_result",
                        result.name,
                        subject=result.target,
                        outcome=status.value,
                        details={
                            "sustained": True,
                            "error_class": result.error_class.value if result.error_class else None,
                            "run_id": self.run_id,
                        },
                    )
        except Exception as exc:  # never let a background failure pass silently
            print(f"opsdash: warning: audit record not written: {type(exc).__name__}: {exc}", file=sys.stderr)
        actions = self._with_history(
            lambda history: [
                *self.ops.alerts.process(
                    history, check_candidates(results, statuses), check_scope(results, statuses)
                ),
                *self.ops.alerts.settle_gate(history),
            ],
            "alerts not processed",
        )
        if actions is None:
            return
        fired = [a.candidate.title for a in actions if a.kind == "fire" and a.candidate is not None]
        resolved = [a.key for a in actions if a.kind == "resolve"]
        if (fired or resolved) and self.on_alerts is not None:  # the dashboard's header reads them
            self.on_alerts(fired, resolved)

    def _with_history(self, work: Callable[[History], T], what: str) -> T | None:
        """`work` on the recording connection; a connection that failed is never trusted again (an
        I/O error would otherwise fail every poll for the life of a service): it is closed, and the
        work is tried once more on a fresh one. Returns None if that fails too, after saying so."""
        for attempt in (1, 2):
            try:
                if self._history is None:
                    self._open_history()
                assert self._history is not None
                return work(self._history)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    self._close_history()
                self._history = None
                # never let a background failure pass silently
                again = "; trying once more on a fresh connection" if attempt == 1 else ""
                print(f"opsdash: warning: {what}: {type(exc).__name__}: {exc}{again}", file=sys.stderr)
        return None

    def _open_history(self) -> None:
        self._history = self.ops.history()
        started = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._history.runs.watching(self.run_id, self.ops.profile.target.name, started)

    def _resume_incidents(self) -> None:
        """A check whose incident is still open in the record starts as down, as the process that
        last watched it left it (`resumed_states`)."""
        assert self._history is not None
        resumed = resumed_states(self._history, self.checks, self.ops.profile.target.name)
        self.watcher.states.update(resumed)
        self._last.update({name: state.status for name, state in resumed.items()})

    def _close_history(self) -> None:
        if self._history is not None:
            self._history.close()
            self._history = None
