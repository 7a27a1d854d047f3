"""The runbook executor: a state machine whose every transition is persisted before it is acted on.

A command step is marked *running* in the store before its process starts, so a session killed at
any point resumes at the right step — and a command that was running when the process died comes
back *interrupted*, for the operator to retry, confirm or skip; it is never re-run silently.

While a command runs, the only thing the operator may do is interrupt it (or, from a front end that
is going away, detach from it: the command keeps running, writing its output where the next opsdash
collects it with its exit status).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from opsdash.core.errors import InputError, OpsdashError
from opsdash.core.findings import new_run_id
from opsdash.core.runbooks.gates import Gate, parse_gates
from opsdash.core.runbooks.model import Runbook, Step, fill_command, fill_text
from opsdash.core.runbooks.process import (
    _collected,
    _discard,
    _kill_group,
    _pid_left,
    _run_command,
    claim_ownership,
    command_alive,
    owner_elsewhere,
)
from opsdash.core.runbooks.state import (
    DETACHED,
    ESCALATION,
    MAX_OUTPUT,
    STATUS_MARK,
    AuditHook,
    CommandControl,
    GateResult,
    GateRunner,
    SessionState,
    SessionStatus,
    StepNotAllowed,
    StepState,
    StepStatus,
    Store,
    Transition,
)
from opsdash.core.secrets import MASK, redactor, secret_like, secret_param

__all__ = [  # the executor and, for its callers, the session's data and the command's process
    "DETACHED",
    "ESCALATION",
    "MAX_OUTPUT",
    "STATUS_MARK",
    "AuditHook",
    "CommandControl",
    "Executor",
    "GateResult",
    "GateRunner",
    "NotRecorded",
    "SessionState",
    "SessionStatus",
    "StepNotAllowed",
    "StepState",
    "StepStatus",
    "Store",
    "Transition",
    "command_alive",
]


class NotRecorded(InputError):
    """A transition the store refused or could not save (the session was taken over or ended
    elsewhere; the database went away): the session in memory stays where the record says, and a
    front end stops guiding (the operator resumes it)."""

    def __init__(self, session_id: str, cause: Exception) -> None:
        self.session_id = session_id
        said = str(cause) if isinstance(cause, OpsdashError) else f"the database failed: {cause}"
        super().__init__(f"{said}; not recorded: the session stays where its record is")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Executor:
    runbook: Runbook
    state: SessionState
    store: Store
    run_gates: GateRunner
    audit: AuditHook = lambda *_args: None
    control: CommandControl = field(default_factory=CommandControl)
    # a front end's thread may interrupt while the step's thread records: one write at a time; a
    # front end closing the store takes it too, so no write is ever cut off mid-statement
    lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    # told of every transition the moment it is committed (on the thread that made it)
    on_transition: Callable[[Transition], None] | None = field(default=None, repr=False)
    # where the record stands (status, current, steps, escalated, updated_at): what the session in
    # memory goes back to when a transition cannot be saved, so it never moves on unrecorded
    _saved: tuple[object, ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        self._mark_saved()

    def _mark_saved(self) -> None:
        st = self.state
        self._saved = (st.status, st.current, list(st.steps), st.escalated, st.updated_at)

    def _put_back(self) -> None:
        status, current, steps, escalated, updated_at = self._saved
        st = self.state
        st.status, st.current, st.escalated = status, current, escalated  # type: ignore[assignment]
        st.steps, st.updated_at = list(steps), updated_at  # type: ignore[call-overload,assignment]

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def start(
        cls,
        runbook: Runbook,
        params: Mapping[str, str],
        operator: str,
        store: Store,
        run_gates: GateRunner,
        audit: AuditHook | None = None,
        target: str = "",
    ) -> Executor:
        problems = [p.problem(params[p.name]) for p in runbook.parameters if p.name in params]
        missing = [p.name for p in runbook.parameters if p.name not in params]
        if missing or any(problems):
            raise ValueError(
                "; ".join([*(f"parameter {m} has no value" for m in missing), *filter(None, problems)])
            )
        for p in runbook.parameters:  # a typed secret is masked wherever the session shows or keeps it
            value = params.get(p.name, "")
            # a value from the runbook's own choices is never a secret
            typed = [value] if secret_param(p.name) else [] if p.choices else secret_like(value)
            for secret in typed:
                redactor.register(secret)
        now = _now()
        state = SessionState(
            id=new_run_id(),
            runbook_id=runbook.id,
            runbook_path=str(runbook.path),
            title=runbook.title,
            params=dict(params),
            operator=operator,
            status=SessionStatus.ACTIVE,
            current=0,
            steps=[StepState() for _ in runbook.steps],
            started_at=now,
            updated_at=now,
            exclusive=runbook.exclusive,
            target=target,
        )
        store.create(state)
        executor = cls(runbook, state, store, run_gates, audit or (lambda *_a: None))
        executor._record(None, "session-started", f"parameters: {executor._shown_params()}")
        return executor

    @classmethod
    def resume(
        cls,
        runbook: Runbook,
        session_id: str,
        store: Store,
        run_gates: GateRunner,
        audit: AuditHook | None = None,
    ) -> Executor:
        state = store.load(session_id)
        if state is None:
            raise LookupError(f"no runbook session {session_id}")
        if state.runbook_id != runbook.id or len(state.steps) != len(runbook.steps):
            raise ValueError(
                f"session {session_id} belongs to runbook {state.runbook_id!r} with "
                f"{len(state.steps)} steps; the runbook file has changed since"
            )
        # parameters are stored masked when they hold a secret; the secrets the masker knows again
        # (from the target's env files) bring them back, and a step never runs with a mask in it
        state.params = {k: redactor.unmask(v) for k, v in state.params.items()}
        still_masked = sorted(k for k, v in state.params.items() if MASK in v)
        if still_masked and state.status is SessionStatus.ACTIVE:
            raise ValueError(
                f"parameter {', '.join(still_masked)} of session {session_id} held a secret that is not in "
                "the target's env files (any more), so it was kept masked; start a new session"
            )
        executor = cls(runbook, state, store, run_gates, audit or (lambda *_a: None))
        index = state.current
        pid = executor.running_pid()
        if pid is not None:
            executor._record(index, "found-running", f"its command is still running (process group {pid})")
        elif (owner := executor.starting_elsewhere()) is not None:
            executor._record(index, "found-running", f"another opsdash (process {owner}) is starting it")
        else:
            executor.settle_detached("opsdash stopped while this step was running; its effect is unknown")
        executor._record(index, "session-resumed", "")
        return executor

    # ------------------------------------------------------------------ views

    @property
    def finished(self) -> bool:
        return self.state.status is not SessionStatus.ACTIVE

    @property
    def current_step(self) -> Step | None:
        return None if self.state.current is None else self.runbook.steps[self.state.current]

    def current_state(self) -> StepState | None:
        return None if self.state.current is None else self.state.steps[self.state.current]

    def prose(self, step: Step) -> str:
        return fill_text(step.body, self.state.params)

    def command(self, step: Step) -> str:
        return fill_command(step.action, self.state.params)

    def gates(self, step: Step) -> list[Gate]:
        gates, _problems = parse_gates(fill_text(step.action, self.state.params))
        return gates

    def running_pid(self) -> int | None:
        """The process group of the current step's command when it is still running (possibly
        started by an opsdash that has since died); None otherwise."""
        st, index = self.current_state(), self.state.current
        if st is None or index is None or st.status is not StepStatus.RUNNING:
            return None
        pid = st.pid or _pid_left(self.store.output_path(self.state.id, index))
        return pid if pid is not None and command_alive(pid, self.state.id) else None

    def starting_elsewhere(self) -> int | None:
        """The pid of another live opsdash that has claimed the current step and not yet started
        (or not yet finished) it; None otherwise."""
        st, index = self.current_state(), self.state.current
        if st is None or index is None or st.status is not StepStatus.RUNNING:
            return None
        return owner_elsewhere(self.store.output_path(self.state.id, index))

    def settle_detached(self, why: str = DETACHED) -> None:
        """A step left running by another process whose command is gone becomes interrupted: the
        operator checks its effect, then marks it done or retries. Never re-run automatically."""
        index, st, step = self.state.current, self.current_state(), self.current_step
        if index is None or st is None or step is None or st.status is not StepStatus.RUNNING:
            return
        if self.running_pid() or self.starting_elsewhere() is not None:
            return
        out_path = self.store.output_path(self.state.id, index)
        output, code = _collected(out_path)
        if self._interrupting is not None:  # stopped on the operator's word: an interrupt, whatever it said
            why = self._interrupting
        elif code is not None:  # the command finished on its own and said how: that is its result
            done = replace(st, status=StepStatus.DONE if code == 0 else StepStatus.FAILED, exit_code=code)
            if self._settle(index, done):
                self._finish_command(step, st, output, code, "finished while no opsdash was watching")
                _discard(out_path)
            return
        interrupted = replace(
            st,
            status=StepStatus.INTERRUPTED,
            finished_at=_now(),
            detail=why,
            output=redactor.redact(output),
            exit_code=code,
        )
        if self._settle(index, interrupted):
            self._set(index, interrupted)
            said = why if self._interrupting is not None else "found running after a restart"
            self._record(index, "interrupted", f"{said}: not re-run automatically")
            _discard(out_path)

    def _settle(self, index: int, settled: StepState) -> bool:
        """Claim a running step's result, unless the opsdash that ran it recorded one meanwhile (it
        watched the command end): then that record is the truth, and this executor adopts it."""
        with self.lock:
            if self.store.claim(self.state.id, index, StepStatus.RUNNING, settled):
                return True
            fresh = self.store.load(self.state.id)
        if fresh is not None:
            self.state.status, self.state.current = fresh.status, fresh.current
            self.state.steps, self.state.escalated = fresh.steps, fresh.escalated
            self._mark_saved()
        return False

    def allowed(self) -> list[str]:
        """What the operator may do now: confirm, retry, skip, mark-done, abort — or, while a command
        runs, only interrupt it: it can be neither started again nor skipped nor aborted under."""
        step, st = self.current_step, self.current_state()
        if step is None or st is None or self.finished:
            return []
        if st.status is StepStatus.RUNNING:
            return ["interrupt"] if step.kind == "command" else []
        if st.status is StepStatus.INTERRUPTED:
            return ["retry", "mark-done", "skip", "abort"]
        if st.status is StepStatus.FAILED:
            return ["retry", *(["skip"] if step.skippable else []), "abort"]
        return ["confirm", *(["skip"] if step.skippable else []), "abort"]

    # ------------------------------------------------------------------ actions

    def confirm(self, note: str = "", on_output: Callable[[str], None] | None = None) -> StepState:
        """Do the current step: a manual step is confirmed, a command runs, a check block is evaluated."""
        step, st = self._require("confirm")
        _learn_typed(note)
        if step.kind == "manual":
            done = replace(
                st, status=StepStatus.DONE, started_at=st.started_at or _now(), finished_at=_now(), note=note
            )
            self._set(step.index, done)
            self._advance(step)
            self._commit(step.index, "confirmed", note)
            return done
        if step.kind == "command":
            return self._run_command(step, note, on_output)
        return self._run_checks(step, note)

    def retry(self) -> StepState:
        """Try the step again. A check block is evaluated again at once (a gate is read-only, and
        "retry until it passes" means exactly that); a command waits for its explicit "run it"."""
        step, st = self._require("retry")
        self._interrupting = None
        pending = replace(st, status=StepStatus.PENDING, exit_code=None, detail="")
        self._set(step.index, pending)
        self._record(step.index, "retry", "")
        if step.kind == "check":
            return self._run_checks(step, st.note)
        return pending

    def mark_done(self, note: str) -> None:
        """After an interruption: the operator checked that the step's effect did happen."""
        self._close_step("mark-done", StepStatus.DONE, "marked-done", note)

    def skip(self, reason: str) -> None:
        self._close_step("skip", StepStatus.SKIPPED, "skipped", reason)

    def _close_step(self, action: str, status: StepStatus, event: str, note: str) -> None:
        """The operator ends the step without running it (again): done on their word, or skipped."""
        step, st = self._require(action)
        _learn_typed(note)
        self._set(step.index, replace(st, status=status, finished_at=_now(), note=note))
        self._advance(step)
        self._commit(step.index, event, note)

    def abort(self, reason: str) -> None:
        if self.finished:
            raise StepNotAllowed("the session has already ended")
        _learn_typed(reason)
        st = self.current_state()
        if st is not None and st.status is StepStatus.RUNNING:
            raise StepNotAllowed(
                "a step is running: wait for it to finish, or interrupt its command, before aborting"
            )
        self.state.status = SessionStatus.ABORTED
        self._record(self.state.current, "aborted", reason)

    def interrupt(self, reason: str) -> None:
        """Stop the running command (SIGTERM to its process group, SIGKILL after a grace period).
        The thread running it in this process records the result; a command left running by an
        opsdash that has gone is stopped here and recorded as interrupted."""
        step, _running = self._require("interrupt")
        _learn_typed(reason)
        self._record(step.index, "interrupt-requested", reason)
        if self.control_active:
            self.control.reason = reason
            self.control.interrupt.set()
            return
        # remembered before the kill: whoever settles the step next (a watcher that sees the command
        # gone) records it as this interrupt, not as a command that ended unwatched
        self._interrupting = f"interrupted by the operator: {reason}" if reason else "interrupted"
        pid = self.running_pid()
        if pid is not None:
            _kill_group(pid)
        self.settle_detached()

    def detach(self) -> None:
        """Stop watching the running command and leave it running: it keeps writing its output where
        the next opsdash (or a resume) collects it with its exit status."""
        if self.control_active:
            self.control.detach.set()

    @property
    def control_active(self) -> bool:
        """Whether this executor is watching a command it started (from another thread)."""
        return self._watching

    _watching: bool = field(default=False, init=False, repr=False)
    _interrupting: str | None = field(default=None, init=False, repr=False)
    last_gates: tuple[GateResult, ...] = field(default=(), init=False, repr=False)

    # ------------------------------------------------------------------ internals

    def _require(self, action: str) -> tuple[Step, StepState]:
        step, st = self.current_step, self.current_state()
        if step is None or st is None or self.finished:
            raise StepNotAllowed("the session has ended")
        if action not in self.allowed():
            raise StepNotAllowed(
                f"cannot {action} step {step.id!r} now (allowed: {', '.join(self.allowed())})"
            )
        return step, st

    def _shown_params(self) -> str:
        return ", ".join(f"{k}={redactor.redact(v)}" for k, v in self.state.params.items()) or "none"

    def _set(self, index: int, step_state: StepState) -> None:
        self.state.steps[index] = step_state

    def _record(self, index: int | None, event: str, detail: str) -> None:
        detail = redactor.redact(detail)
        with self.lock:
            self.state.updated_at = _now()
            try:
                self.store.save(self.state, index, event, detail)
            except Exception as exc:
                self._put_back()
                raise NotRecorded(self.state.id, exc) from exc
            self._mark_saved()
        step = self.runbook.steps[index] if index is not None else None
        subject = f"{self.runbook.id}/{step.id}" if step else self.runbook.id
        outcome = self.state.steps[index].status.value if index is not None else self.state.status.value
        self.audit(f"runbook-{event}", subject, outcome, {"session": self.state.id, "detail": detail[:500]})
        if self.on_transition is not None:
            step_status = self.state.steps[index].status if index is not None else None
            self.on_transition(
                Transition(self.state.id, index, event, detail, step_status, self.state.status)
            )

    def _advance(self, step: Step, *, to: int | None = None) -> None:
        """Move to the next step (or `to`); the caller commits the transition."""
        nxt = to if to is not None else self.runbook.next_index(step.index)
        self.state.current = nxt
        if nxt is None:
            self.state.status = SessionStatus.ESCALATED if self.state.escalated else SessionStatus.COMPLETED

    def _commit(self, index: int, event: str, detail: str) -> None:
        """Persist a step's transition together with where the session now stands."""
        self._record(index, event, detail)
        if self.state.status is SessionStatus.COMPLETED:
            self._record(None, "completed", "with failed or skipped steps" if self._any_failed() else "")
        elif self.state.status is SessionStatus.ESCALATED:
            self._record(None, "escalated", "ended on the branch a failed step led to")

    def _any_failed(self) -> bool:
        return any(s.status in (StepStatus.FAILED, StepStatus.SKIPPED) for s in self.state.steps)

    def _after_failure(self, step: Step, event: str, detail: str) -> None:
        if step.on_fail == "continue":
            self._advance(step)
            detail += "; on_fail=continue"
        elif step.goto:
            target = self.runbook.step(step.goto)
            if target is None:  # lint refuses such a runbook; stay on the failed step, result kept
                self._commit(step.index, event, f"{detail}; on_fail target {step.goto!r} is not a step")
                return
            why = f"reached because step {step.index + 1} ({step.title}) failed: {detail}"
            self._set(target.index, StepState(detail=redactor.redact(why)))
            self.state.escalated = True
            self._advance(step, to=target.index)
            detail += f"{ESCALATION}{target.id}"
        # abort: stay on the failed step; the operator retries or aborts
        self._commit(step.index, event, detail)

    def _claim(self, step: Step, running: StepState) -> None:
        """Mark the step running in the store, unless another process got there first."""
        before = self.state.steps[step.index].status
        with self.lock:
            try:
                claimed = self.store.claim(self.state.id, step.index, before, running)
            except Exception as exc:
                raise NotRecorded(self.state.id, exc) from exc
        if not claimed:
            raise StepNotAllowed(
                f"step {step.id!r} was started by another opsdash on this session; "
                "resume the session to see where it is"
            )
        claim_ownership(self.store.output_path(self.state.id, step.index))
        self._set(step.index, running)
        self._mark_saved()  # the record has the step running

    def _run_command(self, step: Step, note: str, on_output: Callable[[str], None] | None) -> StepState:
        script = self.command(step)
        running = StepState(status=StepStatus.RUNNING, started_at=_now(), note=note)
        # watching from the claim on: an interrupt asked between the claim and the start stops it
        self.control.reset()
        self._interrupting = None
        self._watching = True
        try:
            self._claim(step, running)
        except BaseException:
            self._watching = False
            raise
        self._record(step.index, "command-started", script)  # persisted before the process starts

        def started(pid: int) -> None:
            self._set(step.index, replace(running, pid=pid))
            self._record(step.index, "command-running", f"process group {pid}")
            # its process group is in the record now: that is what tells another opsdash it runs
            # (the owner file would hold a resume that finds the command ended, if this one lives on)
            self.store.output_path(self.state.id, step.index).with_suffix(".owner").unlink(missing_ok=True)

        out_path = self.store.output_path(self.state.id, step.index)
        try:
            output, code, detail = _run_command(
                script,
                step.timeout,
                self.runbook.path.parent,
                on_output,
                {"OPSDASH_RUNBOOK_SESSION": self.state.id},
                started,
                out_path,
                self.control,
            )
        finally:
            self._watching = False
        if code is None:  # detached: the command runs on; its output file stays for the next opsdash
            self._record(step.index, "detached", "left running; its result is collected on the next start")
            return self.state.steps[step.index]
        finished = self._finish_command(step, self.state.steps[step.index], output, code, detail)
        _discard(out_path)  # after the result is saved: another opsdash watching it can still read it
        return finished

    def _finish_command(
        self, step: Step, running: StepState, output: str, code: int, detail: str
    ) -> StepState:
        status = StepStatus.DONE if code == 0 else StepStatus.FAILED
        if code < 0 and not detail:  # killed, by the operator elsewhere or by the system
            detail = (
                f"stopped by signal {signal.Signals(-code).name}" if -code in signal.valid_signals() else ""
            )
        finished = replace(
            running,
            status=status,
            finished_at=_now(),
            exit_code=code,
            output=redactor.redact(output),
            detail=detail,
        )
        self._set(step.index, finished)
        message = f"exit {code}{'; ' + detail if detail else ''}"
        if status is StepStatus.DONE:
            self._advance(step)
            self._commit(step.index, "command-finished", message)
        else:
            self._after_failure(step, "command-finished", message)
        return finished

    def _run_checks(self, step: Step, note: str) -> StepState:
        running = StepState(status=StepStatus.RUNNING, started_at=_now(), note=note)
        self._claim(step, running)
        self._record(step.index, "checks-started", "")
        results = self.run_gates(self.gates(step))
        self.last_gates = tuple(results)
        passed = bool(results) and all(r.ok for r in results)
        failed = [r for r in results if not r.ok]
        said = "; ".join(f"{r.label} ({r.summary})" for r in failed)[:400]
        if not results:
            ok, detail = False, "the check block named nothing to check"
        elif step.expect_failure:  # "confirm it is unhealthy": a failure found is the step done
            ok = not passed
            detail = (
                f"found the expected failure: {len(failed)} of {len(results)} checks failed: {said}"
                if ok
                else "every check passed, but this step expects a failure: reconsider before going on"
            )
        else:
            ok = passed
            detail = "" if ok else f"{len(failed)} of {len(results)} checks failed: {said}"
        summary = "\n".join(line for r in results for line in r.lines())
        finished = replace(
            running,
            status=StepStatus.DONE if ok else StepStatus.FAILED,
            finished_at=_now(),
            output=redactor.redact(summary),
            detail=redactor.redact(detail),
        )
        self._set(step.index, finished)
        _discard(self.store.output_path(self.state.id, step.index))  # no longer being started here
        if ok:
            self._advance(step)
            self._commit(step.index, "checks-finished", finished.detail or "all passed")
        else:
            self._after_failure(step, "checks-finished", finished.detail)
        return finished


def _learn_typed(text: str) -> None:
    """A note or reason the operator typed may hold a secret (`token: ...`, a pasted key)."""
    for secret in secret_like(text):
        redactor.register(secret)
