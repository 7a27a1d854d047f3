"""What every command shares: the root group, the common options, and opening `Ops`.

Each command parses its options, opens `Ops` (`Ops.open(--config)`), calls one `opsdash.ops`
function and renders the result; nothing here or in a command module touches the database, the
audit log or the network itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from opsdash import __version__

F = TypeVar("F", bound=Callable[..., Any])
EXIT_UNKNOWN = 3

# Each command's module, imported only when that command runs (or --help lists them all), so
# `opsdash history list` loads click, its own module and the history code, and nothing else.
COMMANDS = {
    "audit": "opsdash.cli.audit:audit",
    "check": "opsdash.cli.checks:check",
    "completion": "opsdash.cli.completion:completion",
    "config": "opsdash.cli.config:config_group",
    "demo": "opsdash.cli.demo:demo",
    "history": "opsdash.cli.history:history",
    "incident": "opsdash.cli.incident:incident",
    "init": "opsdash.cli.config:init",
    "preflight": "opsdash.cli.deploys:preflight",
    "runbook": "opsdash.cli.runbook:runbook",
    "secrets": "opsdash.cli.secrets:secrets",
    "serve": "opsdash.cli.serve:serve",
    "validate": "opsdash.cli.validate:validate",
    "verify-deploy": "opsdash.cli.deploys:verify_deploy_cmd",
    "web": "opsdash.cli.serve:web",
    "webhook": "opsdash.cli.webhook:webhook",
}


class LazyGroup(click.Group):
    """The root group: its commands are named in COMMANDS and imported on first use (click's
    documented pattern for lazily loaded subcommands)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, _, name = COMMANDS[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), name)
            assert isinstance(command, click.Command), COMMANDS[cmd_name]
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # click suggests among the loaded ones only
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx
            ) from None


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config",
        type=click.Path(path_type=Path),
        envvar="OPSDASH_CONFIG",
        help="Profile to use (its [opsdash] data_dir is where history and the audit log live). "
        "Default: ./opsdash.toml, then the user config directory.",
    )(f)


def env_options(f: F) -> F:
    """--config, --env-file and --from-env: which profile, and where the target's environment is."""
    options = [
        config_option,
        click.option(
            "--env-file",
            "env_files",
            multiple=True,
            type=click.Path(path_type=Path),
            help="Env file to read (repeatable, later wins); replaces the profile's env.files.",
        ),
        click.option(
            "--from-env",
            is_flag=True,
            default=None,
            help="Also read the process environment (inside the deployed environment or CI); with none "
            "of the profile's env files present, it alone is validated.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def operator_option(f: F) -> F:
    return click.option(
        "--operator", envvar="OPSDASH_OPERATOR", help="Who is running this. Default: OS user."
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Machine output on stdout, nothing else.")(f)


FORMAT_HELP = {
    "text": "for people",
    "json": "the report (as --json)",
    "sarif": "SARIF 2.1.0 for GitHub code scanning",
    "junit": "JUnit XML for CI test reports",
    "github": "GitHub Actions annotations",
    "nagios": "one Nagios/Icinga plugin line with perfdata (records nothing)",
}


def format_option(*formats: str) -> Callable[[F], F]:
    """--format text|json|<formats>; --json stays a shorthand for --format json."""
    names = ["text", "json", *formats]
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(names),
        default="text",
        show_default=True,
        help="Output: " + "; ".join(f"{n}: {FORMAT_HELP[n]}" for n in names) + ".",
    )


def seconds_option(
    name: str, *, at_least: float, at_most: float | None = None, default: float | None = None, help: str
) -> Callable[[F], F]:
    """An option that takes a number of seconds (SECONDS), within a range; a default is shown."""
    return click.option(
        name,
        type=click.FloatRange(at_least, at_most),
        default=default,
        show_default=default is not None,
        metavar="SECONDS",
        help=help,
    )


def count_option(*decls: str, most: int, help: str) -> Callable[[F], F]:
    """How many of the newest to show: -n N, 20 unless told."""
    return click.option(*decls, type=click.IntRange(1, most), default=20, show_default=True, help=help)


def _when(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """--since / --until as seconds since the epoch; a bad value is a usage error (exit 3)."""
    if value is None:
        return None
    import time

    from opsdash.ops.history import parse_when

    try:
        return parse_when(value, time.time())
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def window_options(f: F) -> F:
    """--since and --until (`incident list`, `history list`), as seconds since the epoch."""
    f = click.option(
        "--until",
        callback=_when,
        metavar="WHEN",
        help="Only up to this time: an ISO date or date-time (UTC unless it says), or a time back "
        "from now (30m, 2h, 7d).",
    )(f)
    return click.option(
        "--since",
        callback=_when,
        metavar="WHEN",
        help="Only from this time: an ISO date or date-time (UTC unless it says), or a time back "
        "from now (30m, 2h, 7d).",
    )(f)


def check_window(since: float | None, until: float | None) -> None:
    """--since later than --until is a usage error (it would list nothing, saying nothing why)."""
    if since is not None and until is not None and since > until:
        raise click.UsageError("--since is later than --until: no time is in both; swap them")


def chosen_format(fmt: str, as_json: bool) -> str:
    if as_json and fmt not in ("text", "json"):
        raise click.UsageError(f"--json and --format {fmt} disagree; pick one")
    return "json" if as_json else fmt


def common_options(f: F) -> F:
    """--config, --env-file, --from-env, --json and --operator, shared by the target commands."""
    return env_options(json_option(operator_option(f)))


@click.group(
    cls=LazyGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="opsdash")
@config_option
@click.option(
    "--server",
    metavar="URL",
    envvar="OPSDASH_SERVER",
    help="Open the dashboard on a running 'opsdash serve' (e.g. http://127.0.0.1:9477) instead of "
    "probing: its live verdict, checks, validation, alerts and runbook sessions. Add ?target=NAME "
    "when it serves several targets; with --config, the profile's target is the one shown.",
)
@click.option(
    "--token-env",
    metavar="NAME",
    help="With --server: the environment variable holding the service's token (default OPSDASH_SERVE_TOKEN).",
)
@click.pass_context
def cli(ctx: click.Context, config: Path | None, server: str | None, token_env: str | None) -> None:
    """Operations dashboard and deploy gate for a payment-taking web app.

    Run without a command to open the dashboard. Every command has --help.

    \b
    Deploy day:   opsdash validate    (environment gate, pipeline-friendly)
    History:      opsdash history list | show RUN | diff RUN_A RUN_B | purge | compact
    Incidents:    opsdash incident list | show REF | export REF
    Set-up:       opsdash init, opsdash config show | validate | schema
    Try it:       opsdash demo
    A service:    opsdash serve, and opsdash --server URL to attach to it

    Exit codes: 0 OK, 1 WARN, 2 CRIT, 3 UNKNOWN or usage/config error.
    """
    name = ctx.invoked_subcommand
    if name is not None:
        command = cli.get_command(ctx, name)
        if config is not None and command is not None:  # `opsdash --config X check` is `check --config X`
            ctx.default_map = {name: _config_defaults(command, str(config))}
        return
    if server:
        attach(server, token_env, config)
        return
    from opsdash.core.errors import ConfigError
    from opsdash.ops import early
    from opsdash.ops.paths import find_config

    require_terminal()
    try:
        path: Path | None = find_config(config)
    except ConfigError:
        path = None
    child = early.start(path) if path is not None else None  # before the UI is imported: see early.py
    from opsdash.tui.app import run_dashboard

    run_dashboard(path, early=child)


# What textual-serve (`opsdash web`) sets for each browser tab's dashboard process: Textual then
# speaks its packet protocol over the pipes, so pipes are the right thing there, not a mistake.
WEB_DRIVER = "textual.drivers.web_driver:WebDriver"


def attach(url: str, token_env: str | None, config: Path | None = None) -> None:
    """`opsdash --server URL`: the dashboard on the service's live picture; nothing probed here.
    With `--config` (or OPSDASH_CONFIG), the profile's target on the service (`Server.for_profile`).
    The token is taken out of the environment (nothing the dashboard starts inherits it) and
    registered with the redactor, so it is masked wherever it could appear."""
    import os

    from opsdash.core.secrets import redactor
    from opsdash.ops.attach import TOKEN_ENV, Server

    server = Server.parse(url)  # a malformed URL: exit 3 with one line, before any terminal work
    if config is not None:
        server = server.for_profile(config)  # a profile that does not load, or names another target
    variable = token_env or TOKEN_ENV
    if token_env is not None and token_env not in os.environ:
        raise click.UsageError(f"--token-env {token_env}: that environment variable is not set")
    token = os.environ.pop(variable, None) or None
    if token is not None:
        redactor.register(token)
    require_terminal()
    from opsdash.tui.app import run_attached

    run_attached(server, token)


def require_terminal() -> None:
    """The dashboard draws on a terminal. Without one (stdout or stdin redirected) it would draw
    into a pipe and never end: say so and stop, exit code 3. Under textual-serve's web driver the
    pipes are the browser's connection, and the dashboard runs."""
    import os
    import sys

    from opsdash.core.errors import OpsdashError

    served = os.environ.get("TEXTUAL_DRIVER") == WEB_DRIVER
    if not served and not (sys.stdout.isatty() and sys.stdin.isatty()):
        raise OpsdashError(
            "the dashboard needs a terminal, but stdout or stdin is not one; for scripts and CI use "
            "'opsdash validate', 'opsdash check' or 'opsdash preflight' (with --json)"
        )


def _config_defaults(command: click.Command, config: str) -> dict[str, Any]:
    """A default_map giving `command`, and every command below it, that takes --config this
    profile."""
    entry: dict[str, Any] = {}
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            if below := _config_defaults(sub, config):
                entry[name] = below
    if any(param.name == "config" for param in command.params):
        entry["config"] = config
    return entry
