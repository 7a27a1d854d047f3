"""Exclusive groups: runbooks that change production (`exclusive = "production-change"` in their
front matter) run one session at a time per group and target, across processes and operators.
The store claims the group when it creates a session; a second start is refused with this error."""

from __future__ import annotations

import re
from dataclasses import dataclass

from opsdash.core.errors import OpsdashError

GROUP = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # a name for messages and the record, not free text


@dataclass(frozen=True)
class Holder:
    """The active session that holds a group for a target."""

    session_id: str
    runbook_id: str
    runbook_path: str
    title: str
    operator: str
    started_at: str  # ISO 8601, UTC
    step: int | None  # the current step, 0-based
    steps: int
    group: str
    target: str
    driver: str | None = None  # `host:pid` of the process driving it; None: paused on purpose

    def since(self) -> str:
        """`14:03 UTC` (the time the session started)."""
        return f"{self.started_at[11:16]} UTC"

    def at_step(self) -> str:
        return f"step {self.step + 1}/{self.steps}" if self.step is not None else f"{self.steps} steps"

    def summary(self) -> str:
        """`rollback running since 14:03 UTC by bob, step 3/7`."""
        return f"{self.runbook_id} running since {self.since()} by {self.operator}, {self.at_step()}"


class ExclusiveConflict(OpsdashError):
    """A session of the group is already active for the target: who, since when, on which step."""

    def __init__(self, holder: Holder, why: str = "") -> None:
        self.holder, self.why = holder, why
        started = holder.started_at[:19].replace("T", " ")
        super().__init__(
            f"{holder.runbook_id} is already running on {holder.target or '(no profile)'}: session "
            f"{holder.session_id}, started {started} UTC by {holder.operator}, on {holder.at_step()}"
            + (f" ({why})" if why else "")
            + f". Runbooks in the exclusive group {holder.group!r} run one at a time per target."
        )
