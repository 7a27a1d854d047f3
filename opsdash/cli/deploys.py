"""`opsdash preflight` and `opsdash verify-deploy`: the deploy gates."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import chosen_format, common_options, format_option, seconds_option
from opsdash.cli.render import emit
from opsdash.core.findings import Report
from opsdash.ops.base import Ops


def _gate_output(report: Report, fmt: str, ops: Ops, *, recorded: bool = True) -> None:
    from opsdash.cli.render import emit_report, report_text
    from opsdash.core.readiness import gate

    if recorded:
        ops.audit.require_written(report.kind)
    label = gate(report)
    profile = ops.config.path if ops.config else None
    if emit_report(report, fmt, profile=profile, extra={"gate": label}):
        return
    colour = {"GO": "green", "NO-GO": "red"}.get(label, "magenta")
    emit(click.style(label, fg=colour, bold=True) + f"  {report.kind} for {report.target}")
    emit(report_text(report))
    if report.summary.get("next"):
        emit(click.style(f"next: {report.summary['next']}", fg="cyan"))


def progress_to_stderr(message: str) -> None:
    print(f"  … {message}", file=sys.stderr, flush=True)


@click.command()
@common_options
@format_option("sarif", "junit", "github")
@click.option("--no-history", is_flag=True, help="Do not record this run (nor alert on it).")
@click.option(
    "--no-live",
    is_flag=True,
    help="Do not trace the live site (base_url and the assets it serves) for the target's secrets.",
)
def preflight(
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    fmt: str,
    no_history: bool,
    no_live: bool,
) -> None:
    """The pre-deploy go/no-go: environment validation, every live check (TLS and the webhook
    self-test among them), the live site traced for the target's secrets (base_url's HTML and every
    script, stylesheet, module preload and source map it serves) and rollback readiness, as one
    verdict with every reason listed.
    --format sarif feeds GitHub code scanning, junit a CI test report, github PR annotations.

    Recorded in history (a green preflight is the baseline verify-deploy compares with) and the
    audit log; a NO-GO raises an alert.

    \b
    Exit codes: 0 GO, 1 GO with warnings, 2 NO-GO, 3 UNKNOWN, usage/config error, or the
    audit log not writable.
    """
    from opsdash.ops.deploys import preflight as run_preflight

    fmt = chosen_format(fmt, as_json)
    ops = Ops.open(config, operator=operator)
    report = run_preflight(
        ops,
        env_files=list(env_files) or None,
        from_env=from_env,
        record=not no_history,
        live=not no_live,
        progress=progress_to_stderr if fmt == "text" else lambda _m: None,
    )
    _gate_output(report, fmt, ops, recorded=not no_history)
    sys.exit(report.exit_code())


@click.command("verify-deploy")
@common_options
@seconds_option("--window", at_least=1, default=300, help="How long to wait for the checks to settle.")
@seconds_option("--interval", at_least=0.5, default=10, help="Seconds between sweeps of all checks.")
@click.option(
    "--stable",
    type=click.IntRange(1, 100),
    default=3,
    show_default=True,
    metavar="N",
    help="Consecutive passing sweeps that count as settled.",
)
@click.option(
    "--expect-version", metavar="V", help="The release that must now be served ([deploy] version_url)."
)
@click.option(
    "--baseline",
    default="last-ok",
    show_default=True,
    metavar="last-ok|last|RUN",
    help="The run to compare with: the newest preflight or verify-deploy that ended OK, the newest "
    "whatever its verdict, or a run (id, prefix, latest~N) of a check, preflight or verify-deploy.",
)
@format_option("junit", "github")
def verify_deploy_cmd(
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
    operator: str | None,
    window: float,
    interval: float,
    stable: int,
    expect_version: str | None,
    baseline: str,
    fmt: str,
) -> None:
    """After a deploy: watch the checks until they settle, confirm the served release, and compare
    with the baseline run, by default the last one that ended OK (latency regressions, metrics that
    fell, certificates that now expire sooner, env values whose fingerprint changed). On failure it
    points to the rollback runbook.

    \b
    Exit codes: 0 OK, 1 WARN, 2 CRIT (roll back), 3 UNKNOWN, usage/config error, or the
    audit log not writable.
    """
    from opsdash.ops.deploys import verify_deploy

    fmt = chosen_format(fmt, as_json)
    ops = Ops.open(config, operator=operator)
    report = verify_deploy(
        ops,
        window=window,
        interval=interval,
        stable=stable,
        expect_version=expect_version,
        baseline=baseline,
        env_files=list(env_files) or None,
        from_env=from_env,
        progress=progress_to_stderr if fmt == "text" else lambda _m: None,
    )
    _gate_output(report, fmt, ops)
    sys.exit(report.exit_code())
