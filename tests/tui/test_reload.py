"""The dashboard goes by the files as they are now, not as they were at start: an env file edited
under an open dashboard (the secret rotated) is read again, and the header and Health pane come to
say what `opsdash check --json` run at that moment says; a half-saved file is reported by file and
line while the dashboard keeps its last good state, and fixing it recovers.

Each test reads its own copy of the demo's env file, so the shared demo is left as it is."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from textual.widgets import DataTable

from opsdash.core.health.model import CheckResult
from opsdash.core.secrets import redactor
from opsdash.tui.app import OpsdashApp
from opsdash.tui.messages import CheckCompleted, ValidationCompleted
from tests.conftest import Demo, fake_secret
from tests.tui.conftest import SIZE, fast_demo_profile, until
from tests.waits import DEADLINE

SECRET = "IKHOKHA_API_SECRET"


def own_copy(demo: Demo, tmp_path: Path) -> tuple[Path, Path]:
    """The demo's profile polling every second, reading an env file of the test's own."""
    shared = demo.profile.parent / ".env.production"
    env = tmp_path / ".env.production"
    env.write_text(shared.read_text())
    profile = fast_demo_profile(demo, tmp_path)
    profile.write_text(profile.read_text().replace(str(shared), str(env)))
    return profile, env


def with_secret(good: str, secret: str) -> str:
    lines = [f"{SECRET}={secret}" if line.startswith(f"{SECRET}=") else line for line in good.splitlines()]
    return "\n".join(lines) + "\n"


async def check_json(profile: Path, name: str) -> str:
    """What `opsdash check --json` says of one check right now (a real process; nothing recorded)."""
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    args = [opsdash, "check", name, "--json", "--no-history", "--config", str(profile)]
    done = await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=DEADLINE)
    (check,) = json.loads(done.stdout)["summary"]["checks"]
    return str(check["severity"])


async def test_a_secret_rotated_under_the_dashboard_is_used_and_agrees_with_check(
    demo_process: Demo, tmp_path: Path
) -> None:
    profile, env = own_copy(demo_process, tmp_path)
    good = env.read_text()
    messages: list[object] = []
    app = OpsdashApp.on_profile(profile, record=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await pilot.press("3")
        table = app.query_one("#checks", DataTable)
        await until(pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "OK")
        await until(pilot, lambda: app.sub_title.startswith("GO"))

        def validations() -> int:
            return sum(isinstance(m, ValidationCompleted) for m in messages)

        validated = validations()
        rejected = fake_secret()  # the API does not know it: 401
        env.write_text(with_secret(good, rejected))
        assert await check_json(profile, "ikhokha-api") == "CRIT"
        await until(pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "CRIT")
        await until(pilot, lambda: app.sub_title.startswith("NO-GO") and "ikhokha-api CRIT" in app.sub_title)
        assert redactor.redact(rejected) != rejected  # registered with the masker as it was read
        assert rejected not in app.export_screenshot()
        await until(pilot, lambda: validations() > validated)  # validated again, with the new file

        env.write_text(good)  # the secret the API knows
        assert await check_json(profile, "ikhokha-api") == "OK"
        await until(pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "OK")
        await until(pilot, lambda: app.sub_title.startswith("GO"))


async def test_half_saved_files_keep_the_last_good_state_and_say_where_until_fixed(
    demo_process: Demo, tmp_path: Path
) -> None:
    profile, env = own_copy(demo_process, tmp_path)
    good_env, good_profile = env.read_text(), profile.read_text()
    messages: list[object] = []
    app = OpsdashApp.on_profile(profile, record=False)
    async with app.run_test(size=SIZE, message_hook=messages.append) as pilot:
        await pilot.press("3")
        table = app.query_one("#checks", DataTable)
        await until(pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "OK")
        await until(pilot, lambda: app.sub_title.startswith("GO"))

        def said(where: str) -> bool:
            return any(where in n.message and n.severity == "error" for n in app._notifications)

        def provider_results() -> list[CheckResult]:
            return [
                m.result for m in messages if isinstance(m, CheckCompleted) and m.result.name == "ikhokha-api"
            ]

        # the secret's line saved halfway: it does not parse, so its value would be missing
        lines = enumerate(good_env.splitlines(), start=1)
        line = next(n for n, text in lines if text.startswith(f"{SECRET}="))
        env.write_text(with_secret(good_env, f'"{fake_secret()}'))
        await until(pilot, lambda: said(f"{env}:{line}: cannot parse the value of {SECRET}"))
        before = len(provider_results())
        await until(pilot, lambda: len(provider_results()) >= before + 2)
        assert all(r.error_class is None for r in provider_results()[before:])  # the last good secret
        assert app.sub_title.startswith("GO")  # not re-validated on a file that does not read

        end = good_profile.count("\n")
        profile.write_text(good_profile + '\n[[checks]]\nname = "half-saved\n')
        await until(pilot, lambda: said(f"{profile}:{end + 3}:"))
        assert table.row_count == 7 and app.sub_title.startswith("GO")

        # fixed: the profile without its last check, and the env file as it was
        profile.write_text(good_profile[: good_profile.index('[[checks]]\nname = "app-port"')])
        env.write_text(good_env)
        await until(pilot, lambda: any(n.title == "Reloaded" for n in app._notifications))
        await until(pilot, lambda: table.row_count == 6)
        await until(pilot, lambda: str(table.get_cell("ikhokha-api", "status")) == "OK")
        await until(pilot, lambda: app.sub_title.startswith("GO"))
