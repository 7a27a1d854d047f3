"""Regenerate screenshots/*.svg: every dashboard pane at 120x36 on the fixed sample data (the
Timeline pane with the sample's provider outage opened).

Usage: .venv/bin/python scripts/screenshots.py   (also: make screenshots)
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PANES = ("overview", "validation", "health", "audit", "runbooks", "history", "timeline")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")
        os.environ["OPSDASH_DATA_DIR"] = str(Path(tmp) / "data")
        from opsdash.demo.sample import AUDIT_KEY, write_sample_data, write_sample_incident

        os.environ["OPSDASH_AUDIT_KEY"] = AUDIT_KEY
        os.environ["OPSDASH_OPERATOR"] = "alice"
        from opsdash.tui.app import OpsdashApp
        from opsdash.tui.sample import feed_sample, settle

        data = Path(tmp) / "data"
        write_sample_data(data)
        write_sample_incident(data)  # the provider outage the Timeline pane opens
        out = ROOT / "screenshots"
        out.mkdir(exist_ok=True)
        for number, pane in enumerate(PANES, start=1):
            app = OpsdashApp.on_profile(
                ROOT / "examples" / "betaskill" / "opsdash.toml", live=False, record=False, data_dir=data
            )
            async with app.run_test(size=(120, 36)) as pilot:
                await settle(pilot)
                await feed_sample(app)
                await pilot.pause()
                await pilot.press(str(number))
                await settle(pilot)
                if pane == "timeline":  # its incident opened, as an operator sees it after Enter
                    await pilot.press("enter")
                    await settle(pilot)
                app.set_focus(None)
                await pilot.pause()
                (out / f"{pane}.svg").write_text(app.export_screenshot(title=f"opsdash — {pane}"))
            print(f"wrote screenshots/{pane}.svg")


if __name__ == "__main__":
    asyncio.run(main())
