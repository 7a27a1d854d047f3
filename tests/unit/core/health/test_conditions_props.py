"""Properties of the condition language. Conditions come from outside (profiles, runbooks), so no
text may crash the parser, and no parsed condition may crash on whatever a probe observes."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from opsdash.core.health.conditions import (
    BodyUnparseable,
    Condition,
    ConditionError,
    Facts,
    evaluate,
    metrics,
    parse,
    parse_all,
)

FAST = settings(max_examples=400, deadline=None)

# Pieces of the language and of likely mistakes, so random text often gets past the first check.
FRAGMENTS = [
    "[STATUS]",
    "[BODY]",
    "[body]",
    "[BODY].a",
    "[BODY].items[0]",
    "[BODY][-1]",
    "[RESPONSE_TIME]",
    "[CERTIFICATE_EXPIRATION]",
    "[CONNECTED]",
    "[IP]",
    "[DNS_RCODE]",
    "[STAUTS]",
    "len(",
    "has(",
    "any(",
    "pat(",
    "foo(",
    "(",
    ")",
    "[",
    "]",
    ".",
    ",",
    " ",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "=",
    "!",
    "&&",
    "||",
    '"',
    "'",
    "*",
    "?",
    "\\",
    "^",
    "-",
    "200",
    "0.5",
    "1e999",
    "-5h",
    "1h30m",
    "500ms",
    "7d",
    "nan",
    "inf",
    "true",
    "null",
    "John*",
    "9" * 40,
    "\n",
    "\x00",
    "\u202e",
    "é",
]
TEXTS = st.one_of(
    st.text(),
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), max_size=10).map("".join),
)


@FAST
@given(TEXTS)
def test_any_text_parses_or_names_a_column(text: str) -> None:
    try:
        condition = parse(text)
    except ConditionError as exc:
        assert 1 <= exc.column <= len(text) + 1, (text, exc)
        assert exc.message
    else:
        assert isinstance(condition, Condition)


@FAST
@given(st.lists(TEXTS, max_size=3))
def test_parse_all_raises_only_value_errors_that_name_the_condition(texts: list[str]) -> None:
    try:
        parse_all(texts)
    except ValueError as exc:
        assert str(exc).startswith("condition ")


# Well-formed conditions, by what the left side is, built from the grammar.

WORD = st.text(
    st.characters(whitelist_categories=("L", "N"), whitelist_characters="._-:/@"), min_size=1, max_size=8
)
NUMBER = st.one_of(
    st.integers(-(10**12), 10**12).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["0.5", "1e3", "-0", ".5", "9" * 50]),
)
UNSIGNED = st.one_of(st.integers(0, 10**9).map(str), st.sampled_from(["0.25", "300", "1e3"]))
# well-formed: within Go's time.Duration (2562047h); larger ones are refused with their column
DURATION = st.builds(
    "{}{}".format, st.integers(0, 10**5), st.sampled_from(["ns", "us", "ms", "s", "m", "h", "d"])
) | st.sampled_from(["1h30m", "1.5s", "720h", "2d12h", "2562047h"])
GLOB_TERM = st.one_of(
    st.sampled_from(["*", "?", "a", "b", "John", "\\*", "/", "2", "é"]),
    st.builds(
        "[{}{}]".format, st.sampled_from(["", "^"]), st.sampled_from(["a", "a-z", "0-9b", "z-a", "\\]"])
    ),
)
PATTERN = st.lists(GLOB_TERM, min_size=1, max_size=6).map("".join).map(lambda p: f"pat({p})")
PATH = st.lists(
    st.sampled_from([".a", ".b", ".items", ".0", "[0]", "[1]", "[-1]", ".name"]), min_size=1, max_size=3
).map("".join)
BODY_OPERAND = st.one_of(st.just("[BODY]"), PATH.map(lambda p: f"[BODY]{p}"))


def any_of(values: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.lists(values, min_size=1, max_size=3).map(lambda vs: f"any({', '.join(vs)})")


def equality(left: st.SearchStrategy[str], right: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds("{} {} {}".format, left, st.sampled_from(["==", "!="]), right)


def ordering(left: st.SearchStrategy[str], right: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds("{} {} {}".format, left, st.sampled_from(["<", "<=", ">", ">="]), right)


CONDITIONS = st.one_of(
    equality(st.just("[STATUS]"), st.one_of(NUMBER, any_of(NUMBER), PATTERN)),
    ordering(st.just("[STATUS]"), NUMBER),
    equality(st.sampled_from(["[RESPONSE_TIME]", "[CERTIFICATE_EXPIRATION]"]), UNSIGNED | DURATION),
    ordering(st.sampled_from(["[RESPONSE_TIME]", "[CERTIFICATE_EXPIRATION]"]), UNSIGNED | DURATION),
    equality(BODY_OPERAND, st.one_of(WORD, NUMBER, DURATION, PATTERN, any_of(WORD | NUMBER), st.just('""'))),
    ordering(BODY_OPERAND, NUMBER | DURATION),
    equality(BODY_OPERAND.map(lambda o: f"len({o})"), UNSIGNED),
    ordering(BODY_OPERAND.map(lambda o: f"len({o})"), NUMBER),
    equality(
        st.one_of(st.just("[CONNECTED]"), BODY_OPERAND.map(lambda o: f"has({o})")),
        st.sampled_from(["true", "false", "TRUE", "any(true, false)"]),
    ),
    equality(st.sampled_from(["[IP]", "[DNS_RCODE]"]), st.one_of(WORD, PATTERN, any_of(WORD))),
)

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(["a", "b", "items", "0", "name"]), children, max_size=4)
    ),
    max_leaves=15,
)
BODIES = st.one_of(
    st.none(),
    st.binary(max_size=64),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b"[" * 5000 + b"]" * 5000,
            b'{"a": ' + b"7" * 5000 + b"}",
            b'{"a": 1e999999999999999999999}',
            b'{"a": NaN}',
            b"\xff\xfe{",
            b"  pong\n",
        ]
    ),
)
FACTS = st.builds(
    Facts,
    status=st.none() | st.integers(),
    response_time_ms=st.none() | st.floats(),
    body=BODIES,
    certificate_expiration_s=st.none() | st.floats(),
    connected=st.none() | st.booleans(),
    ip=st.none() | st.text(max_size=10),
    dns_rcode=st.none() | st.text(max_size=10),
)


@FAST
@given(CONDITIONS, FACTS)
def test_well_formed_conditions_parse_and_evaluate_on_anything(text: str, facts: Facts) -> None:
    condition = parse(text)
    try:
        result = evaluate(condition, facts)
    except BodyUnparseable as exc:
        assert str(exc)
    else:
        assert isinstance(result.ok, bool) and result.actual
        assert len(result.actual) <= 60 and "\n" not in result.actual
    assert all(isinstance(v, float) for v in metrics([condition], facts, ["a", "items[0]"]).values())


# pat() must agree with Gatus: Go's filepath.Match after removing "/" from both sides.


def go_valid(pattern: str) -> bool:
    """Go's pattern grammar (path/filepath.Match on Linux; getEsc for class members)."""
    n = len(pattern)

    def member(i: int) -> int | None:
        if i >= n or pattern[i] in "-]":
            return None
        if pattern[i] == "\\":
            i += 1
            if i >= n:
                return None
        return i + 1 if i + 1 < n else None

    i = 0
    while i < n:
        if pattern[i] == "\\":
            if i + 1 >= n:
                return False
            i += 2
        elif pattern[i] == "[":
            i += 1
            if i < n and pattern[i] == "^":
                i += 1
            ranges = 0
            while not (i < n and pattern[i] == "]" and ranges):
                after = member(i)
                if after is not None and pattern[after] == "-":
                    after = member(after + 1)
                if after is None:
                    return False
                i, ranges = after, ranges + 1
            i += 1
        else:
            i += 1
    return True


def go_match_chunk(chunk: str, s: str) -> str | None:
    while chunk:
        if not s:
            return None
        if chunk[0] == "[":
            r, s, chunk = s[0], s[1:], chunk[1:]
            negated = chunk[0] == "^"
            chunk = chunk[negated:]
            matched, n = False, 0
            while not (chunk[0] == "]" and n):
                lo = chunk[1] if chunk[0] == "\\" else chunk[0]
                chunk = chunk[2 if chunk[0] == "\\" else 1 :]
                hi = lo
                if chunk[0] == "-":
                    hi = chunk[2] if chunk[1] == "\\" else chunk[1]
                    chunk = chunk[3 if chunk[1] == "\\" else 2 :]
                matched = matched or lo <= r <= hi
                n += 1
            chunk = chunk[1:]
            if matched == negated:
                return None
        elif chunk[0] == "?":
            s, chunk = s[1:], chunk[1:]
        else:
            if chunk[0] == "\\":
                chunk = chunk[1:]
            if chunk[0] != s[0]:
                return None
            s, chunk = s[1:], chunk[1:]
    return s


def go_scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = pattern.startswith("*")
    pattern = pattern.lstrip("*")
    in_range, i = False, 0
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 1
        elif pattern[i] == "[":
            in_range = True
        elif pattern[i] == "]":
            in_range = False
        elif pattern[i] == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def gatus_match(pattern: str, name: str) -> bool:
    pattern, name = pattern.replace("/", ""), name.replace("/", "")
    while pattern:
        star, chunk, pattern = go_scan_chunk(pattern)
        if star and not chunk:
            return True
        rest = go_match_chunk(chunk, name)
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if not star:
            return False
        for i in range(len(name)):
            rest = go_match_chunk(chunk, name[i + 1 :])
            if rest is not None and not (not pattern and rest):
                name = rest
                break
        else:
            return False
    return not name


GLOB_CHARS = "ab*?[]^-\\/"


@settings(max_examples=500, deadline=None)
@given(st.text(GLOB_CHARS, min_size=1, max_size=10), st.text("ab-^[]\\*?/", max_size=10))
def test_pat_matches_as_gatus_does(pattern: str, name: str) -> None:
    text = f"[BODY] == pat({pattern})"
    if not go_valid(pattern.replace("/", "")):
        try:
            parse(text)
        except ConditionError as exc:
            assert exc.message.startswith("pat():")
            return
        raise AssertionError(f"{pattern!r} is not a valid Go pattern, yet it parsed")
    result = evaluate(parse(text), Facts(body=name.encode()))
    assert result.ok is gatus_match(pattern, name), (pattern, name)
    assert evaluate(parse(f"[BODY] != pat({pattern})"), Facts(body=name.encode())).ok is not result.ok
