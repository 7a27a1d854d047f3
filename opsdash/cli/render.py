"""Terminal rendering for the CLI.

Everything printed goes through `emit`, which passes the text through the redactor last and honours
NO_COLOR and FORCE_COLOR (colour otherwise only on a terminal). Text that came from outside (a
server's answer, an env value, a log line) passes `visible` first, so escape sequences are shown,
never acted on. Reports stay plain styled text (so `validate` never loads rich); tables are rich
tables that fit the terminal's width (COLUMNS is honoured), wrapping long cells.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opsdash.core.findings import SCHEMA_VERSION, Finding, Report, Severity
from opsdash.core.secrets import redactor
from opsdash.core.text import visible

if TYPE_CHECKING:
    from rich.table import Table

    from opsdash.core.diff import RunDiff
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.core.runbooks.model import Runbook
    from opsdash.core.runbooks.state import SessionState
    from opsdash.storage.rows import RunRow

COLOURS = {
    Severity.OK: "green",
    Severity.INFO: "blue",
    Severity.WARN: "yellow",
    Severity.UNKNOWN: "magenta",
    Severity.CRIT: "red",
}


def colour() -> bool | None:
    """False with NO_COLOR, True with FORCE_COLOR, else None: colour only on a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return None


def emit(text: str = "", *, err: bool = False, nl: bool = True) -> None:
    text = redactor.redact(text)
    wanted = colour()
    if wanted is False:
        text = click.unstyle(text)
    try:
        click.echo(text, err=err, nl=nl, color=wanted)
    except BrokenPipeError:
        # the reader stopped reading (`opsdash check | head -1`): the rest of the output goes
        # nowhere, and the command still finishes and exits with its verdict
        os.dup2(os.open(os.devnull, os.O_WRONLY), (sys.stderr if err else sys.stdout).fileno())


def width() -> int:
    return max(40, shutil.get_terminal_size((100, 24)).columns)


def masked(text: str) -> str:
    """Untrusted text as it may be shown: secrets masked, escapes visible. Before any wrapping: a
    secret cut across two lines would no longer be recognised by `emit`'s redactor."""
    return visible(redactor.redact(text))


def wrapped(text: str, indent: str) -> list[str]:
    """One paragraph of untrusted text, shown and wrapped to the terminal under `indent`."""
    return textwrap.wrap(
        masked(text), width(), initial_indent=indent, subsequent_indent=indent, break_on_hyphens=False
    ) or [indent]


def table(*columns: str | tuple[str, dict[str, Any]]) -> Table:
    """A rich table with these columns (name, or (name, column options)) that fits the terminal."""
    from rich import box
    from rich.table import Table

    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, expand=False)
    for column in columns:
        name, options = (column, {}) if isinstance(column, str) else column
        t.add_column(name, **{"overflow": "fold", **options})
    return t


def emit_table(t: Table, *, err: bool = False) -> None:
    from rich.console import Console

    wanted = colour()
    console = Console(
        stderr=err,
        width=width(),
        no_color=wanted is False,
        force_terminal=True if wanted else None,
        highlight=False,
        markup=False,
        emoji=False,
    )
    with console.capture() as captured:
        console.print(t)
    emit("\n".join(line.rstrip() for line in captured.get().rstrip("\n").splitlines()), err=err)


def cell(value: object, style: str = "") -> Any:
    """A table cell from untrusted text: redacted, control characters shown, no markup."""
    from rich.text import Text

    return Text(visible(redactor.redact(str(value))), style=style)


RICH_STYLE = {
    Severity.OK: "green",
    Severity.INFO: "blue",
    Severity.WARN: "yellow",
    Severity.UNKNOWN: "magenta",
    Severity.CRIT: "bold red",
}


def severity_cell(severity: Severity) -> Any:
    return cell(severity.value, RICH_STYLE[severity])


def emit_json(data: Any) -> None:
    emit(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def sev(severity: Severity, width: int = 7) -> str:
    return click.style(severity.value.ljust(width), fg=COLOURS[severity], bold=severity is Severity.CRIT)


def verdict_line(report: Report) -> str:
    counts = report.counts()
    parts = [
        f"{counts[s.value]} {name}" + ("s" if name == "warning" and counts[s.value] > 1 else "")
        for s, name in (
            (Severity.CRIT, "critical"),
            (Severity.UNKNOWN, "unknown"),
            (Severity.WARN, "warning"),
            (Severity.INFO, "info"),
        )
        if counts[s.value]
    ]
    tally = ", ".join(parts) if parts else "no findings"
    head = f"{sev(report.verdict, 0)}  {visible(report.target)} — {tally}"
    tail = f"(run {report.run_id}, {report.duration_ms} ms)"
    one_line = f"{head}  {tail}"
    return one_line if len(click.unstyle(one_line)) <= width() else f"{head}\n  {tail}"


def _hanging(head: str, shown: int, text: str, pad: str) -> list[str]:
    """`head` (styled, `shown` columns wide) then `text` wrapped to the terminal, continuing at `pad`."""
    rest = textwrap.wrap(masked(text), max(width() - shown, 20), break_on_hyphens=False) or [""]
    more = textwrap.wrap(" ".join(rest[1:]), max(width() - len(pad), 20), break_on_hyphens=False)
    return [head + rest[0], *(pad + line for line in more)]


def finding_block(f: Finding, *, indent: str = "  ") -> list[str]:
    pad = indent + " " * 8
    head = f"{indent}{sev(f.severity)} {click.style(f.rule, bold=True)}  "
    lines = _hanging(head, len(pad) + len(f.rule) + 2, f.subject, pad)
    lines.extend(wrapped(f.detail, pad))
    for key, value in f.evidence.items():
        label = f"{pad}{click.style(key + ':', dim=True)} "
        lines.extend(_hanging(label, len(pad) + len(key) + 2, str(value), pad + "  "))
    fix = f"fix: {f.remediation}"
    if f.runbook:
        fix += f"  (runbook: {f.runbook})"
    lines.extend(click.style(line, fg="cyan") for line in wrapped(fix, pad))
    return lines


def report_text(report: Report, *, min_severity: Severity = Severity.INFO) -> str:
    lines = [verdict_line(report)]
    summary = report.summary
    if summary.get("sources"):
        sources = f"{', '.join(summary['sources'])}; {summary.get('variables', 0)} variables, "
        lines += _hanging("  sources: ", 11, sources + f"{summary.get('secrets', 0)} secrets", "    ")
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


def runs_table(runs: Sequence[RunRow]) -> None:
    """A table on a wide terminal; two lines a run on a narrow one (nothing cut, nothing folded)."""
    if not runs:
        emit("no runs in history yet; run 'opsdash validate' first")
        return

    def found(r: RunRow) -> str:
        return " ".join(f"{r.counts[s]} {s}" for s in ("CRIT", "WARN") if r.counts.get(s)) or "-"

    if width() < 100:
        for r in runs:
            emit(f"{r.run_id}  {sev(r.verdict, 0)}  {visible(r.kind)}")
            for line in wrapped(
                f"{r.started_at[:19].replace('T', ' ')} · {r.operator} · {r.target} · {found(r)}", "    "
            ):
                emit(click.style(line, dim=True))
        return
    nowrap = {"no_wrap": True}
    t = table(
        ("RUN", nowrap),
        ("KIND", nowrap),
        ("VERDICT", nowrap),
        ("STARTED (UTC)", nowrap),
        "FOUND",
        "OPERATOR",
        "TARGET",
    )
    for r in runs:
        t.add_row(
            cell(r.run_id),
            cell(r.kind),
            severity_cell(r.verdict),
            cell(r.started_at[:19].replace("T", " ")),
            cell(found(r)),
            cell(r.operator),
            cell(r.target),
        )
    emit_table(t)


def diff_text(a: RunRow, b: RunRow, diff: RunDiff) -> str:
    lines = [f"diff {a.run_id} ({a.verdict.value}) → {b.run_id} ({b.verdict.value})"]
    if diff.empty:
        lines.append("  no differences in findings or environment")
        return "\n".join(lines)
    sections: list[tuple[str, list[str]]] = [
        (
            "new findings",
            [f"  + {sev(f.severity)} {f.rule}  {visible(f.subject)}: {visible(f.detail)}" for f in diff.new],
        ),
        (
            "resolved findings",
            [f"  - {sev(f.severity)} {f.rule}  {visible(f.subject)}" for f in diff.resolved],
        ),
        (
            "changed findings",
            [
                f"  ~ {f.rule}  {visible(f.subject)}: {o.severity.value} → {f.severity.value}; "
                f"{visible(f.detail)}"
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


def checks_table(results: Sequence[CheckResult], sustained: dict[str, SustainedState] | None = None) -> None:
    """A table of check results; a failing check's error class, hint and runbook go under it."""
    wide = width() >= 90  # a narrow terminal drops KIND so the summary keeps room to read
    nowrap = {"no_wrap": True}
    columns: list[str | tuple[str, dict[str, Any]]] = [("STATUS", nowrap), "CHECK"]
    columns += [("KIND", nowrap)] if wide else []
    columns += [("LATENCY", {"justify": "right", "no_wrap": True}), ("SUMMARY", {"ratio": 1})]
    t = table(*columns)
    for r in results:
        shown = sustained[r.name].status if sustained and r.name in sustained else r.severity
        latency = r.metrics.get("response_time_ms", r.duration_ms)
        kind = [cell(r.kind)] if wide else []
        t.add_row(severity_cell(shown), cell(r.name), *kind, cell(f"{latency:.0f} ms"), cell(r.summary))
        if not r.ok:
            cls = f"[{r.error_class.value}] " if r.error_class else ""
            hint = cls + (r.hint or "") + (f"  (runbook: {r.runbook})" if r.runbook else "")
            t.add_row(*[""] * (len(columns) - 1), cell(hint, "cyan"))
    emit_table(t)


def emit_report(
    report: Report,
    fmt: str,
    *,
    profile: Path | None = None,
    extra: Mapping[str, Any] | None = None,
    conditions: Mapping[str, Sequence[str]] | None = None,
    severities: Mapping[str, str] | None = None,
    cert_days: Mapping[str, tuple[float, float]] | None = None,
) -> bool:
    """Print a report in a machine format; False for 'text' (the caller prints its own)."""
    from opsdash.cli import formats

    if fmt == "json":
        emit_json({**report.to_dict(), **(extra or {})})
    elif fmt == "sarif":
        emit_json(formats.sarif(report, profile))
    elif fmt == "junit":
        emit(formats.junit(report))
    elif fmt == "github":
        for line in formats.github(report, profile):
            emit(line)
    elif fmt == "nagios":
        emit(formats.nagios(report, conditions or {}, severities or {}, cert_days))
    else:
        return False
    return True


def print_session(state: SessionState, book: Runbook | None) -> None:
    """A recorded runbook session, as `history show` and `runbook run --resume` print it (here, not
    beside the step driver: showing the record must not load the engine)."""
    from opsdash.core.runbooks.state import STATUS_MARK

    emit(
        click.style(
            f"{state.title} ({state.runbook_id}) — session {state.id}: {state.status.value}", bold=True
        )
    )
    emit(f"  operator {state.operator}, started {state.started_at}, updated {state.updated_at}")
    if state.params:
        emit("  parameters: " + visible(", ".join(f"{k}={v}" for k, v in state.params.items())))
    for index, st in enumerate(state.steps):
        title = book.steps[index].title if book and index < len(book.steps) else f"step {index + 1}"
        here = " ◀ current" if state.current == index and state.status.value == "active" else ""
        emit(
            f"  [{STATUS_MARK[st.status]}] {index + 1}. {title}{here}"
            + (f"  exit {st.exit_code}" if st.exit_code is not None else "")
            + (f"  note: {visible(st.note)}" if st.note else "")
        )
    if state.events:
        emit(click.style("  events:", dim=True))
        for event in state.events:
            where = f"step {event['step_index'] + 1} " if event["step_index"] is not None else ""
            emit(
                f"    {event['at']}  {where}{event['event']}"
                + (f": {visible(event['detail'].strip())}" if event["detail"] else "")
            )
