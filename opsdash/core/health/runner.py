"""Running checks: once (opsdash check), or continuously with chained polls (dashboard, --watch)."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from opsdash.core.findings import Report
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes import ProbeContext, probe
from opsdash.core.health.state import SustainedState
from opsdash.core.profile import Check

ResultCallback = Callable[[CheckResult, SustainedState], None]
T = TypeVar("T")


def loop_factory(name: str = "auto") -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop probes run on: uvloop's when it is installed (a dependency of opsdash
    everywhere but Windows; about a third less CPU per probe, measured in
    benchmarks/health_sweep.py), else asyncio's (None). `name` "asyncio" or "uvloop" asks for
    one; "uvloop" without uvloop is an error."""
    if name == "asyncio":
        return None
    try:
        uvloop = importlib.import_module("uvloop")
    except ImportError:
        if name == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_sync(coro: Coroutine[Any, Any, T], *, loop: str = "auto") -> T:
    """`asyncio.run(coro)` on the loop `loop_factory(loop)` chooses."""
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(coro)


class Gate:
    """At most `limit` probes in flight, first come first served. The limit starts at the configured
    concurrency and adapts to the event loop: a probe's phases are stamped when the loop gets to its
    socket, so while the loop falls behind (a sweep's own callbacks queueing on one core) every
    latency in flight would include that wait. A heartbeat measures how late the loop runs a timer;
    while that lateness (smoothed) is above `lag_target` the limit is cut by a fifth, and while the
    loop keeps up and probes are waiting it grows again by an eighth, never above the configured
    concurrency nor below `floor` (`period` None: no heartbeat; the limit changes only by `observe`).
    A probe held back waits here, outside its timings: that wait is its queue time, reported apart."""

    def __init__(
        self, concurrency: int, *, lag_target: float = 0.002, floor: int = 8, period: float | None = 0.005
    ) -> None:
        self.ceiling = max(1, concurrency)
        self.limit = self.ceiling
        self.floor = min(floor, self.ceiling)
        self.lag_target = lag_target
        self.period = period
        self.in_flight = 0
        self.lowest = self.ceiling  # the lowest limit this gate came to (for benchmarks and tests)
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._heartbeat: asyncio.Task[None] | None = None
        self._lag = 0.0  # seconds, smoothed

    async def __aenter__(self) -> None:
        self._beating()
        if self.in_flight < self.limit and not self._waiters:
            self.in_flight += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # given a slot, then cancelled: pass it on
                self.in_flight -= 1
                self._wake()
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def _beating(self) -> None:
        """The heartbeat runs while probes are in flight or waiting (started with the first)."""
        if self._heartbeat is None and self.period is not None and self.ceiling > self.floor:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def __aexit__(self, *exc: object) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.in_flight += 1
                waiter.set_result(None)

    async def _beat(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.period or 0.0
        while self.in_flight or self._waiters:  # idle between a watcher's polls: no beat
            before, cpu_before = loop.time(), time.thread_time()
            await asyncio.sleep(period)
            self.observe(loop.time() - before - period, time.thread_time() - cpu_before, loop.time() - before)
        self._heartbeat = None

    def observe(self, late: float, cpu: float, wall: float) -> None:
        """One heartbeat: the timer ran `late` seconds after it was due, and this thread used `cpu` of
        the `wall` seconds since it was set. Lateness counts only when the thread was busy (callbacks
        queueing in the loop), not when the machine gave the core to someone else: fewer probes in
        flight help only the former. Smoothed, so one late beat does not halve a sweep."""
        late = late if cpu >= wall / 2 else 0.0
        self._lag = 0.7 * self._lag + 0.3 * max(0.0, late)
        if self._lag > self.lag_target:
            self.limit = max(self.floor, self.limit * 4 // 5)
            self.lowest = min(self.lowest, self.limit)
        elif self._lag < self.lag_target / 2 and self._waiters and self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit + max(1, self.limit // 8))
            self._wake()

    def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None


async def run_once(
    checks: Sequence[Check],
    ctx: ProbeContext,
    *,
    concurrency: int = 50,
    on_result: Callable[[CheckResult], None] | None = None,
    gate: Gate | None = None,
) -> list[CheckResult]:
    """Probe every check once, at most `concurrency` at a time (fewer while the event loop falls
    behind: `Gate`); results in the checks' order. Every check is due when the sweep starts; the
    time until its probe begins is its `queue_ms`, never part of its latency."""
    gate = gate or Gate(concurrency)
    due = time.perf_counter()

    async def one(check: Check) -> CheckResult:
        async with gate:
            result = await probe(check, ctx, due=due)
        if on_result is not None:
            on_result(result)
        return result

    try:
        return list(await asyncio.gather(*(one(c) for c in checks)))
    finally:
        gate.close()


def report_for(results: Sequence[CheckResult], target: str, started: datetime, t0: float) -> Report:
    findings = (f for r in results for f in r.findings)
    return Report.timed("check", target, started, t0, findings, {"checks": [r.to_dict() for r in results]})


def next_poll_in(interval: float, retry_interval: float | None, state: SustainedState) -> float:
    """Seconds until the next probe: `interval`, or sooner while the state is changing (failing
    before its threshold, or recovering), so an outage is confirmed in seconds, not in
    failure_threshold whole intervals. Never later than `interval`, and never sooner for a check
    the server is rate-limiting (429: it asked us to back off)."""
    if state.phase not in ("failing", "recovering"):
        return interval
    if state.last is not None and state.last.error_class is ErrorClass.HTTP_RATE_LIMITED:
        return interval
    retry = retry_interval if retry_interval is not None else max(1.0, interval / 3)
    return min(retry, interval)


@dataclass
class Watcher:
    """Polls each check on its own chain: the next probe is scheduled when the previous one finished,
    so a slow check never has two probes in flight; a check whose state is changing is polled
    sooner (`next_poll_in`). Pausing skips polls without losing state."""

    checks: Sequence[Check]
    ctx: ProbeContext
    concurrency: int = 50
    interval_override: float | None = None
    polls: int | None = None  # stop each chain after this many probes (None: until stopped)
    states: dict[str, SustainedState] = field(default_factory=dict)
    paused: bool = False
    polled: dict[str, int] = field(default_factory=dict)  # probes per check (`polls` counts these)
    # results probed just before the watch began (the dashboard's start-up child, ops/early.py):
    # each stands for its check's first probe, so the check is not probed twice
    seed: dict[str, CheckResult] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._gate = Gate(self.concurrency)
        self._stop = asyncio.Event()
        for check in self.checks:
            self.states.setdefault(check.name, SustainedState())

    def stop(self) -> None:
        self._stop.set()

    async def _wait(self, seconds: float) -> bool:
        """Sleep unless stopped; True when stopped."""
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    async def _chain(self, check: Check, on_result: ResultCallback) -> None:
        interval = self.interval_override or check.interval
        while not self._stop.is_set():
            if self.polls is not None and self.polled.get(check.name, 0) >= self.polls:
                return
            if not self.paused:
                result = self.seed.pop(check.name, None)
                if result is None:
                    due = time.perf_counter()
                    async with self._gate:
                        result = await probe(check, self.ctx, due=due)
                state = self.states[check.name].update(
                    result, check.failure_threshold, check.success_threshold
                )
                self.states[check.name] = state
                on_result(result, state)
                self.polled[check.name] = self.polled.get(check.name, 0) + 1
                if self.polls is not None and self.polled[check.name] >= self.polls:
                    return
            wait = next_poll_in(interval, check.retry_interval, self.states[check.name])
            if await self._wait(wait):
                return

    async def run(self, on_result: ResultCallback) -> None:
        try:
            await asyncio.gather(*(self._chain(c, on_result) for c in self.checks))
        finally:
            self._gate.close()
