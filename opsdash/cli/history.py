"""`opsdash history list|show|diff|purge|compact`: past runs, and their retention."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import check_window, config_option, count_option, json_option, window_options
from opsdash.cli.completion import run_ids
from opsdash.cli.render import emit, emit_json
from opsdash.core.findings import SCHEMA_VERSION, Severity
from opsdash.ops.base import Ops

KINDS = ("validate", "check", "preflight", "verify-deploy", "runbook")


@click.group()
def history() -> None:
    """Past runs kept in the local history database (the profile's data directory).

    list, show and diff need only the profile's [opsdash] table (data_dir, or OPSDASH_DATA_DIR):
    the rest of the profile is not validated there, so a profile broken elsewhere does not hide
    the history. purge and compact validate the whole profile, like every command that writes.
    """


@history.command("list")
@config_option
@json_option
@count_option("--limit", "-n", most=10_000, help="How many runs to show, newest first.")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    help="Only runs of this kind.",
)
@window_options
@click.option(
    "--verdict",
    type=click.Choice([s.value.lower() for s in Severity], case_sensitive=False),
    help="Only runs with this verdict.",
)
@click.option("--rule", metavar="RULE", help="Only runs with a finding of this rule id (secret-reused, ...).")
def history_list(
    config: Path | None,
    as_json: bool,
    limit: int,
    kind: str | None,
    since: float | None,
    until: float | None,
    verdict: str | None,
    rule: str | None,
) -> None:
    """List recent runs, newest first.

    \b
    Exit codes: 0 listed (none matching is 0 too), 3 usage/config error or unreadable history.
    """
    from opsdash.cli.render import runs_table
    from opsdash.ops import history as past

    check_window(since, until)
    runs = past.runs(
        Ops.reading(config),
        limit=limit,
        kind=kind,
        since=since,
        until=until,
        verdict=verdict.upper() if verdict else None,
        rule=rule,
    )
    if as_json:
        emit_json([{**r.__dict__, "verdict": r.verdict.value} for r in runs])
    elif not runs and any(v is not None for v in (kind, since, until, verdict, rule)):
        emit("no runs match these filters")
    else:
        runs_table(runs)


@history.command("show")
@click.argument("run", shell_complete=run_ids)
@config_option
@json_option
def history_show(run: str, config: Path | None, as_json: bool) -> None:
    """Show one run's report. RUN is an id, a unique prefix of one, `latest` or `latest~N`.

    \b
    Exit codes: 0 shown, 3 no such run or usage/config error.
    """
    from opsdash.cli.render import print_session, report_text
    from opsdash.ops import history as past

    detail = past.show(Ops.reading(config), run)
    if detail.session is not None:
        state = detail.session
        if as_json:
            emit_json(
                {
                    "schema_version": SCHEMA_VERSION,
                    **state.__dict__,
                    "status": state.status.value,
                    "steps": [{**s.__dict__, "status": s.status.value} for s in state.steps],
                }
            )
        else:
            print_session(state, detail.runbook)
        return
    assert detail.report is not None
    if as_json:
        emit_json(detail.report.to_dict())
    else:
        emit(report_text(detail.report))


@history.command("diff")
@click.argument("run_a", shell_complete=run_ids)
@click.argument("run_b", default="latest", shell_complete=run_ids)
@config_option
@json_option
@click.option(
    "--kind",
    type=click.Choice([k for k in KINDS if k != "runbook"]),
    help="latest and latest~N count runs of this kind only (latest~1 latest: the last two validates).",
)
def history_diff(run_a: str, run_b: str, config: Path | None, as_json: bool, kind: str | None) -> None:
    """What changed from RUN_A to RUN_B (default: the latest run).

    Lists new, resolved and changed findings, and env keys whose value changed (by fingerprint;
    values are never stored). Both runs must be of the same kind and target (a preflight and a
    validate check different things), and neither a runbook session, as in the History pane.

    \b
    Exit codes: 0 nothing changed, 1 something did, 3 runs that cannot be compared, or a
    usage/config error.
    """
    from opsdash.cli.render import diff_dict, diff_text
    from opsdash.ops import history as past

    c = past.diff(Ops.reading(config), run_a, run_b, kind=kind)
    if as_json:
        emit_json(diff_dict(c.a, c.b, c.diff))
    else:
        emit(diff_text(c.a, c.b, c.diff))
    sys.exit(0 if c.diff.empty else 1)


@history.command("purge")
@config_option
def history_purge(config: Path | None) -> None:
    """Purge everything older than the retention period now ([opsdash] history_retention_days).

    Recording commands already purge as they go, one small batch each after their run is recorded,
    and the dashboard and serve purge in the background; this catches up at once, for instance on
    a history left untouched for a long time. It goes in small batches, each a short transaction,
    so other opsdash commands keep recording meanwhile; progress goes to stderr.

    \b
    Exit codes: 0 purged (or nothing to purge), 3 usage/config error or unusable history.
    """
    from opsdash.ops import history as past
    from opsdash.storage.retention import Batch

    shown = [0, 0]  # runs purged, batches

    def progress(batch: Batch) -> None:
        shown[0] += batch.runs
        shown[1] += 1
        if shown[1] % 20 == 0:
            click.echo(f"  {shown[0]:,} runs purged so far", err=True)

    ops = Ops.open(config, require=False)
    gone = past.purge(ops, progress)
    days = ops.settings.history_retention_days
    emit(f"history purged: {gone:,} runs older than {days} days in {shown[1]:,} batches")


@history.command("compact")
@config_option
def history_compact(config: Path | None) -> None:
    """Rebuild the history database to give free space back (one full VACUUM).

    Retention already gives space back as it deletes; this is for a database an older opsdash made
    (without incremental vacuum) that is over 64 MiB. It needs free disk space of the file's size
    and blocks other opsdash commands while it runs.

    \b
    Exit codes: 0 compacted, 3 usage/config error or unusable history.
    """
    from opsdash.ops import history as past

    freed = past.compact(Ops.open(config, require=False))
    emit(f"history compacted: {freed / 2**20:.1f} MiB given back")
