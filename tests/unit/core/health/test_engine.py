"""What the probe engine works out once and keeps (a URL's route, a check's request bytes, its
compiled conditions), the gate that adapts the number of probes in flight, and queue time kept
apart from latency. Against real servers on 127.0.0.1 where a probe is involved."""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import json
import sys
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsdash.core.health.conditions import Compiled, Facts, Operand, evaluate, parse
from opsdash.core.health.conditions.evaluator import _equal, _Literal, _show, _show_fast
from opsdash.core.health.conditions.placeholders import JsonNumber
from opsdash.core.health.probes import ProbeContext
from opsdash.core.health.probes.base import compiled_conditions
from opsdash.core.health.probes.wire import Route, is_ip
from opsdash.core.health.runner import Gate, loop_factory, run_once, run_sync
from opsdash.demo.httpserver import Request, Response
from tests.servers import ThreadedHttpServer, http_server, json_handler
from tests.unit.core.health.conftest import HANG_GUARD, make_check
from tests.unit.core.health.gatus_table import SCENARIOS
from tests.unit.core.health.test_gatus_parity import DIFFERENCES, facts
from tests.waits import until_async

# --- a URL's route, worked out once per URL --------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/health", Route(False, "127.0.0.1", 8080, 80, True, "/health")),
        ("https://[::1]/x?a=b c", Route(True, "::1", 443, 443, True, "/x?a=b%20c")),
        ("https://app.example.test", Route(True, "app.example.test", 443, 443, False, "/")),
        ("http://localhost:81/a%2Fb", Route(False, "localhost", 81, 80, False, "/a%2Fb")),
    ],
)
def test_a_route_says_where_a_url_goes(url: str, expected: Route) -> None:
    assert Route.of(url) == expected
    assert Route.of(url) is Route.of(url)  # worked out once


HOSTS = st.one_of(
    st.ip_addresses().map(str),
    st.text(alphabet="0123456789.:abcdef%", max_size=20),
    st.lists(st.integers(0, 300), min_size=1, max_size=5).map(lambda parts: ".".join(map(str, parts))),
    st.text(max_size=12),
)


@settings(max_examples=3000, deadline=None)
@given(host=HOSTS)
def test_is_ip_answers_as_the_ipaddress_module_does(host: str) -> None:
    """A host taken for an address skips DNS: the shortcut must agree with ipaddress everywhere
    (leading zeros, short forms, IPv6, non-ASCII digits)."""
    try:
        ipaddress.ip_address(host)
        expected = True
    except ValueError:
        expected = False
    assert is_ip(host) is expected


def test_a_bad_port_is_still_an_error_every_time() -> None:
    for _ in range(2):  # not cached as if it were a route
        with pytest.raises(ValueError, match=r"[Pp]ort"):
            Route.of("http://127.0.0.1:99999/")


async def test_address_facts_never_leak_between_checks_with_different_urls() -> None:
    """Two servers, a check on each by address and one by name: every probe, first or cached,
    reaches its own server, and only the named one asks DNS."""
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return ["127.0.0.1"]

    ctx = ProbeContext(profile=make_check_profile(), resolver=resolver)
    async with (
        http_server(json_handler({"who": "a"})) as a,
        http_server(json_handler({"who": "b"})) as b,
    ):
        checks = [
            make_check(name="a", kind="http", url=f"{a.base_url}/", conditions=["[BODY].who == a"]),
            make_check(name="b", kind="http", url=f"{b.base_url}/", conditions=["[BODY].who == b"]),
            make_check(
                name="b-by-name",
                kind="http",
                url=f"http://localhost:{b.port}/",
                conditions=["[BODY].who == b"],
            ),
        ]
        for _ in range(3):  # the first sweep fills the caches, the others use them
            results = await asyncio.wait_for(run_once(checks, ctx, concurrency=3), HANG_GUARD)
            assert [r.ok for r in results] == [True, True, True], [r.summary for r in results]
            assert [r.facts["ip"] for r in results] == ["127.0.0.1"] * 3
            assert ["dns" in r.phases for r in results] == [False, False, True]
    assert asked == [("localhost", b.port)] * 3


async def test_each_check_sends_its_own_request_though_the_bytes_are_kept() -> None:
    seen: list[tuple[str, str]] = []

    async def handler(request: Request) -> Response:
        seen.append((request.path, request.headers.get("x-env", "")))
        return Response.json('{"ok": true}', 200)

    async with http_server(handler) as server:
        checks = [
            make_check(name="one", kind="http", url=f"{server.base_url}/same", headers={"X-Env": "one"}),
            make_check(name="two", kind="http", url=f"{server.base_url}/same", headers={"X-Env": "two"}),
            make_check(name="other", kind="http", url=f"{server.base_url}/other"),
        ]
        ctx = ProbeContext(profile=make_check_profile())
        for _ in range(2):
            await asyncio.wait_for(run_once(checks, ctx, concurrency=1), HANG_GUARD)
    assert seen == [("/same", "one"), ("/same", "two"), ("/other", "")] * 2


def make_check_profile() -> Any:
    from tests.unit.core.health.conftest import make_profile

    return make_profile()


# --- conditions compiled once ----------------------------------------------------------------------


def test_a_compiled_condition_keeps_no_state_between_probes() -> None:
    """Compiled once, evaluated against every Gatus scenario's facts in turn: each verdict is the one
    a fresh parse gives, and the table still agrees with Gatus."""
    usable = [s for s in SCENARIOS if s["name"] not in DIFFERENCES]
    compiled = [(s, Compiled(parse(s["condition"]))) for s in usable]
    for scenario, condition in compiled:
        for other in usable[::7]:
            try:
                fresh = evaluate(parse(scenario["condition"]), facts(other["result"]))
            except Exception as exc:  # the compiled one must fail the same way
                with pytest.raises(type(exc)):
                    condition.evaluate(facts(other["result"]))
                continue
            assert condition.evaluate(facts(other["result"])) == fresh
        try:
            assert condition.evaluate(facts(scenario["result"])).ok is scenario["success"], scenario
        except Exception:
            assert scenario["success"] is False  # a body that is not JSON: a failing check, as in Gatus


def test_the_same_compiled_conditions_judge_each_probe_on_its_own_facts() -> None:
    status, rate = (Compiled(parse(t)) for t in ("[STATUS] == 200", "[BODY].payments.success_rate >= 0.95"))
    good = Facts(status=200, body=b'{"payments": {"success_rate": 0.99}}')
    bad = Facts(status=503, body=b'{"payments": {"success_rate": 0.5}}')
    for _ in range(2):
        assert (status.evaluate(good).ok, rate.evaluate(good).ok) == (True, True)
        assert (status.evaluate(bad).actual, rate.evaluate(bad).actual) == ("503", "0.5")
        assert (status.evaluate(bad).ok, rate.evaluate(bad).ok) == (False, False)


OPERANDS = [
    Operand("[STATUS]"),
    Operand("[BODY]", ("a",)),
    Operand("[BODY]"),
    Operand("[RESPONSE_TIME]"),
    Operand("[CERTIFICATE_EXPIRATION]"),
    Operand("[BODY]", ("a",), "len"),
    Operand("[CONNECTED]"),
    Operand("[IP]"),
]
NUMBERISH = ["0", "200", "010", "0x1F", "0b10", "0o17", "1_000", "1e3", "0.95", "-3", " 7 ", "1.0", "abc", ""]
LITERALS = st.sampled_from([*NUMBERISH, "true", "false", "null", "500ms", "30s", "720h", "1h30m", "UP"])
VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.sampled_from(NUMBERISH).map(JsonNumber),
    st.sampled_from([*NUMBERISH, "true", "UP", "Up", "720h"]),
    st.text(max_size=8),
)


@settings(max_examples=1500, deadline=None)
@given(value=VALUES, literal=LITERALS | st.text(max_size=6), operand=st.sampled_from(OPERANDS))
def test_a_compiled_literal_compares_as_the_uncompiled_one(
    value: Any, literal: str, operand: Operand
) -> None:
    if isinstance(value, JsonNumber) and not _json_number_ok(value):
        return
    assert _Literal.of(literal, operand).equals(value) == _equal(value, literal, operand)


def _json_number_ok(value: JsonNumber) -> bool:
    try:
        Decimal(value.text)
    except ArithmeticError:
        return False
    return True


@settings(max_examples=500, deadline=None)
@given(value=st.integers(min_value=-(10**60), max_value=10**60) | VALUES, operand=st.sampled_from(OPERANDS))
def test_a_status_is_shown_as_before(value: Any, operand: Operand) -> None:
    assert _show_fast(value, operand) == _show(value, operand)


async def test_checks_alike_but_for_their_metrics_keep_their_own_compiled_conditions() -> None:
    body = {"payments": {"success_rate": 0.99, "pending": 2}}
    async with http_server(json_handler(body)) as server:
        conditions = ["[BODY].payments.success_rate >= 0.95"]
        plain = make_check(name="plain", kind="http", url=f"{server.base_url}/", conditions=conditions)
        more = make_check(
            name="more",
            kind="http",
            url=f"{server.base_url}/",
            conditions=conditions,
            metrics=["payments.pending"],
        )
        ctx = ProbeContext(profile=make_check_profile())
        for _ in range(2):
            results = await asyncio.wait_for(run_once([plain, more, plain], ctx), HANG_GUARD)
            assert [set(r.metrics) - {"response_time_ms"} for r in results] == [
                {"payments.success_rate"},
                {"payments.success_rate", "payments.pending"},
                {"payments.success_rate"},
            ]
    assert compiled_conditions(plain) is compiled_conditions(plain)
    assert compiled_conditions(plain) is not compiled_conditions(more)


async def test_a_status_condition_still_replaces_expect_status_for_a_cached_check() -> None:
    async with http_server(json_handler({"error": "x"}, 503)) as server:
        wants_503 = make_check(
            name="w", kind="http", url=f"{server.base_url}/", conditions=["[STATUS] == 503"]
        )
        default = make_check(name="d", kind="http", url=f"{server.base_url}/")
        ctx = ProbeContext(profile=make_check_profile())
        for _ in range(2):
            ok, failed = await asyncio.wait_for(run_once([wants_503, default], ctx), HANG_GUARD)
            assert ok.ok and not failed.ok and "HTTP 503" in failed.summary


# --- queue time apart from latency -----------------------------------------------------------------


def slow_handler(seconds: float) -> Any:
    async def handler(_request: Request) -> Response:
        await asyncio.sleep(seconds)
        return Response.json(json.dumps({"status": "UP"}), 200)

    return handler


async def test_queue_time_is_reported_apart_from_latency_under_a_saturated_limit() -> None:
    """One slot, three checks of a slow server (in a thread of its own): the later probes wait for
    the slot, and that wait is their queue_ms — at least the whole of the probes before them —
    while [RESPONSE_TIME] and the phases hold only their own exchange."""
    server = ThreadedHttpServer(slow_handler(0.2))
    try:
        checks = [
            make_check(
                name=f"slow{i}",
                kind="http",
                url=f"{server.base_url}/",
                conditions=["[STATUS] == 200", "[RESPONSE_TIME] < 60s"],
            )
            for i in range(3)
        ]
        ctx = ProbeContext(profile=make_check_profile())
        results = await asyncio.wait_for(run_once(checks, ctx, concurrency=1), HANG_GUARD)
    finally:
        server.close()
    assert all(r.ok for r in results), [r.summary for r in results]
    first, second, third = results
    assert second.queue_ms >= first.duration_ms
    assert third.queue_ms >= first.duration_ms + second.duration_ms
    for result in results:
        latency = result.metrics["response_time_ms"]
        assert latency == pytest.approx(sum(result.phases.values()), abs=0.02)  # the exchange only
        assert latency <= result.duration_ms
        shown = result.to_dict()
        assert shown["queue_ms"] == round(result.queue_ms, 1)
        assert "queue" not in shown["phases"]
    # what the third waited is more than its own latency: counted in [RESPONSE_TIME], it would be
    # the latency of three probes
    assert third.queue_ms > third.metrics["response_time_ms"]


async def test_a_probe_run_alone_has_no_queue_time() -> None:
    async with http_server(json_handler({"status": "UP"})) as server:
        from opsdash.core.health.probes import probe

        result = await asyncio.wait_for(
            probe(
                make_check(kind="http", url=f"{server.base_url}/"), ProbeContext(profile=make_check_profile())
            ),
            HANG_GUARD,
        )
    assert result.ok and result.queue_ms == 0.0 and result.to_dict()["queue_ms"] == 0.0


# --- the gate ------------------------------------------------------------------------------------


async def _holders(
    gate: Gate, count: int, release: asyncio.Event, entered: list[int]
) -> list[asyncio.Task[None]]:
    async def hold(i: int) -> None:
        async with gate:
            entered.append(i)
            await release.wait()

    tasks = [asyncio.create_task(hold(i)) for i in range(count)]
    await asyncio.sleep(0)  # let them all reach the gate
    return tasks


async def test_a_busy_loop_lowers_the_limit_to_the_floor_and_a_free_one_raises_it_to_the_ceiling() -> None:
    gate = Gate(20, floor=4, period=None)
    release, entered = asyncio.Event(), list[int]()
    tasks = await _holders(gate, 30, release, entered)
    await until_async(lambda: len(entered) == 20)
    for _ in range(30):  # 20 ms late each beat, the thread busy all along: the loop is behind
        gate.observe(late=0.02, cpu=0.025, wall=0.025)
    assert (gate.limit, gate.lowest, gate.in_flight) == (4, 4, 20)  # in flight stay; none admitted
    release.set()
    await asyncio.gather(*tasks)
    assert sorted(entered) == list(range(30))  # every waiter got its turn, in the lowered limit
    assert gate.in_flight == 0


async def test_a_late_beat_while_the_machine_was_busy_elsewhere_changes_nothing() -> None:
    gate = Gate(20, floor=4, period=None)
    for _ in range(30):  # late, but this thread hardly ran: someone else had the core
        gate.observe(late=0.02, cpu=0.001, wall=0.025)
    assert gate.limit == 20


async def test_the_limit_grows_back_only_while_probes_wait_and_never_past_the_ceiling() -> None:
    gate = Gate(20, floor=4, period=None)
    for _ in range(30):
        gate.observe(late=0.02, cpu=0.025, wall=0.025)
    assert gate.limit == 4
    for _ in range(50):  # nobody waiting: no reason to grow
        gate.observe(late=0.0, cpu=0.005, wall=0.005)
    assert gate.limit == 4
    release, entered = asyncio.Event(), list[int]()
    tasks = await _holders(gate, 30, release, entered)
    await until_async(lambda: len(entered) == 4)
    for _ in range(100):
        gate.observe(late=0.0, cpu=0.005, wall=0.005)
    assert gate.limit == 20 and gate.in_flight == 20  # grown, and the waiters admitted as it grew
    await until_async(lambda: len(entered) == 20)
    release.set()
    await asyncio.gather(*tasks)


async def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    gate = Gate(1, period=None)
    release, entered = asyncio.Event(), list[int]()
    tasks = await _holders(gate, 3, release, entered)
    await until_async(lambda: entered == [0])
    tasks[1].cancel()
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert entered == [0, 2] and isinstance(results[1], asyncio.CancelledError)
    assert gate.in_flight == 0
    async with gate:  # the slot is free again
        assert gate.in_flight == 1


async def test_a_sweep_stops_its_heartbeat() -> None:
    gate = Gate(50)
    async with http_server(json_handler({"status": "UP"})) as server:
        checks = [make_check(name=f"c{i}", kind="http", url=f"{server.base_url}/{i}") for i in range(20)]
        results = await asyncio.wait_for(
            run_once(checks, ProbeContext(profile=make_check_profile()), gate=gate), HANG_GUARD
        )
    assert all(r.ok for r in results)
    assert gate._heartbeat is None and gate.floor <= gate.lowest <= gate.limit <= 50


async def test_the_heartbeat_stops_while_nothing_is_in_flight_and_starts_again_with_a_probe() -> None:
    """A watcher's gate lives between polls: it must not wake the loop 200 times a second idle."""
    gate = Gate(50)
    for _ in range(2):
        async with gate:
            assert gate._heartbeat is not None
        await until_async(lambda: gate._heartbeat is None, "the heartbeat stopping once idle")
    gate.close()


# --- the event loop --------------------------------------------------------------------------------


def test_uvloop_is_used_when_installed_and_asyncio_when_asked_or_absent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert loop_factory("asyncio") is None
    assert run_sync(loop_module(), loop="asyncio").startswith("asyncio")
    if sys.platform != "win32":  # a dependency there (pyproject.toml)
        assert importlib.util.find_spec("uvloop") is not None
        assert run_sync(loop_module()).startswith("uvloop")
    real = importlib.import_module

    def without_uvloop(name: str, package: str | None = None) -> Any:
        if name == "uvloop":
            raise ImportError("No module named 'uvloop'")
        return real(name, package)

    monkeypatch.setattr(importlib, "import_module", without_uvloop)  # as on Windows
    assert loop_factory() is None
    assert run_sync(loop_module()).startswith("asyncio")
    with pytest.raises(ImportError):
        loop_factory("uvloop")
