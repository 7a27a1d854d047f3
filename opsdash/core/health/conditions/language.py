"""The condition language's vocabulary, shared by the parser and the evaluator: placeholders,
operators, what a parsed condition is, the kinds of left operand (which decide what may stand on the
right), and number and duration literals."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any

PLACEHOLDERS = {
    "[STATUS]": 1.0,
    "[RESPONSE_TIME]": 1e-3,  # unit in seconds: milliseconds
    "[BODY]": None,
    "[CERTIFICATE_EXPIRATION]": 1e-3,  # a bare number is milliseconds, as in Gatus
    "[CONNECTED]": None,
    "[IP]": None,
    "[DNS_RCODE]": None,
}
OPERATORS = ("==", "!=", "<=", ">=", "<", ">")
EQUALITY = ("==", "!=")

NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Go's strconv.ParseInt(s, 0, 64), which Gatus compares with: 0x / 0o / 0b / a leading 0 (octal)
# prefixes, and single underscores between digits.
_GO_INT = re.compile(
    r"(?P<sign>[+-]?)(?:0[xX](?P<hex>(?:_?[0-9a-fA-F])+)|0[bB](?P<bin>(?:_?[01])+)"
    r"|0[oO](?P<oct>(?:_?[0-7])+)|0(?P<legacy>(?:_?[0-7])+)|(?P<dec>[1-9](?:_?[0-9])*|0))"
)
_GO_BASES = {"hex": 16, "bin": 2, "oct": 8, "legacy": 8, "dec": 10}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d)")
DURATION = re.compile(r"([+-]?)((?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h|d))+)")
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
MAX_DURATION_S = Decimal("9223372036.854775807")  # Go's time.Duration: 2^63 - 1 nanoseconds
# For unit conversions only: enough digits for any duration, and no traps (overflow gives infinity).
ARITHMETIC = Context(prec=60, traps=[])

# How a left operand's values compare, which decides what may stand on the right.
BOOL, COUNT, STATUS, DURATION_KIND, TEXT = "bool", "count", "status", "duration", "text"


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
    right: tuple[str, ...]  # several values for any(...); the glob for pat(...); () for an operand
    right_function: str | None = None  # any | pat
    right_operand: Operand | None = None  # a placeholder on the right: [BODY].a == [BODY].b


@dataclass(frozen=True)
class ConditionResult:
    text: str
    ok: bool
    actual: str
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"condition": self.text, "ok": self.ok, "actual": self.actual, "error": self.error}


def kind_of(operand: Operand) -> str:
    if operand.function == "has" or operand.placeholder == "[CONNECTED]":
        return BOOL
    if operand.function == "len":
        return COUNT
    if operand.placeholder == "[STATUS]":
        return STATUS
    if operand.placeholder in ("[RESPONSE_TIME]", "[CERTIFICATE_EXPIRATION]"):
        return DURATION_KIND
    return TEXT


def go_int(text: str) -> int | None:
    """The integer Go's strconv.ParseInt(text, 0, 64) reads (`0x1F`, `0b10`, `0o17`, `017`, `1_000`),
    or None where it refuses the text or the value is outside int64."""
    m = _GO_INT.fullmatch(text) if len(text) <= 160 else None  # int64 is 64 binary digits at most
    if m is None:
        return None
    base = next(name for name in _GO_BASES if m.group(name) is not None)
    value = int(m.group(base).replace("_", ""), _GO_BASES[base])
    value = -value if m.group("sign") == "-" else value
    return value if -(2**63) <= value < 2**63 else None


def decimal(text: str) -> Decimal:
    try:
        return Decimal(text)
    except (InvalidOperation, ValueError):
        return Decimal(float(text))  # an exponent beyond Decimal's range: infinity or zero


def duration_seconds(text: str) -> Decimal:
    m = DURATION.fullmatch(text)
    assert m is not None
    total = Decimal(0)
    for number, unit in _DURATION_PART.findall(m.group(2)):
        total = ARITHMETIC.add(total, ARITHMETIC.multiply(decimal(number), _DURATION_SECONDS[unit]))
    return -total if m.group(1) == "-" else total
