"""`opsdash runbook list|show|check|run`: guided runbooks in a plain terminal."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opsdash.cli.common import (
    EXIT_UNKNOWN,
    config_option,
    env_options,
    json_option,
    operator_option,
)
from opsdash.cli.completion import runbook_ids
from opsdash.cli.render import emit, emit_json
from opsdash.ops.base import Ops

if TYPE_CHECKING:
    from opsdash.storage.rows import SessionRow


def _as_dict(row: SessionRow | None) -> dict[str, Any] | None:
    return None if row is None else dataclasses.asdict(row)


@click.group()
def runbook() -> None:
    """Guided incident and deploy runbooks (Markdown files with check gates)."""


@runbook.command("list")
@config_option
@json_option
def runbook_list(config: Path | None, as_json: bool) -> None:
    """List the runbooks from the profile's runbook directories and the shipped ones.

    \b
    Exit codes: 0 listed, 3 usage/config error.
    """
    from opsdash.ops.runbooks import catalogue

    books, problems, last, _held = catalogue(Ops.open(config, require=False))
    if as_json:
        emit_json(
            [
                {
                    "id": b.id,
                    "title": b.title,
                    "severity": b.severity,
                    "steps": len(b.steps),
                    "path": str(b.path),
                    "last_session": _as_dict(last[b.id]),
                }
                for b in books
            ]
        )
        return
    from opsdash.cli.render import cell, emit_table, table, width, wrapped

    def when(s: SessionRow | None) -> str:
        return f"{s.status} {s.started_at[:19].replace('T', ' ')}" if s else "never"

    if width() < 90:  # narrow: two lines a runbook, nothing cut
        for b in books:
            emit(f"{b.id}  {b.severity}  {len(b.steps)} steps")
            for line in wrapped(f"{b.title} · last: {when(last[b.id])}", "    "):
                emit(click.style(line, dim=True))
    else:
        nowrap = {"no_wrap": True}
        t = table(("ID", nowrap), ("SEV", nowrap), ("STEPS", {"justify": "right"}), "LAST SESSION", "TITLE")
        for b in books:
            t.add_row(cell(b.id), cell(b.severity), cell(len(b.steps)), cell(when(last[b.id])), cell(b.title))
        emit_table(t)
    for problem in problems:
        emit(f"warning: {problem} (run 'opsdash runbook check')", err=True)


@runbook.command("show")
@click.argument("ref", metavar="ID|PATH", shell_complete=runbook_ids)
@config_option
def runbook_show(ref: str, config: Path | None) -> None:
    """Show a runbook: parameters and every step with its command or check gate.

    \b
    Exit codes: 0 shown, 3 no such runbook or an unreadable one.
    """
    from opsdash.ops.runbooks import find_runbook

    book = find_runbook(ref, Ops.open(config, require=False).profile_or_none)
    emit(click.style(f"{book.title}  ({book.id}, {book.severity})", bold=True))
    emit(f"  {book.summary}")
    emit(f"  file: {book.path}")
    if book.exclusive:
        emit(f"  exclusive: {book.exclusive} (one active session at a time per target)")
    for p in book.parameters:
        rules = (
            f" pattern {p.pattern}" if p.pattern else (f" one of {', '.join(p.choices)}" if p.choices else "")
        )
        emit(f"  parameter {p.name}: {p.prompt}{rules}" + (f" (default {p.default})" if p.default else ""))
    for step in book.steps:
        extra = "" if step.kind == "manual" else f"  on failure: {step.on_fail}"
        emit(
            f"\n{step.index + 1}. [{step.kind}] {step.title}  #{step.id}{extra}"
            + ("  (main path ends)" if step.end else "")
        )
        if step.action:
            emit("\n".join("     " + line for line in step.action.rstrip().splitlines()))


@runbook.command("check")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@config_option
def runbook_check(paths: tuple[Path, ...], config: Path | None) -> None:
    """Lint runbooks: front matter, check names (against the profile), gotos, unreachable steps,
    undeclared parameters, parameter examples and suggestions, code blocks never closed, and sizes
    no runbook needs (over 200 steps, 50 parameters, a 64 KiB block or a 512 KiB file). With no
    PATH, every runbook opsdash would offer. `runbook run` refuses a runbook with any of these.

    \b
    Exit codes: 0 all clean, 3 problems found (each as file:line) or usage/config error.
    """
    from opsdash.ops.runbooks import lint_paths, runbook_dirs

    profile = Ops.open(config, require=False).profile_or_none
    targets = list(paths) or runbook_dirs(profile)
    names = [c.name for c in profile.checks] if profile else None
    count, problems = lint_paths(targets, names)
    for problem in problems:
        emit(problem, err=True)
    if names is None:
        emit("note: no profile, so check names were not verified (pass --config)", err=True)
    if problems:
        emit(f"{len(problems)} problem(s) in {count} runbook(s)", err=True)
        sys.exit(EXIT_UNKNOWN)
    emit(f"{count} runbook(s) OK")


@runbook.command("run")
@click.argument("ref", metavar="ID|PATH", shell_complete=runbook_ids)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="A parameter (repeatable).")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the plan with parameters filled in and run the checks; run no command.",
)
@click.option(
    "--resume", "resume", metavar="SESSION", help="Continue an interrupted session (an id, or 'latest')."
)
@env_options
@operator_option
def runbook_run(
    ref: str,
    params: tuple[str, ...],
    dry_run: bool,
    resume: str | None,
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    operator: str | None,
) -> None:
    """Step through a runbook in the terminal.

    Manual steps are confirmed, commands run only after you say so (output is kept), check gates
    must pass before the runbook continues, and on failure a step's on_fail (abort, continue,
    goto:STEP) applies. Every transition is saved before it is acted on and written to the audit
    log: after a dropped SSH session, --resume continues at the right step, and a command that was
    running is never re-run silently: if it still runs it is watched, and its result is collected
    when it ends (interrupted only if opsdash cannot tell).

    Ctrl-C while a command runs does not stop it (it runs in its own process group): you choose to
    wait, leave it running and pause (its output and exit status are collected on --resume), or
    interrupt it. One command runs per session, even across terminals: a second opsdash on the same
    session sees the step running and cannot start it again. A runbook with an exclusive group
    (rollback, credential-rotation) does not start while another session of that group is active
    for the same target, from any terminal or dashboard: opsdash names it and how to resume it.

    \b
    Exit codes: 0 completed, 1 completed with failed or skipped steps, or escalated (ended on the
    branch a failed step led to), 2 aborted, 3 paused (or a command left running), refused (its
    exclusive group is held) or error.
    """
    from opsdash.cli.render import print_session
    from opsdash.cli.runbook_io import collect_params, guided, hangup_pauses, parse_params
    from opsdash.cli.runbook_io import dry_run as plan
    from opsdash.core.runbooks.exclusive import ExclusiveConflict
    from opsdash.ops.runbooks import (
        Sessions,
        dry_run_gates,
        find_runbook,
        lint_before_run,
        resume_command,
        suggested_params,
    )

    ops = Ops.open(config, operator=operator, require=False)
    book = find_runbook(ref, ops.profile_or_none)
    lint_before_run(ops, book)
    files = list(env_files) or None
    if dry_run:
        values = collect_params(book, parse_params(params), interactive=sys.stdin.isatty())
        sys.exit(plan(book, values, dry_run_gates(ops, book, env_files=files, from_env=from_env)))
    # shared: the step runs on a worker thread so Ctrl-C reaches the operator, not the command
    with hangup_pauses(), Sessions(ops, shared=True, env_files=files, from_env=from_env) as sessions:
        if resume:
            ex = sessions.resume(book, resume)
            emit(f"resuming session {ex.state.id} of {book.title}")
            print_session(ex.state, book)
        else:
            given = parse_params(params)
            suggested = suggested_params(ops, book) if len(given) < len(book.parameters) else {}
            values = collect_params(book, given, interactive=True, suggested=suggested)
            try:
                ex = sessions.start(book, values)
            except ExclusiveConflict as exc:
                emit(f"opsdash: error: {exc}", err=True)
                emit(f"to work in that session instead: {resume_command(ops, exc.holder)}", err=True)
                sys.exit(EXIT_UNKNOWN)
            for gone in sessions.store.taken_over:  # the record says so too (audited, aborted)
                emit(
                    click.style(
                        f"took over the exclusive group {gone.group!r}: session {gone.session_id} of "
                        f"{gone.runbook_id}, started by {gone.operator}, is recorded as aborted (its "
                        f"opsdash, {gone.driver}, had gone)",
                        fg="yellow",
                    )
                )
            emit(click.style(f"{book.title} — session {ex.state.id}", bold=True))
            emit(f"  if this terminal goes away: opsdash runbook run {book.id} --resume {ex.state.id}")
            if book.intro:
                emit("\n".join("  " + line for line in book.intro.splitlines()))
        sys.exit(guided(ex))
