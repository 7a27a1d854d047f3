"""What the placeholders read: a probe's `Facts`, and the [BODY] paths into its JSON, as values the
evaluator compares (numbers from JSON kept as written) and the text a value compares as."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from opsdash.core.health.conditions.language import Operand, decimal

MISSING = object()
UNOBSERVED = object()  # the probe did not observe this fact (a Facts field is None)


class BodyUnparseable(Exception):
    pass


class JsonNumber:
    """A number from a JSON body, kept as written: shown as is, compared exactly, any size."""

    __slots__ = ("_decimal", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._decimal: Decimal | None = None

    @property
    def decimal(self) -> Decimal:
        if self._decimal is None:
            self._decimal = decimal(self.text)
        return self._decimal


@dataclass(frozen=True)
class _Unparseable:
    message: str


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_int=JsonNumber, parse_float=JsonNumber, parse_constant=_reject_constant)


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
                raw = self.body or b""
                # json.loads(raw, parse_int=..., ...) as it reads bytes, without building a decoder
                # for every body
                self._json = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
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


_FACT = {  # the Facts field each placeholder reads
    "[STATUS]": "status",
    "[RESPONSE_TIME]": "response_time_ms",
    "[CERTIFICATE_EXPIRATION]": "certificate_expiration_s",
    "[CONNECTED]": "connected",
    "[IP]": "ip",
    "[DNS_RCODE]": "dns_rcode",
}


def resolve(operand: Operand, facts: Facts) -> Any:
    p = operand.placeholder
    if p != "[BODY]":
        value = getattr(facts, _FACT[p])
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


def resolve_function(operand: Operand, facts: Facts) -> Any:
    if operand.function == "has":
        if not operand.path:
            return bool(facts.body_text())
        try:
            value = resolve(operand, facts)
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
        value = resolve(operand, facts)
        if value is MISSING or value is None:
            return value
        return len(value) if isinstance(value, list) else len(as_text(value))
    return resolve(operand, facts)


@dataclass(frozen=True)
class _Raw:
    text: str


def dump(value: Any, limit: int | None = None) -> str:
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
            text = as_text(item)
        out.append(text)
        size += len(text)
    return "".join(out)


def _int_text(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # more digits than Python converts by default
        return f"{Decimal(value):.6E}"


def as_text(value: Any) -> str:
    """The text a value is compared as (pat(), plain text) and measured as (len())."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, JsonNumber):
        return value.text
    if isinstance(value, int):
        return _int_text(value)
    if isinstance(value, float):
        return _int_text(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dict | list):
        return dump(value)
    return str(value)
