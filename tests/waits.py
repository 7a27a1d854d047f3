"""Waiting for something to happen, always with a deadline: the only sleeps the suite has.

A deadline here is a hang guard, never a timing assertion: it is long enough for a machine loaded
many times over (pytest-timeout's per-test limit is the last resort behind it), and the wait ends
the moment the condition holds.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import IO, Any, TypeVar

T = TypeVar("T")
DEADLINE = 60.0


def wait_until(
    condition: Callable[[], T | None], what: str = "the condition", deadline: float = DEADLINE
) -> T:
    """Poll `condition()` until it returns something true, and return that (never None)."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"never happened within {deadline:.0f} s: {what}")
        time.sleep(0.02)


def wait_for_path(path: Path, deadline: float = DEADLINE) -> Path:
    return wait_until(lambda: path if path.exists() else None, f"{path.name} appears", deadline)


async def until_async(
    condition: Callable[[], Any],
    what: str = "the condition",
    deadline: float = DEADLINE,
    pause: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> Any:
    """As wait_until, for a test on an event loop (`pause` = a pilot's pause for a Textual app);
    `condition` may be a coroutine function (a question asked over the network)."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"never happened within {deadline:.0f} s: {what}")
        await pause(0.02)


def read_line(stream: IO[str] | None, deadline: float = DEADLINE) -> str:
    """One line from a child process's pipe, or a clear failure if none comes: a bare readline()
    on a process that hangs would hang the test. (A reader thread, because select() cannot see a
    line the text wrapper already holds in its buffer.)"""
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=deadline)
    except queue.Empty:
        raise AssertionError(f"no line within {deadline:.0f} s") from None
