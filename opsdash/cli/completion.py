"""`opsdash completion bash|zsh|fish`, and what the shells complete beyond commands and options:
check names, runbook ids and run ids, read from the profile the command line names (or the default
one). Completion never fails loudly: a profile that does not load completes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from opsdash.cli.common import cli
from opsdash.cli.render import emit
from opsdash.core.errors import OpsdashError


def _ops(ctx: click.Context) -> Any:
    from opsdash.ops.base import Ops

    config = ctx.params.get("config")
    return Ops.open(Path(config) if config else None, require=False)


def check_names(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    try:
        profile = _ops(ctx).profile_or_none
    except OpsdashError:
        return []
    return [
        CompletionItem(c.name, help=c.kind)
        for c in (profile.checks if profile else [])
        if c.name.startswith(incomplete)
    ]


def runbook_ids(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from opsdash.ops.runbooks import load_runbooks, runbook_dirs

    try:
        books, _problems = load_runbooks(runbook_dirs(_ops(ctx).profile_or_none))
    except OpsdashError:
        return []
    return [CompletionItem(b.id, help=b.title) for b in books if b.id.startswith(incomplete)]


def run_ids(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from opsdash.ops import history as past
    from opsdash.ops.base import Ops

    config = ctx.params.get("config")
    try:  # as `history show` reads: a profile broken elsewhere still completes its run ids
        ops = Ops.reading(Path(config) if config else None)
        runs = past.runs(ops, limit=50) if ops.has_history() else []
    except OpsdashError:
        return []
    items = [CompletionItem("latest", help="the newest run")] if "latest".startswith(incomplete) else []
    return items + [
        CompletionItem(r.run_id, help=f"{r.kind} {r.verdict.value}")
        for r in runs
        if r.run_id.startswith(incomplete)
    ]


@click.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash:  echo 'eval "$(opsdash completion bash)"' >> ~/.bashrc
    zsh:   echo 'eval "$(opsdash completion zsh)"' >> ~/.zshrc
    fish:  opsdash completion fish > ~/.config/fish/completions/opsdash.fish

    Commands, options and choices complete; so do check names for 'opsdash check', runbook ids for
    'runbook show' and 'runbook run', run ids for 'history show' and 'history diff', and demo
    faults, all read from the --config profile.

    \b
    Exit codes: 0 printed, 3 usage error.
    """
    from click.shell_completion import get_completion_class

    completer = get_completion_class(shell)
    assert completer is not None  # the Choice above admits only shells click knows
    emit(completer(cli, {}, "opsdash", "_OPSDASH_COMPLETE").source())
