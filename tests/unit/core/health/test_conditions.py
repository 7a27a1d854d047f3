"""The condition language: what operators write, what it means, and clear errors for typos."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

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
from tests.conftest import Run

BODY = (
    b'{"status":"UP","payments":{"success_rate":0.97,"pending":3},"items":[{"id":"a"},{"id":"b"}],"ok":true}'
)


def facts(**overrides: Any) -> Facts:
    base = Facts(
        status=200,
        response_time_ms=120.0,
        body=BODY,
        certificate_expiration_s=40 * 86400.0,
        connected=True,
        ip="127.0.0.1",
    )
    return replace(base, **overrides)


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


def test_bad_condition_in_profile_names_check_and_column(run: Run, tmp_path: Path) -> None:
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


PEOPLE = b'{"name":"John Doe","id":42,"path":"https://x.example/api/v1","glob":"a*","error":null}'


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("[BODY].name == pat(*John*)", True),
        ("[BODY].name == pat(John*)", True),
        ("[BODY].name == pat(*Doe)", True),
        ("[BODY].name == pat(John)", False),
        ("[BODY].name != pat(*John*)", False),
        ("[BODY].name != pat(*Jane*)", True),
        ("[BODY].name == pat(J?hn D[aeiou]e)", True),
        ("[BODY].name == pat([^J]*)", False),
        ("[BODY].name == pat([A-Z]ohn*)", True),
        ('[BODY].name == pat("John *")', True),
        ("[BODY].glob == pat(a\\*)", True),
        ("[BODY].name == pat(a\\*)", False),
        ("[BODY].path == pat(https:*/api/*)", True),
        ("[BODY].id == pat(4*)", True),
        ("[BODY].missing == pat(*)", False),
        ("[BODY].missing != pat(x)", False),
        ('[BODY].name == "pat(*John*)"', False),
    ],
)
def test_pat_matches_globs_like_gatus(text: str, ok: bool) -> None:
    assert evaluate(parse(text), facts(body=PEOPLE)).ok is ok


def test_pat_on_status_and_ip() -> None:
    assert evaluate(parse("[STATUS] == pat(2*)"), facts(status=204)).ok
    assert not evaluate(parse("[STATUS] == pat(2*)"), facts(status=503)).ok
    assert evaluate(parse("[IP] == pat(192.168.*)"), facts(ip="192.168.0.7")).ok
    assert evaluate(parse("[IP] != pat(192.168.*)"), facts(ip="10.0.0.7")).ok


@pytest.mark.parametrize(
    ("text", "status", "ok"),
    [
        ("[STATUS] != any(500, 503)", 200, True),
        ("[STATUS] != any(500, 503)", 503, False),
        ("[STATUS] == any(500, 503)", 503, True),
    ],
)
def test_any_with_equal_and_not_equal(text: str, status: int, ok: bool) -> None:
    assert evaluate(parse(text), facts(status=status)).ok is ok


@pytest.mark.parametrize(
    ("text", "body", "ok", "actual"),
    [
        ("len([BODY].name) == 8", b'{"name":"john.doe"}', True, "8"),  # a string: its length
        ("len([BODY].items) == 2", BODY, True, "2"),  # an array: its elements
        ("len([BODY].payments) == 33", BODY, True, "33"),  # an object: its minified JSON
        ("len([BODY].payments.pending) == 1", BODY, True, "1"),  # a number: as written
        ("len([BODY]) == 4", b"pong\n", True, "4"),  # a body that is not JSON: its text
        ("len([BODY]) == 3", b"[1, 2, 3]", True, "3"),  # a JSON array body: its elements
        ("len([BODY].nope) == 0", BODY, False, "(missing)"),
        ("len([BODY].nope) < 5", BODY, False, "(missing)"),
    ],
)
def test_len_follows_gatus(text: str, body: bytes, ok: bool, actual: str) -> None:
    result = evaluate(parse(text), facts(body=body))
    assert (result.ok, result.actual) == (ok, actual)


@pytest.mark.parametrize(
    ("text", "body", "ok"),
    [
        ("has([BODY].errors) == false", b"<html>502 Bad Gateway</html>", True),  # no JSON, no paths
        ("has([BODY].errors) == true", b"<html>502 Bad Gateway</html>", False),
        ("has([BODY].error) == false", PEOPLE, True),  # null counts as absent
        ("has([BODY].name) == true", PEOPLE, True),
        ("has([BODY]) == true", b"", False),
        ("has([BODY]) == true", b"pong", True),
    ],
)
def test_has_is_true_or_false(text: str, body: bytes, ok: bool) -> None:
    assert evaluate(parse(text), facts(body=body)).ok is ok


def test_json_null_reads_as_null() -> None:
    assert evaluate(parse("[BODY].error == null"), facts(body=PEOPLE)).ok
    assert not evaluate(parse('[BODY].error != ""'), facts(body=PEOPLE)).ok
    assert evaluate(parse("[BODY].error == x"), facts(body=PEOPLE)).actual == "null"


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("foo([BODY].x) == 1", 1, "unknown function foo()"),
        ("[BODY].x == bar(1)", 13, "unknown function bar()"),
        ("[BODY].x == PAT(a*)", 13, "did you mean pat()?"),
        ("pat(a*) < [BODY].x", 9, "pat() only works with == and !="),
        ("[STATUS] == 200 && [BODY].ok == true", 17, "&& is not supported"),
        ("[STATUS] == 200 || [STATUS] == 204", 17, "|| is not supported; use any("),
        ("[STATUS] === 200", 10, "'===' is not an operator; use =="),
        ("[STATUS] <> 200", 10, "'<>' is not an operator; use !="),
        ("[STATUS] => 200", 10, "'=>' is not an operator; use >="),
        ("[STATUS] < [CONNECTED]", 10, "[CONNECTED] cannot be compared with <"),
        ("[BODY].x == [STAUTS]", 13, "unknown placeholder [STAUTS]"),
        ("[RESPONSE_TIME] < nan", 19, "nan is not a finite number"),
        ("[BODY].rate > inf", 15, "inf is not a finite number"),
        ("[BODY].rate > 1e999", 15, "not a finite number"),
        ("[RESPONSE_TIME] > 99999999999999999999h", 19, "is out of range"),
        ("[CERTIFICATE_EXPIRATION] > 2562048h", 28, "is out of range"),
        ("[RESPONSE_TIME] > -5h", 19, "negative value (-5h)"),
        ("[CERTIFICATE_EXPIRATION] > -5h", 28, "negative value (-5h)"),
        ("[STATUS] == 200\n", 16, "control character '\\\\n'"),
        ("[STATUS]\r== 200", 9, "control character '\\\\r'"),
        ("[BODY].x == a\x1b[31m", 14, "control character '\\\\x1b'"),
        ("[BODY].x == a\u202eb", 14, "control character '\\\\u202e'"),
        ("[BODY].name == pat(*[a*)", 21, "[ is not closed with ]"),
        ("[BODY].name == pat([]a)", 21, "unexpected ']' in [...]"),
        ("[BODY].name == pat(a\\)", 21, "the \\ at the end escapes nothing"),
        ("[BODY].name < pat(a*)", 13, "pat() only works with == and !="),
        ("[RESPONSE_TIME] == pat(1*)", 24, "pat() compares text"),
        ("[BODY].x == any(1, pat(a))", 20, "functions cannot be nested"),
        ("[BODY].x == any(1, )", 20, "any() needs one or more values"),
        ("[BODY].x == pat(a*) x", 20, "unexpected text after pat(...)"),
        ("len([BODY].x == 1", 13, "len( is not closed with )"),
        ("len([IP]) > 7", 5, "len() works only with [BODY]"),
        ("has([BODY].x) == 1", 18, "has([BODY].x) is true or false"),
        ("has([BODY].x) > 0", 15, "cannot be compared with >"),
        ("[CONNECTED] == yes", 16, "[CONNECTED] is true or false"),
        ("[STATUS] == OK", 13, "expected a number, got 'OK'"),
        ("[STATUS] < 5m", 12, "[STATUS] is not a duration"),
        ('[BODY].x == "UP', 13, 'the quote " is not closed'),
        ("[BODY].token == abc==", 20, "unexpected '=' in the value; quote the value"),
        ("[BODY][12345678901] == 1", 7, "the index [12345678901] is too large"),
    ],
)
def test_unknown_syntax_is_a_parse_error_with_a_column(text: str, column: int, words: str) -> None:
    with pytest.raises(ConditionError) as exc:
        parse(text)
    assert (exc.value.column, words in exc.value.message) == (column, True), exc.value


def test_parse_all_names_the_column_of_an_unsupported_and() -> None:
    with pytest.raises(ValueError, match=r"condition 2 .*, column 17: && is not supported"):
        parse_all(["[STATUS] == 200", "[STATUS] == 200 && [BODY].ok == true"])


@pytest.mark.parametrize(
    ("text", "overrides", "actual"),
    [
        ("[RESPONSE_TIME] < 300", {"response_time_ms": 607.4481279999873}, "607 ms"),
        ("[RESPONSE_TIME] < 300", {"response_time_ms": 4.25}, "4.2 ms"),
        (
            "[CERTIFICATE_EXPIRATION] > 60d",
            {"certificate_expiration_s": 19 * 86400 + 4 * 3600 + 59},
            "19d 4h",
        ),
        ("[CERTIFICATE_EXPIRATION] > 60d", {"certificate_expiration_s": 40 * 86400.0}, "40d"),
        ("[CERTIFICATE_EXPIRATION] > 60d", {"certificate_expiration_s": 5 * 3600 + 12 * 60 + 9.5}, "5h 12m"),
        ("[CERTIFICATE_EXPIRATION] > 60d", {"certificate_expiration_s": 42.9}, "42s"),
        (
            "[CERTIFICATE_EXPIRATION] > 60d",
            {"certificate_expiration_s": -(2 * 86400 + 3 * 3600 + 5)},
            "expired 2d 3h ago",
        ),
        ("[BODY].rate > 1", {"body": b'{"rate": 0.970}'}, "0.970"),
        ("[BODY].n > 1000", {"body": b'{"n": 1E3}'}, "1E3"),
        ("[BODY] == pong", {"body": b""}, "(empty)"),
    ],
)
def test_actual_values_are_rounded_with_units_or_as_written(
    text: str, overrides: dict[str, object], actual: str
) -> None:
    assert evaluate(parse(text), facts(**overrides)).actual == actual


def test_comparisons_use_exact_values_not_the_rounded_ones() -> None:
    slow = facts(response_time_ms=607.4481279999873)
    assert evaluate(parse("[RESPONSE_TIME] < 607.45"), slow).ok
    assert not evaluate(parse("[RESPONSE_TIME] < 607.448"), slow).ok
    assert evaluate(parse("[BODY].n == 1000"), facts(body=b'{"n": 1E3}')).ok
    assert evaluate(parse("[CERTIFICATE_EXPIRATION] > 1h30m"), facts(certificate_expiration_s=5401.0)).ok


def test_a_5000_digit_number_in_the_body_still_reads() -> None:
    body = b'{"n": ' + b"9" * 5000 + b"}"
    assert evaluate(parse("[BODY].n > 1"), facts(body=body)).ok
    result = evaluate(parse("[BODY].n == 1"), facts(body=body))
    assert not result.ok and result.actual.startswith("999") and result.actual.endswith("…")


def test_deeply_nested_or_nan_bodies_are_unparseable_not_crashes() -> None:
    with pytest.raises(BodyUnparseable, match="nested too deeply"):
        evaluate(parse("[BODY][0] == 1"), facts(body=b"[" * 100_000 + b"]" * 100_000))
    with pytest.raises(BodyUnparseable, match="not JSON"):
        evaluate(parse("[BODY].x > 1"), facts(body=b'{"x": NaN}'))


def test_body_text_in_actual_cannot_drive_the_terminal() -> None:
    result = evaluate(parse("[BODY].msg == ok"), facts(body=b'{"msg": "\\u001b[2Jgone\\nnext"}'))
    assert result.actual == "\\x1b[2Jgone\\x0anext"  # the one sanitiser, core.text.visible


@pytest.mark.parametrize(
    ("text", "body", "ok"),
    [  # cases from Gatus's config/endpoint/condition_test.go
        ("len([BODY].data.name) == 4", b'{"data": {"name": "john"}}', True),
        ("len([BODY]) == 3", b'[{"id": 1}, {"id": 2}, {"id": 3}]', True),
        ("len([BODY].data) == 8", b'{"name": "john.doe"}', False),
        ("len([BODY]) == 8", b"john.doe", True),
        ("len([BODY].age) == 2", b'{"age":18}', True),
        ("len([BODY].adult) == 4", b'{"adult":true}', True),
        ("len([BODY][0]) == 23", b'[{"age":18,"adult":true}]', True),
        ("len([BODY]) == 20", b'{"name": "john.doe"}', True),
        ("has([BODY].errors) == false", b"{}", True),
        ("has([BODY].errors) == false", b'{"errors": ["1"]}', False),
        ("[BODY].name == pat(bob*)", b'{"name": "john.doe"}', False),
        (
            '[BODY] == pat(*<div id="user">john.doe</div>*)',
            b'<html><div id="user">john.doe</div></html>',
            True,
        ),
    ],
)
def test_gatus_examples(text: str, body: bytes, ok: bool) -> None:
    assert evaluate(parse(text), facts(body=body)).ok is ok


@pytest.mark.parametrize(
    ("text", "status", "ok"),
    [
        ("200 == [STATUS]", 200, True),
        ("300 > [STATUS]", 201, True),  # the operator turns with the sides: [STATUS] < 300
        ("300 > [STATUS]", 404, False),
        ("200 <= [STATUS]", 199, False),
        ("any(200, 429) != [STATUS]", 503, True),
    ],
)
def test_a_value_on_the_left_reads_as_gatus_reads_it(text: str, status: int, ok: bool) -> None:
    assert evaluate(parse(text), facts(status=status)).ok is ok
