"""The dashboard's start-up child (ops/early.py): forked before the UI is imported, it validates
(recorded once) and probes every check once (recorded once, by the dashboard's watch, as its first
round), and its verdict is on screen, live, before the dashboard process has loaded the profile.
A child that fails, or a picture gone stale, leaves the dashboard doing it all itself."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.message import Message

from opsdash.demo.sample import AUDIT_KEY
from opsdash.ops import early
from opsdash.ops.base import Ops
from opsdash.ops.glance import quick_target
from opsdash.storage.history import History
from opsdash.tui.app import OpsdashApp
from opsdash.tui.messages import EarlyFrameArrived, ProfileLoaded
from tests.conftest import Demo
from tests.servers import ThreadedRawServer, never_answers
from tests.tui.conftest import SIZE, fast_demo_profile, settle, until
from tests.tui.test_last_known import header, record

OPSDASH = str(Path(sys.executable).with_name("opsdash"))


class Delivered(early.Early):
    """A child whose real picture (from `early.picture`) is handed over as the child sends it: the
    report, each result, the picture. `hold` (set by the test) keeps the results and the picture
    back after the report, as a check waiting out its timeout does."""

    def __init__(self, picture: early.EarlyPicture | None, hold: threading.Event | None = None) -> None:
        self.picture, self.hold = picture, hold

    def frames(self) -> Iterator[early.Frame]:
        if self.picture is None:
            return
        yield early.EarlyReport(self.picture.report, self.picture.problem)
        if self.hold is not None:
            self.hold.wait(30)
        yield from (early.EarlyResult(r) for r in self.picture.results)
        yield self.picture

    def cancel(self) -> None:
        if self.hold is not None:
            self.hold.set()


def validate_runs(data: Path) -> list[str]:
    with History.open(data) as history:
        return [r.run_id for r in history.runs.recent(limit=50, kind="validate")]


def recorded_starts(data: Path, names: list[str]) -> dict[str, set[str]]:
    """When each check's recorded results were probed."""
    with History.open(data) as history:
        return {n: {r.started_at for r in history.checks.recent(n, 50)} for n in names}


@pytest.fixture
def audit_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", AUDIT_KEY)


@pytest.mark.usefixtures("audit_key")
def test_the_picture_is_validated_and_recorded_and_every_check_probed_but_not_recorded(
    demo_process: Demo, tmp_path: Path
) -> None:
    profile = fast_demo_profile(demo_process, tmp_path)
    data = tmp_path / "data"
    picture = early.picture(profile, data)
    assert picture is not None and picture.report is not None
    assert (picture.label, picture.reason) == ("GO", "validation and live checks pass")
    names = [c.name for c in Ops.open(profile, data_dir=data).profile.checks]
    assert sorted(r.name for r in picture.results) == sorted(names)
    assert {n: s.label for n, s in picture.states.items()} == dict.fromkeys(names, "OK")
    assert validate_runs(data) == [picture.report.run_id]  # recorded, as the Validation pane would
    assert recorded_starts(data, names) == {n: set() for n in names}  # the watch records the probes
    assert picture.fresh()


def test_a_profile_that_does_not_load_gives_no_picture(tmp_path: Path) -> None:
    bad = tmp_path / "opsdash.toml"
    bad.write_text('[target]\nname = "BetaSkill"\nbase_url = "not a url"\n')
    assert early.picture(bad, tmp_path / "data") is None


CHILD = """
import json, os, sys
from pathlib import Path
from opsdash.ops import early
child = early.start(Path(sys.argv[1]), data_dir=Path(sys.argv[2]))
if child is None:
    print(json.dumps({"forked": False}))
    sys.exit(0)
picture = child.wait()
try:
    os.waitpid(child.pid, os.WNOHANG)
    reaped = False
except ChildProcessError:
    reaped = True
print(json.dumps({
    "forked": True,
    "label": picture.label if picture else None,
    "results": len(picture.results) if picture else 0,
    "reaped": reaped,
}))
"""


def run_child(profile: Path, data: Path, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(profile), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout  # the child wrote nothing of its own: the terminal is the dashboard's
    return json.loads(lines[0]), done.stderr


@pytest.mark.skipif(
    not hasattr(os, "fork"), reason="no fork on this platform: the dashboard does it all itself"
)
def test_a_real_forked_child_hands_over_its_picture_and_is_reaped(demo_process: Demo, tmp_path: Path) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the dashboard does not fork a start-up child there")
    profile = fast_demo_profile(demo_process, tmp_path)
    seen, stderr = run_child(profile, tmp_path / "data", {"OPSDASH_AUDIT_KEY": AUDIT_KEY})
    assert seen == {"forked": True, "label": "GO", "results": 7, "reaped": True}
    assert stderr == ""
    bad = tmp_path / "bad" / "opsdash.toml"
    bad.parent.mkdir()
    bad.write_text('[target]\nname = "BetaSkill"\nbase_url = "not a url"\n')
    seen, stderr = run_child(bad, tmp_path / "bad-data", {})
    assert seen == {"forked": True, "label": None, "results": 0, "reaped": True}
    assert stderr == ""


REAPED = """
import json, os, sys
from pathlib import Path
from opsdash.ops import early
child = early.start(Path(sys.argv[1]), data_dir=Path(sys.argv[2]))
assert child is not None
child.wait()  # reaped: its process id may be another process's now
signalled = []
os.kill = lambda pid, sig: signalled.append(pid)
child.cancel()  # the operator quits later
print(json.dumps({"signalled": signalled}))
"""


@pytest.mark.skipif(
    not hasattr(os, "fork"), reason="no fork on this platform: the dashboard does it all itself"
)
def test_a_child_already_reaped_is_never_signalled_when_the_dashboard_leaves(
    demo_process: Demo, tmp_path: Path
) -> None:
    """Its process id may belong to another process by then: SIGTERM would kill that one."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the dashboard does not fork a start-up child there")
    profile = fast_demo_profile(demo_process, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", REAPED, str(profile), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OPSDASH_AUDIT_KEY": AUDIT_KEY},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"signalled": []}


@pytest.mark.usefixtures("audit_key")
async def test_with_a_check_still_in_flight_the_validation_is_the_childs_and_recorded_once(
    demo_process: Demo, tmp_path: Path
) -> None:
    """The child's validation is in but one of its probes waits out a timeout: the Validation pane
    shows the child's report instead of validating (and recording) a second time."""
    profile = fast_demo_profile(demo_process, tmp_path)
    data = tmp_path / "data"
    picture = await asyncio.to_thread(early.picture, profile, data)
    assert picture is not None and picture.report is not None
    hold = threading.Event()
    app = OpsdashApp.starting(profile, data_dir=data, record=True, early=Delivered(picture, hold))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.ctx.ready)
        validation: Any = await app.ensure_pane("validation")
        await until(pilot, lambda: validation.report is not None)
        assert validation.report.run_id == picture.report.run_id
        assert app.ctx.early_running  # the child is still at work
        hold.set()
        await until(pilot, lambda: not app.ctx.early_running)
        await settle(pilot)
    assert validate_runs(data) == [picture.report.run_id]


@pytest.mark.usefixtures("audit_key")
async def test_a_child_that_sends_nothing_leaves_the_validation_to_the_dashboard(
    demo_process: Demo, tmp_path: Path
) -> None:
    profile = fast_demo_profile(demo_process, tmp_path)
    data = tmp_path / "data"
    app = OpsdashApp.starting(profile, data_dir=data, record=True, early=Delivered(None))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.ctx.ready)
        validation: Any = await app.ensure_pane("validation")
        await until(pilot, lambda: validation.report is not None)
        await settle(pilot)
        assert header(app).startswith(" GO ")
    assert validate_runs(data) == [validation.report.run_id]


CANCEL = """
import json, os, sys
from pathlib import Path
from opsdash.ops import early
child = early.start(Path(sys.argv[1]), data_dir=Path(sys.argv[2]))
assert child is not None
child.cancel()  # the operator quit while a check was still waiting out its timeout
picture = child.wait()
try:
    os.waitpid(child.pid, os.WNOHANG)
    reaped = False
except ChildProcessError:
    reaped = True
print(json.dumps({"picture": picture is not None, "reaped": reaped}))
"""


@pytest.mark.skipif(
    not hasattr(os, "fork"), reason="no fork on this platform: the dashboard does it all itself"
)
def test_a_child_still_waiting_on_a_check_stops_when_the_dashboard_leaves(
    demo_process: Demo, tmp_path: Path
) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one core: the dashboard does not fork a start-up child there")
    server = ThreadedRawServer(never_answers)
    try:
        extra = f'[[checks]]\nname = "hangs"\nkind = "http"\nurl = "{server.url}"\ntimeout = 60\n'
        profile = fast_demo_profile(demo_process, tmp_path, "\n" + extra)
        done = subprocess.run(  # the hang guard is far below the check's 60 s timeout
            [sys.executable, "-c", CANCEL, str(profile), str(tmp_path / "data")],
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "OPSDASH_AUDIT_KEY": AUDIT_KEY},
            check=False,
        )
    finally:
        server.close()
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"picture": False, "reaped": True}


@pytest.mark.usefixtures("audit_key")
async def test_the_childs_verdict_is_live_on_screen_before_the_profile_loads_and_nothing_is_done_twice(
    demo_process: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = fast_demo_profile(demo_process, tmp_path)
    data = tmp_path / "data"
    target = quick_target(profile)
    assert target is not None
    record(data, target[0], "NO-GO", "ikhokha-api CRIT", target[1])  # what the last start settled on
    picture = await asyncio.to_thread(early.picture, profile, data)
    assert picture is not None and picture.report is not None
    # this process loads the profile only once the child's picture is in (as on a busy machine)
    adopted = threading.Event()
    load = Ops.open_or_error

    def slow_load(*args: Any, **kwargs: Any) -> Any:
        adopted.wait(30)
        return load(*args, **kwargs)

    monkeypatch.setattr(Ops, "open_or_error", slow_load)
    app = OpsdashApp.starting(profile, data_dir=data, record=True, early=Delivered(picture))
    seen: dict[str, Any] = {}

    def hook(message: Message) -> None:
        if isinstance(message, EarlyFrameArrived) and isinstance(message.frame, early.EarlyPicture):
            adopted.set()
        if isinstance(message, ProfileLoaded) and "header" not in seen:
            seen["header"], seen["ready"] = header(app), app.ctx.ready

    async with app.run_test(size=SIZE, message_hook=hook) as pilot:
        await until(pilot, lambda: "header" in seen)
        assert seen["ready"] is False
        assert seen["header"].startswith(" GO  validation and live checks pass")
        assert "last known" not in seen["header"]
        validation: Any = await app.ensure_pane("validation")
        health: Any = await app.ensure_pane("health")
        names = [c.name for c in app.ctx.loaded.profile.checks] if app.ctx.loaded else []
        await until(pilot, lambda: validation.report is not None and set(health.results) == set(names))
        await settle(pilot)
        assert validation.report.run_id == picture.report.run_id
        assert header(app).startswith(" GO ")
    assert validate_runs(data) == [picture.report.run_id]  # validated once, by the child
    starts = recorded_starts(data, names)
    for result in picture.results:  # the child's probes are the watch's first round, recorded by it
        assert result.started_at in starts[result.name]


@pytest.mark.usefixtures("audit_key")
async def test_a_picture_too_old_to_seed_anything_leaves_the_dashboard_validating_and_probing_itself(
    demo_process: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the child sent is taken only while it is young: on a machine so slow that the panes
    start long after it came, the dashboard validates and probes itself."""
    profile = fast_demo_profile(demo_process, tmp_path)
    data = tmp_path / "data"
    picture = await asyncio.to_thread(early.picture, profile, data)
    assert picture is not None and picture.report is not None
    monkeypatch.setattr(early, "FRESH_FOR", 0.0)  # everything it sent is too old once taken
    app = OpsdashApp.starting(profile, data_dir=data, record=True, early=Delivered(picture))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.ctx.ready)
        validation: Any = await app.ensure_pane("validation")
        health: Any = await app.ensure_pane("health")
        await until(pilot, lambda: validation.report is not None and len(health.results) == 7)
        await settle(pilot)
        assert validation.report.run_id != picture.report.run_id
        assert all(health.results[r.name].started_at != r.started_at for r in picture.results)
    assert len(validate_runs(data)) == 2


def test_without_a_terminal_nothing_is_forked_and_nothing_recorded(
    demo_process: Demo, tmp_path: Path
) -> None:
    profile = fast_demo_profile(demo_process, tmp_path)
    data = tmp_path / "data"
    done = subprocess.run(
        [OPSDASH, "--config", str(profile)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
        env={**os.environ, "OPSDASH_DATA_DIR": str(data), "OPSDASH_AUDIT_KEY": AUDIT_KEY},
        check=False,
    )
    assert done.returncode == 3 and "needs a terminal" in done.stderr
    assert not data.exists() or validate_runs(data) == []
