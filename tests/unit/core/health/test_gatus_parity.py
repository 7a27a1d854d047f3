"""opsdash's condition language against Gatus' own test table (TestCondition_evaluate, 98 scenarios,
ported verbatim by scripts/gatus_table.py into gatus_table.py).

A Gatus `Result` leaves unset fields at Go's zero values (status 0, empty body, 0 ms, not connected,
no certificate: 0), so the facts here do too. Every scenario agrees on pass/fail, except the
documented differences below, which opsdash refuses when the profile loads instead (docs/conditions
in the README, and the package docstring of opsdash.core.health.conditions):
"""

from __future__ import annotations

from typing import Any

import pytest

from opsdash.core.health.conditions import BodyUnparseable, ConditionError, Facts, evaluate, parse
from tests.unit.core.health.gatus_table import SCENARIOS

# scenario name -> why opsdash refuses the condition at load (Gatus evaluates it to false)
DIFFERENCES = {
    "no-placeholders": "a condition with no placeholder (1 == 2) tests nothing the probe saw",
    "response-time-using-less-than-invalid": "a literal that is not a number or duration under <",
    "body-jsonpath-complex-len-invalid": "len() is a number: == john can never hold",
}


def facts(result: dict[str, Any]) -> Facts:
    return Facts(
        status=result.get("status", 0),
        response_time_ms=result.get("response_time_s", 0.0) * 1000,
        body=str(result.get("body", "")).encode(),
        certificate_expiration_s=result.get("certificate_expiration_s", 0.0),
        connected=result.get("connected", False),
        ip=result.get("ip", ""),
    )


def passes(scenario: dict[str, Any]) -> bool:
    try:
        return evaluate(parse(scenario["condition"]), facts(scenario["result"])).ok
    except BodyUnparseable:  # opsdash: "could not evaluate" (UNKNOWN), a failing check as in Gatus
        return False


def test_the_table_is_gatus_whole() -> None:
    assert len(SCENARIOS) == 98
    assert len({s["name"] for s in SCENARIOS}) >= 95  # Gatus repeats a few names with other inputs


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s["name"] for s in SCENARIOS])
def test_opsdash_agrees_with_gatus(scenario: dict[str, Any]) -> None:
    if scenario["name"] in DIFFERENCES:
        with pytest.raises(ConditionError):
            parse(scenario["condition"])
        assert scenario["success"] is False  # Gatus: it never passes either
        return
    assert passes(scenario) is scenario["success"], scenario


def test_at_most_three_scenarios_differ_and_each_is_documented() -> None:
    import opsdash.core.health.conditions as conditions

    assert len(DIFFERENCES) <= 3
    assert {s["name"] for s in SCENARIOS} >= set(DIFFERENCES)
    doc = conditions.__doc__ or ""
    for example in ("1 == 2", "[RESPONSE_TIME] < potato", "len([BODY].name) == john"):
        assert example in doc
