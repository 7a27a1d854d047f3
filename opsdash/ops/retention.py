"""Retention that never delays a verdict.

A recording command (`validate`, `check`, the dashboard's and serve's validation) calls `step`
after its run is recorded: one small batch of the purge (storage/retention.py) and one small
vacuum step, so a year-late purge is spread over the commands that follow, each waiting for one
batch at most. A long-running process (the dashboard, `opsdash serve`) runs a `Background`
instead: a thread with its own history connection that purges batch after batch, pausing between
them so other writers get the lock, until nothing is older than the retention period, then gives
the space back and waits for the next recording (or an hour). While one runs for a data
directory, `step` in the same process only wakes it. Stopping it waits for the batch in hand at
most; a process killed mid-batch loses that batch's transaction, nothing else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from opsdash.core.errors import OpsdashError
from opsdash.ops.base import Ops

if TYPE_CHECKING:
    from opsdash.storage.history import History

START_AFTER = 30.0  # seconds: the background purge starts by then even if nothing was recorded
GRACE = 1.0  # seconds between the first recording (its verdict being shown) and the first batch
RECHECK_EVERY = 3600.0  # seconds between looks for what aged out, when nothing is recorded
MIN_PAUSE = 0.1  # seconds between batches at least (a waiting writer polls the lock every 0.1 s)

_running: dict[Path, Background] = {}
_running_lock = threading.Lock()


def _key(ops: Ops) -> Path:
    return ops.data_dir.resolve()


def step(ops: Ops, history: History) -> int:
    """After a recording command's work: one batch of the purge and one vacuum step on its own
    connection (each a short transaction of its own); how many runs went. In a process that runs a
    `Background` on this data directory, only wake it."""
    days = ops.settings.history_retention_days
    background = _running.get(_key(ops))
    if background is not None:
        background.wake(days)
        return 0
    batch = history.purge_batch(days)
    history.vacuum_step()
    return batch.runs


class Background:
    """The purge on a thread of its own: `start()` and `stop()`, or `run(stop)` on a thread the
    caller owns (the dashboard's worker). Registered for its data directory from construction, so
    the recordings of this process wake it rather than purge themselves."""

    def __init__(
        self,
        ops: Ops,
        *,
        runs: int | None = None,
        wait_for_recording: bool = True,
        on_problem: Callable[[str], None] | None = None,
    ) -> None:
        self.ops, self.runs = ops, runs
        self.days = ops.settings.history_retention_days
        self.on_problem = on_problem
        self.purged = 0  # runs purged so far
        self.batches = 0
        self.holds: list[float] = []  # how long each batch held the write lock, seconds
        self.checkpoints: list[float] = []  # and then copied its pages into the file (no lock)
        self.vacuum_steps: list[float] = []  # how long each vacuum step's transaction took, seconds
        self.caught_up = threading.Event()  # set each time nothing older than the window is left
        self._wake = threading.Event()
        if not wait_for_recording:
            self._wake.set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._key = _key(ops)
        with _running_lock:
            _running.setdefault(self._key, self)

    def wake(self, days: int | None = None) -> None:
        """Something was recorded (with these retention days): look for what aged out."""
        if days is not None:
            self.days = days
        self._wake.set()

    def start(self) -> Background:
        self._thread = threading.Thread(
            target=self.run, args=(self._stop,), name="opsdash-retention", daemon=False
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop after the batch in hand (its transaction commits or rolls back whole)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._unregister()

    def _unregister(self) -> None:
        with _running_lock:
            if _running.get(self._key) is self:
                del _running[self._key]

    def run(self, stop: threading.Event | None = None) -> None:
        """The loop, on the calling thread, until `stop` (the caller's, e.g. its worker's cancel
        event) or `self.stop()`."""
        if stop is not None:
            self._stop = stop
        try:
            self._wait(START_AFTER)
            if self._sleep(GRACE):
                return
            while not self._stop.is_set():
                try:
                    self._pass()
                except OpsdashError as exc:
                    if self.on_problem is not None:
                        self.on_problem(f"history retention paused: {exc}")
                self._wait(RECHECK_EVERY)
        finally:
            self._unregister()

    def _sleep(self, seconds: float) -> bool:
        """True when stopped meanwhile."""
        return self._stop.wait(seconds)

    def _wait(self, seconds: float) -> None:
        """Until woken, stopped, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while not (self._wake.is_set() or self._stop.is_set()):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            # wake() and stop() end the wait at once; a caller's own stop event within 0.1 s
            self._wake.wait(min(left, MIN_PAUSE))
        self._wake.clear()

    def _pass(self) -> None:
        """Batches until nothing is older than the window, then the space back, step by step."""
        self.caught_up.clear()
        with self.ops.history() as history:
            while True:
                batch = (
                    history.purge_batch(self.days)
                    if self.runs is None
                    else history.purge_batch(self.days, runs=self.runs)
                )
                self.purged += batch.runs
                self.batches += 1
                self.holds.append(batch.held)
                self.checkpoints.append(batch.checkpoint)
                if self._sleep(max(MIN_PAUSE, batch.held)):  # yield: others' writes get the lock
                    return
                if batch.done:
                    break
            while True:
                step = history.vacuum_step()
                if step.held:
                    self.vacuum_steps.append(step.held)
                    self.checkpoints.append(step.checkpoint)
                if not step.left or self._sleep(max(MIN_PAUSE, step.held)):
                    break
            if self._stop.is_set():
                return
            history.reclaim()  # a checkpoint; a small file an older opsdash made is converted once
        self.caught_up.set()
