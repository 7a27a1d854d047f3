"""The `opsdash` command. Bare `opsdash` opens the dashboard; subcommands are the headless CLI.

One module per command group; each parses options, calls `opsdash.ops`, and renders. Textual is
imported only by the commands that open the dashboard, and each command's module only when it
runs (`common.COMMANDS`), so `opsdash validate` in a CI pipeline starts fast. Usage and config
errors exit 3 with one line on stderr, never a traceback.
"""

from __future__ import annotations

import gc
import os
import sys

import click

from opsdash.cli.common import EXIT_UNKNOWN, cli
from opsdash.cli.render import emit
from opsdash.core.errors import OpsdashError

__all__ = ["cli", "main"]


def _requested_format(argv: list[str]) -> tuple[str, str]:
    """(the command, the --format asked for) from the raw arguments, for failures before parsing."""
    fmt = ""
    for i, arg in enumerate(argv):
        if arg == "--format" and i + 1 < len(argv):
            fmt = argv[i + 1]
        elif arg.startswith("--format="):
            fmt = arg.split("=", 1)[1]
    command = next((a for a in argv if not a.startswith("-")), "opsdash")
    return command, fmt


def _fail(message: str, argv: list[str] | None = None) -> None:
    from opsdash.cli.formats import could_not_run

    command, fmt = _requested_format(argv if argv is not None else sys.argv[1:])
    document = could_not_run(fmt, command, message) if fmt else None
    if document is not None:  # machine consumers read stdout: tell them the run failed, there
        emit(document)
    emit(f"opsdash: error: {message}", err=True)
    sys.exit(EXIT_UNKNOWN)


def main(argv: list[str] | None = None) -> None:
    """Entry point: maps every failure to one clear line and exit code 3."""
    try:
        _run(argv)
    finally:
        if argv is None:  # the process ends next: spare it a cycle collection of every module's
            gc.freeze()  # objects at exit (about 25 ms of a 190 ms `validate`)


def _run(argv: list[str] | None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="opsdash", standalone_mode=False)
    except OpsdashError as exc:
        _fail(str(exc), argv)
    except click.UsageError as exc:
        hint = f"\nTry '{exc.ctx.command_path} --help' for help." if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", argv)
    except click.ClickException as exc:
        _fail(exc.format_message())
    except click.exceptions.Abort:
        emit("aborted", err=True)
        sys.exit(130)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(130)
    except Exception as exc:
        from opsdash.core.secrets import redactor

        detail = redactor.redact(f"{type(exc).__name__}: {exc}")
        if os.environ.get("OPSDASH_DEBUG"):
            import traceback

            emit(redactor.redact(traceback.format_exc()), err=True)
        _fail(f"internal error ({detail}); set OPSDASH_DEBUG=1 for the traceback and report it")
    sys.exit(rv if isinstance(rv, int) else 0)
