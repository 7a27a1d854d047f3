"""`opsdash incident list|show|export`: incidents derived from the record, on one time axis."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from opsdash.cli.common import check_window, config_option, count_option, json_option, window_options
from opsdash.cli.render import emit, emit_json
from opsdash.core.findings import Severity
from opsdash.ops.base import Ops

if TYPE_CHECKING:
    from opsdash.core.incidents import Incident

SEVERITIES = ("warn", "unknown", "crit")


def _exit_code(found: list[Incident]) -> int:
    """The worst ongoing incident's severity as an exit code (0: every one has recovered). An
    ongoing one of UNKNOWN severity exits 2, never 3: 3 means the command itself failed (usage,
    config, unreadable history), and a script asking "is there an incident now?" must not read an
    ongoing incident as that, nor as none."""
    ongoing = [i.severity for i in found if i.ongoing]
    if not ongoing:
        return 0
    return max(2 if s is Severity.UNKNOWN else s.exit_code for s in ongoing)


@click.group()
def incident() -> None:
    """Incidents derived from the record: from the first sustained failure or firing alert to the
    moment every check and alert of it has recovered, with every event on one time axis.

    An incident is not a thing someone opens: it is read from what history already holds (check
    results and their sustained state, alerts, deploys, runbook sessions, webhook failures, env
    changes, audit anchors), so it is there for every process that reads the data directory.
    """


@incident.command("list")
@config_option
@json_option
@window_options
@click.option(
    "--target",
    help="Incidents of this target (default: the profile's [target] name); another target that "
    "shares the data directory is read from its own runs, watches and alerts.",
)
@click.option(
    "--severity",
    type=click.Choice(SEVERITIES, case_sensitive=False),
    help="Only incidents at least this severe.",
)
@count_option("--limit", "-n", most=100_000, help="How many incidents to show, newest first.")
def incident_list(
    config: Path | None,
    as_json: bool,
    since: float | None,
    until: float | None,
    target: str | None,
    severity: str | None,
    limit: int,
) -> None:
    """List incidents, newest first.

    \b
    Exit codes: 0 none ongoing, 1/2 the severity of the worst ongoing one (WARN/CRIT; an ongoing
    one of UNKNOWN severity is 2), 3 usage/config error or unreadable history.
    """
    from opsdash.cli.render import cell, emit_table, sev, severity_cell, table, width, wrapped
    from opsdash.ops import incidents as ops_incidents

    check_window(since, until)
    ops = Ops.reading(config)
    query = ops_incidents.Query(
        since=since,
        until=until,
        target=target,
        severity=Severity.parse(severity) if severity else None,
        limit=limit,
    )
    found = ops_incidents.incidents(ops, query)
    shown = found[::-1][:limit]
    now = ops.clock()
    if as_json:
        emit_json([ops_incidents.summary_dict(i, now) for i in shown])
    elif not shown:
        filtered = any(v is not None for v in (since, until, target, severity))
        emit("no incidents in the record" + (" for these filters" if filtered else ""))
    elif width() < 100:  # two lines an incident: nothing cut, nothing folded
        for i in shown:
            phases = {p.name: p for p in i.phases}
            lasted = ops_incidents.took(i.duration(now)) + (" (ongoing)" if i.ongoing else "")
            emit(f"{i.id}  {sev(i.severity, 0)}  {ops_incidents.short(i.first_failure_at)}  {lasted}")
            detect, act = (ops_incidents.took(phases[p].seconds) for p in ("detect", "act"))
            detail = f"{', '.join([*i.checks, *i.alerts]) or '-'} · detect {detect} · act {act}"
            for line in wrapped(detail, "    "):
                emit(click.style(line, dim=True))
    else:
        nowrap = {"no_wrap": True}
        t = table(
            ("INCIDENT", nowrap),
            ("SEVERITY", nowrap),
            ("STARTED (UTC)", nowrap),
            ("LASTED", nowrap),
            "CHECKS / ALERTS",
            ("DETECT", nowrap),
            ("ACT", nowrap),
        )
        for i in shown:
            phases = {p.name: p for p in i.phases}
            t.add_row(
                cell(i.id),
                severity_cell(i.severity),
                cell(ops_incidents.short(i.first_failure_at)),
                cell(ops_incidents.took(i.duration(now)) + (" (ongoing)" if i.ongoing else "")),
                cell(", ".join([*i.checks, *i.alerts]) or "-"),
                cell(ops_incidents.took(phases["detect"].seconds)),
                cell(ops_incidents.took(phases["act"].seconds)),
            )
        emit_table(t)
    sys.exit(_exit_code(found))


@incident.command("show")
@click.argument("ref", default="latest")
@config_option
@json_option
def incident_show(ref: str, config: Path | None, as_json: bool) -> None:
    """Show one incident as a timeline. REF is an id, a unique prefix of one, `latest` (the
    default) or `latest~N`.

    \b
    Exit codes: 0 recovered, 1/2 ongoing (WARN/CRIT; UNKNOWN severity is 2), 3 no such incident or
    usage/config error.
    """
    from opsdash.ops import incidents as ops_incidents

    ops = Ops.reading(config)
    found = ops_incidents.show(ops, ref)
    now = ops.clock()
    if as_json:
        emit_json(ops_incidents.to_dict(found, now))
    else:
        _timeline(found, now)
    sys.exit(_exit_code([found]))


@incident.command("export")
@click.argument("ref", default="latest")
@config_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["md", "json"]),
    default="md",
    show_default=True,
    help="md: a postmortem draft (summary, impact window, timeline, what was done, open questions); "
    "json: the incident as `show --json` prints it.",
)
@click.option(
    "--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="Write here instead of stdout."
)
def incident_export(ref: str, config: Path | None, fmt: str, output: Path | None) -> None:
    """Export one incident: a Markdown postmortem draft, or JSON. Secrets are masked.

    \b
    Exit codes: 0 exported, 3 no such incident, unwritable output or usage/config error.
    """
    import json

    from opsdash.core.errors import InputError
    from opsdash.ops import incidents as ops_incidents

    ops = Ops.reading(config)
    found = ops_incidents.show(ops, ref)
    now = ops.clock()
    if fmt == "md":
        text = ops_incidents.markdown(found, now)
    else:
        text = json.dumps(ops_incidents.to_dict(found, now), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        emit(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{output}: cannot write the export ({exc.strerror or exc})") from None
    emit(f"incident {found.id} exported to {output}", err=True)


def _timeline(i: Incident, now: float) -> None:
    from opsdash.cli.render import RICH_STYLE, cell, emit_table, masked, sev, table
    from opsdash.ops import incidents as ops_incidents

    status = "ongoing" if i.ongoing else "recovered"
    emit(f"incident {i.id}  {sev(i.severity, 0)}  {status}" + (f"  · {masked(i.target)}" if i.target else ""))
    recovered = ops_incidents.short(i.recovered_at) if i.recovered_at is not None else "not yet"
    emit(
        f"  window   {ops_incidents.short(i.first_failure_at)} → {recovered} UTC "
        f"({ops_incidents.took(i.duration(now))})"
    )
    emit("  checks   " + (masked(", ".join(i.checks)) or "-"))
    emit("  alerts   " + (masked(", ".join(i.alerts)) or "-"))
    if i.cause is not None:
        emit(f"  deploy   {masked(i.cause.title)} at {ops_incidents.short(i.cause.at)} UTC (before it)")
    emit("  phases   " + "  ".join(f"{p.name} {ops_incidents.took(p.seconds)}" for p in i.phases))
    emit()
    nowrap = {"no_wrap": True}
    t = table(("TIME (UTC)", nowrap), ("+", nowrap), ("KIND", nowrap), "SOURCE", "WHAT", "BY")
    for e in i.events:
        t.add_row(
            cell(ops_incidents.short(e.at)[11:]),
            cell(ops_incidents.took(e.at - i.first_failure_at)),
            cell(e.kind, RICH_STYLE[e.severity] if e.severity is not Severity.INFO else ""),
            cell(e.source),
            cell(e.title),
            cell(e.operator or ""),
        )
    emit_table(t)
