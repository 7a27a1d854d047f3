"""The dashboard's first frame: the last verdict recorded for the target, marked as not live with
its age, painted before the profile's models are imported; then the live verdict replaces it. No
record, another target's record or an unreadable database: UNKNOWN while it checks, never a guess;
a profile that does not load turns the marker into that error, never into a live verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from textual.message import Message
from textual.widgets import Static

from opsdash.demo.sample import AUDIT_KEY
from opsdash.ops.base import Ops
from opsdash.ops.glance import quick_target
from opsdash.storage.glance import read_last_verdict, remember
from opsdash.storage.history import DB_NAME, History
from opsdash.tui.app import OpsdashApp, VerdictBar
from opsdash.tui.messages import ProfileLoaded
from tests.conftest import EXAMPLE_PROFILE, Demo
from tests.tui.conftest import SIZE, fast_demo_profile, feed_sample, settle, until

MINUTES_AGO = 3


def record(data: Path, target: str, label: str, reason: str, environment: str = "production") -> None:
    """A verdict the dashboard settled on MINUTES_AGO minutes ago."""
    then = datetime.now(UTC) - timedelta(minutes=MINUTES_AGO, seconds=10)
    with History.open(data) as history:
        remember(history, target, label, reason, then.isoformat(timespec="milliseconds"), environment)


def kept(data: Path, target: str, environment: str = "production") -> str:
    found = read_last_verdict(data, target, environment)
    return found.label if found else ""


def header(app: OpsdashApp) -> str:
    return str(app.query_one(VerdictBar).render())


def gate(app: OpsdashApp) -> str:
    return str(app.query_one("#gate", Static).render())


class FirstFrame:
    """What the header and the overview said while the profile was still loading (taken when the
    loader's result arrives, before the app applies it)."""

    def __init__(self, app: OpsdashApp) -> None:
        self.app = app
        self.header = self.gate = ""
        self.ready_then: bool | None = None

    def __call__(self, message: Message) -> None:
        if isinstance(message, ProfileLoaded) and self.ready_then is None:
            self.header, self.gate, self.ready_then = header(self.app), gate(self.app), self.app.ctx.ready


async def test_a_recorded_no_go_shows_first_as_last_known_then_the_live_verdict_replaces_it(
    demo_process: Demo, tmp_path: Path
) -> None:
    profile = fast_demo_profile(demo_process, tmp_path)
    data = tmp_path / "data"
    target = quick_target(profile)
    assert target is not None
    record(data, target[0], "NO-GO", "ikhokha-api CRIT", target[1])
    app = OpsdashApp.starting(profile, data_dir=data, record=True)
    first = FirstFrame(app)
    async with app.run_test(size=SIZE, message_hook=first) as pilot:
        await until(pilot, lambda: header(app).startswith(" GO "))
        assert first.ready_then is False
        for painted in (first.header, first.gate):
            assert painted.lstrip().startswith("NO-GO")
            assert f"(last known, {MINUTES_AGO} min ago — checking…)" in painted
            assert "ikhokha-api CRIT" in painted
        assert "last known" not in header(app) and "last known" not in gate(app)
        assert "validation and live checks pass" in header(app)
        # the settled live verdict is what the next start shows first
        await until(pilot, lambda: kept(data, *target) == "GO")
        await settle(pilot)


async def test_no_record_is_unknown_while_it_checks(tmp_path: Path) -> None:
    app = OpsdashApp.starting(EXAMPLE_PROFILE, data_dir=tmp_path / "data", live=False, record=False)
    first = FirstFrame(app)
    async with app.run_test(size=SIZE, message_hook=first) as pilot:
        await until(pilot, lambda: app.ctx.ready)
        await settle(pilot)
        assert first.header.startswith(" UNKNOWN  loading the profile — checking…")
        assert "GO" not in first.header.replace("UNKNOWN", "")
        assert header(app).startswith(" UNKNOWN  environment not validated yet")
        assert app.title == "opsdash — BetaSkill (production)"


async def test_another_targets_record_in_the_same_data_directory_is_not_shown(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "OtherShop", "NO-GO", "payments CRIT")
    app = OpsdashApp.starting(EXAMPLE_PROFILE, data_dir=data, live=False, record=False)
    first = FirstFrame(app)
    async with app.run_test(size=SIZE, message_hook=first) as pilot:
        await until(pilot, lambda: app.ctx.ready)
        await settle(pilot)
        assert first.header.startswith(" UNKNOWN  loading the profile")
        for painted in (first.header, first.gate, header(app), gate(app)):
            assert "NO-GO" not in painted and "payments CRIT" not in painted and "last known" not in painted


async def test_an_unreadable_database_shows_no_stale_verdict_and_the_start_goes_on(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / DB_NAME).write_bytes(b"SQLite format 3\x00" + b"\xff" * 8192)
    app = OpsdashApp.starting(EXAMPLE_PROFILE, data_dir=data, live=False, record=False)
    first = FirstFrame(app)
    async with app.run_test(size=SIZE, message_hook=first) as pilot:
        await until(pilot, lambda: app.ctx.ready)
        await settle(pilot)
        assert first.header.startswith(" UNKNOWN  loading the profile — checking…")
        assert app.query("#panes") and not app.query("#startup-error")
        assert header(app).startswith(" UNKNOWN  environment not validated yet")
        assert "last known" not in header(app)


async def test_a_profile_that_does_not_load_turns_the_marker_into_its_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "BetaSkill", "GO", "validation and live checks pass")
    bad = tmp_path / "opsdash.toml"
    bad.write_text('[target]\nname = "BetaSkill"\nbase_url = "not a url"\n')
    app = OpsdashApp.starting(bad, data_dir=data, live=False, record=False)
    first = FirstFrame(app)
    async with app.run_test(size=SIZE, message_hook=first) as pilot:
        await until(pilot, lambda: bool(app.query("#startup-error")))
        await settle(pilot)
        assert "(last known, 3 min ago — checking…)" in first.header
        shown = header(app)
        assert shown.startswith(" GO  (last known, 3 min ago — the configuration did not load (see below))")
        assert f"{bad}:3: target.base_url" in str(app.query_one("#startup-error", Static).render())
        assert not app.query("#panes")


async def test_a_pane_key_pressed_while_loading_is_honoured_once_loaded(tmp_path: Path) -> None:
    app = OpsdashApp.starting(EXAMPLE_PROFILE, data_dir=tmp_path / "data", live=False, record=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("6")
        await until(pilot, lambda: app.ctx.ready)
        await settle(pilot)
        assert app.query_one("#panes").active == "history"  # type: ignore[attr-defined]


FIRST_PAINT = """
import json, sys
from pathlib import Path
import opsdash.cli, opsdash.cli.common, opsdash.ops.paths  # what `opsdash` itself loads first
from opsdash.tui.app import OpsdashApp, VerdictBar

HEAVY = ("pydantic", "pydantic_settings", "sqlite_utils")
OURS = ("opsdash.core.profile", "opsdash.ops.config", "opsdash.core.readiness", "opsdash.core.health")
app = OpsdashApp.starting(Path(sys.argv[1]), data_dir=Path(sys.argv[2]), live=False, record=False)
seen = {}

def loader():  # stands in for the profile's loader, which starts once the first frame is painted
    seen["header"] = str(app.query_one(VerdictBar).render())
    seen["heavy"] = sorted(
        m for m in sys.modules if m.split(".")[0] in HEAVY or m in OURS or m.startswith(OURS)
    )
    app.exit()

app._load_profile = loader
app.run(headless=True, size=(120, 36))
print(json.dumps(seen))
"""


def test_the_first_frame_is_painted_before_pydantic_and_the_profile_models_are_imported(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    record(data, "BetaSkill", "NO-GO", "ikhokha-api CRIT")
    proc = subprocess.run(
        [sys.executable, "-c", FIRST_PAINT, str(EXAMPLE_PROFILE), str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["heavy"] == []
    assert seen["header"].startswith(" NO-GO  (last known, 3 min ago — checking…)")


async def test_a_settled_no_go_is_kept_for_the_next_start_and_shown_there_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample's validation and checks settle on NO-GO: it is kept, and the next start shows it
    first, marked; an unsettled UNKNOWN before it was not kept."""
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", AUDIT_KEY)
    data = tmp_path / "data"
    app = OpsdashApp.on_profile(EXAMPLE_PROFILE, live=False, record=True, data_dir=data)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert header(app).startswith(" UNKNOWN ")
        await feed_sample(app)
        await until(pilot, lambda: kept(data, "BetaSkill") == "NO-GO")
        await settle(pilot)
        live = app.sub_title  # the header cuts a long reason; the title bar has it whole
    found = read_last_verdict(data, "BetaSkill")
    assert found is not None and found.reason in live and found.source == "dashboard"
    again = OpsdashApp.starting(EXAMPLE_PROFILE, data_dir=data, live=False, record=False)
    first = FirstFrame(again)
    async with again.run_test(size=SIZE, message_hook=first) as pilot:
        await until(pilot, lambda: again.ctx.ready)
        await settle(pilot)
    assert first.header.startswith(" NO-GO  (last known, just now — checking…)")
    assert found.reason[:40] in first.header


async def test_a_verdict_that_holds_is_kept_again_so_its_age_is_when_it_was_last_true(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GO held for three days must not read "3 days ago" at the next start: while it holds it is
    kept again (at most every REMEMBER_EVERY seconds; no wait here)."""
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", AUDIT_KEY)
    monkeypatch.setattr("opsdash.tui.app.REMEMBER_EVERY", 0.0)
    data = tmp_path / "data"

    def kept_at() -> str:
        found = read_last_verdict(data, "BetaSkill")
        return found.at if found else ""

    app = OpsdashApp.on_profile(EXAMPLE_PROFILE, live=False, record=True, data_dir=data)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await feed_sample(app)
        await until(pilot, lambda: kept(data, "BetaSkill") == "NO-GO")
        first = kept_at()
        await feed_sample(app)  # the same verdict, later
        await until(pilot, lambda: kept_at() > first)
        await settle(pilot)
    assert kept(data, "BetaSkill") == "NO-GO"


async def test_the_demo_never_keeps_a_verdict_for_the_real_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's target has the real one's name: its fake verdict must not become the real
    target's last known one (the same session without demo keeps it: the test above)."""
    monkeypatch.setenv("OPSDASH_AUDIT_KEY", AUDIT_KEY)
    data = tmp_path / "data"
    app = OpsdashApp.on_profile(EXAMPLE_PROFILE, live=False, record=True, data_dir=data, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await feed_sample(app)
        await until(pilot, lambda: header(app).startswith(" NO-GO "))
        await settle(pilot)
    assert read_last_verdict(data, "BetaSkill") is None


async def test_another_environments_verdict_is_not_shown(tmp_path: Path) -> None:
    data = tmp_path / "data"
    record(data, "BetaSkill", "GO", "staging passes", "staging")
    app = OpsdashApp.starting(EXAMPLE_PROFILE, data_dir=data, live=False, record=False)
    first = FirstFrame(app)
    async with app.run_test(size=SIZE, message_hook=first) as pilot:
        await until(pilot, lambda: app.ctx.ready)
        await settle(pilot)
    assert first.header.startswith(" UNKNOWN  loading the profile")
    assert "BetaSkill (production)" in first.header  # which target and environment it is about
    assert "staging passes" not in first.header


async def test_a_loader_that_crashes_leaves_the_marker_as_an_error_never_live(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    record(data, "BetaSkill", "GO", "validation and live checks pass")

    def explode(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(Ops, "open_or_error", explode)
    app = OpsdashApp.starting(EXAMPLE_PROFILE, data_dir=data, live=False, record=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: bool(app.query("#startup-error")))
        await settle(pilot)
        assert header(app).startswith(" GO  (last known, 3 min ago — the configuration did not load")
        assert "RuntimeError: disk on fire" in str(app.query_one("#startup-error", Static).render())
        assert any("disk on fire" in n.message for n in app._notifications)
        assert not app.ctx.ready
