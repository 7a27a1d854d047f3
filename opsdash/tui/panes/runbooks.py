"""Runbooks: the list, and the guided view — steps with their state, the current step's prose, the
full command or the checks it must pass, parameter prompts, the step actions (each with a key),
live command output with elapsed time, check-gate evidence, and resuming an interrupted session.

The step driver (`ops/runbooks/driver.StepDriver`) does the work on its own thread and reports
typed events; this pane posts each one to itself (`SessionReported`) and renders it on the UI
thread. It owns no thread for a step and never asks the database what a step is doing.

Safety rules an operator relies on at 3 a.m.: while a command runs, nothing but "Interrupt…" is
offered; destructive actions (abort, skipping a command, interrupt) ask first and never hold the
focus, so a stray Enter cannot trigger them; the keys that work are the keys the footer shows."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Button, DataTable, Input, Log, Static

from opsdash.core.errors import OpsdashError
from opsdash.core.runbooks.exclusive import ExclusiveConflict, Holder
from opsdash.core.runbooks.executor import STATUS_MARK, Executor, StepStatus
from opsdash.core.runbooks.model import Runbook
from opsdash.core.secrets import redactor
from opsdash.ops.runbooks.events import ActionDone, Output, SessionEnded, StepStarted
from opsdash.tui.context import DashboardContext
from opsdash.tui.panes.runbook_dialogs import (
    ConfirmAction,
    ParametersScreen,
    QuitDuringCommand,
    SessionHeld,
)
from opsdash.tui.panes.runbook_view import (
    ACTIONS,
    BY_NAME,
    LIST_COLUMNS,
    PANE_BINDINGS,
    PANE_CSS,
    STEP_COLUMNS,
    SessionOpened,
    SessionReported,
    action_text,
    evidence,
    fit_step_column,
    notice,
    path_taken,
    prose,
    session_title,
    state_text,
    step_buttons,
)
from opsdash.tui.safe import clean
from opsdash.tui.style import HINT

if TYPE_CHECKING:
    from opsdash.ops.runbooks import Sessions
    from opsdash.ops.runbooks.driver import StepDriver
    from opsdash.storage.rows import SessionRow

__all__ = ["ConfirmAction", "ParametersScreen", "QuitDuringCommand", "RunbooksPane", "SessionHeld"]

NARROW = 110  # below this many columns an open session takes the whole pane


class RunbooksPane(Vertical):
    DEFAULT_CSS = PANE_CSS

    BINDINGS: ClassVar = PANE_BINDINGS

    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.books: list[Runbook] = []
        self.active: dict[str, str] = {}  # runbook id -> active session id
        self.held: dict[str, Holder] = {}  # exclusive group -> the session holding it for the target
        self.driver: StepDriver | None = None
        self.sessions: Sessions | None = None
        self._wanted: str | None = None  # a runbook a link asked for, applied once the list is loaded
        self._after_command: Callable[[], None] | None = None  # quitting once the command ends

    @property
    def executor(self) -> Executor | None:
        return self.driver.executor if self.driver is not None else None

    @property
    def _busy(self) -> bool:
        """The driver is doing something (a command, a gate, a save)."""
        return self.driver is not None and self.driver.busy

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
                    yield from step_buttons()
                yield Log(id="step-output", max_lines=2000)

    def on_mount(self) -> None:
        self.border_title = "Runbooks"
        for table, columns in (("#runbook-list", LIST_COLUMNS), ("#steps", STEP_COLUMNS)):
            for key, label, width in columns:
                self.query_one(table, DataTable).add_column(label, width=width, key=key)
        self.set_interval(1.0, self._tick)
        self.load()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.width < NARROW, "-narrow")
        self.set_class(event.size.height < 24, "-short")
        self.call_after_refresh(self._fit_step_column)

    def _fit_step_column(self) -> None:
        fit_step_column(self.query_one("#steps", DataTable))

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
            Content.assemble(
                (book.title, "bold"),
                f"  ({book.id}) — ",
                ("Enter to resume" if book.id in self.active else "Enter to start", HINT),
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
            self.render_session()  # already open: back to its step
            return
        if book.id in self.active:
            self.start_or_resume(book, None, self.active[book.id])
        else:
            self._ask_params(book)

    def action_new_session(self) -> None:
        """A new session: of the open session's runbook in a session view, else of the list's."""
        ex = self.executor
        book = ex.runbook if ex is not None and self.has_class("-session") else self._book()
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
        driver, self.driver = self.driver, None
        if driver is not None:
            driver.close(0)  # nothing runs (refused above while a command does): the worker ends
        self.remove_class("-session", "-output")
        self.query_one("#step-output", Log).clear()
        for a in ACTIONS:
            self.query_one(f"#step-{a.name}", Button).disabled = True
        self.refresh_bindings()

    def _ask_params(self, book: Runbook) -> None:
        """The dialog is up at once (keys typed now land in it, never on a session); values
        opsdash can look up (the previous release) fill in when they arrive."""
        if not book.parameters:
            self.start_or_resume(book, {}, None)
            return
        lookup = any(p.suggest for p in book.parameters)
        screen = ParametersScreen(book, lookup=lookup)

        def answered(values: dict[str, str] | None) -> None:
            if values is not None:
                self.start_or_resume(book, values, None)
            elif self.executor is None or not self.has_class("-session"):
                self.query_one("#runbook-list", DataTable).focus()  # cancelled: the list moves again

        self.app.push_screen(screen, answered)
        if lookup:
            self._suggest(book, screen)

    @work(
        thread=True,
        exclusive=True,
        group="runbook-params",
        exit_on_error=False,
        description="look up parameters",
    )
    def _suggest(self, book: Runbook, screen: ParametersScreen) -> None:
        from opsdash.ops.runbooks import suggested_params

        try:
            suggested = suggested_params(self.ctx.ops, book)
        except OpsdashError:
            suggested = {}
        self.app.call_from_thread(self._suggested, screen, suggested)

    def _suggested(self, screen: ParametersScreen, values: dict[str, str]) -> None:
        if screen.is_attached:
            screen.suggest(values)

    @work(
        thread=True,
        exclusive=True,
        group="runbook",
        exit_on_error=False,
        description="open a runbook session",
    )
    def start_or_resume(self, book: Runbook, params: dict[str, str] | None, session_id: str | None) -> None:
        from opsdash.ops.runbooks import Sessions, resume_command
        from opsdash.ops.runbooks.driver import StepDriver

        try:
            if self.sessions is None:  # one connection, kept across this pane's sessions
                self.sessions = Sessions(self.ctx.ops, shared=True)
            if session_id is not None:
                ex = self.sessions.resume(book, session_id)
            else:
                assert params is not None
                ex = self.sessions.start(book, params)
        except ExclusiveConflict as exc:
            screen = SessionHeld(str(exc), resume_command(self.ctx.ops, exc.holder))
            self.app.call_from_thread(self.app.push_screen, screen, partial(self._open_held, exc.holder))
            self.app.call_from_thread(self.load)  # the list shows who holds the group
            return
        except (OpsdashError, ValueError, LookupError) as exc:
            self.app.call_from_thread(self.app.notify, redactor.redact(str(exc)), severity="error")
            return
        driver = StepDriver(ex)
        driver.subscribe(lambda event: self.post_message(SessionReported(event)))
        self.post_message(SessionOpened(driver))

    @on(SessionOpened)
    def _opened(self, message: SessionOpened) -> None:
        if self.driver is not None and self.driver is not message.driver:
            self.driver.close(0)
        self.driver = message.driver
        message.driver.start()  # a command left running elsewhere is watched from now on
        self.render_session()
        self.load()  # the list's LAST column shows the session

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

    @on(SessionReported)
    def reported(self, message: SessionReported) -> None:
        event = message.event
        if self.driver is None or event.session_id != self.driver.session_id:
            return  # a session closed since
        if isinstance(event, Output):
            self.add_class("-output")
            self.query_one("#step-output", Log).write(clean(event.text, multiline=True))
            return
        if isinstance(event, StepStarted) and event.kind == "command":
            self.query_one("#step-output", Log).clear()
        self.render_session()
        if isinstance(event, ActionDone):
            self._action_done(event)
        elif isinstance(event, SessionEnded):
            self.load()
            for overview in self.app.query("OverviewPane"):  # no longer offered for resume
                overview.refresh_history()  # type: ignore[attr-defined]

    def _action_done(self, event: ActionDone) -> None:
        if event.refused:  # not recorded: the pane shows the session where its record is
            self.app.notify(clean(event.refused), severity="error" if event.unrecorded else "warning")
        if not self._busy:
            then, self._after_command = self._after_command, None
            if then is not None:
                then()

    def render_session(self) -> None:
        ex = self.executor
        if ex is None:
            return
        self.add_class("-session")
        state = ex.state
        self.query_one("#session-title", Static).update(session_title(ex))
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
                    self._state_cell(st.status, st.started_at),
                    key=each.id,
                )
        step = ex.current_step
        body = self.query_one("#step-body", Static)
        command = self.query_one("#step-command", Static)
        shown = self.query_one("#step-notice", Static)
        if step is None or ex.finished:
            body.update(prose(f"**Session {state.status.value}.**"))
            command.update("")
            shown.update(path_taken(ex))
        else:
            steps.move_cursor(row=step.index)
            current = state.steps[step.index]
            body.update(prose(f"### {step.index + 1}. {step.title}\n\n{ex.prose(step)}"))
            command.update(action_text(ex))
            shown.update(notice(current.status, current.detail, evidence(ex)))
            if current.status is not StepStatus.RUNNING:  # a running command's output streams in
                log = self.query_one("#step-output", Log)
                log.clear()
                log.write(clean(current.output, multiline=True))
                self.set_class(bool(current.output) and step.kind == "command", "-output")
        self._enable(self._allowed())
        self.call_after_refresh(self._fit_step_column)

    def _allowed(self) -> set[str]:
        """What may be done now: nothing while the driver works, but interrupt a running command."""
        ex, driver = self.executor, self.driver
        if ex is None or driver is None:
            return set()
        allowed = set(ex.allowed())
        if self._command_running():
            return allowed & {"interrupt"}
        return set() if driver.busy else allowed

    def _state_cell(self, status: StepStatus, started_at: str | None) -> str:
        elsewhere = (
            status is StepStatus.RUNNING and self.executor is not None and not self.executor.control_active
        )
        return state_text(status, started_at) + (" (elsewhere)" if elsewhere else "")

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
        """Every key the footer shows works, and only those: in a session view, a step action
        only while the step allows it; `n` and `l` not while a command runs."""
        session = self.executor is not None and self.has_class("-session")
        if action == "step":
            return session and parameters[0] in self._allowed()
        if action in ("back_to_list", "new_session"):
            return (session or action == "new_session") and not self._command_running()
        if action == "copy":
            step = self.executor.current_step if self.executor else None
            return session and step is not None and step.kind == "command"
        return True

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("step-"):
            self.action_step(event.button.id.removeprefix("step-"))

    def action_step(self, name: str) -> None:
        ex = self.executor
        step = ex.current_step if ex else None
        if ex is None or step is None or name not in self._allowed():
            return
        note_box = self.query_one("#step-note", Input)
        note = note_box.value.strip()
        action = BY_NAME[name]
        if not action.destructive or (name == "skip" and step.kind != "command"):
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

    DEFAULT_NOTES: ClassVar = {
        "mark-done": "confirmed from the dashboard",
        "skip": "skipped from the dashboard",
        "abort": "aborted from the dashboard",
        "interrupt": "interrupted from the dashboard",
    }

    def _act(self, name: str, note: str) -> None:
        driver = self.driver
        if driver is None:
            return
        driver.act(name, note or self.DEFAULT_NOTES.get(name, ""))
        if name != "interrupt":
            self._enable(set())  # one action at a time: no second press while it is under way

    def _tick(self) -> None:
        """Once a second: the running step's elapsed time (drawn from its start; nothing is read)."""
        ex = self.executor
        st = ex.current_state() if ex else None
        if ex is None or st is None or st.status is not StepStatus.RUNNING or ex.state.current is None:
            return
        row = ex.runbook.steps[ex.state.current].id
        self.query_one("#steps", DataTable).update_cell(
            row, "state", self._state_cell(st.status, st.started_at)
        )

    def hold_quit(self, quit_now: Callable[[], None]) -> bool:
        """Asked before the dashboard quits. True when a command is running here: the operator
        chooses (wait, leave it running, interrupt), and `quit_now` runs once that is done."""
        what = self.command_running()
        driver = self.driver
        if what is None or driver is None:
            return False

        def chosen(choice: str | None) -> None:
            if choice is None or self.driver is not driver:
                return
            self._after_command = quit_now
            if choice == "detach":
                driver.detach()  # the step's action ends at once, leaving the command running
            elif choice == "interrupt":
                driver.interrupt("interrupted when the dashboard was closed")
            else:
                self.app.notify("Quitting when the command ends.")
            if not driver.busy:  # it ended while the dialog was open
                self._action_done(ActionDone(driver.session_id, "quit", "", ()))

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
        driver, ex = self.driver, self.executor
        # the dashboard is going away (perhaps under a running command: it is left running, its
        # output and exit status collected on the next start); a step's save in flight finishes
        # first, then the store closes under the executor's lock so no write is cut off
        finished = driver.close(5) if driver is not None else True
        if self.sessions is not None and finished:
            if ex is None:
                self.sessions.close()
                return
            with ex.lock:
                self.sessions.close()
