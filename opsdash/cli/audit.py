"""`opsdash audit tail|verify|head|ack-repair`: the tamper-evident audit log."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import click

from opsdash.cli.common import config_option, count_option, json_option, operator_option
from opsdash.cli.render import emit, emit_json, masked, width, wrapped
from opsdash.core.findings import SCHEMA_VERSION
from opsdash.core.text import visible
from opsdash.ops.base import Ops


@click.group()
def audit() -> None:
    """The tamper-evident audit log of who did what (in the profile's data directory)."""


@audit.command("tail")
@count_option("-n", "--lines", "count", most=100_000, help="How many records to show.")
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
        elif sys.stdout.isatty():  # within the terminal's width, continuation lines indented
            for line in textwrap.wrap(
                masked(entry.summary()), width(), subsequent_indent="    ", break_on_hyphens=False
            ):
                emit(line)
        else:  # piped: one record a line, for grep and awk
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
@click.option("--print-head", is_flag=True, help="Also print the verified head as SEQ:MAC (for CI logs).")
@click.option(
    "--all-hosts",
    is_flag=True,
    help="Verify every host's chain as the shared (PostgreSQL) database holds it, with this key.",
)
@config_option
@json_option
def audit_verify(
    anchor: str | None, print_head: bool, all_hosts: bool, config: Path | None, as_json: bool
) -> None:
    """Check the whole chain: MACs, sequence, links, and that nothing was cut after the anchors.

    The log must reach the head anchored beside the audit key on every append, the latest anchor in
    history (or --anchor SEQ:MAC). Reports OK, the first bad record with the first bad seq and why
    (MAC mismatch, gap, broken link, reordering, truncated before an anchor, unparseable line), or
    WARN for a torn write that was repaired but not yet acknowledged (`opsdash audit ack-repair`).

    \b
    With --all-hosts: every host's chain in the shared database (this host's copied there first),
    each verified with the key against the head the database holds for it, naming the first bad
    record of each (docs/operator-guide.md, "A team on one database").

    \b
    Exit codes: 0 intact, 1 intact but a repair is not acknowledged, 2 tampered, 3 usage/config error.
    """
    ops = Ops.open(config, require=False)
    if all_hosts:
        if anchor or print_head:
            raise click.UsageError(
                "--all-hosts verifies against each host's head: no --anchor or --print-head"
            )
        _verify_all_hosts(ops, as_json)
        return
    try:
        outcome = ops.audit.verify(anchor)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    result, source = outcome.result, outcome.anchor_source
    if as_json:
        emit_json(
            {
                "schema_version": SCHEMA_VERSION,
                **result.to_dict(),
                "anchor_source": source,
                "head_anchor": outcome.head_anchor,
                "directory": str(ops.audit.directory),
            }
        )
    else:
        named = [f"head {outcome.head_anchor}"] if outcome.head_anchor else []
        named += [source] if source != "none" else []
        anchors = f"anchors: {', '.join(named) or 'none yet'}"
        head = result.head
        if result.problem is not None:
            emit(click.style("TAMPERED", fg="red", bold=True) + f"  {visible(str(result.problem))}")
            if result.problem.first_bad_seq is not None:
                emit(f"  first bad seq: {result.problem.first_bad_seq}")
            emit(f"  {result.records} records verified before it")
            for line in wrapped(anchors, "  "):
                emit(line)
        else:
            label = (
                click.style("WARN", fg="yellow", bold=True)
                if result.warnings
                else click.style("OK", fg="green", bold=True)
            )
            emit(
                f"{label}  {result.records} records in {len(result.files)} file(s) verify"
                + (f"; head seq {head.seq}" if head else "")
            )
            for line in wrapped(anchors, "  "):  # paths: within the terminal's width
                emit(line)
        for warning in result.warnings:
            emit(f"  warning: {visible(warning)}")
        for line in wrapped(f"log: {ops.audit.path}", "  "):
            emit(line)
        for note in result.notes:
            emit(f"  note: {visible(note)}")
        if print_head and head is not None and result.ok:
            emit(f"  head: {head.seq}:{head.mac}")
    sys.exit({"OK": 0, "WARN": 1}.get(result.status, 2))


def _verify_all_hosts(ops: Ops, as_json: bool) -> None:
    from opsdash.core.errors import InputError
    from opsdash.ops.audit import shared

    with ops.history() as history:
        if not shared(history):
            raise InputError(
                "--all-hosts reads the chains hosts copy to a shared database: set [opsdash] database "
                "(or OPSDASH_DATABASE_URL) to the team's PostgreSQL database"
            )
        ops.audit.publish_quietly(history)  # this host's newest records first
        outcomes = ops.audit.verify_hosts(history)
    worst = max((o.result.status for o in outcomes), key=["OK", "WARN", "TAMPERED"].index, default="OK")
    if as_json:
        emit_json(
            {"schema_version": SCHEMA_VERSION, "status": worst, "hosts": [o.to_dict() for o in outcomes]}
        )
    elif not outcomes:
        emit("no host has copied its audit chain to this database yet")
    for o in [] if as_json else outcomes:
        host, result = o.host, o.result
        where = f"{visible(host.host_id)} ({visible(host.data_dir)}, log {visible(host.log_id)})"
        if result.problem is not None:
            first = result.problem.first_bad_seq
            emit(click.style("TAMPERED", fg="red", bold=True) + f"  {where}")
            emit(f"  first bad record: seq {first}: {visible(str(o.to_dict()['problem']))}")
            emit(f"  {result.records} records verified before it")
        else:
            label = click.style(
                "WARN" if result.warnings else "OK", fg="yellow" if result.warnings else "green", bold=True
            )
            emit(f"{label}  {where}: {result.records} records verify; head seq {host.seq}")
            emit(f"  copied {visible(host.updated_at)}")
    sys.exit({"OK": 0, "WARN": 1}.get(worst, 2))


@audit.command("ack-repair")
@config_option
@operator_option
def audit_ack_repair(config: Path | None, operator: str | None) -> None:
    """Acknowledge the repaired torn writes `audit verify` warns about (itself an audit record).

    A torn write is a record a crash cut short; the next append kept the fragment and signed a
    repair record, and verify reports it (WARN) until an operator has looked and acknowledged it.

    \b
    Exit codes: 0 acknowledged (or nothing to acknowledge), 2 the log does not verify, 3 usage error.
    """
    ops = Ops.open(config, require=False, operator=operator)
    outcome, acked = ops.audit.acknowledge_repairs()
    result = outcome.result
    if not result.ok:
        emit(click.style("TAMPERED", fg="red", bold=True) + f"  {visible(str(result.problem))}")
        emit("  nothing acknowledged: run `opsdash audit verify` and see docs/operator-guide.md")
        sys.exit(2)
    if not acked:
        emit("nothing to acknowledge: no unacknowledged repairs")
        return
    emit(f"acknowledged repair record(s) seq {', '.join(map(str, acked))} as {ops.operator}")


@audit.command("head")
@config_option
@json_option
def audit_head(config: Path | None, as_json: bool) -> None:
    """Print the log's head as SEQ:MAC, to keep somewhere the data dir's users cannot edit.

    Copy it to a CI log, a ticket or a syslog; later, `opsdash audit verify --anchor SEQ:MAC`
    proves nothing up to that record has been cut or changed. The MAC is not a secret.

    \b
    Exit codes: 0 printed, 3 no audit log yet or usage/config error.
    """
    ops = Ops.open(config, require=False)
    head = ops.audit.export_head()
    if head is None:
        emit(f"no audit log yet at {ops.audit.path}", err=True)
        sys.exit(3)
    if as_json:
        emit_json({"schema_version": SCHEMA_VERSION, **head.__dict__})
    else:
        emit(f"{head.seq}:{head.mac}")
