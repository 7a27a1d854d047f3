"""What the Runbooks pane draws for a session, as Rich text: the step actions (each with a key),
the step's prose, its full command or the checks it must pass, what failed and why, and the
path a finished session took; its layout, keys, and the messages the step driver's events arrive
in. Pure functions of the executor's state: no I/O."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, DataTable
from textual.widgets.data_table import ColumnKey

from opsdash.core.findings import Severity
from opsdash.core.runbooks.executor import STATUS_MARK, Executor, SessionStatus, StepStatus
from opsdash.core.secrets import redactor
from opsdash.ops.runbooks.events import Event
from opsdash.tui.safe import clean
from opsdash.tui.style import HINT, Part, severity

if TYPE_CHECKING:
    from opsdash.ops.runbooks.driver import StepDriver


class SessionReported(Message):
    """An event of the open session's step driver, posted from the driver's thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class SessionOpened(Message):
    """A session was started or resumed (on a worker); the pane now drives it."""

    def __init__(self, driver: StepDriver) -> None:
        super().__init__()
        self.driver = driver


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
# a session's outcome as a severity, so the theme colours it (an active one is a hint, not a verdict)
SESSION_SEVERITY = {
    SessionStatus.COMPLETED: Severity.OK,
    SessionStatus.ESCALATED: Severity.WARN,
    SessionStatus.ABORTED: Severity.CRIT,
}


# the pane's layout: an open session takes the whole pane when narrow (-narrow), output shows
# under the step while it has any (-output)
PANE_CSS = """
    RunbooksPane #runbook-side { width: 54; height: 1fr; }
    RunbooksPane #runbook-list { height: 1fr; }
    RunbooksPane #runbook-held { height: auto; max-height: 4; padding: 0 1; color: $warning; }
    RunbooksPane #runbook-held.-empty { display: none; }
    RunbooksPane.-narrow.-session #runbook-side { display: none; }
    RunbooksPane.-narrow #runbook-side { width: 1fr; }
    RunbooksPane.-narrow #guided { display: none; }
    RunbooksPane.-narrow.-session #guided { display: block; }
    RunbooksPane #guided { width: 1fr; }
    RunbooksPane #session-title { height: auto; max-height: 3; padding: 0 1; }
    RunbooksPane #steps { height: auto; max-height: 9; overflow-x: hidden; }
    RunbooksPane.-short #steps { max-height: 5; }
    RunbooksPane #step-scroll {
        height: 1fr; min-height: 3; border-top: solid $primary; scrollbar-gutter: stable;
    }
    RunbooksPane #step-body { height: auto; padding: 0 1; }
    RunbooksPane #step-command, RunbooksPane #step-notice { height: auto; padding: 0 1; }
    RunbooksPane #step-note { height: 1; }
    RunbooksPane #step-buttons { height: 1; }
    RunbooksPane #step-buttons Button { margin: 0 1 0 0; min-width: 8; width: auto; }
    RunbooksPane #step-output { height: 7; border-top: solid $primary; display: none; }
    RunbooksPane.-output #step-output { display: block; }
    RunbooksPane.-short #step-output { height: 4; }
    """

# every key of the pane, with an id (remappable) and a tooltip; which work when is check_action's
PANE_BINDINGS: list[Binding | tuple[str, str] | tuple[str, str, str]] = [
    Binding(
        "enter",
        "open",
        "Open / resume",
        id="runbooks.open",
        tooltip="Open the runbook (resumes an active session)",
    ),
    Binding(
        "n", "new_session", "New session", id="runbooks.new", tooltip="Start a new session of the runbook"
    ),
    Binding("y", "copy", "Copy command", id="runbooks.copy", tooltip="Copy the current step's command"),
    *(
        Binding(
            a.key,
            f"step('{a.name}')",
            a.label,
            id=f"runbooks.step.{a.name}",
            tooltip=f"{a.label.rstrip('…')} the current step" + (" (asks first)" if a.destructive else ""),
        )
        for a in ACTIONS
    ),
    Binding(
        "l", "back_to_list", "List", id="runbooks.list", tooltip="Back to the runbook list (session kept)"
    ),
]


LIST_COLUMNS = (("id", "RUNBOOK", 26), ("sev", "SEV", 4), ("steps", "STEPS", 5), ("last", "LAST", 9))
STEP_COLUMNS = (
    ("mark", "", 1),
    ("n", "#", 2),
    ("kind", "KIND", 7),
    ("step", "STEP", 38),
    ("state", "STATE", 16),
)


def step_buttons() -> Iterator[Button]:
    """One button an action, its key in its label; the destructive ones never take the focus, so
    Tab or a stray Enter never lands on them."""
    for a in ACTIONS:
        button = Button(
            Text(f"{a.label} {a.key}"),
            id=f"step-{a.name}",
            variant=a.variant,  # type: ignore[arg-type]
            disabled=True,
            compact=True,
        )
        button.can_focus = not a.destructive
        yield button


def fit_step_column(steps: DataTable[Any]) -> None:
    """The STEP column takes the width the others leave (titles are never cut when there is room)."""
    column = steps.columns.get(ColumnKey("step"))
    if column is None or steps.size.width == 0:
        return
    others = sum(c.get_render_width(steps) for key, c in steps.columns.items() if key != ColumnKey("step"))
    width = max(16, steps.size.width - others - 2 * steps.cell_padding - 2)
    if column.width != width:
        column.width, column.auto_width = width, False
        steps.refresh(layout=True)


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


def _status(status: SessionStatus) -> Content:
    level = SESSION_SEVERITY.get(status)
    return (
        Content.styled(status.value, f"bold {HINT}")
        if level is None
        else severity(status.value, level, "bold")
    )


def session_title(ex: Executor) -> Content:
    state = ex.state
    parts: list[Part] = [(ex.runbook.title, "bold"), f"  session {state.id} — ", _status(state.status)]
    if state.status is SessionStatus.ESCALATED:
        parts.append(
            severity(" — ended on the branch a failed step led to, not the main path", Severity.WARN)
        )
    return Content.assemble(*parts)


def action_text(ex: Executor) -> Content:
    """The full command (wrapped, never clipped) or the checks the step must pass."""
    step = ex.current_step
    if step is None:
        return Content("")
    if step.kind == "command":
        return Content.assemble(
            ("Runs (in its own process group):\n", "bold"),
            (clean(ex.command(step).rstrip(), multiline=True), f"bold {HINT}"),
        )
    if step.kind == "check":
        head = "Must fail (confirming the failure):\n" if step.expect_failure else "Must pass:\n"
        parts: list[Part] = [(head, "bold")]
        for gate in ex.gates(step):
            parts.append(f"  • {clean(gate.label())}\n")
            parts += [(f"      {clean(condition)}\n", "dim") for condition in gate.conditions]
        return Content.assemble(*parts)
    return Content("")


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


def notice(status: StepStatus, detail: str, shown: str) -> Content:
    parts: list[Part] = []
    if detail:
        level = Severity.CRIT if status is StepStatus.FAILED else Severity.WARN
        weight = "bold" if status in (StepStatus.FAILED, StepStatus.INTERRUPTED) else ""
        parts.append(severity(f"{status.value}: {clean(detail)}\n", level, weight))
    for line in shown.splitlines():  # each gate, each condition with the value seen
        good = line.lstrip().startswith(("OK", "✓"))
        parts.append(severity(clean(line) + "\n", Severity.OK if good else Severity.CRIT))
    return Content.assemble(*parts)


def path_taken(ex: Executor) -> Content:
    parts: list[Part] = [("Path taken:\n", "bold")]
    for each, st in zip(ex.runbook.steps, ex.state.steps, strict=True):
        if st.status is StepStatus.PENDING:
            continue
        parts.append(f"  {STATUS_MARK[st.status]} {each.index + 1}. {clean(each.title)} — {st.status.value}")
        if st.detail:
            parts.append((f" ({clean(st.detail)})", "dim"))
        parts.append("\n")
    return Content.assemble(*parts)
