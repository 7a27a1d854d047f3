"""A small condition language, as operators know it from Gatus.

    [STATUS] == 200                      [RESPONSE_TIME] < 300
    [BODY].status == UP                  [BODY].payments.success_rate >= 0.95
    [CERTIFICATE_EXPIRATION] > 720h      len([BODY].items) > 0
    [STATUS] == any(200, 204)            [BODY].data[0].id != ""
    [CONNECTED] == true                  [IP] == 127.0.0.1
    [BODY].name == pat(John*)            has([BODY].errors) == false

[RESPONSE_TIME] is in milliseconds and [CERTIFICATE_EXPIRATION] in seconds; a duration literal
(500ms, 30s, 10m, 720h, 7d, 1h30m) is converted to the placeholder's unit. Numbers taken from
[BODY] paths become metrics.

Functions, as in Gatus: on the left, `len(...)` (the number of elements of an array, else the
length of the text: a string, the minified JSON of an object, the body itself) and `has(...)`
(true when the path is there and not null; false, not an error, when the body is not JSON), both
for [BODY] only; on the right, with == and != only, `any(a, b, ...)` (equal to one of them) and
`pat(glob)` (Gatus's pattern.Match: `*` any run of characters, `?` one character, `[a-z]`/`[^0-9]`
classes, `\\` escapes the next character; `/` is ignored on both sides, as Gatus does on Linux).

Actual values are shown as a person reads them: [RESPONSE_TIME] as `607 ms`, [CERTIFICATE_EXPIRATION]
as `19d 4h` (`expired 2d 3h ago` when negative), numbers from [BODY] as written in the JSON; the
comparison itself uses the exact values.

Deliberate differences from Gatus: a missing path or a missing fact fails every condition (Gatus
lets `!=` pass against one); numbers compare exactly (Gatus truncates to integers); quotes around
a value are removed; a negative index counts from the end; a bare number for
[CERTIFICATE_EXPIRATION] is seconds (Gatus: milliseconds); anything the language does not know
(unknown functions, `&&`, `||`, `===`, control characters, a malformed pattern, ...) is a parse
error with a column rather than a condition that quietly never (or always) holds.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Context, Decimal, InvalidOperation
from typing import Any, NoReturn

from opsdash.core.text import visible

PLACEHOLDERS = {
    "[STATUS]": 1.0,
    "[RESPONSE_TIME]": 1e-3,  # unit in seconds: milliseconds
    "[BODY]": None,
    "[CERTIFICATE_EXPIRATION]": 1.0,  # seconds
    "[CONNECTED]": None,
    "[IP]": None,
    "[DNS_RCODE]": None,
}
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
EQUALITY = ("==", "!=")
MISSING = object()
UNOBSERVED = object()  # the probe did not observe this fact (a Facts field is None)

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d)")
_DURATION = re.compile(r"([+-]?)((?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h|d))+)")
_DURATION_SECONDS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "μs": Decimal("1e-6"),
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_MAX_DURATION_S = Decimal("9223372036.854775807")  # Go's time.Duration: 2^63 - 1 nanoseconds
_PATH_PART = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(-?[0-9]+)\]")
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\s*)\(")
_PLACEHOLDER_LIKE = re.compile(r"\[[A-Za-z_]+\]")
_LEFT_FUNCTIONS = ("len", "has")
_RIGHT_FUNCTIONS = ("any", "pat")
_BOOLEANS = ("true", "false")
_MAX_INDEX_DIGITS = 9
_SHOW_LIMIT = 60
# For unit conversions only: enough digits for any duration, and no traps (overflow gives infinity).
_ARITHMETIC = Context(prec=60, traps=[])
_BAD_OPERATORS = {"===": "==", "!==": "!=", "<>": "!=", "<==": "<=", ">==": ">=", "=<": "<=", "=>": ">="}

# How a left operand's values compare, which decides what may stand on the right.
_BOOL, _COUNT, _STATUS, _DURATION_KIND, _TEXT = "bool", "count", "status", "duration", "text"


class ConditionError(ValueError):
    """A condition that cannot be parsed; `column` is 1-based within the condition text."""

    def __init__(self, message: str, column: int) -> None:
        super().__init__(f"column {column}: {message}")
        self.message = message
        self.column = column


@dataclass(frozen=True)
class Operand:
    placeholder: str
    path: tuple[str | int, ...] = ()
    function: str | None = None  # len | has

    def label(self) -> str:
        text = self.placeholder + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        return f"{self.function}({text})" if self.function else text


@dataclass(frozen=True)
class Condition:
    text: str
    left: Operand
    operator: str
    right: tuple[str, ...]  # several values for any(...); the glob for pat(...)
    right_function: str | None = None  # any | pat


@dataclass(frozen=True)
class ConditionResult:
    text: str
    ok: bool
    actual: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.text, "ok": self.ok, "actual": self.actual, "error": self.error}


class BodyUnparseable(Exception):
    pass


class _JsonNumber:
    """A number from a JSON body, kept as written: shown as is, compared exactly, any size."""

    __slots__ = ("_decimal", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._decimal: Decimal | None = None

    @property
    def decimal(self) -> Decimal:
        if self._decimal is None:
            self._decimal = _decimal(self.text)
        return self._decimal


@dataclass(frozen=True)
class _Unparseable:
    message: str


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


@dataclass
class Facts:
    """What a probe observed, for conditions to read."""

    status: int | None = None
    response_time_ms: float | None = None
    body: bytes | None = None
    certificate_expiration_s: float | None = None
    connected: bool | None = None
    ip: str | None = None
    dns_rcode: str | None = None
    _json: Any = field(default=MISSING, repr=False)

    def json_body(self) -> Any:
        if self._json is MISSING:
            try:
                self._json = json.loads(
                    self.body or b"",
                    parse_int=_JsonNumber,
                    parse_float=_JsonNumber,
                    parse_constant=_reject_constant,
                )
            except RecursionError:
                self._json = _Unparseable("the response body is JSON nested too deeply to read")
            except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, NaN/Infinity
                detail = str(exc) if "is not JSON" in str(exc) else ""
                self._json = _Unparseable(
                    "the response body is not JSON" + (f" ({detail})" if detail else "")
                )
        if isinstance(self._json, _Unparseable):
            raise BodyUnparseable(self._json.message)
        return self._json

    def body_text(self) -> str:
        return (self.body or b"").decode("utf-8", "replace").strip()


# ---------------------------------------------------------------------------------------------
# Parsing


def _check_characters(text: str) -> None:
    for i, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs", "Zl", "Zp") or (category == "Cf" and ch != "\u200d"):
            shown = ch.encode("unicode_escape").decode("ascii")
            raise ConditionError(f"control character {shown!r} is not allowed in a condition", i + 1)


def _reject_logic(text: str, offset: int) -> None:
    for token, hint in (
        ("&&", "write each condition on its own (all of them must hold)"),
        ("||", "use any(...) for alternatives, e.g. [STATUS] == any(200, 204)"),
    ):
        index = text.find(token)
        if index >= 0:
            raise ConditionError(f"{token} is not supported; {hint}", offset + index + 1)


def _find_operator(text: str) -> tuple[int, str]:
    for i, ch in enumerate(text):
        if ch not in "=!<>":
            continue
        two = text[i : i + 2]
        if two in OPERATORS:
            return i, two
        if ch in "<>":
            return i, ch
        if ch == "=":
            if two in _BAD_OPERATORS:
                raise ConditionError(f"'{two}' is not an operator; use {_BAD_OPERATORS[two]}", i + 1)
            raise ConditionError("'=' is not an operator; use == to compare", i + 1)
    _reject_logic(text, 0)
    raise ConditionError("expected an operator (==, !=, <, <=, >, >=)", len(text) + 1)


def _parse_operand(text: str, offset: int) -> Operand:
    _reject_logic(text, offset)
    stripped = text.strip()
    col = offset + (len(text) - len(text.lstrip())) + 1
    if not stripped:
        raise ConditionError("expected a placeholder such as [STATUS] or [BODY] before the operator", col)
    function = None
    call = _CALL.match(stripped)
    if call:
        name = call.group(1)
        if name not in _LEFT_FUNCTIONS:
            if name in _RIGHT_FUNCTIONS:
                raise ConditionError(
                    f"{name}() goes on the right of the operator, e.g. [BODY].name == {name}(...)", col
                )
            raise ConditionError(f"unknown function {name}() (known: len(), has())", col)
        if not stripped.endswith(")"):
            _unclosed(name, stripped, call.end(), col)
        function = name
        inner = stripped[call.end() : -1]
        col += call.end() + (len(inner) - len(inner.lstrip()))
        stripped = inner.strip()
    end = stripped.find("]")
    if not stripped.startswith("[") or end < 0:
        raise ConditionError(f"expected a placeholder such as [STATUS] or [BODY], got {stripped!r}", col)
    placeholder = stripped[: end + 1].upper()
    if placeholder not in PLACEHOLDERS:
        known = ", ".join(PLACEHOLDERS)
        raise ConditionError(f"unknown placeholder {stripped[: end + 1]} (known: {known})", col)
    rest = stripped[end + 1 :]
    path: list[str | int] = []
    pos = 0
    while pos < len(rest):
        m = _PATH_PART.match(rest, pos)
        if not m:
            raise ConditionError(f"cannot read the path {rest[pos:]!r}", col + end + 1 + pos)
        if m.group(1) is not None:
            path.append(m.group(1))
        elif len(m.group(2).lstrip("-")) > _MAX_INDEX_DIGITS:
            raise ConditionError(f"the index [{m.group(2)}] is too large", col + end + 1 + pos)
        else:
            path.append(int(m.group(2)))
        pos = m.end()
    if path and placeholder != "[BODY]":
        raise ConditionError(f"only [BODY] takes a path, not {placeholder}", col + end + 1)
    if function and placeholder != "[BODY]":
        raise ConditionError(f"{function}() works only with [BODY], not {placeholder}", col)
    return Operand(placeholder, tuple(path), function)


def _unclosed(name: str, text: str, start: int, col: int) -> NoReturn:
    close = text.rfind(")", start)
    if close >= 0:
        raise ConditionError(f"unexpected text after {name}(...)", col + close + 1)
    raise ConditionError(f"{name}( is not closed with )", col + len(text))


@dataclass(frozen=True)
class _Item:
    value: str
    column: int  # of the value's first character (inside any quotes)


def _unquoted(text: str, col: int) -> _Item:
    """A value: "quoted" or 'quoted' (taken as is), else bare text that must not look like syntax."""
    quote = text[:1]
    if quote in ("'", '"'):
        close = text.find(quote, 1)
        if close < 0:
            raise ConditionError(f"the quote {quote} is not closed", col)
        if close != len(text) - 1:
            raise ConditionError("unexpected text after the quoted value", col + close + 1)
        return _Item(text[1:-1], col + 1)
    _reject_logic(text, col - 1)
    if _PLACEHOLDER_LIKE.match(text):
        raise ConditionError(
            f"comparing with a placeholder ({text}) is not supported; quote it to compare with that text", col
        )
    bad = re.search(r"[=<>]", text)
    if bad:
        raise ConditionError(
            f"unexpected {bad.group()!r} in the value; quote the value if it is text", col + bad.start()
        )
    return _Item(text, col)


def _split_any(inner: str, col: int) -> list[_Item]:
    parts: list[tuple[str, int]] = []
    start, quote = 0, ""
    for i, ch in enumerate(inner):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'" and not inner[start:i].strip():
            quote = ch
        elif ch == ",":
            parts.append((inner[start:i], col + start))
            start = i + 1
    parts.append((inner[start:], col + start))
    items = []
    for raw, raw_col in parts:
        value = raw.strip()
        value_col = raw_col + len(raw) - len(raw.lstrip())
        if not value:
            raise ConditionError("any() needs one or more values, separated by commas", value_col)
        if _CALL.match(value):
            raise ConditionError("any() takes plain values; functions cannot be nested in it", value_col)
        items.append(_unquoted(value, value_col))
    return items


def _parse_right(text: str, offset: int, op: str) -> tuple[str | None, list[_Item]]:
    if text[:1] and text[0] in "=!<>":
        run = op + text[: len(text) - len(text.lstrip("=!<>"))]
        hint = f"; use {_BAD_OPERATORS[run]}" if run in _BAD_OPERATORS else " (use ==, !=, <, <=, > or >=)"
        raise ConditionError(f"'{run}' is not an operator{hint}", offset - len(op) + 1)
    stripped = text.strip()
    col = offset + (len(text) - len(text.lstrip())) + 1
    if not stripped:
        raise ConditionError("expected a value after the operator", offset + len(text) + 1)
    call = _CALL.match(stripped)
    if call and (not call.group(2) or call.group(1) in _RIGHT_FUNCTIONS + _LEFT_FUNCTIONS):
        name = call.group(1)
        if name in _LEFT_FUNCTIONS:
            raise ConditionError(
                f"{name}() goes on the left of the operator, e.g. {name}([BODY].items) > 0", col
            )
        if name not in _RIGHT_FUNCTIONS:
            hint = f"; did you mean {name.lower()}()?" if name.lower() in _RIGHT_FUNCTIONS else ""
            raise ConditionError(f"unknown function {name}() (known: any(), pat()){hint}", col)
        if not stripped.endswith(")"):
            _unclosed(name, stripped, call.end(), col)
        inner = stripped[call.end() : -1]
        inner_col = col + call.end()
        if name == "any":
            return name, _split_any(inner, inner_col)
        pattern = inner.strip()
        pattern_col = inner_col + len(inner) - len(inner.lstrip())
        if pattern[:1] in ("'", '"'):
            item = _unquoted(pattern, pattern_col)
        else:
            _reject_logic(pattern, pattern_col - 1)
            item = _Item(pattern, pattern_col)
        if not item.value:
            raise ConditionError("pat() needs a pattern, e.g. pat(John*)", pattern_col)
        try:
            _glob(item.value)
        except ConditionError as exc:
            raise ConditionError(exc.message, item.column + exc.column - 1) from None
        return name, [item]
    return None, [_unquoted(stripped, col)]


def _kind(operand: Operand) -> str:
    if operand.function == "has" or operand.placeholder == "[CONNECTED]":
        return _BOOL
    if operand.function == "len":
        return _COUNT
    if operand.placeholder == "[STATUS]":
        return _STATUS
    if operand.placeholder in ("[RESPONSE_TIME]", "[CERTIFICATE_EXPIRATION]"):
        return _DURATION_KIND
    return _TEXT


def _check_value(left: Operand, op: str, item: _Item) -> None:
    kind, value, col = _kind(left), item.value, item.column
    if kind == _BOOL:
        if value.lower() not in _BOOLEANS:
            raise ConditionError(f"{left.label()} is true or false, not {value!r}", col)
        return
    if kind == _TEXT and op in EQUALITY:
        return  # any text; numbers (and, for [BODY], durations) compare as numbers
    duration = _DURATION.fullmatch(value)
    if duration and kind in (_COUNT, _STATUS):
        raise ConditionError(f"{left.label()} is not a duration; compare it with a plain number", col)
    if value.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise ConditionError(f"{value} is not a finite number", col)
    if not duration and not _NUMBER.fullmatch(value):
        wanted = "a number" if kind in (_COUNT, _STATUS) else "a number or a duration such as 500ms or 720h"
        raise ConditionError(f"expected {wanted}, got {value!r}", col)
    magnitude = float(_duration_seconds(value)) if duration else float(value)
    if not math.isfinite(magnitude):
        raise ConditionError(f"{value} is too large (not a finite number)", col)
    if duration and abs(_duration_seconds(value)) > _MAX_DURATION_S:
        raise ConditionError(
            f"{value} is out of range: a duration is at most 2562047h47m16s (Go's time.Duration)", col
        )
    if kind == _DURATION_KIND and value.startswith("-"):
        raise ConditionError(f"{left.placeholder} cannot be compared with a negative value ({value})", col)


def parse(text: str) -> Condition:
    _check_characters(text)
    if not text.strip():
        raise ConditionError("empty condition", 1)
    index, op = _find_operator(text)
    left = _parse_operand(text[:index], 0)
    function, items = _parse_right(text[index + len(op) :], index + len(op), op)
    kind = _kind(left)
    if op not in EQUALITY:
        if function is not None:
            raise ConditionError(f"{function}() only works with == and !=", index + 1)
        if kind == _BOOL or (kind == _TEXT and left.placeholder != "[BODY]"):
            raise ConditionError(f"{left.label()} cannot be compared with {op}", index + 1)
    if function == "pat":
        if kind not in (_STATUS, _TEXT):
            raise ConditionError(f"pat() compares text; {left.label()} is not text", items[0].column)
    else:
        for item in items:
            _check_value(left, op, item)
    return Condition(text.strip(), left, op, tuple(item.value for item in items), function)


def parse_all(texts: list[str]) -> list[Condition]:
    """Parse several conditions; errors name the condition by its 1-based position."""
    out = []
    for i, text in enumerate(texts, start=1):
        try:
            out.append(parse(text))
        except ConditionError as exc:
            raise ValueError(f"condition {i} {text!r}, column {exc.column}: {exc.message}") from None
    return out


# ---------------------------------------------------------------------------------------------
# Patterns: Gatus's pattern.Match, which is Go's filepath.Match with the separator removed from
# both sides (so `*` spans everything).


@dataclass(frozen=True)
class _Glob:
    chunks: tuple[tuple[re.Pattern[str], int], ...]  # star-separated runs of one-character terms
    leading_star: bool
    trailing_star: bool


@functools.lru_cache(maxsize=512)
def _glob(pattern: str) -> _Glob:
    """Compile a pattern; ConditionError columns are 1-based within the pattern."""
    chars = [(i + 1, ch) for i, ch in enumerate(pattern) if ch != "/"]
    terms: list[str | None] = []  # None is a star; else a regex for exactly one character
    i = 0
    while i < len(chars):
        col, ch = chars[i]
        if ch == "*":
            terms.append(None)
            i += 1
        elif ch == "?":
            terms.append(".")
            i += 1
        elif ch == "\\":
            if i + 1 >= len(chars):
                raise ConditionError("pat(): the \\ at the end escapes nothing", col)
            terms.append(re.escape(chars[i + 1][1]))
            i += 2
        elif ch == "[":
            i, term = _glob_class(chars, i)
            terms.append(term)
        else:
            terms.append(re.escape(ch))
            i += 1
    chunks: list[tuple[re.Pattern[str], int]] = []
    run: list[str] = []
    for each in [*terms, None]:
        if each is not None:
            run.append(each)
        elif run:
            chunks.append((re.compile("".join(run), re.DOTALL), len(run)))
            run = []
    leading = bool(terms) and terms[0] is None
    trailing = bool(terms) and terms[-1] is None
    return _Glob(tuple(chunks), leading, trailing)


def _glob_class(chars: list[tuple[int, str]], i: int) -> tuple[int, str]:
    start = chars[i][0]

    def one(j: int) -> tuple[str, int]:
        if j >= len(chars):
            raise ConditionError("pat(): [ is not closed with ]", start)
        col, ch = chars[j]
        if ch in "-]":
            raise ConditionError(f"pat(): unexpected {ch!r} in [...]", col)
        if ch == "\\":
            j += 1
            if j >= len(chars):
                raise ConditionError("pat(): [ is not closed with ]", start)
        if j + 1 >= len(chars):
            raise ConditionError("pat(): [ is not closed with ]", start)
        return chars[j][1], j + 1

    j = i + 1
    negated = j < len(chars) and chars[j][1] == "^"
    j += negated
    ranges: list[tuple[str, str]] = []
    while True:
        if j < len(chars) and chars[j][1] == "]" and ranges:
            j += 1
            break
        lo, j = one(j)
        hi = lo
        if chars[j][1] == "-":
            hi, j = one(j + 1)
        ranges.append((lo, hi))
    parts = [re.escape(lo) + ("-" + re.escape(hi) if hi != lo else "") for lo, hi in ranges if lo <= hi]
    if not parts:
        return j, "." if negated else "(?!)"
    return j, "[" + ("^" if negated else "") + "".join(parts) + "]"


def _glob_match(pattern: str, text: str) -> bool:
    glob = _glob(pattern)
    text = text.replace("/", "")
    chunks = list(glob.chunks)
    if not glob.leading_star and not glob.trailing_star and len(chunks) <= 1:
        return chunks[0][0].fullmatch(text) is not None if chunks else text == ""
    start, end = 0, len(text)
    if not glob.leading_star:
        regex, width = chunks.pop(0)
        if regex.match(text, 0) is None:
            return False
        start = width
    if not glob.trailing_star:
        regex, width = chunks.pop()
        if end - width < start or regex.match(text, end - width) is None:
            return False
        end -= width
    for regex, _width in chunks:
        found = regex.search(text, start, end)
        if found is None:
            return False
        start = found.end()
    return True


# ---------------------------------------------------------------------------------------------
# Evaluation


def _decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return Decimal(float(text))  # an exponent beyond Decimal's range: infinity or zero


def _duration_seconds(text: str) -> Decimal:
    m = _DURATION.fullmatch(text)
    assert m is not None
    total = Decimal(0)
    for number, unit in _DURATION_PART.findall(m.group(2)):
        total = _ARITHMETIC.add(total, _ARITHMETIC.multiply(_decimal(number), _DURATION_SECONDS[unit]))
    return -total if m.group(1) == "-" else total


def _literal_number(literal: str, operand: Operand) -> Decimal | None:
    kind = _kind(operand)
    if kind == _BOOL or (kind == _TEXT and operand.placeholder != "[BODY]"):
        return None
    if _DURATION.fullmatch(literal) and kind in (_DURATION_KIND, _TEXT):
        seconds = _duration_seconds(literal)
        per_second = 1000 if operand.placeholder == "[RESPONSE_TIME]" and not operand.function else 1
        return _ARITHMETIC.multiply(seconds, Decimal(per_second))
    if _NUMBER.fullmatch(literal):
        return _decimal(literal)
    return None


def _value_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(value) if math.isfinite(value) else None
    if isinstance(value, _JsonNumber):
        return value.decimal
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        return _decimal(value.strip())
    return None


def _dump(value: Any, limit: int | None = None) -> str:
    """Minified JSON, iteratively (bodies may nest deeper than the stack); stops once past `limit`."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack and (limit is None or size <= limit):
        item = stack.pop()
        if isinstance(item, _Raw):
            text = item.text
        elif isinstance(item, dict):
            stack.append(_Raw("}"))
            entries = list(item.items())
            for n in range(len(entries) - 1, -1, -1):
                key, child = entries[n]
                stack.append(child)
                stack.append(_Raw(("," if n else "") + json.dumps(key, ensure_ascii=False) + ":"))
            text = "{"
        elif isinstance(item, list):
            stack.append(_Raw("]"))
            for n in range(len(item) - 1, -1, -1):
                stack.append(item[n])
                if n:
                    stack.append(_Raw(","))
            text = "["
        elif isinstance(item, str):
            text = json.dumps(item, ensure_ascii=False)
        else:
            text = _text(item)
        out.append(text)
        size += len(text)
    return "".join(out)


@dataclass(frozen=True)
class _Raw:
    text: str


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than Python converts by default
        return f"{Decimal(value):.6E}"


def _text(value: Any) -> str:
    """The text a value is compared as (pat(), plain text) and measured as (len())."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, _JsonNumber):
        return value.text
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        return _int_text(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dict | list):
        return _dump(value)
    return str(value)


def _resolve(operand: Operand, facts: Facts) -> Any:
    p = operand.placeholder
    if p != "[BODY]":
        value = {
            "[STATUS]": facts.status,
            "[RESPONSE_TIME]": facts.response_time_ms,
            "[CERTIFICATE_EXPIRATION]": facts.certificate_expiration_s,
            "[CONNECTED]": facts.connected,
            "[IP]": facts.ip,
            "[DNS_RCODE]": facts.dns_rcode,
        }[p]
        return UNOBSERVED if value is None else value
    if not operand.path:
        return facts.body_text()
    value = facts.json_body()
    for part in operand.path:
        in_list = isinstance(part, int) and isinstance(value, list) and -len(value) <= part < len(value)
        in_dict = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (in_list or in_dict):
            return MISSING
        value = value[part]
    return value


def _resolve_function(operand: Operand, facts: Facts) -> Any:
    if operand.function == "has":
        if not operand.path:
            return bool(facts.body_text())
        try:
            value = _resolve(operand, facts)
        except BodyUnparseable:
            return False  # as Gatus: a body that is not JSON has no paths
        return value is not MISSING and value is not None
    if operand.function == "len":
        if not operand.path:
            if facts.body is None:
                return UNOBSERVED
            text = facts.body_text()
            try:
                value = facts.json_body()
            except BodyUnparseable:
                return len(text)
            return len(value) if isinstance(value, list) else len(text)
        value = _resolve(operand, facts)
        if value is MISSING or value is None:
            return value
        return len(value) if isinstance(value, list) else len(_text(value))
    return _resolve(operand, facts)


def duration_text(seconds: float) -> str:
    """How long, as an operator reads it: `19d 4h`, `5h 12m`, `42s`; `expired 2d 3h ago` when negative."""
    if not math.isfinite(seconds):
        return str(seconds)
    total = int(abs(seconds))
    parts: list[str] = []
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        amount, total = divmod(total, size)
        if amount or parts:
            parts.append(f"{amount}{unit}")
        if len(parts) == 2:
            break
    parts = [p for p in parts if not p.startswith("0")] or ["0s"]
    text = " ".join(parts)
    return f"expired {text} ago" if seconds < 0 else text


def _clip(text: str) -> str:
    text = visible(text[: _SHOW_LIMIT * 2])
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 1] + "…"


def _show(value: Any, operand: Operand) -> str:
    """The actual value as a person reads it: rounded, with units, clipped."""
    if value is MISSING:
        return "(missing)"
    if value is UNOBSERVED:
        return "(none)"
    if not operand.function and isinstance(value, int | float) and not isinstance(value, bool):
        if operand.placeholder == "[RESPONSE_TIME]":
            ms = float(value)
            if not math.isfinite(ms):
                return f"{ms} ms"
            shown = f"{ms:.0f}" if abs(ms) >= 10 else f"{ms:.1f}".removesuffix(".0")
            return _clip(f"{shown} ms")
        if operand.placeholder == "[CERTIFICATE_EXPIRATION]":
            return _clip(duration_text(float(value)))
    if isinstance(value, dict | list):
        return _clip(_dump(value, _SHOW_LIMIT))
    return _clip(_text(value)) or "(empty)"


def _equal(value: Any, literal: str, operand: Operand) -> bool:
    if isinstance(value, bool):
        return literal.lower() == ("true" if value else "false")
    if value is None:  # JSON null
        return literal in ("", "null")
    number, expected = _value_number(value), _literal_number(literal, operand)
    if number is not None and expected is not None:
        return number == expected  # exact: a relative tolerance would call 999999999 == 1000000000
    return _text(value) == literal


def evaluate(condition: Condition, facts: Facts) -> ConditionResult:
    """Evaluate against a probe's facts; unparseable bodies raise BodyUnparseable."""
    left, op = condition.left, condition.operator
    value = _resolve_function(left, facts)
    actual = _show(value, left)
    if value is MISSING or value is UNOBSERVED:
        wants_missing = op == "==" and condition.right_function is None and condition.right == ("",)
        return ConditionResult(condition.text, wants_missing, actual)
    if op in EQUALITY:
        if condition.right_function == "pat":
            hit = _glob_match(condition.right[0], _text(value))
        else:
            hit = any(_equal(value, literal, left) for literal in condition.right)
        return ConditionResult(condition.text, hit if op == "==" else not hit, actual)
    number = _value_number(value)
    expected = _literal_number(condition.right[0], left)
    if number is None or expected is None:
        return ConditionResult(condition.text, False, actual, error=f"{left.label()} is not a number")
    ok = {"<": number < expected, "<=": number <= expected, ">": number > expected, ">=": number >= expected}[
        op
    ]
    return ConditionResult(condition.text, ok, actual)


def metrics(
    conditions: Sequence[Condition], facts: Facts, extra_paths: Sequence[str] = ()
) -> dict[str, float]:
    """Numbers found at the [BODY] paths the conditions (and `extra_paths`) name."""
    out: dict[str, float] = {}
    operands = [c.left for c in conditions if c.left.placeholder == "[BODY]" and c.left.path]
    for extra in extra_paths:
        operands.append(_parse_operand("[BODY]" + ("" if extra.startswith(("[", ".")) else ".") + extra, 0))
    for operand in operands:
        try:
            value = _resolve(Operand(operand.placeholder, operand.path), facts)
        except BodyUnparseable:
            return out
        number = _value_number(value) if not isinstance(value, str) else None
        if number is not None and number.is_finite() and math.isfinite(float(number)):
            out[operand.label().removeprefix("[BODY].")] = float(number)
    return out
