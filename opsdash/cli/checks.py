"""`opsdash check`: the live health checks, once or watched."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import chosen_format, common_options, format_option, seconds_option
from opsdash.cli.completion import check_names
from opsdash.cli.render import emit
from opsdash.ops.base import Ops


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...", shell_complete=check_names)
@common_options
@seconds_option(
    "--watch",
    at_least=1,
    help="Keep polling every SECONDS and redraw in place; shows the sustained state. A check that is "
    "failing or recovering is polled sooner, at its retry_interval (default a third of SECONDS).",
)
@click.option(
    "--count",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --watch: stop after N polls of each check (default: until interrupted).",
)
@format_option("junit", "github", "nagios")
@click.option("--no-history", is_flag=True, help="Do not record results in history.")
def check(
    names: tuple[str, ...],
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    watch: float | None,
    count: int | None,
    fmt: str,
    no_history: bool,
) -> None:
    """Run the profile's live health checks (all, or the NAMEs given) once and report.

    Check kinds: http, tcp, dns, tls, provider (a signed read-only iKhokha request) and webhook
    (the app must reject unsigned deliveries). Every failure has an error class, a recovery hint and
    a runbook. Credentials for provider and webhook checks come from the env files.

    With --watch, checks poll until interrupted (or --count polls each); a check goes down after
    failure_threshold consecutive failures and recovers after success_threshold successes, and
    alerts follow that sustained state, exactly as in the dashboard. With --json, --watch prints
    one JSON object per result (JSON lines). An edited profile or env file is read again within
    a second and every check polled with it at once; one that does not read is reported on stderr
    and the watch goes on as before.

    For monitoring systems, --format nagios prints one plugin line with perfdata (latency and
    metrics, thresholds from the conditions) and records nothing; junit and github suit CI.

    \b
    Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN, usage/config error, or the audit
    log not writable (a result not on the record does not count).
    With --watch: the worst sustained state when it stopped.
    """
    from opsdash.cli.render import checks_table, emit_report, verdict_line
    from opsdash.core.health.runner import run_sync
    from opsdash.core.profile import CertThresholds
    from opsdash.ops import checks

    fmt = chosen_format(fmt, as_json)
    ops = Ops.open(config, operator=operator)
    files = list(env_files) or None
    if count is not None and watch is None:
        raise click.UsageError("--count goes with --watch")
    if watch is not None:
        if fmt not in ("text", "json"):
            raise click.UsageError(f"--format {fmt} is for one sweep; --watch prints text or JSON lines")
        sys.exit(_watch(ops, names, files, from_env, watch, count, fmt == "json", not no_history))
    record = not no_history and fmt != "nagios"  # the monitoring system keeps the state
    report, results = run_sync(
        checks.run(ops, names=names, env_files=files, from_env=from_env, record=record)
    )
    if record:
        ops.audit.require_written("check")
    profile = ops.profile
    conditions = {c.name: c.conditions for c in profile.checks}
    severities = {c.name: c.severity for c in profile.checks}
    cert_days = {c.name: (c.warn_days, c.crit_days) for c in profile.checks if isinstance(c, CertThresholds)}
    if not emit_report(
        report, fmt, profile=None, conditions=conditions, severities=severities, cert_days=cert_days
    ):
        emit(verdict_line(report))
        checks_table(results)
    sys.exit(report.exit_code())


def _watch(
    ops: Ops,
    names: tuple[str, ...],
    env_files: list[Path] | None,
    from_env: bool | None,
    seconds: float,
    polls: int | None,
    as_json: bool,
    record: bool,
) -> int:
    import json

    from opsdash.cli.render import checks_table
    from opsdash.core.findings import worst
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.runner import run_sync
    from opsdash.core.health.state import SustainedState
    from opsdash.ops.checks import Watch
    from opsdash.ops.sources import Reload

    def on_reload(change: Reload) -> None:  # on stderr: --json keeps stdout to JSON lines
        if change.problem is not None:
            emit(f"opsdash: warning: {change.problem}; still checking as before", err=True)
        else:
            emit(f"opsdash: {', '.join(map(str, change.changed))} changed: read again", err=True)

    watch = Watch(
        ops,
        names=names,
        env_files=env_files,
        from_env=from_env,
        interval=seconds,
        polls=polls,
        record=record,
        on_reload=on_reload,
    )
    latest: dict[str, CheckResult] = {}
    redraw = sys.stdout.isatty()

    def on_result(result: CheckResult, state: SustainedState) -> None:
        latest[result.name] = result
        if as_json:
            emit(json.dumps({**result.to_dict(), "sustained": state.status.value}))
            return
        if len(latest) < len(watch.checks) and not redraw:
            return
        ordered = [latest[c.name] for c in watch.checks if c.name in latest]
        if redraw:
            click.echo("\x1b[H\x1b[2J", nl=False)
            emit(f"opsdash check --watch {seconds:g}s — {ops.profile.target.name} — Ctrl-C to stop")
        checks_table(ordered, watch.states)

    purge = None
    if record:  # a long-running recorder purges in the background, as the dashboard and serve do
        from opsdash.ops.retention import Background

        def problem(text: str) -> None:
            emit(f"opsdash: warning: {text}", err=True)

        purge = Background(ops, wait_for_recording=False, on_problem=problem).start()
    try:
        run_sync(watch.run(on_result))
    except KeyboardInterrupt:
        pass
    finally:
        watch.close()
        if purge is not None:
            purge.stop()  # after the batch in hand (its transaction commits or rolls back whole)
    return worst(s.status for s in watch.states.values()).exit_code
