"""`opsdash validate`: the environment gate."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import cli, common_options
from opsdash.cli.render import emit, emit_json
from opsdash.core.findings import Severity
from opsdash.ops.base import Ops


@cli.command()
@common_options
@click.option(
    "--fail-on",
    type=click.Choice(["warn", "crit"]),
    default="warn",
    show_default=True,
    help="Lowest severity that fails the run: with 'crit', warnings exit 0.",
)
@click.option("--verbose", "-v", is_flag=True, help="Also show INFO findings.")
@click.option("--no-history", is_flag=True, help="Do not record this run in history.")
def validate(
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    fail_on: str,
    verbose: bool,
    no_history: bool,
) -> None:
    """Validate the target's production environment (no network).

    Reads the profile's env files (or --env-file), checks production mode, test mode, required
    variables, credentials, URLs and policy settings, prints a report grouped by category and records
    the run in history. Secrets are shown only as fingerprints.

    \b
    Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN or usage/config error.
    """
    from opsdash.cli.render import report_text
    from opsdash.ops import validation

    ops = Ops.open(config, operator=operator)
    run = validation.run(ops, env_files=list(env_files) or None, from_env=from_env, record=not no_history)
    report = run.report
    if as_json:
        emit_json(report.to_dict())
    else:
        emit(report_text(report, min_severity=Severity.INFO if verbose else Severity.WARN))
    sys.exit(report.exit_code(Severity.parse(fail_on)))
