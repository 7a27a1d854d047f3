"""`opsdash validate`: the environment gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import chosen_format, common_options, format_option
from opsdash.cli.render import emit
from opsdash.core.findings import Severity
from opsdash.ops.base import Ops


@click.command()
@common_options
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "crit"]),
    default="warn",
    show_default=True,
    help="Lowest severity that fails the run: with 'crit', warnings exit 0.",
)
@format_option("sarif", "github")
@click.option("--verbose", "-v", is_flag=True, help="Also show INFO findings.")
@click.option("--no-history", is_flag=True, help="Do not record this run in history.")
def validate(
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    fail_on: str,
    fmt: str,
    verbose: bool,
    no_history: bool,
) -> None:
    """Validate the target's production environment (no network).

    Reads the profile's env files (or --env-file), checks production mode, test mode, required
    variables, credentials, URLs and policy settings, prints a report grouped by category and records
    the run in history. Secrets are shown only as fingerprints. In CI, --format sarif feeds GitHub
    code scanning (findings point at the env file and line) and --format github annotates the run.

    \b
    Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN, usage/config error, or the audit
    log not writable (a result not on the record does not count).
    """
    from opsdash.cli.render import emit_report, report_text
    from opsdash.ops import validation

    fmt = chosen_format(fmt, as_json)
    ops = Ops.open(config, operator=operator)
    run = validation.run(ops, env_files=list(env_files) or None, from_env=from_env, record=not no_history)
    report = run.report
    if not no_history:
        ops.audit.require_written("validate")
    if not emit_report(report, fmt, profile=ops.config.path if ops.config else None):
        emit(report_text(report, min_severity=Severity.INFO if verbose else Severity.WARN))
    sys.exit(report.exit_code(Severity.parse(fail_on)))
