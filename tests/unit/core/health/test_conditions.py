"""The condition language: what operators write, what it means, and clear errors for typos."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opsdash.core.health.conditions import (
    BodyUnparseable,
    ConditionError,
    Facts,
    evaluate,
    metrics,
    parse,
    parse_all,
)

BODY = (
    b'{"status":"UP","payments":{"success_rate":0.97,"pending":3},"items":[{"id":"a"},{"id":"b"}],"ok":true}'
)


def facts(**overrides: object) -> Facts:
    base: dict[str, object] = {
        "status": 200,
        "response_time_ms": 120.0,
        "body": BODY,
        "certificate_expiration_s": 40 * 86400.0,
        "connected": True,
        "ip": "127.0.0.1",
    }
    return Facts(**{**base, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("[STATUS] == 200", True),
        ("[STATUS] != 200", False),
        ("[STATUS] == any(200, 204)", True),
        ("[STATUS] == any(301, 302)", False),
        ("[RESPONSE_TIME] < 300", True),
        ("[RESPONSE_TIME] < 100ms", False),
        ("[RESPONSE_TIME] <= 1s", True),
        ("[BODY].status == UP", True),
        ("[BODY].status == DOWN", False),
        ('[BODY].status == "UP"', True),
        ("[BODY].payments.success_rate >= 0.95", True),
        ("[BODY].payments.success_rate >= 0.98", False),
        ("[CERTIFICATE_EXPIRATION] > 720h", True),
        ("[CERTIFICATE_EXPIRATION] > 60d", False),
        ("len([BODY].items) == 2", True),
        ("len([BODY].items) > 5", False),
        ("[BODY].items[1].id == b", True),
        ("[BODY].items[-1].id == b", True),
        ("has([BODY].payments) == true", True),
        ("has([BODY].refunds) == true", False),
        ("[BODY].ok == true", True),
        ("[CONNECTED] == true", True),
        ("[IP] == 127.0.0.1", True),
        ("[BODY].missing == x", False),
    ],
)
def test_conditions_mean_what_operators_expect(text: str, ok: bool) -> None:
    assert evaluate(parse(text), facts()).ok is ok


def test_failed_condition_reports_the_actual_value() -> None:
    result = evaluate(parse("[BODY].payments.success_rate >= 0.98"), facts())
    assert (result.ok, result.actual) == (False, "0.97")
    assert evaluate(parse("[BODY].nope.deeper == 1"), facts()).actual == "(missing)"


def test_ordering_on_text_is_an_error_not_a_pass() -> None:
    result = evaluate(parse("[BODY].status > 3"), facts())
    assert not result.ok and result.error == "[BODY].status is not a number"


def test_body_that_is_not_json_raises_for_json_paths() -> None:
    with pytest.raises(BodyUnparseable):
        evaluate(parse("[BODY].status == UP"), facts(body=b"<html>502 Bad Gateway</html>"))
    assert evaluate(parse("[BODY] == pong"), facts(body=b"pong")).ok


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("[STATUS] = 200", 10, "use =="),
        ("[STATUS]", 9, "expected an operator"),
        ("[STAUTS] == 200", 1, "unknown placeholder [STAUTS]"),
        ("[BODY].a. == 1", 9, "cannot read the path"),
        ("[IP] < 3", 6, "cannot be compared with <"),
        ("[STATUS] == ", 13, "expected a value"),
        ("[STATUS].code == 1", 9, "only [BODY] takes a path"),
        ("[STATUS] < any(1, 2)", 10, "any() only works with == and !="),
        ("", 1, "empty condition"),
    ],
)
def test_parse_errors_name_the_column(text: str, column: int, words: str) -> None:
    with pytest.raises(ConditionError) as exc:
        parse(text)
    assert exc.value.column == column
    assert words in str(exc.value)


def test_parse_all_names_the_condition() -> None:
    with pytest.raises(ValueError, match=r"condition 2 '\[BODY\]\.x = 1', column 10"):
        parse_all(["[STATUS] == 200", "[BODY].x = 1"])


def test_numbers_at_body_paths_become_metrics() -> None:
    conds = [parse("[BODY].payments.success_rate >= 0.95"), parse("[BODY].status == UP")]
    assert metrics(conds, facts(), ["payments.pending"]) == {
        "payments.success_rate": 0.97,
        "payments.pending": 3,
    }


def test_bad_condition_in_profile_names_check_and_column(run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "opsdash.toml"
    path.write_text(
        '[target]\nname = "x"\nbase_url = "https://a.example.com"\n\n[[checks]]\nname = "health"\n'
        'kind = "http"\nurl = "https://a.example.com/h"\nconditions = ["[BODY].status = UP"]\n'
    )
    result = run("check", "--config", path)
    assert result.code == 3
    assert f"{path}:9: checks[0].conditions: condition 1 '[BODY].status = UP', column 15" in result.err


@given(st.integers(-(10**9), 10**9), st.integers(-(10**9), 10**9))
def test_numeric_comparisons_agree_with_python(a: int, b: int) -> None:
    body = f'{{"n": {a}}}'.encode()
    for op, expected in (
        ("<", a < b),
        ("<=", a <= b),
        (">", a > b),
        (">=", a >= b),
        ("==", a == b),
        ("!=", a != b),
    ):
        assert evaluate(parse(f"[BODY].n {op} {b}"), Facts(body=body)).ok is expected
