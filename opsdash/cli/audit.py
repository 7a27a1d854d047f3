"""`opsdash audit tail|verify`: the tamper-evident audit log."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import cli, config_option, json_option
from opsdash.cli.render import emit, emit_json
from opsdash.core.findings import SCHEMA_VERSION
from opsdash.core.text import visible
from opsdash.ops.base import Ops


@cli.group()
def audit() -> None:
    """The tamper-evident audit log of who did what (in the profile's data directory)."""


@audit.command("tail")
@click.option(
    "-n",
    "--lines",
    "count",
    default=20,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="How many records to show.",
)
@click.option("-f", "--follow", is_flag=True, help="Keep printing records as they are appended.")
@click.option(
    "--kind",
    type=click.Choice(["operator_action", "security_event", "check_result", "system"]),
    help="Only records of this kind.",
)
@click.option("--operator", "who", help="Only records by this operator.")
@click.option("--grep", help="Only records containing this text (case-insensitive).")
@click.option("--since", help="Only records since a time: 2026-11-26T10:00, or 15m / 2h / 3d ago.")
@config_option
@json_option
def audit_tail(
    config: Path | None,
    count: int,
    follow: bool,
    kind: str | None,
    who: str | None,
    grep: str | None,
    since: str | None,
    as_json: bool,
) -> None:
    """Show the newest audit records; -f follows appends (survives truncation and rotation).

    Lines that are not JSON or not UTF-8 are shown marked, never skipped. Reading starts from the
    end of the file, so even a multi-gigabyte log shows its last page at once.

    \b
    Exit codes: 0 shown (also when there is no log yet), 3 usage/config error.
    """
    import json
    import time

    from opsdash.core.audit.tail import Entry, RecordFilter, parse_since

    try:
        flt = RecordFilter(kind, who, grep, parse_since(since) if since else None)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    trail = Ops.open(config, require=False).audit

    def show(entry: Entry) -> None:
        if as_json:
            emit(
                json.dumps(
                    entry.record
                    if entry.record is not None
                    else {"unparseable": entry.problem, "line": entry.text()}
                )
            )
        else:
            emit(visible(entry.summary()))

    if not trail.exists() and not follow:
        emit(f"no audit log yet at {trail.path}", err=True)
        return
    follower = trail.follower()
    for entry in trail.newest(count, flt):
        show(entry)
    if not follow:
        return
    try:
        while True:
            lines, event = follower.poll()
            if event:
                emit(f"-- log {event}; reading it from the start --", err=True)
            for raw in lines:
                entry = Entry.parse(raw)
                if flt.match(entry):
                    show(entry)
            sys.stdout.flush()
            time.sleep(0.25)
    except KeyboardInterrupt:
        return


@audit.command("verify")
@click.option("--anchor", help="SEQ:MAC the log must still contain (default: the latest anchor in history).")
@config_option
@json_option
def audit_verify(anchor: str | None, config: Path | None, as_json: bool) -> None:
    """Check the whole chain: MACs, sequence, links, and that nothing was cut after the anchor.

    Reports OK, or the first bad record and why (MAC mismatch, gap, broken link, reordering,
    truncated before the anchor, unparseable line).

    \b
    Exit codes: 0 intact, 2 tampered, 3 usage/config error.
    """
    from opsdash.ops.audit import verify_log

    ops = Ops.open(config, require=False)
    try:
        outcome = verify_log(ops, anchor)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    result, source = outcome.result, outcome.anchor_source
    if as_json:
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                **result.to_dict(),
                "anchor_source": source,
                "directory": str(ops.audit.directory),
            }
        )
    else:
        if result.ok:
            head = result.head
            emit(
                click.style("OK", fg="green", bold=True)
                + f"  {result.records} records in {len(result.files)} "
                f"file(s) verify" + (f"; head seq {head.seq}" if head else "") + f"; anchor: {source}"
            )
        else:
            emit(click.style("TAMPERED", fg="red", bold=True) + f"  {result.problem}")
            emit(f"  {result.records} records verified before it; anchor: {source}")
        emit(f"  log: {ops.audit.path}")
        for note in result.notes:
            emit(f"  note: {note}")
    sys.exit(0 if result.ok else 2)
