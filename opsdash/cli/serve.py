"""`opsdash serve` (the headless service for Prometheus and Alertmanager) and `opsdash web` (the
dashboard in a browser)."""

from __future__ import annotations

import os
import secrets
import shlex
import sys
from pathlib import Path

import click

from opsdash.cli.common import config_option, seconds_option
from opsdash.cli.render import emit
from opsdash.ops.base import Ops

DEFAULT_LISTEN = "127.0.0.1:9477"
WEB_PORT = 9478


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT, [IPv6]:PORT or :PORT (loopback) → (host, port)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise click.BadParameter(f"{text!r} is not HOST:PORT (e.g. 127.0.0.1:9477)", param_hint="--listen")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port_text)


SERVE_TOKEN_ENV = "OPSDASH_SERVE_TOKEN"  # noqa: S105 (the variable's name, not a token)


def serve_token(name: str | None) -> str | None:
    """The token /events needs, from the environment variable `name` (OPSDASH_SERVE_TOKEN unless
    told), taken out of the environment (nothing serve starts inherits it) and registered with the
    redactor (masked wherever it could appear). None when it is not set."""
    from opsdash.core.secrets import redactor
    from opsdash.ops.serve.events import MIN_TOKEN_LENGTH

    variable = name or SERVE_TOKEN_ENV
    if name is not None and name not in os.environ:
        raise click.UsageError(f"--token-env {name}: that environment variable is not set")
    token = os.environ.pop(variable, None) or None
    if token is None:
        return None
    redactor.register(token)
    if len(token) < MIN_TOKEN_LENGTH:
        raise click.UsageError(f"{variable} is {len(token)} characters; use at least {MIN_TOKEN_LENGTH}")
    return token


def is_loopback(host: str) -> bool:
    from opsdash.ops.serve.events import is_loopback as loopback

    return loopback(host)


@click.command()
@click.option(
    "--config",
    "configs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Profile to serve (repeatable: several targets in one process, each series labelled with its "
    "target). Default: as for every command (OPSDASH_CONFIG, ./opsdash.toml, the user config dir).",
)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Where /metrics, /probe and /healthz answer. Port 0 picks a free one (the URL is printed).",
)
@click.option(
    "--from-env",
    is_flag=True,
    default=None,
    help="Also read the process environment for the targets' credentials and validation.",
)
@click.option("--operator", envvar="OPSDASH_OPERATOR", help="Who runs the service. Default: OS user.")
@seconds_option(
    "--drain-timeout",
    at_least=0.1,
    at_most=600,
    default=10.0,
    help="On SIGTERM/SIGINT, how long the probes in flight get to finish before they are cancelled.",
)
@click.option("--no-validate", is_flag=True, help="Only watch the checks; do not validate on an interval.")
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    metavar="N",
    help="Most HTTP connections open at once. Default: a quarter of the open-file limit (ulimit -n), at "
    "most 1024; the rest stay with the probes, history and the audit log.",
)
@seconds_option(
    "--idle-timeout",
    at_least=0.1,
    at_most=3600,
    default=15.0,
    help="Close a connection that has not sent a complete request head this long after opening or after "
    "its last response.",
)
@click.option(
    "--token-env",
    metavar="NAME",
    help="The environment variable holding the token /events needs (default OPSDASH_SERVE_TOKEN, at "
    "least 16 characters). Needed for /events when listening beyond loopback; optional on loopback.",
)
@click.pass_context
def serve(
    ctx: click.Context,
    configs: tuple[Path, ...],
    listen: str,
    from_env: bool | None,
    operator: str | None,
    drain_timeout: float,
    no_validate: bool,
    max_connections: int | None,
    idle_timeout: float,
    token_env: str | None,
) -> None:
    """Run opsdash as a service: watch the checks, validate, alert, and serve /metrics.

    Polls each check on its interval on the same watch loop as the dashboard and 'check --watch'
    (history, audit log, alerts), validates the environment every [serve] validate_interval
    seconds (a critical finding raises validation-no-go through the profile's channels), and
    answers Prometheus on /metrics (blackbox_exporter's probe_* series, opsdash_check_state,
    opsdash_validation_findings, opsdash_gate, opsdash_alerts_firing, opsdash_audit_verified;
    labels target and check), /probe?target=CHECK (one check's series without those labels, as
    blackbox_exporter's /probe answers: its scrape config works unchanged, each check an
    instance), /healthz and /events (the live picture, pushed to dashboards attached with
    'opsdash --server URL').

    Listens on 127.0.0.1 unless --listen says otherwise; /metrics and /probe have no
    authentication. /events needs 'Authorization: Bearer TOKEN' when a token is set (the
    OPSDASH_SERVE_TOKEN variable, or the one --token-env names; never printed), and is closed
    without one beyond loopback. Prints its URL on stdout. Every endpoint answers GET and HEAD.
    Connections are capped (--max-connections) and idle ones closed (--idle-timeout), so a
    flood of clients may fail scrapes but never the probes, their history or the audit log.
    SIGTERM or SIGINT lets the probes in flight finish, records them and exits 0; SIGHUP reads
    the profiles again (a broken one keeps being served as it was).

    \b
    Exit codes: 0 stopped by a signal, 3 usage/config error (nothing started).
    """

    from opsdash.ops.serve import ServeOptions, Service

    host, port = parse_listen(listen)
    token = serve_token(token_env)
    paths: list[Path | None] = list(configs) or [ctx.find_root().params.get("config")]
    all_ops = [Ops.open(path, operator=operator) for path in paths]
    options = ServeOptions(
        host,
        port,
        from_env,
        drain_timeout,
        validate=not no_validate,
        max_connections=max_connections,
        idle_timeout=idle_timeout,
        token=token,
    )

    def announce(url: str) -> None:
        click.echo(url)
        sys.stdout.flush()
        targets = ", ".join(f"{o.profile.target.name} ({len(o.profile.checks)} checks)" for o in all_ops)
        emit(
            f"opsdash serve: {url}/metrics, {url}/probe, {url}/healthz and {url}/events; watching {targets}",
            err=True,
        )
        if not is_loopback(host):
            emit(
                f"opsdash serve: warning: listening on {host}, beyond this machine; /metrics has no "
                "authentication: firewall it or put it behind an authenticating proxy",
                err=True,
            )
            if token is None:
                emit(
                    f"opsdash serve: warning: no token ({SERVE_TOKEN_ENV} or --token-env): /events is "
                    "closed, so no dashboard can attach",
                    err=True,
                )

    from opsdash.core.health.runner import run_sync

    service = Service(all_ops, options, announce=announce)
    sys.exit(run_sync(service.run()))  # on uvloop where installed, as every probe runs


@click.command()
@config_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Any but a loopback address needs a token (OPSDASH_WEB_TOKEN or --new-token).",
)
@click.option("--port", type=click.IntRange(1, 65535), default=WEB_PORT, show_default=True)
@click.option(
    "--public-url",
    metavar="URL",
    help="The URL browsers use, when behind a reverse proxy (e.g. https://ops.example.com).",
)
@click.option(
    "--new-token",
    is_flag=True,
    help="Make a random token for this run and print it once, in the address to open.",
)
@click.option(
    "--server",
    metavar="URL",
    envvar="OPSDASH_SERVER",
    help="Each browser's dashboard attaches to this running 'opsdash serve' instead of probing "
    "(as 'opsdash --server URL'); its token, if it needs one, from OPSDASH_SERVE_TOKEN.",
)
def web(
    config: Path | None, host: str, port: int, public_url: str | None, new_token: bool, server: str | None
) -> None:
    """Open the dashboard in a browser (through textual-serve).

    Each browser tab runs its own dashboard process on this machine, as the user running this
    command. With --server, each is attached to that running 'opsdash serve' and probes nothing.
    It listens on 127.0.0.1 by default. WebSocket connections whose Origin is not this server's
    (or that send none) are refused, so a web page cannot drive the dashboard.

    With a token, the page (?token=...) and its WebSocket are refused without it. The token comes
    from the OPSDASH_WEB_TOKEN environment variable (at least 16 characters), or --new-token makes
    one and prints it once. Listening on any address but a loopback one needs a token. Other users
    of this machine can reach 127.0.0.1 too: on a shared machine use a token there as well.

    \b
    Exit codes: 0 stopped, 3 usage/config error.
    """
    from opsdash.cli.webserve import MIN_TOKEN_LENGTH, TOKEN_ENV, DashboardServer
    from opsdash.ops.paths import find_config

    path = find_config(config) if config is not None else None
    command = f"{shlex.quote(sys.executable)} -m opsdash"
    if server:
        from opsdash.ops.attach import Server

        attached = Server.parse(server)  # a bad URL: exit 3 here and now, not in each browser tab
        if path is not None:
            attached.for_profile(path)  # likewise a profile that does not load or names another target
        command += f" --server {shlex.quote(server.strip())}"
    if path is not None:  # attached too: the profile picks its target on the service
        command += f" --config {shlex.quote(str(path.resolve()))}"
    # Out of the environment, so the dashboards, and whatever their runbooks run, never inherit it
    token = os.environ.pop(TOKEN_ENV, None) or None
    if new_token:
        token = secrets.token_urlsafe(32)
    elif token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise click.UsageError(f"{TOKEN_ENV} is {len(token)} characters; use at least {MIN_TOKEN_LENGTH}")
    if token is None and not is_loopback(host):
        raise click.UsageError(
            f"listening on {host}, beyond this machine, needs a token: set {TOKEN_ENV} "
            "or pass --new-token (or listen on 127.0.0.1 behind an authenticating proxy)"
        )
    web_server = DashboardServer(command, host=host, port=port, public_url=public_url, token=token)
    if new_token:  # the one time it is shown: the server registered it with the redactor just now
        click.echo(f"opsdash web: open {web_server.public_url}/?token={token} (Ctrl-C stops)", err=True)
    elif token is not None:
        emit(f"opsdash web: open {web_server.public_url}/?token=<{TOKEN_ENV}> (Ctrl-C stops)", err=True)
    else:
        emit(f"opsdash web: open {web_server.public_url} (Ctrl-C stops)", err=True)
    web_server.serve()
