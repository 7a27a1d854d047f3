"""The dashboard application. It paints its header at once, mounts each pane when it is first
needed, keeps the one verdict every view shows, routes messages between panes, and offers every
action in the command palette. It is given its `Ops`; panes call ops functions in workers and
render what comes back; nothing here does I/O itself.

`opsdash` starts it with `OpsdashApp.starting(path)`: the first frame shows the last verdict
recorded for the target (marked "last known", with its age) before the profile's models are even
imported; the profile is loaded and validated on a thread after that frame, and the panes start
then. Nothing this module imports at the top loads pydantic or the health engine
(tests/tui/test_last_known.py holds that)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Static, TabbedContent, TabPane
from textual.worker import Worker, WorkerState

from opsdash.core.errors import OpsdashError
from opsdash.ops.base import Ops, Source
from opsdash.tui.context import DashboardContext, ServiceView, Shown
from opsdash.tui.messages import (
    AlertsRaised,
    AlertsResolved,
    DemoFaultSwitched,
    EarlyEnded,
    EarlyFrameArrived,
    OpenRunbook,
    PictureChanged,
    ProfileLoaded,
    ServiceEventArrived,
    SourcesReloaded,
    SourcesReloadFailed,
)
from opsdash.tui.panes.overview import OverviewPane
from opsdash.tui.safe import clean
from opsdash.tui.style import MONO_THEME, gate_parts, severity_variables, use_palette

if TYPE_CHECKING:
    from opsdash.ops.attach import Server
    from opsdash.ops.early import Early
    from opsdash.tui.attached import Attached

FIRST_RUN = """[b]No opsdash configuration found.[/b]

Try it on the built-in BetaSkill demo:   [b]opsdash demo[/b]
Set it up for your project:               [b]opsdash init[/b]   (in the project directory)
Or point at a profile:                    [b]opsdash --config path/to/opsdash.toml[/b]

Press [b]q[/b] to quit."""


@dataclass(frozen=True)
class PaneSpec:
    """A pane, in the one place a pane is registered: its tab (its number is its key), its class
    ("module:Class", imported when the pane is first mounted, so markdown, SQLite and the tail
    engine load only when an operator opens the pane that needs them) and where its keys start."""

    id: str
    label: str
    cls: str = ""  # "": built with the app (the overview)
    focus: str = ""


PANES = (
    PaneSpec("overview", "Overview"),
    PaneSpec("validation", "Validation", "opsdash.tui.panes.validation:ValidationPane", "#findings"),
    PaneSpec("health", "Health", "opsdash.tui.panes.health:HealthPane", "#checks"),
    PaneSpec("audit", "Audit", "opsdash.tui.panes.audit:AuditPane", "#audit-log"),
    PaneSpec("runbooks", "Runbooks", "opsdash.tui.panes.runbooks:RunbooksPane", "#runbook-list"),
    PaneSpec("history", "History", "opsdash.tui.panes.history:HistoryPane", "#runs"),
    PaneSpec("timeline", "Timeline", "opsdash.tui.panes.timeline:TimelinePane", "#incidents"),
)
PANE_CLASSES = {p.id: p.cls for p in PANES if p.cls}
FOCUS = {p.id: p.focus for p in PANES if p.focus}
SOURCES = ("health", "validation")  # the panes whose workers feed the verdict: mounted at once, the
# health pane first (its probes wait on the network; validation is work for this process)
REMEMBER_EVERY = 60.0  # seconds: a verdict that holds is kept again at most this often
IDLE_PANES = ("audit",)  # mounted when start-up is over, before anyone asks for them
IDLE_MOUNT_AFTER = 1.5  # seconds
DEFAULT_THEME = "textual-dark"


def choose_theme(configured: str, *, monochrome: bool, colours: str | None) -> str:
    """NO_COLOR: the monochrome theme. A 16-colour terminal: the ANSI theme, unless the profile
    chose a theme of its own. Otherwise what the profile says."""
    if monochrome:
        return MONO_THEME.name
    if configured == DEFAULT_THEME and colours in ("standard", "windows"):
        return "ansi-dark"
    return configured


def pane_class(pane: str) -> Any:
    """The pane's class (its module imported now); panes are built as `cls(ctx, id=...)`."""
    module, name = PANE_CLASSES[pane].split(":")
    return getattr(importlib.import_module(module), name)


def key_rows(app: App[Any]) -> list[tuple[str, str, str, str]]:
    """(key as shown, what it does, binding id, where) for every key the dashboard answers."""
    from opsdash.tui.widgets.logview import LogView
    from opsdash.tui.widgets.table import FilterBar, OpsTable

    keymap: dict[str, str] = dict(getattr(app, "_keymap", {}) or {})
    rows: list[tuple[str, str, str, str]] = []
    seen: set[str] = set()
    owners: list[tuple[str, type[Any]]] = [("everywhere", type(app))]
    owners += [(p.label, pane_class(p.id)) for p in PANES if p.cls]
    owners += [("every table", OpsTable), ("filter box", FilterBar), ("audit log", LogView)]
    owners += [("help", HelpScreen)]
    for where, owner in owners:
        for binding in owner.BINDINGS:
            if not isinstance(binding, Binding) or not binding.id or binding.id in seen:
                continue
            seen.add(binding.id)
            key = keymap.get(binding.id, binding.key)
            shown = ", ".join(
                app.get_key_display(Binding(k.strip(), binding.action)) for k in key.split(",") if k.strip()
            )
            rows.append((shown, binding.description or binding.action, binding.id, where))
    rows.append(("ctrl+p", "Command palette (every action)", "", "everywhere"))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar = [Binding("escape,q,question_mark", "dismiss", "Close", id="help.close")]

    def compose(self) -> ComposeResult:
        from opsdash.tui.widgets.table import Col, OpsTable

        yield Static(
            Text("Keys  (remap any of them by id with [opsdash] keymap in opsdash.toml; Esc closes)"),
            id="help-title",
        )
        yield OpsTable(
            [Col("KEY", 12), Col("ACTION", 28, flex=1), Col("ID", 22), Col("WHERE", 12)], id="help-table"
        )

    def on_mount(self) -> None:
        table = self.query_one("#help-table", DataTable)
        for key, action, binding_id, where in key_rows(self.app):
            table.add_row(Text(key), Text(action), Text(binding_id), Text(where))
        table.focus()


class VerdictBar(Static):
    """The header: the verdict and its reason on the left (never cut before the label), the
    target and operator on the right when there is room."""

    DEFAULT_CSS = """
    VerdictBar { dock: top; height: 1; background: $panel; }
    """

    def show(self, shown: Shown, where: str, notice: str = "") -> None:
        parts = gate_parts(shown.label, shown.headline, shown.reason, live=shown.live, note=shown.note)
        if notice:  # before the target and operator: what the operator must not miss
            parts.append((f"  ▶ {notice}", "bold"))
        text = Content.assemble(*parts)
        width = self.size.width or 80
        room = width - text.cell_length - 3
        if room >= len(where):
            text = Content.assemble(text, " " * (room - len(where) + 2), (where, "dim"))
        self.update(text.truncate(max(width, 1), ellipsis=True))


class OpsdashApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "opsdash"
    BINDINGS: ClassVar = [
        Binding("q", "quit", "Quit", id="app.quit", tooltip="Leave the dashboard"),
        Binding("question_mark", "help", "Help", id="app.help", tooltip="List every key"),
        Binding(
            "escape",
            "leave",
            "Back",
            show=False,
            id="app.back",
            tooltip="Leave an input box or close a dialog",
        ),
        *(
            Binding(
                str(n),
                f"show_pane('{p.id}')",
                f"{p.label} pane",
                id=f"app.pane.{p.id}",
                show=False,
                tooltip=f"Show the {p.label} pane",
            )
            for n, p in enumerate(PANES, start=1)
        ),
    ]

    def __init__(
        self,
        ops: Ops,
        *,
        error: str | None = None,
        demo: bool = False,
        record: bool = True,
        live: bool = True,
    ) -> None:
        """The dashboard works through `ops`; `error` is a profile that did not load (shown instead of
        the panes). `live=False`: no network work on mount; `record=False`: nothing written."""
        self.monochrome = bool(os.environ.get("NO_COLOR"))  # read before Textual consumes it
        super().__init__()
        self.ctx = DashboardContext(ops, demo=demo, live=live, record=record, error=error)
        use_palette("mono" if self.monochrome else "colour")
        self._mounting: dict[str, asyncio.Future[Widget]] = {}
        self._wanted_pane = ""  # a pane key pressed while the profile was still loading
        self._settled_once = False  # the first live verdict was shown (or start-up gave up waiting)
        self._sessions_deferred = False  # the overview has not looked for an unfinished session yet
        # the settled verdict last kept for the next start, and when (monotonic seconds)
        self._remembered: tuple[str, str, float] | None = None
        self._purging = False  # the background retention worker was started
        self._early_child: Early | None = None  # the start-up child (ops/early.py)
        self._server: tuple[Server, str | None] | None = None  # attached: the service and its token
        self._attached: Attached | None = None
        self._panes_waiting = False  # attached: the panes are built once the service's verdict is shown
        self._panes_deferred = False

    def get_css_variables(self) -> dict[str, str]:
        """The theme's variables and the severity colours (`$severity-crit`, ...): the theme's own
        where it declares them, else derived from its error, warning, primary and success."""
        variables = super().get_css_variables()
        variables = {**variables, **severity_variables(variables)}
        self.theme_variables = variables
        return variables

    @classmethod
    def on_profile(
        cls, config_path: Path | None, *, data_dir: Path | None = None, **options: Any
    ) -> OpsdashApp:
        """The dashboard on a profile file (startup validation: its problems are shown on screen)."""
        ops, error = Ops.open_or_error(config_path, data_dir=data_dir)
        return cls(ops, error=error, **options)

    @classmethod
    def starting(
        cls,
        config_path: Path | None,
        *,
        data_dir: Path | None = None,
        early: Early | None = None,
        **options: Any,
    ) -> OpsdashApp:
        """What `opsdash` runs: the first frame shows the last verdict recorded for the profile's
        target (read with tomllib and sqlite3 only); the profile is loaded and validated on a thread
        after that frame (`_load_profile`), and the panes start when it is. `early`: the child
        forked before the UI was imported (ops/early.py), whose validation and first probe round
        give the live verdict before this process has loaded the profile. Without a profile:
        `on_profile` (the first-run screen needs the settings only)."""
        if config_path is None:
            return cls.on_profile(None, data_dir=data_dir, **options)
        from opsdash.ops.glance import last_known, quick_target

        app = cls(Ops(Source(config_path, data_dir=data_dir)), **options)
        app._early_child = early
        app.ctx.last_known = last_known(config_path, data_dir)
        target = quick_target(config_path)
        app.ctx.target_hint = f"{target[0]} ({target[1]})" if target else ""
        return app

    @classmethod
    def attached(cls, server: Server, token: str | None = None, **options: Any) -> OpsdashApp:
        """`opsdash --server URL`: the dashboard on a running `opsdash serve`'s live picture
        (tui/attached.py). No local profile is read, nothing is probed, validated or recorded."""
        from opsdash.ops.base import Source

        app = cls(Ops(Source(None)), live=False, record=False, **options)
        app.ctx.service = ServiceView(server.url, wanted=server.target)
        app._server = (server, token)
        app.title = f"opsdash — service {server.url}"
        return app

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield VerdictBar("", id="verdict-bar")
        if not self.ctx.ready:  # the first frame is the header alone: the panes follow it at once
            pass
        elif self.ctx.error is not None:
            yield self._startup_error()
        elif self.ctx.loaded is None:
            yield Static(FIRST_RUN, id="first-run")
        else:
            yield self._panes()
        yield Footer()

    def _panes(self) -> TabbedContent:
        panes = TabbedContent(id="panes", initial="overview")
        for n, spec in enumerate(PANES, start=1):
            inside = [OverviewPane(self.ctx, id="overview-pane")] if spec.id == "overview" else []
            panes.compose_add_child(TabPane(f"{spec.label} [{n}]", *inside, id=spec.id))
        return panes

    def _startup_error(self) -> Static:
        return Static(
            Text.assemble(
                ("opsdash cannot start on this configuration", "bold"),
                f"\n\n{self.ctx.error}\n\n",
                "Fix it (opsdash config validate lists every problem), then start opsdash again.",
            ),
            id="startup-error",
        )

    def on_mount(self) -> None:
        if self.ctx.ready:
            self._configure()
        else:  # the default look now; the profile's theme and keys once it is loaded
            self._apply_theme(DEFAULT_THEME)
            if self._early_child is not None:
                self._read_early(self._early_child)
            if self._server is not None:
                self._follow_service()
                self.set_interval(1.0, self.show_verdict)  # the age of the newest data, as it grows
            self.call_after_refresh(self._after_first_frame)
        self.show_verdict()
        # a closed terminal (SSH dropped) ends the app cleanly; runbook sessions are already saved
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hangup)

    def _configure(self, *, start: bool = True) -> None:
        """The profile's theme and keys, its target in the title, and (`start`) the panes' work
        started once the first frame is painted."""
        self._apply_theme(self.ctx.settings.theme)
        if self.ctx.settings.keymap:
            self.set_keymap(dict(self.ctx.settings.keymap))
        if self.ctx.loaded is not None:
            self._show_target()
            self._start_retention()
            if start:
                self.call_after_refresh(self._start_sources)

    def _start_retention(self) -> None:
        """Retention off the start: batches on a worker once something is recorded (registered
        now, so the panes' recordings only wake it); quitting cancels the worker, which stops
        between two batches (ops/retention.py)."""
        if self._purging or not (self.ctx.record and self.ctx.live):
            return
        self._purging = True
        from textual.worker import get_current_worker

        from opsdash.ops.retention import Background

        def problem(text: str) -> None:  # on the worker's thread: say it on screen, retry later
            self.call_from_thread(self.notify, clean(text), title="History retention", severity="warning")

        purge = Background(self.ctx.ops, on_problem=problem)
        self.run_worker(
            lambda: purge.run(get_current_worker().cancelled_event),
            thread=True,
            group="retention",
            exit_on_error=False,
            description="purge old history",
        )

    async def _after_first_frame(self) -> None:
        """The header is on screen: the panes as they will be (the overview shows the last known
        verdict too), then the profile loads on a thread. Attached, the service's verdict comes
        first: the panes and the settings follow it (or a second, if it is slow)."""
        if self._server is not None and not self._panes_deferred:
            self._panes_deferred = self._panes_waiting = True
            self.set_timer(IDLE_MOUNT_AFTER, self._build_panes)
            return
        await self.mount(self._panes(), after=self.query_one(VerdictBar))
        self._load_profile()

    @work(thread=True, group="start", exit_on_error=False, description="load the profile")
    def _load_profile(self) -> None:
        """After the first frame: import the settings and profile models, load and validate the
        profile (its problems are shown on screen), and import the panes that start at once, all
        off the UI thread."""
        source = self.ctx.ops.source
        ops, error = Ops.open_or_error(source.path, data_dir=source.data_dir)
        if error is None:
            for pane in SOURCES:
                pane_class(pane)
        self.post_message(ProfileLoaded(ops, error))

    def _read_early(self, child: Early) -> None:
        """Read what the start-up child sends, as it sends it, on a daemon thread of its own (not a
        worker: quitting must not wait for a child that waits out a check's timeout)."""

        def read() -> None:
            for frame in child.frames():
                self.post_message(EarlyFrameArrived(frame))
            self.post_message(EarlyEnded())

        self.ctx.early_running = True
        threading.Thread(target=read, name="opsdash-early", daemon=True).start()

    @on(EarlyFrameArrived)
    def early_arrived(self, message: EarlyFrameArrived) -> None:
        """The start-up child's validation (the Validation pane takes it rather than validate
        again), a check's result (the watch takes it as its first probe) or its verdict: live,
        worked out in this start, shown now."""
        from opsdash.ops.early import EarlyPicture, EarlyReport, EarlyResult

        frame = message.frame
        if isinstance(frame, EarlyReport):
            self.ctx.early_report = (frame, time.time())
            self._early_validation()
        elif isinstance(frame, EarlyResult):
            self.ctx.early_results[frame.result.name] = (frame.result, time.time())
        elif isinstance(frame, EarlyPicture):
            self.ctx.adopt_early(frame)
            self.show_verdict()

    @on(EarlyEnded)
    def early_ended(self) -> None:
        self.ctx.early_running = False
        self._early_validation()

    def _early_validation(self) -> None:
        pane: Any
        for pane in self.query("#validation-pane"):
            pane.early_settled()

    @on(ProfileLoaded)
    async def profile_loaded(self, message: ProfileLoaded) -> None:
        ops, error = message.ops, message.error
        self.ctx.ops, self.ctx.error = ops, error
        if error is not None:
            self._apply_theme(self.ctx.settings.theme)
            await self._show_startup_error()
            return
        self._configure(start=False)
        self._sessions_deferred = True
        for overview in self.query(OverviewPane):
            overview.refresh_history(sessions=False)
        self.show_verdict()
        await self._start_sources()  # the first frame is long painted: no need to wait for another
        if self._wanted_pane:
            self.action_show_pane(self._wanted_pane)

    async def _show_startup_error(self) -> None:
        """The profile did not load: its problem instead of the panes, and the header says so."""
        for panes in self.query("#panes"):
            await panes.remove()
        await self.mount(self._startup_error(), after=self.query_one(VerdictBar))
        self.show_verdict()

    def _show_target(self) -> None:
        if self.ctx.loaded is not None:
            target = self.ctx.loaded.profile.target
            self.title = f"opsdash — {target.name} ({target.environment})"

    def _apply_theme(self, configured: str) -> None:
        wanted = choose_theme(
            configured,
            monochrome=self.monochrome,
            colours=None if self.is_headless else self.console.color_system,
        )
        self.register_theme(MONO_THEME)  # NO_COLOR picks it; a profile may choose it too
        if wanted == MONO_THEME.name:
            use_palette("mono")  # severity by weight and reverse, not by hue
        if wanted not in self.available_themes:
            self.notify(
                f"theme {wanted!r} is not a theme (see 'opsdash config validate'); using {DEFAULT_THEME}",
                severity="error",
            )
            wanted = DEFAULT_THEME
        self.theme = wanted

    async def _start_sources(self) -> None:
        await self._mount_now(SOURCES)
        # once start-up is over, the Audit pane is built in idle time (it reads one page of the
        # log, never all of it), so switching to it later shows the newest records at once
        self.set_timer(IDLE_MOUNT_AFTER, self._mount_idle)

    async def _mount_idle(self) -> None:
        self._after_first_verdict()  # if the live verdict is slow, what waits for it waits no longer
        await self._mount_now(IDLE_PANES)

    def _after_first_verdict(self) -> None:
        """Once, when the first live verdict is on screen (or start-up is over without one): the
        work the verdict does not need — an unfinished runbook session (it loads the runbook
        engine) — so it does not delay the verdict."""
        if self._settled_once:
            return
        self._settled_once = True
        if self._sessions_deferred:
            self._sessions_deferred = False
            for overview in self.query(OverviewPane):
                overview.refresh_history()

    async def _mount_now(self, panes: Iterable[str]) -> None:
        """Mount panes ahead of need (at start, in idle time), unless the operator is quitting and
        the panes are already gone."""
        for pane in panes:
            if not self.query(f"TabPane#{pane}"):
                return
            await self.ensure_pane(pane)

    async def ensure_pane(self, pane: str) -> Any:
        """The pane's widget, mounted now if this is the first time it is needed."""
        cls = pane_class(pane)
        if self.ctx.service is not None:  # attached: a pane that acts here has a stand-in
            from opsdash.tui.attached import attached_class

            if (stand_in := attached_class(pane)) is not None:
                module, name = stand_in.split(":")
                cls = getattr(importlib.import_module(module), name)
        found = self.query(cls)
        if found:
            return found.first()
        pending = self._mounting.get(pane)
        if pending is not None:
            return await pending
        future: asyncio.Future[Widget] = asyncio.get_running_loop().create_future()
        self._mounting[pane] = future
        widget: Widget = cls(self.ctx, id=f"{pane}-pane")
        await self.query_one(f"TabPane#{pane}", TabPane).mount(widget)
        future.set_result(widget)
        return widget

    def _hangup(self) -> None:
        """The terminal is gone. Everything that matters is already persisted (runbook steps are saved
        before they run, audit records are fsynced), so exit; if restoring the vanished terminal hangs
        the normal shutdown, leave anyway after a few seconds."""
        timer = threading.Timer(3.0, os._exit, args=(129,))
        timer.daemon = True
        timer.start()
        self.exit(return_code=129)

    def show_verdict(self) -> None:
        """The header and the overview: one verdict, from one picture (or, until the live one says
        something, the last known one, marked)."""
        shown = self.ctx.shown()
        demo = " · demo target (fake values)" if self.ctx.demo else ""
        if self.ctx.service is not None:
            where = clean(self.ctx.service.where())
        elif self.ctx.ready:
            # which picture this is: probed here (an attached one names its service instead)
            where = f"{self.title.removeprefix('opsdash — ')} · local probes · {self.ctx.operator}{demo}"
            stale = "" if shown.live else f"({shown.note}) "  # never read as the live verdict
            self.sub_title = f"{stale}{shown.headline}: {shown.reason}{demo} · operator {self.ctx.operator}"
        else:
            where = clean(self.ctx.target_hint)
        unfinished = self.ctx.picture.unfinished  # offered on start: an interrupted incident comes first
        notice = f"runbook {unfinished}: 5 resumes" if unfinished else ""
        for bar in self.query(VerdictBar):
            bar.show(shown, where, notice)
        for overview in self.query(OverviewPane):
            overview.render_all()
        if shown.live and self.ctx.ready and self.ctx.error is None and self.ctx.evaluated():
            if self.ctx.record and not self.ctx.demo:  # the demo's fake target is not the real one
                self._remember(shown)
            self._after_first_verdict()

    def _remember(self, shown: Shown) -> None:
        """Keep a settled live GO or NO-GO (not one still waiting for checks, nor one paused) for
        the next start's first frame."""
        if shown.headline != shown.label or shown.label == "UNKNOWN":
            return  # paused (not what the target is now), or not a verdict: the last one stands
        now = time.monotonic()
        kept = self._remembered
        if kept is not None and kept[:2] == (shown.label, shown.reason) and now - kept[2] < REMEMBER_EVERY:
            return  # kept again while it holds, so its age at the next start is when it was last true
        self._remembered = (shown.label, shown.reason, now)
        self._keep_verdict(shown.label, shown.reason)

    @work(
        thread=True, group="glance", exclusive=True, exit_on_error=False, description="remember the verdict"
    )
    def _keep_verdict(self, label: str, reason: str) -> None:
        from opsdash.ops.glance import remember

        remember(self.ctx.ops, label, reason)

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_verdict)

    # ------------------------------------------------------------------ attached

    @work(exclusive=True, group="attach", exit_on_error=False, description="follow the service")
    async def _follow_service(self) -> None:
        """Read the service's /events for as long as the dashboard runs (reconnecting itself)."""
        from opsdash.ops.attach import Attachment

        assert self._server is not None
        server, token = self._server
        await Attachment(server, token, lambda event: self.post_message(ServiceEventArrived(event))).run()

    @on(ServiceEventArrived)
    def service_event(self, message: ServiceEventArrived) -> None:
        if self._attached is None:
            from opsdash.tui.attached import Attached

            self._attached = Attached(self, self.ctx)
        self._attached.apply(message.event)
        self.show_verdict()
        self.call_after_refresh(self._build_panes)

    async def _build_panes(self) -> None:
        if self._panes_waiting:
            self._panes_waiting = False
            await self._after_first_frame()

    # ------------------------------------------------------------------ routing

    @on(PictureChanged)
    def picture_changed(self, message: PictureChanged) -> None:
        """Validation, check states, pausing or the open alerts changed: one verdict again."""
        message.apply(self.ctx.picture)
        self.show_verdict()

    @on(TabbedContent.TabActivated)
    async def pane_shown(self, event: TabbedContent.TabActivated) -> None:
        """Mount the pane the first time, focus its main widget (so its keys work at once) and
        refresh what it reads from disk."""
        pane = event.pane.id or ""
        if not self.ctx.ready or not self.query("#panes"):  # not loaded yet, or it did not load
            return
        if pane == "overview":
            for overview in self.query(OverviewPane):  # sessions only once the first verdict is in
                overview.refresh_history(sessions=not self._sessions_deferred)
            self.set_focus(None)
            return
        widget: Any = await self.ensure_pane(pane)
        with contextlib.suppress(Exception):
            self.query_one(FOCUS[pane]).focus()
        if pane == "history" or (pane == "runbooks" and widget.executor is None):
            widget.load()
        elif pane == "audit":
            widget.shown()

    @on(OpenRunbook)
    async def open_runbook(self, message: OpenRunbook) -> None:
        pane: Any = await self.ensure_pane("runbooks")
        self.action_show_pane("runbooks")
        pane.open_runbook(message.runbook_id)

    @on(AlertsRaised)
    def alerts_raised(self, message: AlertsRaised) -> None:
        for title in message.titles:
            self.notify(title, title="Alert", severity="error", timeout=20)
        for overview in self.query(OverviewPane):
            overview.refresh_history()

    @on(AlertsResolved)
    def alerts_resolved(self, message: AlertsResolved) -> None:
        """An alert that ended leaves the verdict at once: the overview re-reads the open alerts,
        and the header with it (before, it stayed until something else refreshed them)."""
        for key in message.keys:
            self.notify(f"{key} recovered", title="Alert resolved", timeout=10)
        for overview in self.query(OverviewPane):
            overview.refresh_history()

    @on(SourcesReloaded)
    async def sources_reloaded(self, message: SourcesReloaded) -> None:
        """The profile or env files changed on disk and the watch read them again (and polls every
        check at once with them): the session is the new one and validation runs again on it, so
        the header agrees with a `check` or `preflight` run now, not with what was read at start."""
        self.ctx.ops = message.change.ops
        self._show_target()
        files = ", ".join(p.name for p in message.change.changed)
        self.notify(f"{files} changed: read again; validating and checking now", title="Reloaded")
        pane: Any = await self.ensure_pane("validation")
        pane.run_validation(reload=False)
        self.show_verdict()

    @on(SourcesReloadFailed)
    def sources_unreadable(self, message: SourcesReloadFailed) -> None:
        """Half-saved or broken files: say what is wrong, where; the panes keep the last good state."""
        self.notify(
            clean(message.change.problem or ""),
            title="Not reloaded: still using what was read before",
            severity="error",
            timeout=30,
            markup=False,
        )

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """A worker that dies must say so on screen, never vanish silently."""
        if event.state is WorkerState.ERROR:
            from opsdash.core.secrets import redactor

            error = redactor.redact(f"{type(event.worker.error).__name__}: {event.worker.error}")
            if event.worker.group == "start":  # the profile never loaded: the header must say so
                self.ctx.error = error
                self.call_later(self._show_startup_error)
            self.notify(
                error, title=f"{event.worker.description or event.worker.name} failed", severity="error"
            )

    # ------------------------------------------------------------------ actions

    def action_show_pane(self, pane: str) -> None:
        if not self.ctx.ready:  # shown once the profile is loaded
            self._wanted_pane = pane
            return
        if self.ctx.loaded is not None or self.ctx.service is not None:
            self.query_one(TabbedContent).active = pane

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        """Quit — unless a runbook command is running here: then the Runbooks pane asks (wait for
        it, leave it running, interrupt it) and quits once that is settled."""
        pane: Any
        for pane in self.query("#runbooks-pane"):  # by id: quitting never imports the pane's module
            if pane.hold_quit(self.exit):
                return
        self.exit()

    def action_leave(self) -> None:
        """Esc: out of an input box (back to the pane's table or log), or close the dialog."""
        if isinstance(self.screen, ModalScreen):
            self.screen.dismiss(None)
            return
        focused = self.focused
        if isinstance(focused, Input):
            shown = self.ctx.ready and (self.ctx.loaded or self.ctx.service)
            pane = self.query_one(TabbedContent).active if shown else ""
            target = self.query(FOCUS.get(pane, "#none"))
            if target:
                target.first().focus()
            else:
                self.set_focus(None)

    def on_key(self, event: events.Key) -> None:
        """Esc in a dialog that has no key of its own for it (app bindings do not reach a modal
        screen, but its unhandled keys bubble here)."""
        if event.key == "escape" and isinstance(self.screen, ModalScreen):
            event.stop()
            self.screen.dismiss(None)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if not self.ctx.ready or (self.ctx.loaded is None and self.ctx.service is None):
            return
        for spec in PANES:
            yield SystemCommand(
                f"Show {spec.label}",
                f"Switch to the {spec.label} pane",
                partial(self.action_show_pane, spec.id),
            )
        yield SystemCommand("Re-run validation", "Validate the environment again", self._rerun_validation)
        yield SystemCommand("Pause or resume health checks", "Stop or restart polling", self._pause_health)
        yield SystemCommand("Verify the audit log", "Check the audit log's chain", self._verify_audit)
        yield SystemCommand("Help: keys", "List every key binding", self.action_help)
        if self.ctx.demo:
            from opsdash.demo import FAULTS

            for name, text in FAULTS.items():
                for state in ("on", "off"):
                    yield SystemCommand(
                        f"Demo fault: {name} {state}", text, partial(self.switch_fault, name, state == "on")
                    )

    async def _rerun_validation(self) -> None:
        pane: Any = await self.ensure_pane("validation")
        pane.action_rerun()

    async def _pause_health(self) -> None:
        pane: Any = await self.ensure_pane("health")
        pane.action_pause()

    async def _verify_audit(self) -> None:
        self.action_show_pane("audit")
        pane: Any = await self.ensure_pane("audit")
        pane.action_verify()

    @work(thread=True, group="demo", exit_on_error=False, description="switch a demo fault")
    def switch_fault(self, name: str, on: bool) -> None:
        from opsdash.demo.control import switch_fault

        try:
            active = switch_fault(self.ctx.ops, name, on)
        except OpsdashError as exc:
            self.post_message(DemoFaultSwitched(name, on, error=str(exc)))
            return
        self.post_message(DemoFaultSwitched(name, on, active=active))

    @on(DemoFaultSwitched)
    async def fault_switched(self, message: DemoFaultSwitched) -> None:
        if message.error:
            self.notify(message.error, title="Demo fault", severity="error")
            return
        state = "on" if message.on else "off"
        self.notify(
            f"{message.fault} is {state}; faults on: {', '.join(message.active) or 'none'}",
            title="Demo fault",
        )
        await self._rerun_validation()


def run_dashboard(config_path: Path | None, *, demo: bool = False, early: Early | None = None) -> None:
    """Run the dashboard on this terminal (cli/common.py's `require_terminal` has made sure there
    is one, or textual-serve's pipes)."""
    try:
        OpsdashApp.starting(config_path, demo=demo, early=early).run()
    finally:
        if early is not None:  # still at work if the operator left at once
            early.cancel()


def run_attached(server: Server, token: str | None) -> None:
    """`opsdash --server URL`: the dashboard on a running service (cli/common.py checked the URL)."""
    OpsdashApp.attached(server, token).run()
