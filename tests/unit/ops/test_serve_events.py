"""`opsdash serve`'s /events: a real service process, real local check targets, and the real
client an attached dashboard uses (ops/attach.py), reading what the service pushes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from opsdash.ops.attach import Attached, Attachment, CheckChanged, Detached, Event, Server
from tests.conftest import Project
from tests.unit.ops.test_serve import Serve, Stage, write_profile
from tests.waits import wait_until

WAIT = 60
TOKEN = "serve-token-canary-7f3a9c1e5b2d4e6f"  # noqa: S105 (made up for this test)


class Follower:
    """The attach client on a loop of its own, keeping every event it hears."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.events: list[Event] = []
        self.attachment = Attachment(Server.parse(url), token, self.events.append, backoff=(0.2,))
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        threading.Thread(target=self._main, daemon=True).start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.attachment.run())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def close(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)

    def snapshots(self) -> list[Attached]:
        return [e for e in list(self.events) if isinstance(e, Attached)]

    def detached(self) -> list[Detached]:
        return [e for e in list(self.events) if isinstance(e, Detached)]

    def states(self, check: str) -> list[str]:
        return [e.state.label for e in list(self.events) if isinstance(e, CheckChanged) and e.state.last and e.state.last.name == check]


@pytest.fixture
def stage() -> Iterator[Stage]:
    s = Stage()
    yield s
    s.close()


def until(condition: Any, what: str) -> Any:
    return wait_until(condition, what, WAIT)


def test_snapshot_then_changes_as_they_happen(project: Project, stage: Stage) -> None:
    serve = Serve("--config", write_profile(project, stage))
    follower = Follower(serve.url)
    try:
        first = until(lambda: follower.snapshots(), "the first snapshot")[0].picture
        assert [t.name for t in first.targets] == ["BetaSkill"]
        target = first.targets[0]
        assert target.checks == ["healthy", "flaky"]
        until(lambda: "CRIT" in follower.states("flaky"), "flaky goes down, pushed")
        stage.fixed = True
        until(lambda: follower.states("flaky")[-1:] == ["OK"], "flaky recovers, pushed")
        assert not follower.detached()
    finally:
        follower.close()
        serve.kill()
