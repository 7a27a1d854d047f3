"""`opsdash history list|show|diff|purge|compact|migrate`: past runs, their retention, and moving them
into a team database."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import click

from opsdash.cli.common import config_option, count_option, json_option, window_options
from opsdash.cli.completion import run_ids
from opsdash.cli.render import emit, emit_json
from opsdash.core.findings import SCHEMA_VERSION, Severity
from opsdash.ops.base import Ops

KINDS = ("validate", "check", "preflight", "verify-deploy", "runbook")


@click.group()
def history() -> None:
    """Past runs kept in the history database: the data directory's SQLite file, or the team's
    PostgreSQL database when [opsdash] database (OPSDASH_DATABASE_URL) is set.

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
    Exit codes: 0 listed, 3 usage/config error or unreadable history.
    """
    from opsdash.cli.render import runs_table
    from opsdash.ops import history as past

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


@history.command("migrate")
@config_option
@click.option(
    "--to",
    "to",
    metavar="URL",
    help="The team database: postgresql://user:password@host:5432/dbname. Default: the one set "
    "([opsdash] database or OPSDASH_DATABASE_URL).",
)
def history_migrate(config: Path | None, to: str | None) -> None:
    """Copy this machine's history (the data directory's SQLite file) into a team's PostgreSQL
    database: runs, check results, findings, runbook sessions, alerts, audit anchors, the webhook
    replay cache, the credential trace's record and the dashboard's settled verdicts.

    Re-running it copies nothing twice (a run is copied only when its id is not there yet), so it
    can be run again after an interruption, or once more after the last local run before switching
    `database =` on. Progress goes to stderr; the password is never shown.

    \b
    Exit codes: 0 copied (or nothing left to copy), 3 usage/config error, no local history, or a
    database that cannot be reached or written.
    """
    from opsdash.core.errors import InputError
    from opsdash.ops import paths
    from opsdash.storage.history import DB_NAME, History
    from opsdash.storage.moving import copy_history

    ops = Ops.reading(config)
    url = to if to is not None else ops.database
    if not url:
        raise InputError(
            "history migrate: no database to copy into: pass --to postgresql://user:password@host/dbname "
            "(or set [opsdash] database / OPSDASH_DATABASE_URL)"
        )
    url = paths.check_database_url(url)
    source_path = ops.data_dir / DB_NAME
    if not source_path.is_file():
        raise InputError(f"{source_path}: no local history to copy (nothing has been recorded here)")
    show = _progress_printer()
    with (
        History(source_path, integrity_check=False) as source,
        History.open(ops.data_dir, database=url) as target,
    ):
        moved = copy_history(source, target, show)
    emit(
        f"history migrated to {target.location}: {moved.runs:,} runs copied "
        f"({moved.check_results:,} check results, {moved.findings:,} findings), {moved.runs_there:,} "
        f"already there; {moved.sessions:,} runbook sessions, {moved.alerts:,} alerts, "
        f"{moved.anchors:,} audit anchors, {moved.webhooks:,} webhook records, "
        f"{moved.trace_scans:,} trace scans, {moved.verdicts:,} settled verdicts"
    )


def _progress_printer() -> Callable[[int, int], None]:
    """A progress bar on stderr: redrawn in place on a terminal, a line each tenth otherwise."""
    tty = sys.stderr.isatty()
    last = [-1]

    def show(done: int, total: int) -> None:
        tenth = 10 * done // total if total else 10
        if tty:
            filled = 30 * done // total if total else 30
            end = "\n" if done >= total else ""
            click.echo(
                f"\r  [{'#' * filled}{'.' * (30 - filled)}] {done:,}/{total:,} runs", err=True, nl=False
            )
            if end:
                click.echo("", err=True)
        elif tenth != last[0]:
            last[0] = tenth
            click.echo(f"  migrating: {done:,} of {total:,} runs ({10 * tenth}%)", err=True)

    return show
