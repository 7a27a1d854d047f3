"""Evaluating a parsed condition against a probe's facts, showing the actual value as a person reads
it, and the numbers at [BODY] paths kept as metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opsdash.core.health.conditions.language import (
    ARITHMETIC,
    BOOL,
    DURATION,
    DURATION_KIND,
    EQUALITY,
    NUMBER,
    TEXT,
    Condition,
    ConditionResult,
    Operand,
    decimal,
    duration_seconds,
    go_int,
    kind_of,
)
from opsdash.core.health.conditions.parser import parse_operand
from opsdash.core.health.conditions.patterns import pattern_matches
from opsdash.core.health.conditions.placeholders import (
    MISSING,
    UNOBSERVED,
    BodyUnparseable,
    Facts,
    JsonNumber,
    as_text,
    dump,
    resolve,
    resolve_function,
)
from opsdash.core.text import visible

_SHOW_LIMIT = 60


def _literal_number(literal: str, operand: Operand) -> Decimal | None:
    """A literal in the operand's unit: durations converted; a bare number for
    [CERTIFICATE_EXPIRATION] is milliseconds, as in Gatus (the fact is kept in seconds)."""
    kind = kind_of(operand)
    if kind == BOOL or (kind == TEXT and operand.placeholder != "[BODY]"):
        return None
    plain = not operand.function
    if DURATION.fullmatch(literal) and kind in (DURATION_KIND, TEXT):
        seconds = duration_seconds(literal)
        per_second = 1000 if operand.placeholder == "[RESPONSE_TIME]" and plain else 1
        return ARITHMETIC.multiply(seconds, Decimal(per_second))
    number = _text_number(literal)
    if number is not None and operand.placeholder == "[CERTIFICATE_EXPIRATION]" and plain:
        return ARITHMETIC.divide(number, Decimal(1000))
    return number


def _text_number(text: str) -> Decimal | None:
    """A number written as text: decimal, or an integer as Go's ParseInt(s, 0, 64) reads it."""
    if NUMBER.fullmatch(text):
        return decimal(text)
    integer = go_int(text)
    return None if integer is None else Decimal(integer)


def _value_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(value) if math.isfinite(value) else None
    if isinstance(value, JsonNumber):
        return value.decimal
    if isinstance(value, str):
        return _text_number(value.strip())
    return None


def _integers(value: Any, literal: str, operand: Operand) -> tuple[int, int] | None:
    """Both sides as Go's ParseInt(s, 0, 64) reads them, where Gatus compares that way (`0x1 == 1`,
    `0b0010 == 0b10`, `010 != 10`); durations and booleans are not."""
    if kind_of(operand) in (BOOL, DURATION_KIND) or isinstance(value, bool) or value is None:
        return None
    a, b = go_int(as_text(value).strip()), go_int(literal)
    return None if a is None or b is None else (a, b)


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
        return _clip(dump(value, _SHOW_LIMIT))
    return _clip(as_text(value)) or "(empty)"


def _equal(value: Any, literal: str, operand: Operand) -> bool:
    """The uncompiled comparison: `_Literal.equals` is held against it (tests/unit/core/health)."""
    if isinstance(value, bool):
        return literal.lower() == ("true" if value else "false")
    if value is None:  # JSON null
        return literal in ("", "null")
    integers = _integers(value, literal, operand)
    if integers is not None:
        return integers[0] == integers[1]
    number, expected = _value_number(value), _literal_number(literal, operand)
    if number is not None and expected is not None:
        return number == expected  # exact: a relative tolerance would call 999999999 == 1000000000
    return as_text(value) == literal


def _in_unit(value: Any, operand: Operand) -> Decimal | None:
    """A placeholder's number in Gatus' unit for comparing two placeholders (durations in ms)."""
    number = _value_number(value)
    if number is not None and operand.placeholder == "[CERTIFICATE_EXPIRATION]" and not operand.function:
        return ARITHMETIC.multiply(number, Decimal(1000))
    return number


def _two_operands(condition: Condition, right: Operand, value: Any, facts: Facts) -> ConditionResult:
    left, op = condition.left, condition.operator
    other = resolve_function(right, facts)
    actual = f"{_show(value, left)} vs {_show(other, right)}"
    if any(v is MISSING or v is UNOBSERVED for v in (value, other)):
        return ConditionResult(condition.text, False, actual)
    a, b = _in_unit(value, left), _in_unit(other, right)
    if op in EQUALITY:
        integers = _integers(value, as_text(other).strip(), left) if kind_of(right) != DURATION_KIND else None
        if integers is not None:
            same = integers[0] == integers[1]
        elif a is not None and b is not None:
            same = a == b
        else:
            same = as_text(value) == as_text(other)
        return ConditionResult(condition.text, same if op == "==" else not same, actual)
    if a is None or b is None:
        bad = left if a is None else right
        return ConditionResult(condition.text, False, actual, error=f"{bad.label()} is not a number")
    ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    return ConditionResult(condition.text, ok, actual)


def _int64(value: int) -> int | None:
    """go_int(str(value)) for a Python int, without the text and the regular expression."""
    return value if -(2**63) <= value < 2**63 else None


@dataclass(frozen=True)
class _Literal:
    """One value on the right, with what comparing against it needs worked out once."""

    text: str
    lower: str
    integer: int | None  # as Go's ParseInt reads it, where Gatus compares integers that way
    number: Decimal | None  # in the left operand's unit

    @staticmethod
    def of(literal: str, operand: Operand) -> _Literal:
        integer = None if kind_of(operand) in (BOOL, DURATION_KIND) else go_int(literal)
        return _Literal(literal, literal.lower(), integer, _literal_number(literal, operand))

    def equals(self, value: Any) -> bool:
        """`_equal(value, self.text, operand)`, with the literal's side done at compile time."""
        if isinstance(value, bool):
            return self.lower == ("true" if value else "false")
        if value is None:  # JSON null
            return self.text in ("", "null")
        if self.integer is not None:
            mine = _int64(value) if type(value) is int else go_int(as_text(value).strip())
            if mine is not None:
                return mine == self.integer
        if self.number is not None:
            number = _value_number(value)
            if number is not None:
                return number == self.number  # exact, as in _equal
        return as_text(value) == self.text


def _show_fast(value: Any, operand: Operand) -> str:
    """`_show`, with the common case (a status code) taken without the escaping and clipping it
    cannot need."""
    if type(value) is int and -(10**50) < value < 10**50 and operand.placeholder == "[STATUS]":
        return str(value)
    return _show(value, operand)


_ORDER = {
    "<": Decimal.__lt__,
    "<=": Decimal.__le__,
    ">": Decimal.__gt__,
    ">=": Decimal.__ge__,
}


class Compiled:
    """A parsed condition made ready to evaluate: its literals read as numbers, integers and
    durations once, not on every probe. `evaluate(condition, facts)` is `Compiled(condition)
    .evaluate(facts)`, so there is one evaluation, held against Gatus' table."""

    __slots__ = ("condition", "literals")

    def __init__(self, condition: Condition) -> None:
        self.condition = condition
        self.literals = tuple(_Literal.of(literal, condition.left) for literal in condition.right)

    def evaluate(self, facts: Facts) -> ConditionResult:
        """Evaluate against a probe's facts; unparseable bodies raise BodyUnparseable."""
        condition = self.condition
        left, op = condition.left, condition.operator
        value = resolve_function(left, facts)
        if condition.right_operand is not None:
            return _two_operands(condition, condition.right_operand, value, facts)
        actual = _show_fast(value, left)
        if value is MISSING or value is UNOBSERVED:
            wants_missing = op == "==" and condition.right_function is None and condition.right == ("",)
            return ConditionResult(condition.text, wants_missing, actual)
        if op in EQUALITY:
            if condition.right_function == "pat":
                hit = pattern_matches(condition.right[0], as_text(value))
            else:
                hit = any(literal.equals(value) for literal in self.literals)
            return ConditionResult(condition.text, hit if op == "==" else not hit, actual)
        number = _value_number(value)
        expected = self.literals[0].number
        if number is None or expected is None:
            return ConditionResult(condition.text, False, actual, error=f"{left.label()} is not a number")
        return ConditionResult(condition.text, _ORDER[op](number, expected), actual)


def evaluate(condition: Condition, facts: Facts) -> ConditionResult:
    """Evaluate against a probe's facts; unparseable bodies raise BodyUnparseable."""
    return Compiled(condition).evaluate(facts)


def metric_operands(
    conditions: Sequence[Condition], extra_paths: Sequence[str] = ()
) -> tuple[tuple[str, Operand], ...]:
    """The [BODY] paths whose numbers become metrics, each with its name: worked out once per check."""
    sides = [o for c in conditions for o in (c.left, c.right_operand) if o is not None]
    operands = [o for o in sides if o.placeholder == "[BODY]" and o.path]
    for extra in extra_paths:
        operands.append(parse_operand("[BODY]" + ("" if extra.startswith(("[", ".")) else ".") + extra, 0))
    return tuple((o.label().removeprefix("[BODY]."), Operand(o.placeholder, o.path)) for o in operands)


def metrics_at(operands: Sequence[tuple[str, Operand]], facts: Facts) -> dict[str, float]:
    """The numbers found at `metric_operands`' paths."""
    out: dict[str, float] = {}
    for name, operand in operands:
        try:
            value = resolve(operand, facts)
        except BodyUnparseable:
            return out
        number = _value_number(value) if not isinstance(value, str) else None
        if number is not None and number.is_finite() and math.isfinite(float(number)):
            out[name] = float(number)
    return out


def metrics(
    conditions: Sequence[Condition], facts: Facts, extra_paths: Sequence[str] = ()
) -> dict[str, float]:
    """Numbers found at the [BODY] paths the conditions (and `extra_paths`) name."""
    return metrics_at(metric_operands(conditions, extra_paths), facts)
