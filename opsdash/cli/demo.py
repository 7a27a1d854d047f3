"""`opsdash demo` and `opsdash demo fault`: the simulated BetaSkill deployment."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path
from typing import Any

import click

from opsdash.cli.common import config_option, require_terminal
from opsdash.cli.render import emit
from opsdash.demo import FAULTS
from opsdash.ops.base import Ops


@click.group(invoke_without_command=True)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    type=click.Choice(sorted(FAULTS)),
    help="Start with this fault on (repeatable).",
)
@click.option(
    "--no-tui",
    is_flag=True,
    help="Only run the simulated target: print its profile path and serve until interrupted.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace for the demo profile and env file. Default: a new temp directory.",
)
@click.pass_context
def demo(ctx: click.Context, faults: tuple[str, ...], no_tui: bool, directory: Path | None) -> None:
    """Try opsdash on a simulated BetaSkill deployment (nothing leaves this machine).

    Starts a BetaSkill app and an iKhokha API on 127.0.0.1 (HTTPS, with a CA made at start-up),
    writes a matching profile and env file with fake credentials, and opens the dashboard on it.

    \b
    Exit codes: 0 after you quit, 3 the demo could not start.
    """
    if ctx.invoked_subcommand is not None:
        return
    import asyncio
    import tempfile

    from opsdash.demo.control import BackgroundDemo, serve
    from opsdash.demo.target import claim_workdir

    data_dir = Ops.open(None, require=False).data_dir
    if directory is not None:
        claim_workdir(directory)  # before anything starts: a clear error, not a half-started demo
    workdir = directory or Path(tempfile.mkdtemp(prefix="opsdash-demo-"))
    if no_tui:

        def ready(profile: Path, target: Any, _loop: Any, _stop: Any) -> None:
            click.echo(str(profile))
            sys.stdout.flush()
            emit(
                f"demo running: app {target.app.base_url}, iKhokha API {target.api.base_url}; "
                f"faults on: {', '.join(sorted(target.faults)) or 'none'}",
                err=True,
            )
            emit(target.repo_note, err=True)
            emit(f"try: opsdash check --config {profile}   |   Ctrl-C stops the demo", err=True)

        asyncio.run(serve(workdir, data_dir, faults, ready))
        return
    from opsdash.tui.app import run_dashboard

    require_terminal()
    background = BackgroundDemo(workdir, data_dir, faults)
    try:
        assert background.profile is not None
        run_dashboard(background.profile, demo=True)
    finally:
        background.stop()


demo.help = (
    inspect.cleandoc(demo.help or "")
    + "\n\n\b\nFaults (switch them while it runs with 'opsdash demo fault NAME on|off'):\n"
    + "\n".join(f"  {name:22} {text}" for name, text in FAULTS.items())
)


@demo.command("fault")
@click.argument("name", required=False, type=click.Choice(sorted(FAULTS)))
@click.argument("state", required=False, type=click.Choice(["on", "off"]))
@config_option
def demo_fault(name: str | None, state: str | None, config: Path | None) -> None:
    """Switch a fault of the running demo on or off; with no arguments, list the faults.

    The running demo is found through its data directory: run this in the same
    environment as 'opsdash demo', or pass the demo's profile with --config: the opsdash.toml in
    its workspace (--dir), whose path 'opsdash demo --no-tui' prints.

    \b
    Exit codes: 0 switched or listed, 3 no running demo or usage error.
    """
    from opsdash.demo.control import list_faults, switch_fault

    ops = Ops.open(config, require=False)
    if name is None:
        active = set(list_faults(ops.data_dir))
        for fault, text in FAULTS.items():
            emit(f"{'on ' if fault in active else 'off'}  {fault:22} {text}")
        return
    if state is None:
        raise click.UsageError("say 'on' or 'off' after the fault name")
    now_on = switch_fault(ops, name, state == "on")
    emit(f"{name} is {state}; faults on: {', '.join(sorted(now_on)) or 'none'}")


@demo.command("incident")
@config_option
@click.option(
    "--interval",
    type=click.FloatRange(1, 60),
    default=2,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between the checks' polls while it plays.",
)
def demo_incident(config: Path | None, interval: float) -> None:
    """Play a scripted incident on the running demo, for real (a minute or less).

    The iKhokha API goes down (the provider-down fault); the one watch loop sees ikhokha-api fail
    until it is down and the alert fires; a rollback runbook runs through the runbook executor,
    its command switching the fault off; the watch loop sees the provider recover and the alert
    resolves. Everything lands in the record as any incident does: the dashboard's Timeline pane
    (7) and 'opsdash incident show' show it.

    \b
    Exit codes: 0 played, 3 no running demo, or the incident stalled.
    """
    import shlex
    import tempfile

    from opsdash.demo.control import read_state, switch_fault
    from opsdash.demo.replay import Script, play
    from opsdash.ops.incidents import Query, incidents, took

    state = read_state(Ops.open(config, require=False).data_dir)
    profile = Path(state["profile"])
    ops = Ops.open(profile)
    fix = (
        f"{shlex.quote(sys.executable)} -m opsdash demo fault provider-down off "
        f"--config {shlex.quote(str(profile))}"
    )

    def outage() -> None:
        switch_fault(ops, "provider-down", True)

    emit("provider-down on: waiting for ikhokha-api to go down and the alert to fire ...", err=True)
    played = play(
        ops,
        Script("ikhokha-api", outage, fix),
        Path(tempfile.mkdtemp(prefix="opsdash-incident-")),
        interval=interval,
    )
    latest = incidents(ops, Query(limit=1))[-1]
    phases = "  ".join(f"{p.name} {took(p.seconds)}" for p in latest.phases)
    emit(f"incident {latest.id} played: rollback session {played.session_id}; {phases}")
    emit(f"see: opsdash incident show {latest.id} --config {profile}")
