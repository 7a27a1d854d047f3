"""Runbooks: the list, and the guided view — steps with their state, the current step's Markdown,
parameter prompts, confirm / run / retry / skip / abort, live command output, check gates, and
resuming an interrupted session. The core executor does the work, in a thread worker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, Label, Log, Markdown, Static

from opsdash.core.errors import OpsdashError
from opsdash.core.runbooks.executor import STATUS_MARK, Executor, StepNotAllowed
from opsdash.core.runbooks.model import Runbook
from opsdash.core.secrets import redactor
from opsdash.tui.context import DashboardContext
from opsdash.tui.messages import RunbookOutputReceived, RunbookStepFinished

if TYPE_CHECKING:
    from opsdash.ops.runbooks import Sessions
    from opsdash.storage.rows import SessionRow

BUTTONS = (
    ("confirm", "Do it", "primary"),
    ("retry", "Retry", "default"),
    ("mark-done", "Done", "default"),
    ("skip", "Skip", "warning"),
    ("abort", "Abort", "error"),
)


class ParametersScreen(ModalScreen[dict[str, str] | None]):
    """Asks for a runbook's parameters, checking each against its pattern or choices."""

    def __init__(self, book: Runbook) -> None:
        super().__init__()
        self.book = book

    def compose(self) -> ComposeResult:
        with Vertical(id="params-dialog"):
            yield Label(f"{self.book.title}: parameters", id="params-title")
            for p in self.book.parameters:
                hint = f" ({'/'.join(p.choices)})" if p.choices else (f"  [{p.pattern}]" if p.pattern else "")
                yield Label(f"{p.prompt}{hint}")
                yield Input(value=p.default or "", id=f"param-{p.name}")
            yield Static("", id="params-error")
            with Horizontal():
                yield Button("Start", variant="primary", id="params-start")
                yield Button("Cancel", id="params-cancel")

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
    ]

    def __init__(self, ctx: DashboardContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ctx = ctx
        self.books: list[Runbook] = []
        self.active: dict[str, str] = {}  # runbook id -> active session id
        self.executor: Executor | None = None
        self.sessions: Sessions | None = None
        self._wanted: str | None = None  # a runbook a link asked for, applied once the list is loaded

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield DataTable(id="runbook-list", cursor_type="row")
            with Vertical(id="guided"):
                yield Static("Choose a runbook and press Enter.", id="session-title")
                yield DataTable(id="steps", cursor_type="row")
                with VerticalScroll(id="step-scroll"):
                    yield Markdown("", id="step-body")
                yield Input(placeholder="note / reason (recorded with the step)", id="step-note")
                with Horizontal(id="step-buttons"):
                    for action, label, variant in BUTTONS:
                        yield Button(label, id=f"step-{action}", variant=variant, disabled=True)  # type: ignore[arg-type]
                yield Log(id="step-output", max_lines=2000)

    def on_mount(self) -> None:
        self.border_title = "Runbooks"
        books = self.query_one("#runbook-list", DataTable)
        for label, width in (("RUNBOOK", 26), ("SEV", 4), ("STEPS", 5), ("LAST", 9)):
            books.add_column(label, width=width)
        steps = self.query_one("#steps", DataTable)
        for label, width in (("", 1), ("#", 2), ("KIND", 7), ("STEP", 38), ("STATE", 11)):
            steps.add_column(label, width=width)
        self.load()

    @work(
        thread=True, exclusive=True, group="runbooks-load", exit_on_error=False, description="load runbooks"
    )
    def load(self) -> None:
        from opsdash.ops.runbooks import catalogue

        books, _problems, last = catalogue(self.ctx.ops)
        self.app.call_from_thread(self._listed, books, last)

    def _listed(self, books: list[Runbook], last: dict[str, SessionRow | None]) -> None:
        self.books = books
        self.active = {b: s.id for b, s in last.items() if s is not None and s.status == "active"}
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
        self.query_one("#step-body", Markdown).update(f"{book.summary}\n\n{book.intro}")

    @on(DataTable.RowSelected, "#runbook-list")
    def selected(self, _event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        book = self._book()
        if book is None:
            return
        if book.id in self.active:
            self.start_or_resume(book, None, self.active[book.id])
        else:
            self._ask_params(book)

    def action_new_session(self) -> None:
        book = self._book()
        if book is not None:
            self._ask_params(book)

    def _ask_params(self, book: Runbook) -> None:
        if not book.parameters:
            self.start_or_resume(book, {}, None)
            return

        def started(values: dict[str, str] | None) -> None:
            if values is not None:
                self.start_or_resume(book, values, None)

        self.app.push_screen(ParametersScreen(book), started)

    @work(
        thread=True,
        exclusive=True,
        group="runbook",
        exit_on_error=False,
        description="open a runbook session",
    )
    def start_or_resume(self, book: Runbook, params: dict[str, str] | None, session_id: str | None) -> None:
        from opsdash.ops.runbooks import Sessions

        try:
            if self.sessions is None:  # one connection, kept across this pane's workers
                self.sessions = Sessions(self.ctx.ops, shared=True)
            if session_id is not None:
                self.executor = self.sessions.resume(book, session_id)
            else:
                assert params is not None
                self.executor = self.sessions.start(book, params)
        except (OpsdashError, ValueError, LookupError) as exc:
            self.app.call_from_thread(self.app.notify, redactor.redact(str(exc)), severity="error")
            return
        self.post_message(RunbookStepFinished(self.executor.state.id))

    @on(RunbookStepFinished)
    def render_session(self, _message: RunbookStepFinished) -> None:
        ex = self.executor
        if ex is None:
            return
        state = ex.state
        self.query_one("#session-title", Static).update(
            Text.assemble(
                (ex.runbook.title, "bold"), f"  session {state.id} — ", (state.status.value, "cyan")
            )
        )
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
                    st.status.value,
                    key=each.id,
                )
        step = ex.current_step
        body = self.query_one("#step-body", Markdown)
        if step is None or ex.finished:
            body.update(f"**Session {state.status.value}.**")
        else:
            steps.move_cursor(row=step.index)
            action = ""
            if step.kind == "command":
                action = f"\n\n**Runs:**\n\n```sh\n{ex.command(step).rstrip()}\n```"
            elif step.kind == "check":
                gates = "\n".join(f"- {g.label()}" for g in ex.gates(step))
                action = f"\n\n**Must pass:**\n\n{gates}"
            current = state.steps[step.index]
            notice = f"\n\n> **{current.status.value}**: {current.detail}" if current.detail else ""
            body.update(f"### {step.index + 1}. {step.title}\n\n{ex.prose(step)}{action}{notice}")
            if current.output:
                log = self.query_one("#step-output", Log)
                log.clear()
                log.write(current.output)
        allowed = set(ex.allowed())
        for action_name, _label, _variant in BUTTONS:
            self.query_one(f"#step-{action_name}", Button).disabled = action_name not in allowed

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        if event.button.id and event.button.id.startswith("step-"):
            note = self.query_one("#step-note", Input).value.strip()
            self.query_one("#step-note", Input).value = ""
            if event.button.id == "step-confirm":
                self.query_one("#step-output", Log).clear()
            for action_name, _label, _variant in BUTTONS:  # one action at a time: no second press
                self.query_one(f"#step-{action_name}", Button).disabled = True
            self.act(event.button.id.removeprefix("step-"), note)

    @work(thread=True, exclusive=True, group="runbook", exit_on_error=False, description="run a runbook step")
    def act(self, action: str, note: str) -> None:
        ex = self.executor
        if ex is None:
            return
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
        except StepNotAllowed as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="warning")
        self.post_message(RunbookStepFinished(ex.state.id))
        if ex.finished:
            self.load()

    def _output_arrived(self, text: str) -> None:
        self.post_message(RunbookOutputReceived(text))

    @on(RunbookOutputReceived)
    def output(self, message: RunbookOutputReceived) -> None:
        self.query_one("#step-output", Log).write(message.text)

    def action_copy(self) -> None:
        ex = self.executor
        step = ex.current_step if ex else None
        if ex is None or step is None or step.kind != "command":
            self.app.notify("The current step has no command to copy.", severity="warning")
            return
        self.app.copy_to_clipboard(ex.command(step))
        self.app.notify("Command copied to the clipboard.")

    def on_unmount(self) -> None:
        if self.sessions is not None:
            self.sessions.close()
