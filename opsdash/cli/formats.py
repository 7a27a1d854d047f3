"""Machine formats for the gates, besides text and JSON: SARIF 2.1.0 (GitHub code scanning), JUnit
XML (every CI's test report), GitHub Actions annotations and a Nagios/Icinga plugin line with
perfdata. Each is a function of the report; what a secret looks like is never in a report.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opsdash import __version__
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.rules import RULES
from opsdash.core.text import visible

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_LEVEL = {
    Severity.CRIT: "error",
    Severity.UNKNOWN: "error",
    Severity.WARN: "warning",
    Severity.INFO: "note",
    Severity.OK: "none",
}
_SOURCE = re.compile(r"^(?P<path>.+):(?P<line>\d+)$")


def location(f: Finding, fallback: Path | None = None) -> tuple[str | None, int | None]:
    """Where a finding points in a file: its evidence's `source` (path:line), else the profile."""
    source = f.evidence.get("source") or f.evidence.get("sources", "").split(", ")[0]
    match = _SOURCE.match(source)
    if match and match.group("path") != "environment":
        return _relative(match.group("path")), int(match.group("line"))
    if fallback is not None:
        return _relative(str(fallback)), None
    return None, None


def traced_location(f: Finding) -> dict[str, Any] | None:
    """Where the credential trace found a secret, as a SARIF location: the served asset's URL (an
    absolute URI), a path in the app's repository with the commit that holds it, or a file."""
    ev = f.evidence
    line = ev.get("line", "")
    region = {"startLine": int(line) if line.isdigit() and int(line) > 0 else 1}
    if ev.get("url", "").startswith(("http://", "https://")):
        return {
            "physicalLocation": {"artifactLocation": {"uri": ev["url"]}, "region": region},
            "message": {"text": visible(f"served as {ev.get('asset', 'an asset')}")},
        }
    if ev.get("path") and ev.get("commit"):
        commit = ev["commit"].split(",")[0].strip()
        return {
            "physicalLocation": {"artifactLocation": {"uri": Path(ev["path"]).as_posix()}, "region": region},
            "message": {"text": visible(f"in commit {commit}")},
            "properties": {"commit": visible(commit)},
        }
    if ev.get("path") and f.rule.startswith(("secret-in-", "previous-secret-")):  # a file the trace read
        path = _relative(ev["path"])
        uri = Path(path).as_uri() if path.startswith("/") else path
        return {"physicalLocation": {"artifactLocation": {"uri": uri}, "region": region}}
    return None


def _relative(path: str) -> str:
    """Relative to the working directory (the repository root in CI, as code scanning wants);
    a file outside it keeps its absolute path."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        rel = ".."
    return Path(path).resolve().as_posix() if rel.startswith("..") else Path(rel).as_posix()


def _message(f: Finding) -> str:
    """The finding in one sentence, its subject named once."""
    return f.detail if f.subject in f.detail else f"{f.subject}: {f.detail}"


def sarif(report: Report, profile_path: Path | None = None) -> dict[str, Any]:
    """A SARIF 2.1.0 log with one run: every rule opsdash knows, and a result per finding."""
    findings = [f for f in report.own_findings() if f.severity is not Severity.OK]  # checks are not code
    used = sorted({f.rule for f in findings})
    rules = []
    for rule_id in used:
        known = RULES.get(rule_id)
        title = known.title if known else rule_id
        rules.append(
            {
                "id": rule_id,
                "name": "".join(part.capitalize() for part in rule_id.split("-")),
                "shortDescription": {"text": title},
                "fullDescription": {"text": f"{title}. {known.remediation}" if known else title},
                "help": {"text": known.remediation if known else title},
                "defaultConfiguration": {"level": SARIF_LEVEL[known.severity] if known else "warning"},
                "properties": {"category": known.category if known else "other"},
            }
        )
    index = {rule_id: n for n, rule_id in enumerate(used)}
    results = []
    for f in findings:
        result: dict[str, Any] = {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": visible(f"{_message(f)} Fix: {f.remediation}")},
            "properties": {"severity": f.severity.value, "subject": visible(f.subject)},
        }
        traced = traced_location(f)
        uri, line = location(f, profile_path)
        if traced is not None:  # the credential trace: an asset URL, or a path in a commit
            result["locations"] = [traced]
        elif uri is not None:  # code scanning places a result on a line: the profile's first when unknown
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": Path(uri).as_uri() if uri.startswith("/") else uri},
                        "region": {"startLine": line or 1},
                    }
                }
            ]
        results.append(result)
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "opsdash",
                        "version": __version__,
                        "rules": rules,
                    }
                },
                "automationDetails": {"id": f"opsdash/{report.kind}/{report.run_id}"},
                "results": results,
            }
        ],
    }


def junit(report: Report) -> str:
    """JUnit XML: a test case per check (and per finding that is not a check's own). CRIT and WARN
    fail (as the exit code does: 2 and 1), UNKNOWN is an error. Text from servers is escaped."""
    from xml.etree import ElementTree as ET  # only JUnit output needs it

    stamp = report.started_at.split("+")[0].removesuffix("Z")  # the JUnit XSD's timestamp has no zone
    suite = ET.Element("testsuite", name=f"opsdash {report.kind}", timestamp=stamp)
    checks = report.checks
    cases: list[tuple[str, str, Severity, str, float]] = [
        (
            f"{report.kind}.checks",
            str(c["name"]),
            Severity(c["severity"]),
            visible(str(c.get("summary", ""))),
            float(c.get("duration_ms", 0)) / 1000,
        )
        for c in checks
    ]
    cases += [
        (
            f"{report.kind}.{f.category}",
            visible(f"{f.rule} {f.subject}"),
            f.severity,
            visible(f"{f.title}. {f.detail}"),
            0.0,
        )
        for f in report.own_findings()
    ]
    if not cases:
        cases.append((f"{report.kind}.verdict", report.target, report.verdict, "no findings", 0.0))
    failures = errors = 0
    for classname, name, severity, text, seconds in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.3f}")
        short = text if len(text) <= 200 else text[:199] + "…"
        if severity in (Severity.CRIT, Severity.WARN):
            failures += 1
            ET.SubElement(case, "failure", message=short, type=severity.value).text = text
        elif severity is Severity.UNKNOWN:
            errors += 1
            ET.SubElement(case, "error", message=short, type=severity.value).text = text
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("time", f"{report.duration_ms / 1000:.3f}")
    root = ET.Element("testsuites", name="opsdash")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


GITHUB_COMMAND = {
    Severity.CRIT: "error",
    Severity.UNKNOWN: "error",
    Severity.WARN: "warning",
    Severity.INFO: "notice",
}


def github(report: Report, profile_path: Path | None = None) -> list[str]:
    """GitHub Actions workflow commands: one annotation per finding, on its file and line."""
    lines = []
    for f in report.sorted_findings():
        command = GITHUB_COMMAND.get(f.severity)
        if command is None:
            continue
        uri, line = location(f, profile_path)
        props = [f"title={_gh_property(f'{f.rule} ({f.severity.value})')}"]
        if uri is not None:
            props.insert(0, f"file={_gh_property(uri)}")
            if line is not None:
                props.insert(1, f"line={line}")
        lines.append(
            f"::{command} {','.join(props)}::{_gh_data(visible(f'{_message(f)} Fix: {f.remediation}'))}"
        )
    return lines


NAGIOS_STATE = {
    Severity.OK: "OK",
    Severity.INFO: "OK",
    Severity.WARN: "WARNING",
    Severity.CRIT: "CRITICAL",
    Severity.UNKNOWN: "UNKNOWN",
}
_CONDITION = re.compile(
    r"^\s*\[(?:(?P<rt>RESPONSE_TIME)\]|BODY\]\.(?P<path>[\w.\-]+))\s*(?P<op><=|>=|<|>)\s*(?P<n>-?\d+(?:\.\d+)?)\s*$"
)


def _number(value: float) -> str:
    """Plain decimal, never an exponent (12345678, not 1.23457e+07)."""
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _label(text: str) -> str:
    return "'" + text.replace("'", "''").replace("=", "_") + "'"


def thresholds(conditions: Sequence[str]) -> dict[str, str]:
    """Nagios ranges from a check's conditions: '[RESPONSE_TIME] < 3000' alerts above 3000
    ('~:3000'); '[BODY].x >= 0.95' alerts below 0.95 ('0.95:')."""
    out = {}
    for text in conditions:
        m = _CONDITION.match(text)
        if m is None:
            continue
        key = "response_time_ms" if m.group("rt") else str(m.group("path"))
        out[key] = f"~:{m.group('n')}" if m.group("op").startswith("<") else f"{m.group('n')}:"
    return out


def nagios(
    report: Report,
    conditions: Mapping[str, Sequence[str]],
    severities: Mapping[str, str],
    cert_days: Mapping[str, tuple[float, float]] | None = None,
) -> str:
    """One plugin line: state, what failed, and perfdata (latency and numeric metrics per check, with
    the check's conditions as WARN or CRIT thresholds by the check's own severity; a certificate's
    days left with the check's warn_days and crit_days, alerting below them)."""
    checks = report.checks
    verdict = report.verdict
    bad = [c for c in checks if Severity(c["severity"]).rank >= Severity.WARN.rank]
    if bad:
        text = "; ".join(f"{c['name']}: {visible(str(c.get('summary', '')))}" for c in bad)
    else:
        text = f"{len(checks)} check(s) OK"
    perf = []
    for c in checks:
        limits = thresholds(conditions.get(c["name"], ()))
        crit = severities.get(c["name"], "crit") == "crit"
        metrics = dict(c.get("metrics") or {})
        if c.get("error_class") is None:  # a check that never got an answer has no latency to graph
            metrics.setdefault("response_time_ms", c.get("duration_ms", 0))
        for key, value in metrics.items():
            if not isinstance(value, int | float):
                continue
            label = c["name"] if key == "response_time_ms" else f"{c['name']}.{key}"
            unit = "ms" if key == "response_time_ms" else ""
            limit = limits.get(key, "")
            warn_crit = f";{limit}" if crit else f"{limit};"
            days = (cert_days or {}).get(c["name"])
            if key == "cert_days_left" and days is not None:
                warn_crit = ";".join(f"{_number(d)}:" if d else "" for d in days)
            perf.append(f"{_label(label)}={_number(value)}{unit};{warn_crit}")
    line = f"OPSDASH {report.kind.upper()} {NAGIOS_STATE[verdict]} - {text}"
    return line.replace("|", "/").replace("\n", " ") + (" | " + " ".join(perf) if perf else "")


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def could_not_run(fmt: str, command: str, message: str) -> str | None:
    """What a consumer of `fmt` reads when the command could not run at all (a config or usage
    error, exit 3): a plugin line, a SARIF log whose invocation failed, a JUnit error. Without it a
    monitoring system shows "no output" and a SARIF upload fails on an empty file."""
    message = visible(message)
    if fmt == "nagios":
        return f"OPSDASH {command.upper()} UNKNOWN - {message}".replace("|", "/")
    if fmt == "sarif":
        return dumps(
            {
                "$schema": SARIF_SCHEMA,
                "version": "2.1.0",
                "runs": [
                    {
                        "tool": {"driver": {"name": "opsdash", "version": __version__, "rules": []}},
                        "invocations": [
                            {
                                "executionSuccessful": False,
                                "toolExecutionNotifications": [
                                    {"level": "error", "message": {"text": message}}
                                ],
                            }
                        ],
                        "results": [],
                    }
                ],
            }
        )
    if fmt == "junit":
        from xml.etree import ElementTree as ET

        root = ET.Element("testsuites", name="opsdash")
        suite = ET.SubElement(
            root, "testsuite", name=f"opsdash {command}", tests="1", failures="0", errors="1"
        )
        case = ET.SubElement(suite, "testcase", classname=f"{command}.run", name="opsdash could run")
        ET.SubElement(case, "error", message=message[:200], type="UNKNOWN").text = message
        ET.indent(root)
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode")
    return None
