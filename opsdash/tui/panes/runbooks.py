"""Runbooks: the list, and the guided view — steps with their state, the current step's prose, the
full command or the checks it must pass, parameter prompts, the step actions (each with a key),
live command output with elapsed time, check-gate evidence, and resuming an interrupted session.
The core executor does the work, in a thread worker; this pane only shows it and asks.

Safety rules an operator relies on at 3 a.m.: while a command runs, nothing but "Interrupt…" is
offered; destructive actions (abort, skipping a command, interrupt) ask first and never hold the
focus, so a stray Enter cannot trigger them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from rich.markdown import Markdown as RichMarkdown
from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Log, Static
from textual.widgets.data_table import ColumnKey

from opsdash.core.errors import OpsdashError
from opsdash.core.runbooks.exclusive import ExclusiveConflict, Holder
from opsdash.core.runbooks.executor import STATUS_MARK, Executor, SessionStatus, StepNotAllowed, StepStatus
from opsdash.core.runbooks.model import Runbook
from opsdash.core.secrets import redactor
from opsdash.tui.context import DashboardContext
from opsdash.tui.messages import RunbookOutputReceived, RunbookStepFinished
from opsdash.tui.safe import clean

if TYPE_CHECKING:
    from opsdash.ops.runbooks import Sessions
    from opsdash.storage.rows import SessionRow


class ActFinished(Message):
    """A step action's worker has finished (posted from its thread), with what was refused."""

    def __init__(self, refused: str = "") -> None:
        super().__init__()
        self.refused = refused


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
NARROW = 110  # below this many columns an open session takes the whole pane


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


class ConfirmAction(ModalScreen[str | None]):
    """A destructive step action, asked once more. Cancel has the focus; the reason is recorded."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, label: str, reason: str) -> None:
        super().__init__()
        self.question, self.label, self.reason = question, label, reason

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label(self.question, id="confirm-question")
            yield Input(value=self.reason, placeholder="why (recorded)", id="confirm-reason")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="confirm-cancel")
                yield Button(self.label, variant="error", id="confirm-yes")

    def on_mount(self) -> None:
        self.query_one("#confirm-cancel", Button).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#confirm-cancel")
    def cancelled(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#confirm-yes")
    @on(Input.Submitted, "#confirm-reason")
    def confirmed(self) -> None:
        self.dismiss(self.query_one("#confirm-reason", Input).value.strip())


class QuitDuringCommand(ModalScreen[str | None]):
    """Quitting (or closing) while a runbook command runs: wait, leave it running, or interrupt."""

    BINDINGS: ClassVar = [Binding("escape", "stay", "Stay")]

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical(id="quit-dialog", classes="dialog"):
            yield Label(
                f"{self.what} is still running.\n\nLeaving it running is safe: it keeps writing its "
                "output, and its exit status is collected the next time opsdash opens this session.",
                id="quit-question",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stay", id="quit-stay")
                yield Button("Quit when it ends", id="quit-wait")
                yield Button("Leave it running, quit", variant="warning", id="quit-detach")
                yield Button("Interrupt it, quit", variant="error", id="quit-interrupt")

    def on_mount(self) -> None:
        self.query_one("#quit-stay", Button).focus()

    def action_stay(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def chosen(self, event: Button.Pressed) -> None:
        choice = (event.button.id or "").removeprefix("quit-")
        self.dismiss(None if choice == "stay" else choice)


class SessionHeld(ModalScreen[bool]):
    """A start refused because another session holds the runbook's exclusive group for this
    target: who started it, when, and where it is; Open works in that session instead."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, refusal: str, resume: str) -> None:
        super().__init__()
        self.refusal, self.resume = refusal, resume

    def compose(self) -> ComposeResult:
        with Vertical(id="held-dialog", classes="dialog"):
            yield Label(Text("Not started", style="bold"))
            yield Label(
                Text(f"{clean(self.refusal)}\n\nFrom a terminal: {clean(self.resume)}"),
                id="held-question",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Open that session", variant="primary", id="held-open")
                yield Button("Cancel", id="held-cancel")

    def on_mount(self) -> None:
        self.query_one("#held-open", Button).focus()

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def chosen(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "held-open")


class ParametersScreen(ModalScreen[dict[str, str] | None]):
    """Asks for a runbook's parameters: each with what it is for and an example (never a bare
    regex), pre-filled with what opsdash knows (the previous release ...), checked before start."""

    BINDINGS: ClassVar = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, book: Runbook, suggested: dict[str, str] | None = None) -> None:
        super().__init__()
        self.book = book
        self.suggested = suggested or {}

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="params-dialog", classes="dialog"):
            yield Label(Text(f"{self.book.title}: parameters", style="bold"), id="params-title")
            for p in self.book.parameters:
                yield Label(Text(p.prompt, style="bold"))
                if p.hint():
                    yield Static(Text(p.hint(), style="dim"), classes="param-hint")
                value = self.suggested.get(p.name, p.default or "")
                yield Input(value=value, placeholder=p.example, id=f"param-{p.name}")
                if p.name in self.suggested:
                    yield Label(Text("filled in from the deploy's version source", style="dim italic"))
            yield Static("", id="params-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start", variant="primary", id="params-start")
                yield Button("Cancel", id="params-cancel")

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#params-cancel")
    def cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#params-start")
    @on(Input.Submitted)
    def start(self) -> None:
        values = {p.name: self.query_one(f"#param-{p.name}", Input).value for p in self.book.parameters}
        problems = [p.problem(values[p.name]) for p in self.book.parameters]
        problem = next((x for x in problems if x), None)
        if problem:
            self.query_one("#params-error", Static).update(Text(problem, style="red"))
            return
        self.dismiss(values)


class RunbooksPane(Vertical):
    DEFAULT_CSS = """
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

    BINDINGS: ClassVar = [
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
                tooltip=f"{a.label.rstrip('…')} the current step"
                + (" (asks first)" if a.destructive else ""),
            )
            for a in ACTIONS
        ),
        Binding(
            "l", "back_to_list", "List", id="runbooks.list", tooltip="Back to the runbook list (session kept)"
        ),
    ]

    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.books: list[Runbook] = []
        self.active: dict[str, str] = {}  # runbook id -> active session id
        self.held: dict[str, Holder] = {}  # exclusive group -> the session holding it for the target
        self.executor: Executor | None = None
        self.sessions: Sessions | None = None
        self._wanted: str | None = None  # a runbook a link asked for, applied once the list is loaded
        self._busy = False  # an action's worker is running (a command, a gate, a save)
        self._idle = threading.Event()  # set while no action's worker is under way (for unmount)
        self._idle.set()
        self._settling = False
        self._after_command: Callable[[], None] | None = None  # quitting once the command ends

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="runbook-side"):
                yield DataTable(id="runbook-list", cursor_type="row")
                yield Static("", id="runbook-held", classes="-empty")
            with Vertical(id="guided"):
                yield Static("Choose a runbook and press Enter.", id="session-title")
                yield DataTable(id="steps", cursor_type="row")
                with VerticalScroll(id="step-scroll"):
                    yield Static("", id="step-body")
                    yield Static("", id="step-command")
                    yield Static("", id="step-notice")
                yield Input(
                    placeholder="note / reason (recorded with the step)", id="step-note", compact=True
                )
                with Horizontal(id="step-buttons"):
                    for a in ACTIONS:
                        button = Button(
                            Text(f"{a.label} {a.key}"),
                            id=f"step-{a.name}",
                            variant=a.variant,  # type: ignore[arg-type]
                            disabled=True,
                            compact=True,
                        )
                        button.can_focus = not a.destructive  # Tab or a stray Enter never lands on them
                        yield button
                yield Log(id="step-output", max_lines=2000)

    def on_mount(self) -> None:
        self.border_title = "Runbooks"
        books = self.query_one("#runbook-list", DataTable)
        for label, width in (("RUNBOOK", 26), ("SEV", 4), ("STEPS", 5), ("LAST", 9)):
            books.add_column(label, width=width)
        steps = self.query_one("#steps", DataTable)
        for key, label, width in (
            ("mark", "", 1),
            ("n", "#", 2),
            ("kind", "KIND", 7),
            ("step", "STEP", 38),
            ("state", "STATE", 16),
        ):
            steps.add_column(label, width=width, key=key)
        self.set_interval(1.0, self._tick)
        self.load()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")
        self.set_class(event.size.height < 24, "-short")
        self.call_after_refresh(self._fit_step_column)

    def _fit_step_column(self) -> None:
        """The STEP column takes the width the others leave (titles are never cut when there is room)."""
        steps = self.query_one("#steps", DataTable)
        column = steps.columns.get(ColumnKey("step"))
        if column is None or steps.size.width == 0:
            return
        others = sum(
            c.get_render_width(steps) for key, c in steps.columns.items() if key != ColumnKey("step")
        )
        width = max(16, steps.size.width - others - 2 * steps.cell_padding - 2)
        if column.width != width:
            column.width, column.auto_width = width, False
            steps.refresh(layout=True)

    # ------------------------------------------------------------------ the list

    @work(
        thread=True, exclusive=True, group="runbooks-load", exit_on_error=False, description="load runbooks"
    )
    def load(self) -> None:
        from opsdash.ops.runbooks import catalogue

        books, _problems, last, held = catalogue(self.ctx.ops)
        self.app.call_from_thread(self._listed, books, last, held)

    def _listed(
        self, books: list[Runbook], last: dict[str, SessionRow | None], held: dict[str, Holder]
    ) -> None:
        self.books = books
        self.active = {b: s.id for b, s in last.items() if s is not None and s.status == "active"}
        self.held = held
        self._show_held()
        table = self.query_one("#runbook-list", DataTable)
        # a reload keeps the runbook the operator (or a runbook link) chose, never falls back to row 0
        current = self._book() if table.row_count else None
        keep = self._wanted or (current.id if current else None)
        table.clear()
        for book in books:
            session = last.get(book.id)
            when = "never" if session is None else session.status
            table.add_row(book.id, book.severity, str(len(book.steps)), when, key=book.id)
        wanted, self._wanted = self._wanted, None
        if keep is not None and any(b.id == keep for b in books):
            table.move_cursor(row=table.get_row_index(keep))
            if wanted is not None:
                self._preview(self._book(keep))
        elif wanted is not None:
            self.app.notify(f"No runbook {wanted!r} here.", severity="warning")

    def _show_held(self) -> None:
        """Under the list: the sessions that hold an exclusive group for this target (started in
        another terminal, another dashboard, by another operator), which block its runbooks."""
        mine = self.executor.state.id if self.executor else None
        lines = [
            f"⚠ {clean(h.summary())} ({', '.join(b.id for b in self.books if b.exclusive == group)})"
            for group, h in self.held.items()
            if h.session_id != mine
        ]
        widget = self.query_one("#runbook-held", Static)
        widget.update(Text("\n".join(lines)))
        widget.set_class(not lines, "-empty")

    def _book(self, book_id: str | None = None) -> Runbook | None:
        if book_id is None:
            table = self.query_one("#runbook-list", DataTable)
            if table.row_count == 0:
                return None
            book_id = str(table.coordinate_to_cell_key(table.cursor_coordinate)[0].value)
        return next((b for b in self.books if b.id == book_id), None)

    def open_runbook(self, book_id: str) -> None:
        """Select a runbook by id (from a finding's or check's runbook link) and show it. The list
        may be reloading: the choice is kept until it has been applied to the new list."""
        if self._command_running():
            self.app.notify("A runbook command is running; finish or interrupt it first.", severity="warning")
            return
        self._close_session()
        self._wanted = book_id
        table = self.query_one("#runbook-list", DataTable)
        if not self.books:
            return  # the list is still loading: _listed selects it
        try:
            table.move_cursor(row=table.get_row_index(book_id))
        except Exception:
            self.app.notify(f"No runbook {book_id!r} here.", severity="warning")
            return
        self._wanted = None  # selected: a reload keeps the selection anyway
        self._preview(self._book(book_id))
        table.focus()

    @on(DataTable.RowHighlighted, "#runbook-list")
    def highlighted(self, _event: DataTable.RowHighlighted) -> None:
        if self.executor is None:
            self._preview(self._book())

    def _preview(self, book: Runbook | None) -> None:
        if book is None:
            return
        self.query_one("#session-title", Static).update(
            Text.assemble(
                (book.title, "bold"),
                f"  ({book.id}) — ",
                ("Enter to resume" if book.id in self.active else "Enter to start", "cyan"),
            )
        )
        steps = self.query_one("#steps", DataTable)
        steps.clear()
        for step in book.steps:
            steps.add_row(" ", str(step.index + 1), step.kind, step.title, "", key=step.id)
        self.query_one("#step-body", Static).update(prose(f"{book.summary}\n\n{book.intro}"))
        self.query_one("#step-command", Static).update("")
        self.query_one("#step-notice", Static).update("")
        self.call_after_refresh(self._fit_step_column)

    @on(DataTable.RowSelected, "#runbook-list")
    def selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        book = self._book()
        if book is None or self._command_running():
            return
        ex = self.executor
        if ex is not None and ex.runbook.id == book.id and not ex.finished:
            self.post_message(RunbookStepFinished(ex.state.id))  # already open: back to its step
            return
        if book.id in self.active:
            self.start_or_resume(book, None, self.active[book.id])
        else:
            self._ask_params(book)

    def action_new_session(self) -> None:
        book = self._book()
        if book is not None and not self._command_running():
            self._ask_params(book)

    def action_back_to_list(self) -> None:
        if self._command_running():
            self.app.notify("A command is running: its session stays open until it ends.", severity="warning")
            return
        self._close_session()
        self.query_one("#runbook-list", DataTable).focus()
        self._preview(self._book())
        self.load()

    def _close_session(self) -> None:
        self.executor = None
        self.remove_class("-session", "-output")
        self.query_one("#step-output", Log).clear()
        for a in ACTIONS:
            self.query_one(f"#step-{a.name}", Button).disabled = True
        self.refresh_bindings()

    def _ask_params(self, book: Runbook) -> None:
        if not book.parameters:
            self.start_or_resume(book, {}, None)
            return
        self._suggest_then_ask(book)

    @work(
        thread=True,
        exclusive=True,
        group="runbook-params",
        exit_on_error=False,
        description="look up parameters",
    )
    def _suggest_then_ask(self, book: Runbook) -> None:
        from opsdash.ops.runbooks import suggested_params

        try:
            suggested = suggested_params(self.ctx.ops, book)
        except OpsdashError:
            suggested = {}

        def started(values: dict[str, str] | None) -> None:
            if values is not None:
                self.start_or_resume(book, values, None)

        self.app.call_from_thread(self.app.push_screen, ParametersScreen(book, suggested), started)

    @work(
        thread=True,
        exclusive=True,
        group="runbook",
        exit_on_error=False,
        description="open a runbook session",
    )
    def start_or_resume(self, book: Runbook, params: dict[str, str] | None, session_id: str | None) -> None:
        from opsdash.ops.runbooks import Sessions, resume_command

        try:
            if self.sessions is None:  # one connection, kept across this pane's workers
                self.sessions = Sessions(self.ctx.ops, shared=True)
            if session_id is not None:
                self.executor = self.sessions.resume(book, session_id)
            else:
                assert params is not None
                self.executor = self.sessions.start(book, params)
        except ExclusiveConflict as exc:
            screen = SessionHeld(str(exc), resume_command(self.ctx.ops, exc.holder))
            self.app.call_from_thread(self.app.push_screen, screen, partial(self._open_held, exc.holder))
            self.app.call_from_thread(self.load)  # the list shows who holds the group
            return
        except (OpsdashError, ValueError, LookupError) as exc:
            self.app.call_from_thread(self.app.notify, redactor.redact(str(exc)), severity="error")
            return
        self.post_message(RunbookStepFinished(self.executor.state.id))
        self.app.call_from_thread(self.load)  # the list's LAST column shows the session

    def _open_held(self, holder: Holder, chosen: bool | None) -> None:
        """Work in the session that holds the group instead (it may be of another runbook)."""
        if not chosen:
            return
        book = self._book(holder.runbook_id)
        if book is None:
            self.app.notify(f"Runbook {holder.runbook_id!r} is not in this list.", severity="warning")
            return
        self.start_or_resume(book, None, holder.session_id)

    # ------------------------------------------------------------------ the guided view

    def _command_running(self) -> bool:
        ex = self.executor
        st = ex.current_state() if ex else None
        return st is not None and st.status is StepStatus.RUNNING

    def command_running(self) -> str | None:
        """What is running, in words, when a runbook command is running in this dashboard."""
        ex = self.executor
        step = ex.current_step if ex else None
        if ex is None or step is None or not ex.control_active:
            return None
        return f"Step {step.index + 1} of {ex.runbook.title} ({step.title})"

    @on(RunbookStepFinished)
    def render_session(self, _message: RunbookStepFinished) -> None:
        ex = self.executor
        if ex is None:
            return
        self.add_class("-session")
        state = ex.state
        title = Text.assemble(
            (ex.runbook.title, "bold"),
            f"  session {state.id} — ",
            (state.status.value, f"bold {SESSION_STYLE[state.status]}"),
        )
        if state.status is SessionStatus.ESCALATED:
            title.append(" — ended on the branch a failed step led to, not the main path", style="yellow")
        self.query_one("#session-title", Static).update(title)
        steps = self.query_one("#steps", DataTable)
        with self.app.batch_update():
            steps.clear()
            for each, st in zip(ex.runbook.steps, state.steps, strict=True):
                here = state.current == each.index and not ex.finished
                steps.add_row(
                    STATUS_MARK[st.status],
                    str(each.index + 1),
                    each.kind,
                    Text(each.title, style="bold" if here else ""),
                    self._state_text(st.status, st.started_at),
                    key=each.id,
                )
        step = ex.current_step
        body = self.query_one("#step-body", Static)
        command = self.query_one("#step-command", Static)
        notice = self.query_one("#step-notice", Static)
        if step is None or ex.finished:
            body.update(prose(f"**Session {state.status.value}.**"))
            command.update("")
            notice.update(self._path_taken(ex))
        else:
            steps.move_cursor(row=step.index)
            current = state.steps[step.index]
            body.update(prose(f"### {step.index + 1}. {step.title}\n\n{ex.prose(step)}"))
            command.update(self._action_text(ex))
            evidence = current.output if step.kind == "check" else ""
            if not evidence and current.status is StepStatus.PENDING and current.detail:
                # a branch a failure led to: show what failed there (each gate, each condition)
                failed = [s for s in state.steps if s.status is StepStatus.FAILED and s.output]
                if failed:
                    evidence = "\n".join(
                        max(failed, key=lambda s: s.finished_at or "").output.splitlines()[-20:]
                    )
            notice.update(self._notice(current.status, current.detail, evidence))
            if not ex.control_active:  # a running command's output streams in as it comes
                log = self.query_one("#step-output", Log)
                log.clear()
                log.write(clean(current.output, multiline=True))
                self.set_class(bool(current.output) and step.kind == "command", "-output")
        self._enable(set() if self._busy and not self._command_running() else set(ex.allowed()))
        self.call_after_refresh(self._fit_step_column)

    def _state_text(self, status: StepStatus, started_at: str | None) -> str:
        if status is StepStatus.RUNNING:
            return f"running {elapsed_since(started_at)}"
        return status.value

    def _action_text(self, ex: Executor) -> Text:
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
            text = Text("Must pass:\n", style="bold")
            for gate in ex.gates(step):
                text.append(f"  • {clean(gate.label())}\n")
                for condition in gate.conditions:
                    text.append(f"      {clean(condition)}\n", style="dim")
            return text
        return Text()

    @staticmethod
    def _notice(status: StepStatus, detail: str, evidence: str) -> Text:
        text = Text()
        if detail:
            style = {StepStatus.FAILED: "bold red", StepStatus.INTERRUPTED: "bold yellow"}.get(
                status, "yellow"
            )
            text.append(f"{status.value}: {clean(detail)}\n", style=style)
        for line in evidence.splitlines():  # each gate, each condition with the value seen
            good = line.lstrip().startswith(("OK", "✓"))
            text.append(clean(line) + "\n", style="green" if good else "red")
        return text

    @staticmethod
    def _path_taken(ex: Executor) -> Text:
        text = Text("Path taken:\n", style="bold")
        for each, st in zip(ex.runbook.steps, ex.state.steps, strict=True):
            if st.status is StepStatus.PENDING:
                continue
            text.append(
                f"  {STATUS_MARK[st.status]} {each.index + 1}. {clean(each.title)} — {st.status.value}"
            )
            if st.detail:
                text.append(f" ({clean(st.detail)})", style="dim")
            text.append("\n")
        return text

    def _enable(self, allowed: set[str]) -> None:
        for a in ACTIONS:
            self.query_one(f"#step-{a.name}", Button).disabled = a.name not in allowed
        self.refresh_bindings()
        focused = self.app.focused
        if (
            focused is None
            or focused.disabled
            or focused.id == "runbook-list"  # a session is open: the operator works in it
            or (isinstance(focused, Button) and focused.id in {f"step-{a.name}" for a in ACTIONS})
        ):
            # "Do it" takes the focus only on a fresh step: after a failure or an interruption the
            # focus parks on the step list, so hammering Enter neither retries nor re-runs anything
            st = self.executor.current_state() if self.executor else None
            if "confirm" in allowed and st is not None and not st.detail:
                self.query_one("#step-confirm", Button).focus()
            elif self.executor is not None:
                self.query_one("#steps", DataTable).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "step":
            ex = self.executor
            return (
                ex is not None
                and not (self._busy and not self._command_running())
                and parameters[0] in ex.allowed()
            )
        if action == "back_to_list":
            return self.executor is not None
        return True

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("step-"):
            self.action_step(event.button.id.removeprefix("step-"))

    def action_step(self, name: str) -> None:
        ex = self.executor
        step = ex.current_step if ex else None
        if ex is None or step is None or name not in ex.allowed():
            return
        note_box = self.query_one("#step-note", Input)
        note = note_box.value.strip()
        action = BY_NAME[name]
        asks = action.destructive and not (name == "skip" and step.kind != "command")
        if not asks:
            note_box.value = ""
            self._act(name, note)
            return
        question = {
            "skip": f"Skip step {step.index + 1} without running its command?\n"
            + clean(ex.command(step).strip()[:200], multiline=True),
            "abort": f"Abort the session of {ex.runbook.title}? It cannot be resumed afterwards.",
            "interrupt": f"Interrupt the command of step {step.index + 1}? "
            "Its process group gets SIGTERM, then SIGKILL.",
        }[name]

        def answered(reason: str | None) -> None:
            if reason is not None:
                note_box.value = ""
                self._act(name, reason)

        self.app.push_screen(ConfirmAction(question, action.label.rstrip("…"), note), answered)

    def _act(self, name: str, note: str) -> None:
        ex = self.executor
        if ex is None:
            return
        if name == "interrupt":  # from the UI thread: the step's own worker records the result
            self._interrupt(note or "interrupted from the dashboard")
            return
        if name == "confirm":
            self.query_one("#step-output", Log).clear()
        self._busy = True
        self._idle.clear()
        self._enable(set())  # one action at a time: no second press while it is under way
        self.act(name, note)

    @work(thread=True, group="runbook-interrupt", exit_on_error=False, description="interrupt a command")
    def _interrupt(self, reason: str) -> None:
        ex = self.executor
        if ex is None:
            return
        try:
            ex.interrupt(reason)
        except StepNotAllowed as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="warning")
        self.post_message(RunbookStepFinished(ex.state.id))

    @work(thread=True, exclusive=True, group="runbook", exit_on_error=False, description="run a runbook step")
    def act(self, action: str, note: str) -> None:
        ex = self.executor
        if ex is None:
            return
        self.post_message(RunbookStepFinished(ex.state.id))  # shows "running" as soon as it is claimed
        refused = ""
        try:
            if action == "confirm":
                ex.confirm(note, on_output=self._output_arrived)
            elif action == "retry":
                ex.retry()
            elif action == "mark-done":
                ex.mark_done(note or "confirmed from the dashboard")
            elif action == "skip":
                ex.skip(note or "skipped from the dashboard")
            elif action == "abort":
                ex.abort(note or "aborted from the dashboard")
        except StepNotAllowed as exc:  # said by the message: waiting on the UI here could deadlock a quit
            refused = str(exc)
        finally:
            self._idle.set()
            self.post_message(ActFinished(refused))  # never blocks, even while the app is closing

    @on(ActFinished)
    def _done(self, message: ActFinished) -> None:
        """The step's worker finished (or a quit asked while it ran): refresh, then do what waited."""
        if message.refused:
            self.app.notify(message.refused, severity="warning")
        self._busy = False
        ex = self.executor
        if ex is not None:
            self.post_message(RunbookStepFinished(ex.state.id))
            if ex.finished:
                self.load()
                for overview in self.app.query("OverviewPane"):  # no longer offered for resume
                    overview.refresh_history()  # type: ignore[attr-defined]
        then, self._after_command = self._after_command, None
        if then is not None:
            then()

    def _output_arrived(self, text: str) -> None:
        self.post_message(RunbookOutputReceived(text))

    @on(RunbookOutputReceived)
    def output(self, message: RunbookOutputReceived) -> None:
        self.add_class("-output")
        self.query_one("#step-output", Log).write(clean(message.text, multiline=True))

    def _tick(self) -> None:
        """Once a second: the running step's elapsed time; a command running elsewhere (left by an
        opsdash that has gone) is watched until it ends, then its result is collected."""
        ex = self.executor
        st = ex.current_state() if ex else None
        if ex is None or st is None or st.status is not StepStatus.RUNNING or ex.state.current is None:
            return
        if "interrupt" in ex.allowed() and self.query_one("#step-interrupt", Button).disabled:
            self.post_message(RunbookStepFinished(ex.state.id))  # it started running: show it so
        steps = self.query_one("#steps", DataTable)
        row = ex.runbook.steps[ex.state.current].id
        suffix = "" if ex.control_active or self._busy else " (elsewhere)"
        steps.update_cell(row, "state", self._state_text(st.status, st.started_at) + suffix)
        if not ex.control_active and not self._busy and not self._settling:
            self._settling = True
            self._settle()

    @work(thread=True, group="runbook-settle", exit_on_error=False, description="collect a finished command")
    def _settle(self) -> None:
        """Off the UI thread: whether the command still runs is read from /proc."""
        ex = self.executor
        try:
            if ex is not None and ex.running_pid() is None:
                ex.settle_detached()
                self.post_message(RunbookStepFinished(ex.state.id))
        finally:
            self._settling = False

    def hold_quit(self, quit_now: Callable[[], None]) -> bool:
        """Asked before the dashboard quits. True when a command is running here: the operator
        chooses (wait, leave it running, interrupt), and `quit_now` runs once that is done."""
        what = self.command_running()
        ex = self.executor
        if what is None or ex is None:
            return False

        def chosen(choice: str | None) -> None:
            if choice is None or self.executor is not ex:
                return
            self._after_command = quit_now
            if choice == "detach":
                ex.detach()  # the worker returns at once, leaving the step running; then we quit
            elif choice == "interrupt":
                self._interrupt("interrupted when the dashboard was closed")
            else:
                self.app.notify("Quitting when the command ends.")
            if not self._busy:  # it ended while the dialog was open
                self._done(ActFinished())

        self.app.push_screen(QuitDuringCommand(what), chosen)
        return True

    def action_copy(self) -> None:
        ex = self.executor
        step = ex.current_step if ex else None
        if ex is None or step is None or step.kind != "command":
            self.app.notify("The current step has no command to copy.", severity="warning")
            return
        self.app.copy_to_clipboard(ex.command(step))
        self.app.notify("Command copied to the clipboard.")

    def on_unmount(self) -> None:
        ex = self.executor
        if ex is not None and ex.control_active:
            # the dashboard is going away under a running command (a signal, a crash of the UI):
            # leave it running; its output and exit status are collected on the next start
            ex.detach()
        # a step's worker may be saving its transition (an abort just pressed, the "detached" event):
        # let it finish, then close under the executor's lock so no write is cut off mid-statement
        self._idle.wait(5)
        if self.sessions is not None:
            if ex is None:
                self.sessions.close()
                return
            with ex.lock:
                self.sessions.close()
