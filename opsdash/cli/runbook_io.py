"""`opsdash runbook ...`: list, show, lint, and a plain-terminal guided run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from opsdash.cli.render import emit
from opsdash.core.runbooks.executor import Executor, SessionStatus, StepStatus
from opsdash.core.runbooks.model import Runbook, Step
from opsdash.core.runbooks.state import exit_code
from opsdash.core.text import visible
from opsdash.ops.runbooks.driver import StepDriver
from opsdash.ops.runbooks.events import (
    ActionDone,
    Detached,
    Event,
    GateEvaluated,
    Output,
    StepEnded,
    StepStarted,
)

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


def ask_about_running() -> tuple[str, str]:
    """Ctrl-C while a command runs: the command is not stopped by it (it runs in its own process
    group); the operator chooses. Returns (wait | detach | interrupt, the reason for an interrupt)."""
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
        return "interrupt", reason
    return {"w": "wait", "l": "detach"}[answer], ""


def show_output(text: str) -> None:
    """A running command's output as it comes: untrusted text, so masked and its escapes shown."""
    emit(visible(text, multiline=True), nl=False)


class Printer:
    """Renders the step driver's events in a plain terminal (called on the driver's thread, while
    the main thread waits for the action to end)."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.elsewhere = False  # the step's command was started by an opsdash that has gone
        self.detached = False
        self.unrecorded = False  # a transition could not be saved: guiding stops

    def __call__(self, event: Event) -> None:
        if isinstance(event, Output):
            show_output(event.text)
        elif isinstance(event, StepStarted) and event.elsewhere:
            self.elsewhere = True
            emit(
                click.style(
                    f"  … this step's command is still running (process group {event.pid}, started "
                    f"{event.started_at}) from an opsdash that is no longer here. Waiting for it to end; "
                    "Ctrl-C to leave it running or interrupt it.",
                    fg="yellow",
                )
            )
        elif isinstance(event, GateEvaluated):
            for result in event.results:
                for line in result.lines():
                    good = line.lstrip().startswith(("OK", "✓"))
                    emit("    " + click.style(visible(line), fg="green" if good else "red"))
        elif isinstance(event, StepEnded):
            self.ended(event)
        elif isinstance(event, Detached):
            self.detached = True
        elif isinstance(event, ActionDone) and event.refused:
            self.unrecorded = self.unrecorded or event.unrecorded
            emit(click.style(event.refused, fg="red"))

    def ended(self, event: StepEnded) -> None:
        if self.elsewhere:
            self.elsewhere = False
            code = event.exit_code
            result = f"exit {code}" if code is not None else "its exit status is unknown"
            emit(click.style(f"  the command ended: {result}", fg="green" if code == 0 else "yellow"))
            if event.status is StepStatus.INTERRUPTED:
                emit(click.style(f"  ! {visible(event.detail)}", fg="yellow"))
            if event.output:
                lines = visible(event.output, multiline=True).splitlines()[-20:]
                emit("\n".join("    " + line for line in lines))
        elif self.ex.runbook.steps[event.index].kind == "command" and event.exit_code is not None:
            emit(
                click.style(
                    f"  exit {event.exit_code}" + (f" ({event.detail})" if event.detail else ""),
                    fg="green" if event.status is StepStatus.DONE else "red",
                )
            )
        elif event.status is StepStatus.DONE and event.detail:  # a failure found where one was expected
            emit(click.style(f"  ✓ {visible(event.detail)}", fg="green"))


def wait_for(driver: StepDriver, printer: Printer) -> bool:
    """Wait for the driver's action (a command, a gate, a command left running elsewhere) to end.
    Ctrl-C reaches the operator, not the command: wait, leave it running, or interrupt it. False
    when the operator left the command running."""
    while True:
        try:
            if driver.wait_idle(0.2):
                return not printer.detached
        except KeyboardInterrupt:
            if not driver.command_running:
                continue
            choice, reason = ask_about_running()
            if choice == "detach":
                driver.detach()
            elif choice == "interrupt":
                driver.interrupt(reason)


@contextlib.contextmanager
def hangup_pauses() -> Iterator[None]:
    """A closed terminal (SIGHUP: an ssh session dropped, a window closed) or a polite stop
    (SIGTERM) pauses the session as Ctrl-C does: the session is parked (its driver cleared), so
    the next start is refused and a resume finds it, instead of reading a dead driver and taking
    the group over, the session recorded as aborted."""
    import signal

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    wanted = [getattr(signal, name) for name in ("SIGHUP", "SIGTERM") if hasattr(signal, name)]
    before = {number: signal.signal(number, stop) for number in wanted}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


def resume_hint(ex: Executor) -> str:
    return f"opsdash runbook run {ex.runbook.id} --resume {ex.state.id}"


def choose(ex: Executor, step: Step) -> tuple[str, str]:
    """The operator's next action on the step and its note; ("pause", "") to stop here."""
    keys = [k for k, name in CHOICE_KEYS.items() if name in ex.allowed() or name == "pause"]
    verb = {"manual": "confirm done", "command": "run it", "check": "run the checks"}[step.kind]
    labels = {"confirm": verb, "retry": "retry the checks" if step.kind == "check" else "retry"}
    menu = "  ".join(f"[{k}] {labels.get(CHOICE_KEYS[k], CHOICE_KEYS[k])}" for k in keys)
    action = CHOICE_KEYS[click.prompt(menu, type=click.Choice(keys), show_choices=False)]
    asks = {
        "mark-done": "  how did you confirm it took effect?",
        "skip": "  why skip it?",
        "abort": "  why abort?",
    }
    if action == "confirm" and step.kind == "manual":
        return action, click.prompt("  note (optional)", default="", show_default=False)
    return action, click.prompt(asks[action]) if action in asks else ""


def guided(ex: Executor) -> int:
    """Step through a session until it ends or the operator pauses it; returns an exit code. The
    step driver does the work on its thread; this loop asks, and prints what it reports."""
    driver = StepDriver(ex)
    printer = Printer(ex)
    driver.subscribe(printer)
    driver.start()
    try:
        if not wait_for(driver, printer):
            emit(f"\npaused; resume with: {resume_hint(ex)}")
            return 3
        while not ex.finished:
            step = ex.current_step
            assert step is not None
            show_step(ex, step)
            try:
                action, note = choose(ex, step)
            except click.Abort:  # Ctrl-C or the end of input: nothing is lost, the session waits
                emit(f"\npaused; resume with: {resume_hint(ex)}")
                return 3
            if action == "pause":
                emit(f"paused; resume with: {resume_hint(ex)}")
                return 3
            driver.act(action, note)
            if not wait_for(driver, printer):
                emit(
                    "\nleft running; paused. Its output and exit status are collected when you "
                    f"resume: {resume_hint(ex)}"
                )
                return 3
            if printer.unrecorded:  # never guided on through steps the record does not have
                emit(
                    click.style(
                        "\nstopped: that transition is not in the record, so opsdash guides no further "
                        "here. When the database answers again, see where the session stands with: "
                        f"{resume_hint(ex)}",
                        fg="yellow",
                    )
                )
                return 3
    finally:
        driver.close()
    emit("")
    status = ex.state.status
    failed = [s for s in ex.state.steps if s.status in (StepStatus.FAILED, StepStatus.SKIPPED)]
    emit(
        click.style(f"session {ex.state.id} {status.value}", bold=True)
        + (f"; {len(failed)} step(s) failed or skipped" if failed else "")
        + ("; it ended on the branch a failure led to" if status is SessionStatus.ESCALATED else "")
    )
    return exit_code(ex.state)


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
