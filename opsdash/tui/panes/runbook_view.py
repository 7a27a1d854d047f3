"""What the Runbooks pane draws for a session, as Rich text: the step actions (each with a key),
the step's prose, its full command or the checks it must pass, what failed and why, and the
path a finished session took. Pure functions of the executor's state: no widgets, no I/O."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from rich.markdown import Markdown as RichMarkdown
from rich.text import Text

from opsdash.core.runbooks.executor import STATUS_MARK, Executor, SessionStatus, StepStatus
from opsdash.core.secrets import redactor
from opsdash.tui.safe import clean


@dataclass(frozen=True)
class StepAction:
    name: str
    label: str
    key: str
    variant: str
    destructive: bool  # asks first, and never takes the focus


ACTIONS = (
    StepAction("confirm", "Do it", "c", "primary", False),
    StepAction("retry", "Retry", "r", "default", False),
    StepAction("mark-done", "Done", "d", "default", False),
    StepAction("skip", "Skip…", "s", "warning", True),
    StepAction("abort", "Abort…", "a", "error", True),
    StepAction("interrupt", "Interrupt…", "i", "error", True),
)
BY_NAME = {a.name: a for a in ACTIONS}
SESSION_STYLE = {
    SessionStatus.ACTIVE: "cyan",
    SessionStatus.COMPLETED: "green",
    SessionStatus.ESCALATED: "yellow",
    SessionStatus.ABORTED: "red",
}


def prose(markdown: str) -> RichMarkdown:
    """A runbook's Markdown, masked, rendered in one go (no widget tree to mount: what is drawn
    is settled as soon as it is set)."""
    return RichMarkdown(redactor.redact(markdown))


def elapsed_since(iso: str | None, now: float | None = None) -> str:
    """`1:07` since an ISO timestamp (the step's start), for the running step's state cell."""
    if not iso:
        return ""
    try:
        seconds = max(
            0, int((now if now is not None else time.time()) - datetime.fromisoformat(iso).timestamp())
        )
    except ValueError:
        return ""
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def state_text(status: StepStatus, started_at: str | None) -> str:
    if status is StepStatus.RUNNING:
        return f"running {elapsed_since(started_at)}"
    return status.value


def session_title(ex: Executor) -> Text:
    state = ex.state
    title = Text.assemble(
        (ex.runbook.title, "bold"),
        f"  session {state.id} — ",
        (state.status.value, f"bold {SESSION_STYLE[state.status]}"),
    )
    if state.status is SessionStatus.ESCALATED:
        title.append(" — ended on the branch a failed step led to, not the main path", style="yellow")
    return title


def action_text(ex: Executor) -> Text:
    """The full command (wrapped, never clipped) or the checks the step must pass."""
    step = ex.current_step
    if step is None:
        return Text()
    if step.kind == "command":
        return Text.assemble(
            ("Runs (in its own process group):\n", "bold"),
            (clean(ex.command(step).rstrip(), multiline=True), "bold cyan"),
        )
    if step.kind == "check":
        text = Text("Must fail (confirming the failure):\n" if step.expect_failure else "Must pass:\n")
        text.stylize("bold")
        for gate in ex.gates(step):
            text.append(f"  • {clean(gate.label())}\n")
            for condition in gate.conditions:
                text.append(f"      {clean(condition)}\n", style="dim")
        return text
    return Text()


def evidence(ex: Executor) -> str:
    """What the current step shows under its notice: a check step's gates, or, on a branch a
    failure led to, what failed there (each gate, each condition)."""
    step, current = ex.current_step, ex.current_state()
    if step is None or current is None:
        return ""
    if step.kind == "check" and current.output:
        return current.output
    if current.status is StepStatus.PENDING and current.detail:
        failed = [s for s in ex.state.steps if s.status is StepStatus.FAILED and s.output]
        if failed:
            return "\n".join(max(failed, key=lambda s: s.finished_at or "").output.splitlines()[-20:])
    return ""


def notice(status: StepStatus, detail: str, shown: str) -> Text:
    text = Text()
    if detail:
        style = {StepStatus.FAILED: "bold red", StepStatus.INTERRUPTED: "bold yellow"}.get(status, "yellow")
        text.append(f"{status.value}: {clean(detail)}\n", style=style)
    for line in shown.splitlines():  # each gate, each condition with the value seen
        good = line.lstrip().startswith(("OK", "✓"))
        text.append(clean(line) + "\n", style="green" if good else "red")
    return text


def path_taken(ex: Executor) -> Text:
    text = Text("Path taken:\n", style="bold")
    for each, st in zip(ex.runbook.steps, ex.state.steps, strict=True):
        if st.status is StepStatus.PENDING:
            continue
        text.append(f"  {STATUS_MARK[st.status]} {each.index + 1}. {clean(each.title)} — {st.status.value}")
        if st.detail:
            text.append(f" ({clean(st.detail)})", style="dim")
        text.append("\n")
    return text
