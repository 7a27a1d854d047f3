"""The `opsdash` command. Bare `opsdash` opens the dashboard; subcommands are the headless CLI.

Textual is imported only by the commands that open the dashboard, so `opsdash validate` in a CI
pipeline starts fast. Usage and config errors exit 3 with one line on stderr, never a traceback.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from opsdash import __version__
from opsdash.config import LoadedConfig, OpsdashSettings, find_config, load_config, load_settings
from opsdash.core.findings import Severity
from opsdash.core.secrets import redactor
from opsdash.errors import ConfigError, OpsdashError
from opsdash.output import emit, emit_json

F = TypeVar("F", bound=Callable[..., Any])
EXIT_UNKNOWN = 3

EXIT_CODES_HELP = "Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN or usage/config error."


@dataclass
class Session:
    """What a command needs: the config (when it has one), settings and the operator."""

    config: LoadedConfig | None
    settings: OpsdashSettings
    operator: str

    def require_config(self) -> LoadedConfig:
        if self.config is None:  # pragma: no cover - guarded by open_session(require=True)
            raise ConfigError("no configuration loaded")
        return self.config


def open_session(config: Path | None, operator: str | None, *, require: bool = True) -> Session:
    try:
        path = find_config(config)
    except ConfigError:
        if require:
            raise
        settings = load_settings(operator=operator)
        return Session(None, settings, settings.resolved_operator())
    loaded = load_config(path)
    settings = load_settings(loaded.file_table, operator=operator)
    return Session(loaded, settings, settings.resolved_operator())


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config",
        type=click.Path(path_type=Path),
        envvar="OPSDASH_CONFIG",
        help="Profile to use. Default: ./opsdash.toml, then the user config directory.",
    )(f)


def common_options(f: F) -> F:
    """--config, --env-file, --from-env, --json and --operator, shared by the target commands."""
    options = [
        config_option,
        click.option(
            "--env-file",
            "env_files",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Env file to validate (repeatable, later wins); replaces the profile's env.files.",
        ),
        click.option(
            "--from-env",
            is_flag=True,
            default=None,
            help="Also read the process environment (inside the deployed environment or CI).",
        ),
        click.option("--json", "as_json", is_flag=True, help="Machine output on stdout, nothing else."),
        click.option("--operator", envvar="OPSDASH_OPERATOR", help="Who is running this. Default: OS user."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine output on stdout, nothing else.")(f)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="opsdash")
@config_option
@click.pass_context
def cli(ctx: click.Context, config: Path | None) -> None:
    """Operations dashboard and deploy gate for a payment-taking web app.

    Run without a command to open the dashboard. Every command has --help.

    \b
    Deploy day:   opsdash validate    (environment gate, pipeline-friendly)
    History:      opsdash history list | show RUN | diff RUN_A RUN_B
    Set-up:       opsdash init, opsdash config show | validate | schema
    Try it:       opsdash demo

    Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN or usage/config error.
    """
    if ctx.invoked_subcommand is None:
        from opsdash.tui.app import run_dashboard

        try:
            path: Path | None = find_config(config)
        except ConfigError:
            path = None
        run_dashboard(path)


# ---------------------------------------------------------------- validate


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
    from opsdash.output import report_text
    from opsdash.services import validate_and_record

    session = open_session(config, operator)
    run = validate_and_record(
        session.require_config(),
        session.settings,
        session.operator,
        env_files=list(env_files) or None,
        from_env=from_env,
        record=not no_history,
    )
    report = run.report
    if as_json:
        emit_json(report.to_dict())
    else:
        emit(report_text(report, min_severity=Severity.INFO if verbose else Severity.WARN))
    sys.exit(report.exit_code(Severity.parse(fail_on)))


# ---------------------------------------------------------------- history


@cli.group()
def history() -> None:
    """Past runs kept in the local history database (OPSDASH_DATA_DIR)."""


def _history(config: Path | None) -> Any:
    from opsdash.storage.history import History

    session = open_session(config, None, require=False)
    return History.open(session.settings.resolved_data_dir())


@history.command("list")
@config_option
@json_option
@click.option(
    "--limit",
    "-n",
    default=20,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help="How many runs to show, newest first.",
)
@click.option("--kind", help="Only runs of this kind (validate, ...).")
def history_list(config: Path | None, as_json: bool, limit: int, kind: str | None) -> None:
    """List recent runs, newest first."""
    from opsdash.output import runs_table

    with _history(config) as h:
        runs = h.list_runs(limit=limit, kind=kind)
    if as_json:
        emit_json([{**r.__dict__, "verdict": r.verdict.value} for r in runs])
    else:
        emit(runs_table(runs))


@history.command("show")
@click.argument("run")
@config_option
@json_option
def history_show(run: str, config: Path | None, as_json: bool) -> None:
    """Show one run's report. RUN is an id, a unique prefix of one, `latest` or `latest~N`."""
    from opsdash.output import report_text

    with _history(config) as h:
        report = h.report(h.resolve(run))
    if as_json:
        emit_json(report.to_dict())
    else:
        emit(report_text(report))


@history.command("diff")
@click.argument("run_a")
@click.argument("run_b", default="latest")
@config_option
@json_option
def history_diff(run_a: str, run_b: str, config: Path | None, as_json: bool) -> None:
    """What changed from RUN_A to RUN_B (default: the latest run).

    Lists new, resolved and changed findings, and env keys whose value changed (by fingerprint;
    values are never stored). Exit code 0 when nothing changed, 1 when something did.
    """
    from opsdash.core.diff import diff_runs
    from opsdash.output import diff_dict, diff_text

    with _history(config) as h:
        a, b = h.resolve(run_a), h.resolve(run_b)
        diff = diff_runs(
            h.findings(a.run_id),
            h.findings(b.run_id),
            {k: v.fingerprint for k, v in h.env_keys(a.run_id).items()},
            {k: v.fingerprint for k, v in h.env_keys(b.run_id).items()},
        )
    if as_json:
        emit_json(diff_dict(a, b, diff))
    else:
        emit(diff_text(a, b, diff))
    sys.exit(0 if diff.empty else 1)


# ---------------------------------------------------------------- config and init


@cli.group("config")
def config_group() -> None:
    """Inspect and check opsdash's configuration and the target profile."""


@config_group.command("show")
@config_option
@json_option
def config_show(config: Path | None, as_json: bool) -> None:
    """Every setting and profile value with where it came from (secrets masked)."""
    from opsdash.config_report import config_rows

    session = open_session(config, None)
    rows = config_rows(session.require_config(), session.settings)
    if as_json:
        emit_json([{"key": k, "value": v, "source": s} for k, v, s in rows])
        return
    width = max(len(k) for k, _, _ in rows)
    emit(f"config file: {session.require_config().path}")
    for key, value, source in rows:
        emit(f"{key:{width}}  {value}  " + click.style(f"[{source}]", dim=True))


@config_group.command("validate")
@config_option
@json_option
def config_validate(config: Path | None, as_json: bool) -> None:
    """Check the config file; list every problem with file and line. Exit 0 valid, 3 invalid."""
    from opsdash.config import parse_config, read_config_text

    path = find_config(config)
    parsed, problems = parse_config(path, read_config_text(path))
    if as_json:
        emit_json({"path": str(path), "valid": not problems, "problems": problems})
    elif problems:
        for problem in problems:
            emit(problem, err=True)
    else:
        assert parsed is not None
        emit(
            f"{path}: valid profile for {parsed.target.name} ({parsed.target.environment}): "
            f"{len(parsed.env.required)} required variables, {len(parsed.policy)} policies"
        )
        missing = [str(f) for f in load_config(path).profile.env.files if not f.exists()]
        if missing:
            emit(f"note: env file(s) not found here: {', '.join(missing)} (use --env-file or --from-env)")
    sys.exit(EXIT_UNKNOWN if problems else 0)


@config_group.command("schema")
def config_schema_cmd() -> None:
    """Print the JSON Schema of opsdash.toml (for editors and CI linting)."""
    from opsdash.config import config_schema

    emit_json(config_schema())


@cli.command()
@click.option("--force", is_flag=True, help="Overwrite an existing opsdash.toml.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=".",
    help="Project directory to inspect and write into.",
)
def init(force: bool, directory: Path) -> None:
    """Write a starter opsdash.toml for the project in the current directory.

    Detects env files (.env.production, .env, .env.example, .env.development), VITE_-style
    client-exposed variables, secrets, URL variables and an iKhokha provider. Only variable names are
    read into the profile, never values. Review the file, then run 'opsdash validate'.
    """
    from opsdash.init import write_profile

    path = write_profile(directory, force=force)
    emit(f"wrote {path}")
    emit("next: review it, then run 'opsdash config validate' and 'opsdash validate'")


# ---------------------------------------------------------------- demo


@cli.command()
@click.option("--no-tui", is_flag=True, help="Only write the demo workspace and print its profile path.")
def demo(no_tui: bool) -> None:
    """Open the dashboard on a built-in BetaSkill demo (fake values, nothing leaves this machine)."""
    import tempfile

    from opsdash.demo import write_demo_workspace

    workdir = Path(tempfile.mkdtemp(prefix="opsdash-demo-"))
    profile = write_demo_workspace(workdir)
    if no_tui:
        emit(str(profile))
        return
    from opsdash.tui.app import run_dashboard

    run_dashboard(profile, demo=True)


# ---------------------------------------------------------------- entry point


def _fail(message: str) -> None:
    emit(f"opsdash: error: {message}", err=True)
    sys.exit(EXIT_UNKNOWN)


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps every failure to one clear line and exit code 3."""
    try:
        rv = cli.main(args=argv, prog_name="opsdash", standalone_mode=False)
    except OpsdashError as exc:
        _fail(str(exc))
    except click.UsageError as exc:
        hint = f"\nTry '{exc.ctx.command_path} --help' for help." if exc.ctx else ""
        emit(f"opsdash: error: {exc.format_message()}{hint}", err=True)
        sys.exit(EXIT_UNKNOWN)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Abort:
        emit("aborted", err=True)
        sys.exit(130)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:
        detail = redactor.redact(f"{type(exc).__name__}: {exc}")
        if os.environ.get("OPSDASH_DEBUG"):
            emit(redactor.redact(traceback.format_exc()), err=True)
        _fail(f"internal error ({detail}); set OPSDASH_DEBUG=1 for the traceback and report it")
    sys.exit(rv if isinstance(rv, int) else 0)
