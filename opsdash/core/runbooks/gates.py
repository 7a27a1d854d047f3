"""Check blocks: what must be true before a runbook may continue.

```check
app-health                       # a health check from the profile must pass
validate                         # environment validation must have no CRIT finding
trace                            # the credential trace: no secret served live, no previous one accepted
http https://app.example.com/version
  [STATUS] == 200                # conditions for the http line above, indented
  [BODY].version == {{release}}
```
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsdash.core.health.conditions import ConditionError, parse


@dataclass(frozen=True)
class Gate:
    kind: str  # check | validate | trace | http
    target: str  # check name, or URL
    line: int  # 1-based line within the block
    conditions: tuple[str, ...] = field(default=())

    def label(self) -> str:
        return {
            "check": f"check {self.target}",
            "validate": "environment validation",
            "trace": "credential trace",
        }.get(self.kind, f"http {self.target}")


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment`: a # at the start or after a blank, outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def parse_gates(block: str) -> tuple[list[Gate], list[tuple[int, str]]]:
    """Gates and (line, problem) pairs; lines are 1-based within the block."""
    gates: list[Gate] = []
    problems: list[tuple[int, str]] = []
    for number, raw in enumerate(block.splitlines(), start=1):
        text = _strip_comment(raw)
        if not text.strip():
            continue
        if raw[:1].isspace():
            if not gates or gates[-1].kind != "http":
                problems.append((number, "an indented condition must follow an 'http URL' line"))
                continue
            try:
                parse(text.strip())
            except ConditionError as exc:
                problems.append((number, f"condition {text.strip()!r}: {exc}"))
                continue
            last = gates[-1]
            gates[-1] = Gate(last.kind, last.target, last.line, (*last.conditions, text.strip()))
            continue
        words = text.split()
        if words[0] in ("validate", "trace") and len(words) == 1:
            gates.append(Gate(words[0], "", number))
        elif words[0] == "http":
            if len(words) != 2 or not words[1].startswith(("http://", "https://")):
                problems.append((number, "expected 'http https://host/path'"))
                continue
            gates.append(Gate("http", words[1], number))
        elif len(words) == 1:
            gates.append(Gate("check", words[0], number))
        else:
            problems.append(
                (
                    number,
                    f"cannot read {text.strip()!r}: expected a check name, 'validate', 'trace' or 'http URL'",
                )
            )
    if not gates and not problems:
        problems.append((1, "the check block names nothing to check"))
    return gates, problems
