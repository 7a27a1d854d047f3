"""A small condition language, as operators know it from Gatus.

    [STATUS] == 200                      [RESPONSE_TIME] < 300
    [BODY].status == UP                  [BODY].payments.success_rate >= 0.95
    [CERTIFICATE_EXPIRATION] > 720h      len([BODY].items) > 0
    [STATUS] == any(200, 204)            [BODY].data[0].id != ""
    [CONNECTED] == true                  [IP] == 127.0.0.1

[RESPONSE_TIME] is in milliseconds and [CERTIFICATE_EXPIRATION] in seconds; a duration literal
(500ms, 30s, 10m, 720h, 7d) is converted to the placeholder's unit. Numbers taken from [BODY] paths
become metrics.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_DURATION_SECONDS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATH_PART = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(-?\d+)\]")
MISSING = object()


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
    right: tuple[str, ...]  # several values for any(...)


@dataclass(frozen=True)
class ConditionResult:
    text: str
    ok: bool
    actual: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.text, "ok": self.ok, "actual": self.actual, "error": self.error}


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
                self._json = json.loads(self.body or b"")
            except (ValueError, UnicodeDecodeError):
                self._json = None
                raise BodyUnparseable("the response body is not JSON") from None
        if self._json is None and self.body:
            raise BodyUnparseable("the response body is not JSON")
        return self._json


class BodyUnparseable(Exception):
    pass


def _find_operator(text: str) -> tuple[int, str]:
    depth = 0
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif depth == 0:
            for op in OPERATORS:
                if text.startswith(op, i):
                    return i, op
            if ch == "=":
                raise ConditionError("'=' is not an operator; use == to compare", i + 1)
        i += 1
    raise ConditionError("expected an operator (==, !=, <, <=, >, >=)", len(text) + 1)


def _parse_operand(text: str, offset: int) -> Operand:
    stripped = text.strip()
    col = offset + (len(text) - len(text.lstrip())) + 1
    function = None
    for name in ("len", "has"):
        if stripped.startswith(name + "(") and stripped.endswith(")"):
            function = name
            stripped = stripped[len(name) + 1 : -1].strip()
            col += len(name) + 1
            break
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
        path.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if path and placeholder != "[BODY]":
        raise ConditionError(f"only [BODY] takes a path, not {placeholder}", col + end + 1)
    return Operand(placeholder, tuple(path), function)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _parse_right(text: str, offset: int) -> tuple[str, ...]:
    stripped = text.strip()
    if not stripped:
        raise ConditionError("expected a value after the operator", offset + len(text) + 1)
    if stripped.startswith("any(") and stripped.endswith(")"):
        values = tuple(_unquote(v) for v in stripped[4:-1].split(","))
        if not all(values):
            raise ConditionError("any() needs one or more values", offset + 1)
        return values
    return (_unquote(stripped),)


def parse(text: str) -> Condition:
    if not text.strip():
        raise ConditionError("empty condition", 1)
    index, op = _find_operator(text)
    left = _parse_operand(text[:index], 0)
    right = _parse_right(text[index + len(op) :], index + len(op))
    if op not in ("==", "!=") and len(right) > 1:
        raise ConditionError("any() only works with == and !=", index + 1)
    unit = PLACEHOLDERS[left.placeholder]
    for value in right:
        if op not in ("==", "!=") and left.function is None and unit is None and left.placeholder != "[BODY]":
            raise ConditionError(f"{left.placeholder} cannot be compared with {op}", index + 1)
        if _DURATION.match(value) and unit is None and left.function is None and left.placeholder != "[BODY]":
            raise ConditionError(f"{left.placeholder} is not a duration", index + len(op) + 2)
    return Condition(text.strip(), left, op, right)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _literal_number(literal: str, unit: float | None) -> float | None:
    m = _DURATION.match(literal)
    if m:
        seconds = float(m.group(1)) * _DURATION_SECONDS[m.group(2)]
        return seconds / (unit or 1.0)
    return _number(literal)


def _resolve(operand: Operand, facts: Facts) -> Any:
    p = operand.placeholder
    if p == "[STATUS]":
        return facts.status
    if p == "[RESPONSE_TIME]":
        return facts.response_time_ms
    if p == "[CERTIFICATE_EXPIRATION]":
        return facts.certificate_expiration_s
    if p == "[CONNECTED]":
        return facts.connected
    if p == "[IP]":
        return facts.ip
    if p == "[DNS_RCODE]":
        return facts.dns_rcode
    if not operand.path:
        return (
            (facts.body or b"").decode("utf-8", "replace") if operand.function != "len" else facts.json_body()
        )
    value = facts.json_body()
    for part in operand.path:
        in_list = isinstance(part, int) and isinstance(value, list) and -len(value) <= part < len(value)
        in_dict = isinstance(part, str) and isinstance(value, dict) and part in value
        if not (in_list or in_dict):
            return MISSING
        value = value[part]
    return value


def _show(value: Any) -> str:
    if value is MISSING:
        return "(missing)"
    if value is None:
        return "(none)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        text = json.dumps(value)
        return text if len(text) <= 60 else text[:59] + "…"
    return str(value)


def _equal(actual: Any, literal: str, unit: float | None) -> bool:
    if isinstance(actual, bool):
        return literal.lower() == ("true" if actual else "false")
    number, expected = _number(actual), _literal_number(literal, unit)
    if number is not None and expected is not None:
        return number == expected  # exact: a relative tolerance would call 999999999 == 1000000000
    return _show(actual) == literal


def evaluate(condition: Condition, facts: Facts) -> ConditionResult:
    """Evaluate against a probe's facts; unparseable bodies raise BodyUnparseable."""
    left = condition.left
    value = _resolve(left, facts)
    if left.function == "len":
        value = len(value) if isinstance(value, str | list | dict) else MISSING
    elif left.function == "has":
        value = value is not MISSING and value is not None
    actual = _show(value)
    if value is MISSING or value is None:
        wants_missing = condition.operator == "==" and condition.right == ("",)
        return ConditionResult(condition.text, wants_missing, actual)
    op = condition.operator
    if op in ("==", "!="):
        unit = PLACEHOLDERS[left.placeholder] if left.function is None else 1.0
        hit = any(_equal(value, literal, unit) for literal in condition.right)
        return ConditionResult(condition.text, hit if op == "==" else not hit, actual)
    unit = PLACEHOLDERS[left.placeholder] if left.function is None else 1.0
    number = _number(value)
    expected = _literal_number(condition.right[0], unit)
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
        number = _number(value) if not isinstance(value, str) else None
        if number is not None:
            out[operand.label().removeprefix("[BODY].")] = number
    return out


def parse_all(texts: list[str]) -> list[Condition]:
    """Parse several conditions; errors name the condition by its 1-based position."""
    out = []
    for i, text in enumerate(texts, start=1):
        try:
            out.append(parse(text))
        except ConditionError as exc:
            raise ValueError(f"condition {i} {text!r}, column {exc.column}: {exc.message}") from None
    return out
