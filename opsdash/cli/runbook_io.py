"""`opsdash runbook ...`: list, show, lint, and a plain-terminal guided run."""

from __future__ import annotations

from typing import Any

import click

from opsdash.cli.render import emit
from opsdash.core.runbooks.executor import (
    STATUS_MARK,
    Executor,
    SessionState,
    SessionStatus,
    StepNotAllowed,
    StepState,
    StepStatus,
)
from opsdash.core.runbooks.model import Runbook, Step
from opsdash.core.text import visible

CHOICE_KEYS = {"c": "confirm", "r": "retry", "d": "mark-done", "s": "skip", "a": "abort", "q": "pause"}


def parse_params(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.UsageError(f"--param {value!r}: expected name=value")
        out[key] = text
    return out


def collect_params(
    book: Runbook, given: dict[str, str], interactive: bool, suggested: dict[str, str] | None = None
) -> dict[str, str]:
    unknown = sorted(set(given) - {p.name for p in book.parameters})
    if unknown:
        raise click.UsageError(
            f"runbook {book.id} has no parameter {', '.join(unknown)}; it takes: "
            f"{', '.join(p.name for p in book.parameters) or 'none'}"
        )
    params = {}
    for param in book.parameters:
        if param.name in given:
            problem = param.problem(given[param.name])
            if problem:
                raise click.UsageError(f"--param {problem}")
            params[param.name] = given[param.name]
            continue
        default = (suggested or {}).get(param.name, param.default)
        if not interactive and default is not None:
            params[param.name] = default
            continue
        if param.hint():
            emit(click.style(f"  {param.hint()}", dim=True))
        while True:
            value = click.prompt(param.prompt, default=default, show_default=True)
            problem = param.problem(value)
            if problem is None:
                params[param.name] = value
                break
            emit(click.style(problem, fg="red"))
    return params


def show_step(ex: Executor, step: Step) -> None:
    st = ex.state.steps[step.index]
    emit("")
    emit(
        click.style(f"Step {step.index + 1}/{len(ex.runbook.steps)} [{step.kind}] {step.title}", bold=True)
        + (click.style(f"  ({st.status.value})", fg="yellow") if st.status is not StepStatus.PENDING else "")
    )
    prose = ex.prose(step)
    if prose:
        emit("\n".join("  " + line for line in prose.splitlines()))
    if step.kind == "command":
        emit(click.style("  command:", dim=True))
        emit("\n".join("    $ " + line for line in ex.command(step).rstrip().splitlines()))
    elif step.kind == "check":
        emit(click.style("  must pass:", dim=True))
        for gate in ex.gates(step):
            emit(f"    - {gate.label()}" + "".join(f"\n        {c}" for c in gate.conditions))
    if st.status is StepStatus.INTERRUPTED:
        emit(click.style(f"  ! {st.detail}. Check whether it took effect before choosing.", fg="yellow"))
    if st.status is StepStatus.FAILED and st.detail:
        emit(click.style(f"  ✗ {visible(st.detail)}", fg="red"))
    if st.status is StepStatus.PENDING and st.detail:  # a branch a failure led to says which failure
        emit(click.style(f"  ! {visible(st.detail)}", fg="yellow"))


def ask_about_running(ex: Executor) -> str:
    """Ctrl-C while a command runs: the command is not stopped by it (it runs in its own process
    group); the operator chooses. Returns wait | detach | interrupt."""
    emit(click.style("\n  the command is still running.", fg="yellow"))
    try:
        answer = click.prompt(
            "  [w] wait for it  [l] leave it running and pause (collected on resume)  [i] interrupt it",
            type=click.Choice(["w", "l", "i"]),
            show_choices=False,
            default="w",
        )
    except click.Abort:
        answer = "l"
    if answer == "i":
        try:
            reason = click.prompt("  why interrupt it?", default="interrupted from the terminal")
        except click.Abort:
            reason = "interrupted from the terminal"
        ex.interrupt(reason)
        return "interrupt"
    return {"w": "wait", "l": "detach"}[answer]


def show_output(text: str) -> None:
    """A running command's output as it comes: untrusted text, so masked and its escapes shown."""
    emit(visible(text, multiline=True), nl=False)


def run_watched(ex: Executor, note: str, on_output: Any) -> StepState | None:
    """Confirm the current step on a worker thread so Ctrl-C reaches the operator, not the command.
    None when the operator left the command running (the session pauses)."""
    import threading

    box: list[StepState | BaseException] = []
    done = threading.Event()  # not Thread.join: a join cut short by Ctrl-C can report a live thread dead

    def work() -> None:
        try:
            box.append(ex.confirm(note, on_output=on_output))
        except BaseException as exc:  # handed to the main thread, raised there
            box.append(exc)
        finally:
            done.set()

    threading.Thread(target=work, name="runbook-step", daemon=True).start()
    detached = False
    while not done.is_set():
        try:
            done.wait(0.2)
        except KeyboardInterrupt:
            if ex.control_active and ask_about_running(ex) == "detach":
                ex.detach()
                detached = True
    result = box[0]
    if detached and isinstance(result, StepState) and result.status is StepStatus.RUNNING:
        return None  # left running: the next opsdash collects it
    if isinstance(result, BaseException):
        raise result
    return result


def wait_for_detached(ex: Executor) -> bool:
    """The step's command, started by an opsdash that died, still runs: it cannot be run again or
    skipped, so wait for it (Ctrl-C asks: wait, leave it running, or interrupt it). False when the
    operator left it running."""
    import time

    st = ex.current_state()
    assert st is not None
    emit(
        click.style(
            f"  … this step's command is still running (process group {ex.running_pid()}, started "
            f"{st.started_at}) from an opsdash that is no longer here. Waiting for it to end; Ctrl-C "
            "to leave it running or interrupt it.",
            fg="yellow",
        )
    )
    index = ex.state.current
    while ex.running_pid() is not None:
        try:
            time.sleep(0.5)
        except KeyboardInterrupt:
            choice = ask_about_running(ex)
            if choice == "detach":
                return False
            if choice == "interrupt":
                break
    ex.settle_detached()
    if index is not None:
        ended = ex.state.steps[index]
        result = f"exit {ended.exit_code}" if ended.exit_code is not None else "its exit status is unknown"
        emit(click.style(f"  the command ended: {result}", fg="green" if ended.exit_code == 0 else "yellow"))
        if ended.output:
            lines = visible(ended.output, multiline=True).splitlines()[-20:]
            emit("\n".join("    " + line for line in lines))
    return True


def guided(ex: Executor) -> int:
    """Step through a session until it ends or the operator pauses it; returns an exit code."""
    while not ex.finished:
        step = ex.current_step
        assert step is not None
        if ex.running_pid() is not None:
            if not wait_for_detached(ex):
                emit(f"\npaused; resume with: opsdash runbook run {ex.runbook.id} --resume {ex.state.id}")
                return 3
            continue  # the step has a result now: look again at where the session stands
        show_step(ex, step)
        allowed = ex.allowed()
        keys = [k for k, name in CHOICE_KEYS.items() if name in allowed or name == "pause"]
        labels = {
            "confirm": {"manual": "confirm done", "command": "run it", "check": "run the checks"}[step.kind]
        }
        menu = "  ".join(f"[{k}] {labels.get(CHOICE_KEYS[k], CHOICE_KEYS[k])}" for k in keys)
        try:
            action = CHOICE_KEYS[click.prompt(menu, type=click.Choice(keys), show_choices=False)]
            if action == "pause":
                emit(f"paused; resume with: opsdash runbook run {ex.runbook.id} --resume {ex.state.id}")
                return 3
            if action == "confirm":
                note = (
                    click.prompt("  note (optional)", default="", show_default=False)
                    if step.kind == "manual"
                    else ""
                )
                result = run_watched(ex, note, show_output)
                if result is None:
                    emit(
                        f"\nleft running; paused. Its output and exit status are collected when you "
                        f"resume: opsdash runbook run {ex.runbook.id} --resume {ex.state.id}"
                    )
                    return 3
                if step.kind == "command":
                    emit(
                        click.style(
                            f"  exit {result.exit_code}" + (f" ({result.detail})" if result.detail else ""),
                            fg="green" if result.status is StepStatus.DONE else "red",
                        )
                    )
                if step.kind == "check":
                    for line in result.output.splitlines():
                        good = line.lstrip().startswith(("OK", "✓"))
                        emit("    " + click.style(visible(line), fg="green" if good else "red"))
            elif action == "retry":
                ex.retry()
            elif action == "mark-done":
                ex.mark_done(click.prompt("  how did you confirm it took effect?"))
            elif action == "skip":
                ex.skip(click.prompt("  why skip it?"))
            elif action == "abort":
                ex.abort(click.prompt("  why abort?"))
        except StepNotAllowed as exc:
            emit(click.style(str(exc), fg="red"))
        except click.Abort:  # Ctrl-C or the end of input: nothing is lost, the session waits
            emit(f"\npaused; resume with: opsdash runbook run {ex.runbook.id} --resume {ex.state.id}")
            return 3
    emit("")
    status = ex.state.status
    failed = [s for s in ex.state.steps if s.status in (StepStatus.FAILED, StepStatus.SKIPPED)]
    emit(
        click.style(f"session {ex.state.id} {status.value}", bold=True)
        + (f"; {len(failed)} step(s) failed or skipped" if failed else "")
        + ("; it ended on the branch a failure led to" if status is SessionStatus.ESCALATED else "")
    )
    if status is SessionStatus.ABORTED:
        return 2
    return 0 if status is SessionStatus.COMPLETED and not failed else 1


def print_session(state: SessionState, book: Runbook | None) -> None:
    emit(
        click.style(
            f"{state.title} ({state.runbook_id}) — session {state.id}: {state.status.value}", bold=True
        )
    )
    emit(f"  operator {state.operator}, started {state.started_at}, updated {state.updated_at}")
    if state.params:
        emit("  parameters: " + visible(", ".join(f"{k}={v}" for k, v in state.params.items())))
    for index, st in enumerate(state.steps):
        title = book.steps[index].title if book and index < len(book.steps) else f"step {index + 1}"
        here = " ◀ current" if state.current == index and state.status.value == "active" else ""
        emit(
            f"  [{STATUS_MARK[st.status]}] {index + 1}. {title}{here}"
            + (f"  exit {st.exit_code}" if st.exit_code is not None else "")
            + (f"  note: {visible(st.note)}" if st.note else "")
        )
    if state.events:
        emit(click.style("  events:", dim=True))
        for event in state.events:
            where = f"step {event['step_index'] + 1} " if event["step_index"] is not None else ""
            emit(
                f"    {event['at']}  {where}{event['event']}"
                + (f": {visible(event['detail'].strip())}" if event["detail"] else "")
            )


def dry_run(book: Runbook, params: dict[str, str], runner: Any) -> int:
    from opsdash.core.runbooks.gates import parse_gates
    from opsdash.core.runbooks.model import fill_command, fill_text

    emit(click.style(f"DRY RUN {book.title} ({book.id}): no command will run", bold=True))
    failed = 0
    for step in book.steps:
        emit("")
        emit(
            click.style(f"{step.index + 1}. [{step.kind}] {step.title}", bold=True)
            + (f"  on failure: {step.on_fail}" if step.kind != "manual" else "")
            + ("  (main path ends)" if step.end else "")
        )
        if step.kind == "command":
            emit(
                "\n".join(
                    "    would run $ " + line
                    for line in fill_command(step.action, params).rstrip().splitlines()
                )
            )
        elif step.kind == "check":
            gates, _ = parse_gates(fill_text(step.action, params))
            for result in runner(gates):
                failed += not result.ok
                for line in result.lines():
                    emit("    " + click.style(line, fg="green" if result.ok else "red"))
    return 0 if not failed else 1
