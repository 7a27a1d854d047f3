"""The one runbook step driver, as `ops/checks.Watch` is the one watch loop: it runs a session's
actions on its own worker thread and tells its subscribers what happened, as typed events
(events.py). `opsdash runbook run` prints them; the Runbooks pane posts them as messages.

- confirm / retry / mark-done / skip / abort go to the worker, one at a time, in order;
- a command's output streams out (masked) as it comes; interrupt and detach act at once, from
  any thread, on the command the worker runs;
- a command left running by an opsdash that has gone (found on resume) is watched on the worker
  until it ends, then its result is collected; interrupting it is recorded as an interrupt;
- every transition reaches the subscribers the moment the executor commits it (its
  `on_transition`), so nobody polls the database to learn that a step is running.

Subscribers are called on the thread that made the transition (usually the worker): a UI hands
the event to its own thread (`post_message`) and returns.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from opsdash.core.runbooks.executor import Executor, NotRecorded, StepNotAllowed
from opsdash.core.runbooks.state import SessionState, StepStatus, Transition, exit_code
from opsdash.core.secrets import redactor
from opsdash.ops.runbooks.events import (
    ActionDone,
    Detached,
    Event,
    GateEvaluated,
    Output,
    Recorded,
    SessionEnded,
    StepEnded,
    StepStarted,
)

ACTIONS = ("confirm", "retry", "mark-done", "skip", "abort")
STARTED = {"command-started": "command", "checks-started": "check"}
ENDED = {"command-finished", "checks-finished", "confirmed", "marked-done", "skipped", "interrupted"}
SESSION_ENDED = {"completed", "escalated", "aborted"}
WATCH_EVERY = 0.25  # how often a command another opsdash started is looked for in /proc


class StepDriver:
    """Drives one session. `start()` it after subscribing; `close()` it when done."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._subscribers: list[Callable[[Event], object]] = []
        self._queue: deque[tuple[str, str]] = deque()
        self._cond = threading.Condition()
        self._pending = 0  # actions asked for and not yet done
        self._reported = 0  # actions whose ActionDone every subscriber has had
        self._asked = 0
        self._closed = False
        self._watching = False  # watching a command another opsdash started
        self._stop_watching = ""  # "interrupt" or "detach", asked while watching
        self._stop_reason = ""
        self._wake = threading.Event()
        self._ended = False
        self._thread = threading.Thread(target=self._work, name="runbook-driver", daemon=True)
        executor.on_transition = self._transition

    # ------------------------------------------------------------------ what front ends call

    @property
    def state(self) -> SessionState:
        return self.executor.state

    @property
    def session_id(self) -> str:
        return self.executor.state.id

    def subscribe(self, subscriber: Callable[[Event], object]) -> None:
        self._subscribers.append(subscriber)

    def start(self) -> None:
        """Start the worker; a command still running from an opsdash that has gone is watched."""
        self._thread.start()
        if self._elsewhere():
            self._ask("watch", "")

    def act(self, action: str, note: str = "") -> None:
        """Ask for a step action (confirm, retry, mark-done, skip, abort, interrupt, detach).
        Returns at once; ActionDone says when it is over."""
        if action == "interrupt":
            self.interrupt(note)
        elif action == "detach":
            self.detach()
        else:
            self._ask(action, note)

    def interrupt(self, reason: str) -> None:
        """Stop the running command: the one the worker runs (it records the result), or one
        another opsdash started that the worker is watching."""
        if self.executor.control_active:
            # recorded (and then signalled) off the caller's thread: a UI never waits on a write
            threading.Thread(target=self._interrupt_own, args=(reason,), name="runbook-interrupt").start()
            return
        with self._cond:
            if self._watching:
                self._stop_watching, self._stop_reason = "interrupt", reason
                self._wake.set()
                return
        self._ask("interrupt", reason)

    def _interrupt_own(self, reason: str) -> None:
        ex = self.executor
        try:
            ex.interrupt(reason)
        except StepNotAllowed as exc:  # it ended meanwhile
            self._emit(ActionDone(self.session_id, "interrupt", str(exc), tuple(ex.allowed())))

    def detach(self) -> None:
        """Stop watching the running command and leave it running (collected on the next resume)."""
        if self.executor.control_active:
            self.executor.detach()
            return
        with self._cond:
            if self._watching:
                self._stop_watching = "detach"
                self._wake.set()

    @property
    def busy(self) -> bool:
        """An action is under way (or asked for)."""
        with self._cond:
            return self._pending > 0

    @property
    def command_running(self) -> bool:
        """A command runs that this driver started, or watches for another opsdash."""
        return self.executor.control_active or self._watching

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every action asked for is over and reported (what it printed is out);
        False when `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._reported == self._asked, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Detach from a running command, finish the action under way, stop the worker. False when
        it was still busy after `timeout` (the caller must not close the store under it then)."""
        self.detach()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    # ------------------------------------------------------------------ the worker

    def _ask(self, action: str, note: str) -> None:
        with self._cond:
            self._pending += 1
            self._asked += 1
            self._queue.append((action, note))
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if not self._queue:
                    return
                action, note = self._queue.popleft()
            refused, unrecorded = "", False
            try:
                self._do(action, note)
            except StepNotAllowed as exc:
                refused = str(exc)
            except NotRecorded as exc:  # the session stays where its record is
                refused, unrecorded = redactor.redact(f"{action} not recorded: {exc}"), True
            except Exception as exc:  # said to the operator; a dead worker would hang the front end
                refused = redactor.redact(f"{action} failed: {exc}")
            ex = self.executor
            with self._cond:
                self._pending -= 1
                self._cond.notify_all()
            self._emit(ActionDone(self.session_id, action, refused, tuple(ex.allowed()), unrecorded))
            with self._cond:
                self._reported += 1
                self._cond.notify_all()
            if self._closed:
                return

    def _do(self, action: str, note: str) -> None:
        ex = self.executor
        if action == "watch":
            self._watch()
        elif action == "confirm":
            ex.confirm(note, on_output=self._output)
        elif action == "retry":
            ex.retry()
        elif action == "mark-done":
            ex.mark_done(note)
        elif action == "skip":
            ex.skip(note)
        elif action == "abort":
            ex.abort(note)
        elif action == "interrupt":
            ex.interrupt(note)
        else:
            raise StepNotAllowed(f"no step action {action!r}")

    def _elsewhere(self) -> bool:
        """The current step runs in (or is being started by) another opsdash, or is left running."""
        ex = self.executor
        return ex.running_pid() is not None or ex.starting_elsewhere() is not None

    def _watch(self) -> None:
        """A command another opsdash started runs on: wait for it (its exit status is collected),
        interrupt it, or leave it running, as asked."""
        ex = self.executor
        index, st = ex.state.current, ex.current_state()
        if index is None or st is None or st.status is not StepStatus.RUNNING:
            return
        with self._cond:
            self._watching, self._stop_watching = True, ""
        try:
            # another opsdash that has claimed the step may not have started its command yet
            while ex.running_pid() is None and ex.starting_elsewhere() is not None and not self._closed:
                self._wake.wait(WATCH_EVERY)
                self._wake.clear()
            kind = ex.runbook.steps[index].kind
            started = st.started_at or ""
            self._emit(
                StepStarted(self.session_id, index, kind, started, elsewhere=True, pid=ex.running_pid())
            )
            while self._elsewhere():
                with self._cond:
                    stop, reason = self._stop_watching, self._stop_reason
                if stop == "interrupt" and ex.running_pid() is not None:
                    ex.interrupt(reason)
                    return
                if stop == "detach" or self._closed:
                    self._emit(Detached(self.session_id, index))
                    return
                self._wake.wait(WATCH_EVERY)
                self._wake.clear()
            ex.settle_detached()
        finally:
            with self._cond:
                self._watching = False

    # ------------------------------------------------------------------ events

    def _output(self, text: str) -> None:
        index = self.executor.state.current
        if index is not None:
            self._emit(Output(self.session_id, index, text))

    def _transition(self, t: Transition) -> None:
        ex = self.executor
        self._emit(Recorded(t.session_id, t.index, t.event, t.detail))
        if t.index is not None and t.event in STARTED:
            st = ex.state.steps[t.index]
            self._emit(StepStarted(t.session_id, t.index, STARTED[t.event], st.started_at or ""))
        elif t.index is not None and t.event in ENDED:
            if t.event == "checks-finished":
                gates = ex.last_gates
                passed = bool(gates) and all(g.ok for g in gates)
                self._emit(GateEvaluated(t.session_id, t.index, gates, passed))
            st = ex.state.steps[t.index]
            self._emit(StepEnded(t.session_id, t.index, st.status, st.exit_code, st.detail, st.output))
        elif t.index is not None and t.event == "detached":
            self._emit(Detached(t.session_id, t.index))
        if t.event in SESSION_ENDED and not self._ended:
            self._ended = True
            self._emit(SessionEnded(t.session_id, ex.state.status, exit_code(ex.state)))

    def _emit(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            subscriber(event)
