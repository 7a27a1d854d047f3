"""A small condition language, as operators know it from Gatus.

    [STATUS] == 200                      [RESPONSE_TIME] < 300
    [BODY].status == UP                  [BODY].payments.success_rate >= 0.95
    [CERTIFICATE_EXPIRATION] > 720h      len([BODY].items) > 0
    [STATUS] == any(200, 204)            [BODY].data[0].id != ""
    [CONNECTED] == true                  [IP] == 127.0.0.1
    [BODY].name == pat(John*)            has([BODY].errors) == false

[RESPONSE_TIME] is in milliseconds; a bare number for [CERTIFICATE_EXPIRATION] is milliseconds too,
as in Gatus (write a duration: 720h); a duration literal (500ms, 30s, 10m, 720h, 7d, 1h30m) is
converted to the placeholder's unit. Numbers taken from [BODY] paths become metrics.

As in Gatus: a placeholder may stand on either side (`[BODY].user.first != [BODY].user.last`,
`[STATUS] == [BODY].code`); integers written as text are read as Go's ParseInt reads them, so a
JSON string "0x1F", "0b10" or "0o17" equals 31, 2 and 15 (and "010" is octal 8); any() and pat()
may stand on either side of == and !=.

Functions, as in Gatus: `len(...)` (the number of elements of an array, else the length of the
text: a string, the minified JSON of an object, the body itself) and `has(...)` (true when the path
is there and not null; false, not an error, when the body is not JSON), both for [BODY] only;
`any(a, b, ...)` (equal to one of them) and `pat(glob)` (Gatus's pattern.Match: `*` any run of
characters, `?` one character, `[a-z]`/`[^0-9]` classes, `\\` escapes the next character; `/` is
ignored on both sides, as Gatus does on Linux).

Actual values are shown as a person reads them: [RESPONSE_TIME] as `607 ms`, [CERTIFICATE_EXPIRATION]
as `19d 4h` (`expired 2d 3h ago` when negative), numbers from [BODY] as written in the JSON; the
comparison itself uses the exact values.

Held against Gatus' own test table (tests/unit/core/health/test_gatus_parity.py): 95 of its 98
scenarios pass or fail as in Gatus. The three that differ are conditions opsdash refuses when the
profile loads, where Gatus evaluates them to a constant false: `1 == 2` (no placeholder: it tests
nothing the probe saw), `[RESPONSE_TIME] < potato` (Gatus reads a non-number under < as 0) and
`len([BODY].name) == john` (a length is a number). Other deliberate differences: a missing path or
a missing fact fails every condition (Gatus lets `!=` pass against one); decimals compare exactly
(Gatus truncates to integers under < and >); a body that is not JSON makes a [BODY] path condition
"could not evaluate" (UNKNOWN) rather than plainly failed; quotes around a value are removed; a
negative index counts from the end; anything the language does not know (unknown functions, `&&`,
`||`, `===`, control characters, a malformed pattern, ...) is a parse error with a column rather
than a condition that quietly never (or always) holds.

The package, by what a change touches (Gatus parity work lands in one of them):
- `language`: placeholders, operators, the parsed `Condition`, operand kinds, number and duration
  literals — the vocabulary both sides share;
- `parser`: text to `Condition`, every refusal with a column;
- `patterns`: pat()'s globs;
- `placeholders`: `Facts`, and what each placeholder and [BODY] path reads from them;
- `evaluator`: `evaluate`, the actual values as shown, and `metrics`.
"""

from __future__ import annotations

from opsdash.core.health.conditions.evaluator import (
    Compiled,
    duration_text,
    evaluate,
    metric_operands,
    metrics,
    metrics_at,
)
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
    "Compiled",
    "Condition",
    "ConditionError",
    "ConditionResult",
    "Facts",
    "Operand",
    "duration_text",
    "evaluate",
    "metric_operands",
    "metrics",
    "metrics_at",
    "parse",
    "parse_all",
]
