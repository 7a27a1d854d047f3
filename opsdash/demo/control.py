"""Running the demo target and switching its faults from another process (CLI, tests, dashboard)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsdash.core.errors import InputError
from opsdash.demo import FAULTS

if TYPE_CHECKING:
    from opsdash.ops.base import Ops

STATE_FILE = "demo.json"


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def read_state(data_dir: Path) -> dict[str, Any]:
    path = state_path(data_dir)
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise InputError(f"no running demo (no {path}); start one with 'opsdash demo --no-tui'") from None
    except ValueError:
        raise InputError(f"{path}: unreadable demo state; restart the demo") from None


def set_fault(data_dir: Path, name: str, on: bool) -> list[str]:
    """Switch a fault on a running demo; returns the faults now on."""
    return _call(data_dir, "POST", f"/faults/{name}?state={'on' if on else 'off'}")


def switch_fault(ops: Ops, name: str, on: bool) -> list[str]:
    """What an operator's switch does, from the CLI or the dashboard: switch it, and audit it."""
    active = set_fault(ops.data_dir, name, on)
    ops.audit.event("operator_action", "demo-fault", subject=name, outcome="on" if on else "off")
    return active


def list_faults(data_dir: Path) -> list[str]:
    return _call(data_dir, "GET", "/faults")


def _call(data_dir: Path, method: str, path: str) -> list[str]:
    import httpx

    state = read_state(data_dir)
    try:
        response = httpx.request(
            method,
            state["control_url"] + path,
            timeout=5,
            trust_env=False,
            headers={"Authorization": f"Bearer {state['token']}"},
        )
    except httpx.HTTPError:
        raise InputError(
            f"the demo at {state['control_url']} is not answering (stopped? stale "
            f"{state_path(data_dir)}); start it again with 'opsdash demo --no-tui'"
        ) from None
    if response.status_code == 404:
        raise InputError(f"unknown fault; known faults: {', '.join(FAULTS)}")
    response.raise_for_status()
    return list(response.json()["faults"])


async def serve(workdir: Path, data_dir: Path, faults: Iterable[str], ready: Any = None) -> None:
    """Run the demo target until SIGINT/SIGTERM, keeping the state file while it runs."""
    from opsdash.demo.target import DemoTarget

    target = DemoTarget(workdir, set(faults), data_dir=data_dir)
    profile = await target.start()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    state = state_path(data_dir)
    state.write_text(json.dumps({**target.state(), "pid": os.getpid()}))
    state.chmod(0o600)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if ready is not None:
        ready(profile, target, loop, stop)
    try:
        await stop.wait()
    finally:
        await target.close()
        with contextlib.suppress(FileNotFoundError):
            if json.loads(state.read_text()).get("pid") == os.getpid():
                state.unlink()


class BackgroundDemo:
    """The demo target on its own event loop in a thread, for the dashboard process."""

    def __init__(self, workdir: Path, data_dir: Path, faults: Iterable[str]) -> None:
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.profile: Path | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

        def on_ready(
            profile: Path, _target: Any, loop: asyncio.AbstractEventLoop, stop: asyncio.Event
        ) -> None:
            self.profile, self._loop, self._stop = profile, loop, stop
            self._ready.set()

        def run() -> None:
            try:
                asyncio.run(serve(workdir, data_dir, faults, on_ready))
            except BaseException as exc:
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=run, name="opsdash-demo", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        if self.profile is None:
            raise InputError("the demo target did not start within 30 s")

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)
