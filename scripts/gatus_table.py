"""Port Gatus' own condition test table (config/endpoint/condition_test.go, TestCondition_evaluate) to
the Python module tests/unit/core/health/gatus_table.py, which the suite holds opsdash against.

    .venv/bin/python scripts/gatus_table.py PATH/TO/condition_test.go [--commit SHA] > \\
        tests/unit/core/health/gatus_table.py

Each scenario keeps its name, condition, the result fields it sets (status, body, IP, response time,
connected, certificate expiration) and Gatus' expected success. Durations become seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

_BLOCK = re.compile(r"\n\t\t\{\n(.*?)\n\t\t\},", re.S)
_FIELD = re.compile(r"^\s*(\w+):\s*(.*?),?\s*(//.*)?$")
_UNITS = {"time.Nanosecond": 1e-9, "time.Microsecond": 1e-6, "time.Millisecond": 1e-3, "time.Second": 1.0}
_UNITS |= {"time.Minute": 60.0, "time.Hour": 3600.0}


def go_string(text: str) -> str:
    text = text.strip()
    if text.startswith("`"):
        return text[1:-1]
    return str(json.loads(text))


def go_duration(text: str) -> float:
    seconds = 1.0
    for factor in re.split(r"\s*\*\s*", text.strip().strip("()")):
        seconds *= _UNITS[factor] if factor in _UNITS else float(factor)
    return seconds


def condition(text: str) -> str:
    inner = text.strip()[len("Condition(") : -1]
    ms = re.fullmatch(r'(".*?")\s*\+\s*strconv\.FormatInt\(\((.*?)\)\.Milliseconds\(\), 10\)', inner)
    if ms:
        return go_string(ms.group(1)) + str(round(go_duration(ms.group(2)) * 1000))
    return go_string(inner)


def result(text: str) -> dict[str, object]:
    inner = text.strip()[len("&Result{") : -1].strip()
    out: dict[str, object] = {}
    if not inner:
        return out
    key, _, value = inner.partition(":")
    value = value.strip()
    if key == "Body":
        out["body"] = go_string(value[len("[]byte(") : -1])
    elif key == "HTTPStatus":
        out["status"] = int(value)
    elif key == "IP":
        out["ip"] = go_string(value)
    elif key == "Connected":
        out["connected"] = value == "true"
    elif key == "Duration":
        out["response_time_s"] = go_duration(value)
    elif key == "CertificateExpiration":
        out["certificate_expiration_s"] = go_duration(value)
    else:
        raise ValueError(f"unknown Result field {key}")
    return out


def scenarios(go: str) -> list[dict[str, object]]:
    body = go.split("func TestCondition_evaluate", 1)[1].split("\n\tfor _, scenario", 1)[0]
    out = []
    for block in _BLOCK.findall(body):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            m = _FIELD.match(line)
            if m:
                fields[m.group(1)] = m.group(2)
        out.append(
            {
                "name": go_string(fields["Name"]),
                "condition": condition(fields["Condition"]),
                "result": result(fields["Result"]),
                "success": fields["ExpectedSuccess"] == "true",
            }
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("--commit", default="unknown")
    args = parser.parse_args()
    table = scenarios(args.source.read_text(encoding="utf-8"))
    print('"""Gatus\' condition test table (github.com/TwiN/gatus, config/endpoint/condition_test.go,')
    print(f"TestCondition_evaluate, commit {args.commit}), ported by scripts/gatus_table.py. Do not edit.")
    print('Durations are in seconds."""')
    print()
    print("from __future__ import annotations")
    print()
    print("from typing import Any")
    print()
    print("SCENARIOS: list[dict[str, Any]] = [")
    for item in table:
        print(f"    {item!r},")
    print("]")
    print(f"# {len(table)} scenarios", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
