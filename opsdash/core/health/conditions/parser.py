"""Condition text to a `Condition`, or a `ConditionError` naming the column: anything the language
does not know is refused here, at profile load, rather than a condition that quietly never holds."""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from typing import NoReturn

from opsdash.core.health.conditions.language import (
    BOOL,
    COUNT,
    DURATION,
    DURATION_KIND,
    EQUALITY,
    MAX_DURATION_S,
    NUMBER,
    OPERATORS,
    PLACEHOLDERS,
    STATUS,
    TEXT,
    Condition,
    ConditionError,
    Operand,
    duration_seconds,
    go_int,
    kind_of,
)
from opsdash.core.health.conditions.patterns import compile_pattern

_PATH_PART = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(-?[0-9]+)\]")
_CALL = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(\s*)\(")
_PLACEHOLDER_LIKE = re.compile(r"\[[A-Za-z_]+\]")
_LEFT_FUNCTIONS = ("len", "has")
_RIGHT_FUNCTIONS = ("any", "pat")
_BOOLEANS = ("true", "false")
_MAX_INDEX_DIGITS = 9
_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
_BAD_OPERATORS = {"===": "==", "!==": "!=", "<>": "!=", "<==": "<=", ">==": ">=", "=<": "<=", "=>": ">="}


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
    """The first operator outside a function's parentheses (`pat(*id="x"*) == [BODY]`)."""
    nested = text.count("(") == text.count(")")  # unbalanced: the error is the parenthesis, found later
    depth = 0
    for i, ch in enumerate(text):
        if nested:
            depth = depth + 1 if ch == "(" else max(depth - 1, 0) if ch == ")" else depth
        if depth > 0 or ch not in "=!<>":
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


def parse_operand(text: str, offset: int) -> Operand:
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
    stripped = text.strip()
    col = offset + (len(text) - len(text.lstrip())) + 1
    if not stripped:
        raise ConditionError("expected a value after the operator", offset + len(text) + 1)
    call = _CALL.match(stripped)
    if call and (not call.group(2) or call.group(1) in _RIGHT_FUNCTIONS + _LEFT_FUNCTIONS):
        name = call.group(1)
        if name not in _RIGHT_FUNCTIONS:
            hint = f"; did you mean {name.lower()}()?" if name.lower() in _RIGHT_FUNCTIONS else ""
            raise ConditionError(f"unknown function {name}() (known: any(), pat(), len(), has()){hint}", col)
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
            compile_pattern(item.value)
        except ConditionError as exc:
            raise ConditionError(exc.message, item.column + exc.column - 1) from None
        return name, [item]
    return None, [_unquoted(stripped, col)]


def _check_value(left: Operand, op: str, item: _Item) -> None:
    kind, value, col = kind_of(left), item.value, item.column
    if kind == BOOL:
        if value.lower() not in _BOOLEANS:
            raise ConditionError(f"{left.label()} is true or false, not {value!r}", col)
        return
    if kind == TEXT and op in EQUALITY:
        return  # any text; numbers (and, for [BODY], durations) compare as numbers
    duration = DURATION.fullmatch(value)
    if duration and kind in (COUNT, STATUS):
        raise ConditionError(f"{left.label()} is not a duration; compare it with a plain number", col)
    if value.lower().lstrip("+-") in ("nan", "inf", "infinity"):
        raise ConditionError(f"{value} is not a finite number", col)
    if not duration and not NUMBER.fullmatch(value) and go_int(value) is None:
        wanted = "a number" if kind in (COUNT, STATUS) else "a number or a duration such as 500ms or 720h"
        raise ConditionError(f"expected {wanted}, got {value!r}", col)
    number = go_int(value) if not NUMBER.fullmatch(value) else None
    magnitude = float(duration_seconds(value)) if duration else float(value if number is None else number)
    if not math.isfinite(magnitude):
        raise ConditionError(f"{value} is too large (not a finite number)", col)
    if duration and abs(duration_seconds(value)) > MAX_DURATION_S:
        raise ConditionError(
            f"{value} is out of range: a duration is at most 2562047h47m16s (Go's time.Duration)", col
        )
    if kind == DURATION_KIND and value.startswith("-"):
        raise ConditionError(f"{left.placeholder} cannot be compared with a negative value ({value})", col)


def _is_operand(text: str) -> bool:
    """A placeholder, or len()/has() of one: an operand on either side, as Gatus reads both sides."""
    stripped = text.strip()
    call = _CALL.match(stripped)
    return bool(_PLACEHOLDER_LIKE.match(stripped)) or bool(call and call.group(1) in _LEFT_FUNCTIONS)


def _is_right_function(text: str) -> bool:
    call = _CALL.match(text.strip())
    return bool(call and call.group(1) in _RIGHT_FUNCTIONS)


def _both_operands(text: str, left: Operand, op: str, index: int) -> Condition:
    right_text = text[index + len(op) :]
    right = parse_operand(right_text, index + len(op))
    if op not in EQUALITY:
        for operand in (left, right):
            if kind_of(operand) == BOOL or (kind_of(operand) == TEXT and operand.placeholder != "[BODY]"):
                raise ConditionError(f"{operand.label()} cannot be compared with {op}", index + 1)
    return Condition(text.strip(), left, op, (), None, right)


def parse(text: str) -> Condition:
    _check_characters(text)
    if not text.strip():
        raise ConditionError("empty condition", 1)
    index, op = _find_operator(text)
    left_text, right_text = text[:index], text[index + len(op) :]
    if right_text[:1] and right_text[0] in "=!<>":
        run = op + right_text[: len(right_text) - len(right_text.lstrip("=!<>"))]
        hint = f"; use {_BAD_OPERATORS[run]}" if run in _BAD_OPERATORS else " (use ==, !=, <, <=, > or >=)"
        raise ConditionError(f"'{run}' is not an operator{hint}", index + 1)
    if _is_operand(right_text) and not _is_operand(left_text):
        if _is_right_function(left_text) and op not in EQUALITY:
            raise ConditionError(f"{left_text.strip()[:3]}() only works with == and !=", index + 1)
        # a value, any() or pat() on the left (200 == [STATUS]): Gatus reads both sides alike, so
        # read it the usual way round, the operator turned with it
        op = _FLIPPED.get(op, op)
        left = parse_operand(right_text, index + len(op))
        function, items = _parse_right(left_text, 0, op)
    else:
        left = parse_operand(left_text, 0)
        if _is_operand(right_text):
            return _both_operands(text, left, op, index)
        function, items = _parse_right(right_text, index + len(op), op)
    kind = kind_of(left)
    if op not in EQUALITY:
        if function is not None:
            raise ConditionError(f"{function}() only works with == and !=", index + 1)
        if kind == BOOL or (kind == TEXT and left.placeholder != "[BODY]"):
            raise ConditionError(f"{left.label()} cannot be compared with {op}", index + 1)
    if function == "pat":
        if kind not in (STATUS, TEXT):
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
