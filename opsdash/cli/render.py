"""Plain-terminal rendering of reports and diffs for the CLI (click styling, no rich).

Everything printed goes through `emit`, which passes the text through the redactor last.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import click

from opsdash.core.findings import SCHEMA_VERSION, Finding, Report, Severity
from opsdash.core.secrets import redactor

if TYPE_CHECKING:
    from opsdash.core.diff import RunDiff
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.storage.rows import RunRow

COLOURS = {
    Severity.OK: "green",
    Severity.INFO: "blue",
    Severity.WARN: "yellow",
    Severity.UNKNOWN: "magenta",
    Severity.CRIT: "red",
}


def emit(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    click.echo(redactor.redact(text), err=err, nl=nl)


def emit_json(data: Any) -> None:
    emit(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def sev(severity: Severity, width: int = 7) -> str:
    return click.style(severity.value.ljust(width), fg=COLOURS[severity], bold=severity is Severity.CRIT)


def verdict_line(report: Report) -> str:
    counts = report.counts()
    parts = [
        f"{counts[s.value]} {name}"
        for s, name in (
            (Severity.CRIT, "critical"),
            (Severity.UNKNOWN, "unknown"),
            (Severity.WARN, "warning"),
            (Severity.INFO, "info"),
        )
        if counts[s.value]
    ]
    tally = ", ".join(parts) if parts else "no findings"
    return (
        f"{sev(report.verdict, 0)}  {report.target} — {tally}  (run {report.run_id}, {report.duration_ms} ms)"
    )


def finding_block(f: Finding, *, indent: str = "  ") -> list[str]:
    lines = [f"{indent}{sev(f.severity)} {click.style(f.rule, bold=True)}  {f.subject}"]
    pad = indent + " " * 8
    lines.append(f"{pad}{f.detail}")
    for key, value in f.evidence.items():
        lines.append(f"{pad}{click.style(key + ':', dim=True)} {value}")
    fix = f"fix: {f.remediation}"
    if f.runbook:
        fix += f"  (runbook: {f.runbook})"
    lines.append(f"{pad}{click.style(fix, fg='cyan')}")
    return lines


def report_text(report: Report, *, min_severity: Severity = Severity.INFO) -> str:
    lines = [verdict_line(report)]
    summary = report.summary
    if summary.get("sources"):
        lines.append(
            f"  sources: {', '.join(summary['sources'])}; {summary.get('variables', 0)} variables, "
            f"{summary.get('secrets', 0)} secrets"
        )
    grouped: dict[str, list[Finding]] = defaultdict(list)
    for f in report.sorted_findings():
        if f.severity.rank >= min_severity.rank:
            grouped[f.category].append(f)
    for category in sorted(grouped, key=lambda c: -max(f.severity.rank for f in grouped[c])):
        lines.append("")
        lines.append(click.style(category, bold=True, underline=True))
        for f in grouped[category]:
            lines.extend(finding_block(f))
    hidden = sum(1 for f in report.findings if f.severity.rank < min_severity.rank)
    if hidden:
        lines.append("")
        lines.append(click.style(f"({hidden} info finding(s) hidden; use --verbose to show them)", dim=True))
    return "\n".join(lines)


def runs_table(runs: list[RunRow]) -> str:
    if not runs:
        return "no runs in history yet; run 'opsdash validate' first"
    header = (
        f"{'RUN':24} {'KIND':10} {'VERDICT':8} {'STARTED (UTC)':26} {'FINDINGS':9} {'OPERATOR':12} TARGET"
    )
    lines = [click.style(header, bold=True)]
    for r in runs:
        total = sum(r.counts.values())
        lines.append(
            f"{r.run_id:24} {r.kind:10} {sev(r.verdict, 8)} {r.started_at:26} {total:<9} "
            f"{r.operator[:12]:12} {r.target}"
        )
    return "\n".join(lines)


def diff_text(a: RunRow, b: RunRow, diff: RunDiff) -> str:
    lines = [f"diff {a.run_id} ({a.verdict.value}) → {b.run_id} ({b.verdict.value})"]
    if diff.empty:
        lines.append("  no differences in findings or environment")
        return "\n".join(lines)
    sections: list[tuple[str, list[str]]] = [
        ("new findings", [f"  + {sev(f.severity)} {f.rule}  {f.subject}: {f.detail}" for f in diff.new]),
        ("resolved findings", [f"  - {sev(f.severity)} {f.rule}  {f.subject}" for f in diff.resolved]),
        (
            "changed findings",
            [
                f"  ~ {f.rule}  {f.subject}: {o.severity.value} → {f.severity.value}; {f.detail}"
                for o, f in diff.changed
            ],
        ),
        ("env values changed (fingerprint differs)", [f"  ~ {k}" for k in diff.env_changed]),
        ("env keys added", [f"  + {k}" for k in diff.env_added]),
        ("env keys removed", [f"  - {k}" for k in diff.env_removed]),
    ]
    for title, rows in sections:
        if rows:
            lines.append("")
            lines.append(click.style(f"{title} ({len(rows)})", bold=True))
            lines.extend(rows)
    return "\n".join(lines)


def diff_dict(a: RunRow, b: RunRow, diff: RunDiff) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "before": a.run_id,
        "after": b.run_id,
        "new": [f.to_dict() for f in diff.new],
        "resolved": [f.to_dict() for f in diff.resolved],
        "changed": [{"before": o.to_dict(), "after": f.to_dict()} for o, f in diff.changed],
        "env_changed": list(diff.env_changed),
        "env_added": list(diff.env_added),
        "env_removed": list(diff.env_removed),
    }


def checks_text(results: list[CheckResult], sustained: dict[str, SustainedState] | None = None) -> str:
    """A table of check results; failing checks get their hint and runbook underneath."""
    width = max((len(r.name) for r in results), default=5)
    head = f"{'STATUS':8} {'CHECK':{width}} {'KIND':8} {'LATENCY':>9}  SUMMARY"
    lines = [click.style(head, bold=True)]
    for r in results:
        shown = sustained[r.name].status if sustained and r.name in sustained else r.severity
        latency = r.metrics.get("response_time_ms")
        latency_text = f"{latency:7.0f}ms" if latency is not None else f"{r.duration_ms:7.0f}ms"
        lines.append(f"{sev(shown, 8)} {r.name:{width}} {r.kind:8} {latency_text:>9}  {r.summary}")
        if not r.ok:
            pad = " " * 9
            cls = f"[{r.error_class.value}] " if r.error_class else ""
            lines.append(
                click.style(f"{pad}{cls}{r.hint or ''}", fg="cyan")
                + (click.style(f"  (runbook: {r.runbook})", fg="cyan") if r.runbook else "")
            )
    return "\n".join(lines)
