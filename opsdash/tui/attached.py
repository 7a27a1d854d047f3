"""The dashboard attached to a running `opsdash serve` (`opsdash --server URL`): what the service
pushes (ops/attach.py) goes into the live picture every view reads, and on to the panes as the same
messages their own workers would post (`CheckCompleted`, `ValidationCompleted`, ...), so every pane
renders the service's data with its own code. Nothing here probes, validates or records.

What needs this machine to act (running a runbook step, pausing polling, re-validating, reading the
audit log or history) is not done attached: the key says so, and where it can be done instead."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.app import App

from opsdash.tui.context import DashboardContext, ServiceView
from opsdash.tui.messages import CheckCompleted, ValidationCompleted, ValidationFailed

if TYPE_CHECKING:
    from opsdash.ops.attach import Event
    from opsdash.ops.live import TargetPicture

# The panes that render the service's picture; every other pane shows `ElsewherePane` attached
# (the Runbooks pane: the sessions of every operator, read-only)
SERVED_PANES = ("overview", "validation", "health")
ATTACHED_CLASSES = {"runbooks": "opsdash.tui.panes.service:SessionsPane"}
ELSEWHERE = "opsdash.tui.panes.service:ElsewherePane"
READ_ONLY = {
    "pause": "polling is the service's own: p cannot pause it from here",
    "validate": "the service validates every [serve] validate_interval; to validate now, run "
    "'opsdash validate' on its host",
    "runbook": "a runbook step runs on the machine it changes: run 'opsdash runbook run' there",
    "audit": "the audit log is on the service's host: 'opsdash audit verify' there",
}


def attached_class(pane: str) -> str | None:
    """The class ("module:Class") that stands for `pane` on an attached dashboard; None: its own."""
    if pane in SERVED_PANES:
        return None
    return ATTACHED_CLASSES.get(pane, ELSEWHERE)


def refuse(app: App[Any], ctx: DashboardContext, what: str) -> bool:
    """True (and said on screen) when `what` cannot be done attached."""
    if ctx.service is None:
        return False
    app.notify(
        f"Attached to {ctx.service.url}: {READ_ONLY[what]}.", title="Read-only here", severity="warning"
    )
    return True


class Attached:
    """Applies each service event to the context and the mounted panes."""

    def __init__(self, app: App[Any], ctx: DashboardContext) -> None:
        self.app, self.ctx = app, ctx

    @property
    def view(self) -> ServiceView:
        assert self.ctx.service is not None
        return self.ctx.service

    def apply(self, event: Event) -> None:
        from opsdash.ops import attach

        view = self.view
        if isinstance(event, attach.Detached):
            self._lost(event.reason, event.retry_in)
            return
        if isinstance(event, attach.Attached):
            self._snapshot(event.picture)
            return
        view.newest = max(view.newest or 0.0, event.at)
        if isinstance(event, attach.SessionsChanged):
            view.sessions = event.sessions
            self._sessions()
        elif event.target != view.target:
            return  # another target of the same service
        elif isinstance(event, attach.CheckChanged):
            self.ctx.picture.states[event.state.last.name if event.state.last else ""] = event.state
            if event.state.last is not None:
                self._to_pane("health", CheckCompleted(event.state.last, event.state))
        elif isinstance(event, attach.Validated):
            self._validated(event.report, event.problem)
        elif isinstance(event, attach.AlertsChanged):
            for title in event.fired:
                self.app.notify(title, title="Alert (service)", severity="error", timeout=20)
            for key in event.resolved:
                self.app.notify(f"{key} recovered", title="Alert resolved (service)", timeout=10)
            self._alerts(event.alerts)

    # ------------------------------------------------------------------------------------

    def _snapshot(self, picture: Any) -> None:
        view = self.view
        was_lost = bool(view.target) and not view.connected
        view.connected, view.problem, view.retry_in = True, "", 0.0
        chosen = self._choose(picture.targets)
        view.newest = picture.at
        view.sessions = list(picture.sessions)
        if chosen is None:
            view.connected, view.retry_in = False, None
            return
        view.target, view.environment, view.checks = chosen.name, chosen.environment, list(chosen.checks)
        self.ctx.picture.states = dict(chosen.states)
        health = self._pane("health")
        if health is not None:
            health.attach_checks(view.checks)
            for state in chosen.states.values():
                if state.last is not None:
                    health.post_message(CheckCompleted(state.last, state))
        self._validated(chosen.report, chosen.validation_problem, quiet=True)
        self._alerts(chosen.alerts)
        self._sessions()
        self._restyle()
        if was_lost:
            self.app.notify(f"Connected again to {view.url}.", title="Service")

    def _choose(self, targets: list[TargetPicture]) -> TargetPicture | None:
        view = self.view
        names = [t.name for t in targets]
        wanted = view.wanted or (names[0] if names else None)
        for target in targets:
            if target.name == wanted:
                if len(targets) > 1 and view.wanted is None and not view.target:
                    others = ", ".join(names[1:])
                    self.app.notify(
                        f"The service watches {len(targets)} targets; showing {target.name}. "
                        f"For another: --server '{view.url}?target=NAME' ({others}).",
                        title="Service",
                    )
                return target
        served = ", ".join(names) or "none"
        view.problem = f"the service has no target {wanted!r} (it serves: {served})"
        return None

    def _validated(self, report: Any, problem: str | None, *, quiet: bool = False) -> None:
        picture = self.ctx.picture
        if report is None and problem is None:
            return  # not validated yet on the service
        picture.report, picture.validated = report, True
        self.view.validation_problem = problem
        if report is not None:
            self._to_pane("validation", ValidationCompleted(report))
        elif not quiet or self._pane("validation") is not None:
            self._to_pane("validation", ValidationFailed(f"on the service: {problem}"))

    def _alerts(self, alerts: list[Any]) -> None:
        self.view.alerts = list(alerts)
        self.ctx.picture.alerts = [a.contribution() for a in alerts]
        for overview in self.app.query("#overview-pane"):
            overview.alerts = list(alerts)  # type: ignore[attr-defined]

    def _sessions(self) -> None:
        pane = self._pane("runbooks")
        if pane is not None:
            pane.show_sessions()

    def _lost(self, reason: str, retry_in: float | None) -> None:
        view = self.view
        first = view.connected or (view.problem == "connecting…")
        view.connected, view.problem, view.retry_in = False, reason, retry_in
        if first:  # said once when it goes, not on every attempt to come back
            again = "not retrying" if retry_in is None else "reconnecting"
            self.app.notify(
                f"{view.url}: {reason}; the verdict is UNKNOWN until it is back ({again}).",
                title="Service connection lost" if view.target else "Service not reached",
                severity="error",
                timeout=15,
                markup=False,
            )
        self._restyle()

    def _restyle(self) -> None:
        health = self._pane("health")
        if health is not None:
            health.restyle()

    def _pane(self, pane: str) -> Any:
        found = self.app.query(f"#{pane}-pane")
        return found.first() if found else None

    def _to_pane(self, pane: str, message: Any) -> None:
        widget = self._pane(pane)
        if widget is not None:
            widget.post_message(message)
