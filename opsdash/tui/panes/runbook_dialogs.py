"""The Runbooks pane's dialogs: a destructive step action asked once more, quitting while a
command runs, a start refused because another session holds the exclusive group, and a runbook's
parameters. Each has Cancel (or Stay) within reach of Esc, and none lets a stray Enter destroy."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from opsdash.core.findings import Severity
from opsdash.core.runbooks.model import Runbook
from opsdash.tui.safe import clean
from opsdash.tui.style import severity


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

    @on(Button.Pressed, "#confirm-cancel")
    def action_cancel(self) -> None:  # Esc, or the Cancel button
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

    def __init__(
        self, book: Runbook, suggested: dict[str, str] | None = None, *, lookup: bool = False
    ) -> None:
        """`lookup`: values are being looked up (the version source may take seconds); they fill
        in the fields the operator has not typed in when `suggest` brings them. The dialog is
        up at once, so what the operator types meanwhile lands here, never on the session."""
        super().__init__()
        self.book = book
        self.suggested = suggested or {}
        self.lookup = lookup

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="params-dialog", classes="dialog"):
            yield Label(Text(f"{self.book.title}: parameters", style="bold"), id="params-title")
            for p in self.book.parameters:
                yield Label(Text(p.prompt, style="bold"))
                if p.hint():
                    yield Static(Text(p.hint(), style="dim"), classes="param-hint")
                value = self.suggested.get(p.name, p.default or "")
                yield Input(value=value, placeholder=p.example, id=f"param-{p.name}")
                note = ""
                if p.name in self.suggested:
                    note = "filled in from the deploy's version source"
                elif self.lookup and p.suggest:
                    note = "looking it up in the deploy's version source…"
                yield Label(Text(note, style="dim italic"), id=f"param-note-{p.name}")
            yield Static("", id="params-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start", variant="primary", id="params-start")
                yield Button("Cancel", id="params-cancel")

    def suggest(self, values: dict[str, str]) -> None:
        """The looked-up values arrived: each fills its field unless the operator changed it."""
        for p in self.book.parameters:
            if not p.suggest:
                continue
            field = self.query_one(f"#param-{p.name}", Input)
            note = self.query_one(f"#param-note-{p.name}", Label)
            if p.name in values and field.value == (p.default or ""):
                field.value = values[p.name]
                note.update(Text("filled in from the deploy's version source", style="dim italic"))
            else:
                note.update("")

    def on_mount(self) -> None:
        self.query(Input).first().focus()

    @on(Button.Pressed, "#params-cancel")
    def action_cancel(self) -> None:  # Esc, or the Cancel button
        self.dismiss(None)

    @on(Button.Pressed, "#params-start")
    @on(Input.Submitted)
    def start(self) -> None:
        values = {p.name: self.query_one(f"#param-{p.name}", Input).value for p in self.book.parameters}
        problems = [p.problem(values[p.name]) for p in self.book.parameters]
        problem = next((x for x in problems if x), None)
        if problem:
            self.query_one("#params-error", Static).update(severity(problem, Severity.CRIT))
            return
        self.dismiss(values)
