"""A scripted incident, played for real: an outage starts, the one watch loop (`ops.checks.Watch`)
sees the check go down and the alert dispatcher fires, an operator's rollback runbook runs through
the runbook executor and its step driver, and the watch loop sees the check recover and resolves
the alert. Nothing is written by hand: the record it leaves is what opsdash records in an incident,
so the Timeline pane and `opsdash incident` have a real one to show.

`opsdash demo incident` plays it on the running demo (the provider-down fault, and a rollback
whose command switches the fault off); the tests play it on a scripted server of their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opsdash.core.errors import InputError
from opsdash.core.findings import Severity

if TYPE_CHECKING:
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.ops.base import Ops

RUNBOOK_ID = "incident-rollback"
ROLLBACK_BOOK = """+++
id = "incident-rollback"
title = "Roll back the release"
+++

## Roll back {{#rollback}}
Put the previous release back.

```command timeout=60
{command}
```

## Confirm the recovery {{#confirm end}}
Watch the checks come back.
"""


@dataclass(frozen=True)
class Script:
    check: str  # the check the outage fails
    start_outage: Callable[[], None]
    rollback_command: str  # the runbook step's shell command that ends it


@dataclass(frozen=True)
class Played:
    session_id: str
    down_polls: int
    recovery_polls: int


def watch_until(
    ops: Ops, check: str, done: Callable[[SustainedState], bool], *, interval: float, deadline: float
) -> int:
    """Run the one watch loop on `check` until `done(state)`; the polls it took. Every result is
    recorded and alerted on before this returns (`Watch.close`)."""
    from opsdash.ops.checks import Watch

    watch = Watch(ops, names=[check], interval=interval)
    polls = 0

    def each(_result: CheckResult, state: SustainedState) -> None:
        nonlocal polls
        polls += 1
        if done(state):
            watch.stop()

    async def run() -> None:
        await asyncio.wait_for(watch.run(each), deadline)

    try:
        asyncio.run(run())
    except TimeoutError:
        raise InputError(
            f"the scripted incident stalled: {check} did not change within {deadline:.0f} s"
        ) from None
    finally:
        watch.close()
    return polls


def rollback(ops: Ops, workdir: Path, command: str, *, deadline: float) -> str:
    """Run the rollback runbook through the executor and its step driver, as an operator at the
    dashboard or `opsdash runbook run` does: confirm the command, then the last step."""
    from opsdash.core.runbooks.parser import parse
    from opsdash.ops.runbooks import Sessions
    from opsdash.ops.runbooks.driver import StepDriver

    path = workdir / f"{RUNBOOK_ID}.md"
    path.write_text(ROLLBACK_BOOK.format(command=command), encoding="utf-8")
    book, problems = parse(path)
    if book is None:
        raise InputError(f"{path}: {problems[0]}")
    with Sessions(ops, shared=True) as sessions:
        executor = sessions.start(book, {})
        driver = StepDriver(executor)
        driver.start()
        try:
            for _step in book.steps:
                driver.act("confirm", "scripted incident")
                if not driver.wait_idle(deadline):
                    raise InputError(f"the rollback step did not finish within {deadline:.0f} s")
        finally:
            driver.close()
        return executor.state.id


def play(ops: Ops, script: Script, workdir: Path, *, interval: float = 1.0, deadline: float = 60.0) -> Played:
    """Outage → alert → rollback runbook → recovery, each part through opsdash's own machinery."""
    script.start_outage()
    down = watch_until(
        ops, script.check, lambda s: s.status is Severity.CRIT, interval=interval, deadline=deadline
    )
    session = rollback(ops, workdir, script.rollback_command, deadline=deadline)
    recovered = watch_until(
        ops,
        script.check,
        lambda s: s.status is Severity.OK and s.last is not None and s.last.ok,
        interval=interval,
        deadline=deadline,
    )
    return Played(session, down, recovered)
