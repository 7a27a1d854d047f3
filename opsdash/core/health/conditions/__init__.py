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

The package, by what a change touches (Gatus parity work lands in one of them):
- `language`: placeholders, operators, the parsed `Condition`, operand kinds, number and duration
  literals — the vocabulary both sides share;
- `parser`: text to `Condition`, every refusal with a column;
- `patterns`: pat()'s globs;
- `placeholders`: `Facts`, and what each placeholder and [BODY] path reads from them;
- `evaluator`: `evaluate`, the actual values as shown, and `metrics`.
"""

from __future__ import annotations

from opsdash.core.health.conditions.evaluator import duration_text, evaluate, metrics
from opsdash.core.health.conditions.language import (
    EQUALITY,
    OPERATORS,
    PLACEHOLDERS,
    Condition,
    ConditionError,
    ConditionResult,
    Operand,
)
from opsdash.core.health.conditions.parser import parse, parse_all
from opsdash.core.health.conditions.placeholders import MISSING, UNOBSERVED, BodyUnparseable, Facts

__all__ = [
    "EQUALITY",
    "MISSING",
    "OPERATORS",
    "PLACEHOLDERS",
    "UNOBSERVED",
    "BodyUnparseable",
    "Condition",
    "ConditionError",
    "ConditionResult",
    "Facts",
    "Operand",
    "duration_text",
    "evaluate",
    "metrics",
    "parse",
    "parse_all",
]
