"""Sustained state thresholds, chained polling (one probe per check in flight), and check history."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from opsdash.core.findings import Severity
from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes import ProbeContext
from opsdash.core.health.runner import Watcher, next_poll_in
from opsdash.core.health.state import SustainedState
from opsdash.demo.httpserver import Request, Response
from opsdash.storage.history import History
from tests.servers import http_server
from tests.unit.core.health.conftest import make_check

OK = CheckResult("c", "http", "u", Severity.OK, "fine", "2026-11-26T10:00:00", 1.0)
DOWN = replace(OK, severity=Severity.CRIT, summary="down", error_class=ErrorClass.HTTP_5XX)


def walk(results: list[CheckResult], failures: int = 3, successes: int = 2) -> list[Severity]:
    state, out = SustainedState(), []
    for i, result in enumerate(results):
        state = state.update(replace(result, started_at=f"t{i}"), failures, successes)
        out.append(state.status)
    return out


def test_unknown_until_evaluated_then_ok() -> None:
    assert SustainedState().status is Severity.UNKNOWN
    assert walk([OK]) == [Severity.OK]


def test_goes_down_only_after_the_failure_threshold() -> None:
    assert walk([OK, DOWN, DOWN, DOWN]) == [Severity.OK, Severity.OK, Severity.OK, Severity.CRIT]
    assert walk([DOWN, DOWN, DOWN]) == [Severity.UNKNOWN, Severity.UNKNOWN, Severity.CRIT]


def test_a_blip_changes_nothing_and_recovery_needs_two_successes() -> None:
    assert walk([OK, DOWN, OK, DOWN, OK]) == [Severity.OK] * 5
    down = [DOWN] * 3
    assert walk([*down, OK, OK]) == [
        Severity.UNKNOWN,
        Severity.UNKNOWN,
        Severity.CRIT,
        Severity.CRIT,
        Severity.OK,
    ]


def test_since_marks_the_last_change() -> None:
    state = SustainedState()
    for i, result in enumerate([OK, OK, DOWN, DOWN, DOWN, DOWN]):
        state = state.update(replace(result, started_at=f"t{i}"), 3, 2)
    assert (state.status, state.since) == (Severity.CRIT, "t4")


async def test_watcher_never_has_two_probes_of_a_check_in_flight(ctx: ProbeContext) -> None:
    in_flight = {"now": 0, "max": 0, "total": 0}

    async def slow(_req: Request) -> Response:
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        in_flight["total"] += 1
        await asyncio.sleep(0.3)  # slower than the 1 s interval would allow if polls were stacked
        in_flight["now"] -= 1
        return Response(200, b"{}")

    seen: list[tuple[str, Severity]] = []
    async with http_server(slow) as server:
        check = make_check(kind="http", url=f"{server.base_url}/", interval=1)
        watcher = Watcher([check], ctx)
        watcher.interval_override = 0.01  # poll again as soon as the previous probe finishes

        def on_result(result: CheckResult, state: SustainedState) -> None:
            seen.append((result.name, state.status))
            if len(seen) == 4:
                watcher.stop()

        await asyncio.wait_for(watcher.run(on_result), 30)
    assert in_flight["max"] == 1
    assert in_flight["total"] == 4
    assert seen == [("probe", Severity.OK)] * 4


async def test_paused_watcher_does_not_probe(ctx: ProbeContext) -> None:
    calls = {"n": 0}

    async def count(_req: Request) -> Response:
        calls["n"] += 1
        return Response(200, b"{}")

    async with http_server(count) as server:
        watcher = Watcher([make_check(kind="http", url=f"{server.base_url}/")], ctx, interval_override=0.01)
        watcher.paused = True
        task = asyncio.create_task(watcher.run(lambda r, s: None))
        await asyncio.sleep(0.2)
        watcher.stop()
        await asyncio.wait_for(task, 10)
    assert calls["n"] == 0
    assert watcher.states["probe"].status is Severity.UNKNOWN


async def test_a_seeded_result_is_the_checks_first_probe_and_the_next_one_is_real(ctx: ProbeContext) -> None:
    """The dashboard's start-up child probed the check a moment ago: the watch reports that result
    first without probing again (the server sees one request for two results), then polls."""
    calls = {"n": 0}

    async def count(_req: Request) -> Response:
        calls["n"] += 1
        return Response(200, b"{}")

    async with http_server(count) as server:
        check = make_check(kind="http", url=f"{server.base_url}/")
        seeded = replace(DOWN, name=check.name, started_at="2026-12-08T00:00:00")
        watcher = Watcher([check], ctx, interval_override=0.01, seed={check.name: seeded})
        seen: list[CheckResult] = []

        def on_result(result: CheckResult, _state: SustainedState) -> None:
            seen.append(result)
            if len(seen) == 2:
                watcher.stop()

        await asyncio.wait_for(watcher.run(on_result), 30)
    assert seen[0] is seeded
    assert seen[1].severity is Severity.OK and seen[1].started_at != seeded.started_at
    assert calls["n"] == 1
    assert watcher.seed == {}  # taken once: a reload's new watcher does not report it again


@pytest.mark.parametrize(
    ("interval", "retry_interval", "expected"),
    [(30, None, 10.0), (30, 4, 4.0), (2, None, 1.0), (1, None, 1.0), (5, 60, 5.0)],
)
def test_a_changing_check_is_polled_sooner_never_later(
    interval: float, retry_interval: float | None, expected: float
) -> None:
    failing = SustainedState().update(OK, 3, 2).update(DOWN, 3, 2)
    assert failing.label == "failing 1 of 3"
    assert next_poll_in(interval, retry_interval, failing) == expected
    assert next_poll_in(interval, retry_interval, SustainedState().update(OK, 3, 2)) == interval


def test_a_rate_limited_check_is_not_polled_sooner() -> None:
    """A 429 asks us to back off: a check failing that way keeps its interval."""
    limited = replace(DOWN, severity=Severity.WARN, error_class=ErrorClass.HTTP_RATE_LIMITED)
    failing = SustainedState().update(OK, 3, 2).update(limited, 3, 2)
    assert failing.phase == "failing"
    assert next_poll_in(30, None, failing) == 30


async def test_an_outage_is_confirmed_at_the_retry_interval(
    ctx: ProbeContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real server that goes down then comes back: the watcher waits the whole interval while the
    state is settled and a third of it while it is failing or recovering, so an outage of a check
    polled every 30 s is confirmed 20 s after its first failure, not 60 s."""
    answers = iter([200, 500, 500, 500, 200, 200, 200])

    async def flaky(_req: Request) -> Response:
        return Response(next(answers), b"{}")

    async with http_server(flaky) as server:
        check = make_check(kind="http", url=f"{server.base_url}/", interval=30)
        watcher = Watcher([check], ctx, polls=7)
        waits: list[float] = []
        labels: list[str] = []

        async def no_sleep(seconds: float) -> bool:
            waits.append(seconds)
            return False

        monkeypatch.setattr(watcher, "_wait", no_sleep)  # record the schedule, do not sleep it
        await asyncio.wait_for(watcher.run(lambda _r, state: labels.append(state.label)), 30)
    assert labels == [
        "OK",
        "failing 1 of 3",
        "failing 2 of 3",
        "CRIT",
        "recovering 1 of 2",
        "OK",
        "OK",
    ]
    assert waits == [30, 10, 10, 30, 10, 30]


def test_check_history_latest_and_last_n(tmp_path: Path) -> None:
    with History.open(tmp_path) as history:
        for i in range(5):
            for name in ("a", "b"):
                history.checks.record(
                    "run", [replace(OK if i < 4 else DOWN, name=name, started_at=f"2026-11-26T10:00:0{i}")]
                )
        latest = history.checks.latest(["a", "b", "never-ran"])
        assert [r.check_name for r in latest] == ["a", "b"]
        assert latest[0].severity == "CRIT" and latest[0].error_class == "http-5xx"
        last3 = history.checks.recent("a", limit=3)
        assert [r.started_at[-2:] for r in last3] == ["02", "03", "04"]
