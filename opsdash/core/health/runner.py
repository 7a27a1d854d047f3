"""Running checks: once (opsdash check), or continuously with chained polls (dashboard, --watch)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from opsdash.core.findings import Report
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes import ProbeContext, probe
from opsdash.core.health.state import SustainedState
from opsdash.core.profile import Check

ResultCallback = Callable[[CheckResult, SustainedState], None]


async def run_once(
    checks: Sequence[Check],
    ctx: ProbeContext,
    *,
    concurrency: int = 50,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """Probe every check once, at most `concurrency` at a time; results in the checks' order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(check: Check) -> CheckResult:
        async with gate:
            result = await probe(check, ctx)
        if on_result is not None:
            on_result(result)
        return result

    return list(await asyncio.gather(*(one(c) for c in checks)))


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

    def __post_init__(self) -> None:
        self._gate = asyncio.Semaphore(self.concurrency)
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
                async with self._gate:
                    result = await probe(check, self.ctx)
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
        await asyncio.gather(*(self._chain(c, on_result) for c in self.checks))
