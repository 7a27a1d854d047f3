"""Evaluating a parsed condition against a probe's facts, showing the actual value as a person reads
it, and the numbers at [BODY] paths kept as metrics."""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    kind = kind_of(operand)
    if kind == BOOL or (kind == TEXT and operand.placeholder != "[BODY]"):
        return None
    if DURATION.fullmatch(literal) and kind in (DURATION_KIND, TEXT):
        seconds = duration_seconds(literal)
        per_second = 1000 if operand.placeholder == "[RESPONSE_TIME]" and not operand.function else 1
        return ARITHMETIC.multiply(seconds, Decimal(per_second))
    if NUMBER.fullmatch(literal):
        return decimal(literal)
    return None


def _value_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(value) if math.isfinite(value) else None
    if isinstance(value, JsonNumber):
        return value.decimal
    if isinstance(value, str) and NUMBER.fullmatch(value.strip()):
        return decimal(value.strip())
    return None


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
    if isinstance(value, bool):
        return literal.lower() == ("true" if value else "false")
    if value is None:  # JSON null
        return literal in ("", "null")
    number, expected = _value_number(value), _literal_number(literal, operand)
    if number is not None and expected is not None:
        return number == expected  # exact: a relative tolerance would call 999999999 == 1000000000
    return as_text(value) == literal


def evaluate(condition: Condition, facts: Facts) -> ConditionResult:
    """Evaluate against a probe's facts; unparseable bodies raise BodyUnparseable."""
    left, op = condition.left, condition.operator
    value = resolve_function(left, facts)
    actual = _show(value, left)
    if value is MISSING or value is UNOBSERVED:
        wants_missing = op == "==" and condition.right_function is None and condition.right == ("",)
        return ConditionResult(condition.text, wants_missing, actual)
    if op in EQUALITY:
        if condition.right_function == "pat":
            hit = pattern_matches(condition.right[0], as_text(value))
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
        operands.append(parse_operand("[BODY]" + ("" if extra.startswith(("[", ".")) else ".") + extra, 0))
    for operand in operands:
        try:
            value = resolve(Operand(operand.placeholder, operand.path), facts)
        except BodyUnparseable:
            return out
        number = _value_number(value) if not isinstance(value, str) else None
        if number is not None and number.is_finite() and math.isfinite(float(number)):
            out[operand.label().removeprefix("[BODY].")] = float(number)
    return out
