"""Dashboard start-up and the health pane's update cost.

Prints medians of:
  - floor: a minimal Textual app, launch to mounted and exit (headless, own process);
  - opsdash on the demo target: launch to the first complete overview (validation done and every
    check evaluated), and the ratio to the floor; peak RSS of both;
  - the health pane with 200 checks all updating at once, as every second in a live sweep: time to
    apply one sweep of results and repaint (in process, headless).

Usage: .venv/bin/python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINIMAL = """
from textual.app import App
from textual.widgets import Static
class Minimal(App):
    def compose(self):
        yield Static("hello")
    def on_mount(self):
        self.exit()
Minimal().run(headless=True)
"""

OPSDASH = """
import sys
from pathlib import Path
from opsdash.tui.app import OpsdashApp
from opsdash.tui.panes.overview import OverviewPane

class Timed(OpsdashApp):
    CSS_PATH = OpsdashApp.CSS_PATH  # resolved next to opsdash/tui/app.py, not this script

    def on_overview_changed(self, message):
        label, reason = self.query_one(OverviewPane).gate()
        if label != "UNKNOWN":
            self.exit()

Timed(Path(sys.argv[1]), record=False).run(headless=True)
"""


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{cmd[:3]} failed")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


async def health_frames(ticks: int) -> list[float]:
    from opsdash.core.findings import Severity
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.tui.app import OpsdashApp
    from opsdash.tui.messages import CheckCompleted
    from opsdash.tui.panes.health import HealthPane

    with tempfile.TemporaryDirectory() as tmp:
        checks = "".join(
            f'\n[[checks]]\nname = "c{i:03d}"\nkind = "tcp"\nhost = "127.0.0.1"\nport = {1000 + i}\n'
            for i in range(200)
        )
        profile = Path(tmp) / "opsdash.toml"
        profile.write_text('[target]\nname = "bench"\nbase_url = "https://bench.example.com"\n' + checks)
        app = OpsdashApp.on_profile(profile, live=False, record=False, data_dir=Path(tmp) / "data")
        frames = []
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("3")
            await pilot.pause()
            pane = app.query_one(HealthPane)
            for tick in range(ticks):
                start = time.perf_counter()
                for i in range(200):
                    severity = Severity.CRIT if (i + tick) % 17 == 0 else Severity.OK
                    result = CheckResult(
                        f"c{i:03d}",
                        "tcp",
                        "127.0.0.1",
                        severity,
                        f"tick {tick}",
                        "2026-11-26T08:00:00",
                        3.0,
                        metrics={"response_time_ms": 3.0 + tick},
                    )
                    pane.post_message(
                        CheckCompleted(result, SustainedState(severity, "2026-11-26T08:00:00", last=result))
                    )
                await pilot.pause()
                frames.append((time.perf_counter() - start) * 1000)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from opsdash.demo.control import BackgroundDemo

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "OPSDASH_DATA_DIR": str(Path(tmp) / "data"),
            "XDG_CONFIG_HOME": str(Path(tmp) / "cfg"),
        }
        os.environ.update({k: env[k] for k in ("OPSDASH_DATA_DIR", "XDG_CONFIG_HOME")})
        demo = BackgroundDemo(Path(tmp) / "demo", Path(tmp) / "data", [])
        try:
            assert demo.profile is not None
            floor = [timed([sys.executable, "-c", MINIMAL], env) for _ in range(args.runs)]
            script = Path(tmp) / "timed_opsdash.py"
            script.write_text(OPSDASH)  # a file, not -c: Textual resolves CSS paths from the class's source
            ours = [timed([sys.executable, str(script), str(demo.profile)], env) for _ in range(args.runs)]
        finally:
            demo.stop()
    frames = asyncio.run(health_frames(20))
    f_time, f_rss = statistics.median(t for t, _ in floor), statistics.median(r for _, r in floor)
    o_time, o_rss = statistics.median(t for t, _ in ours), statistics.median(r for _, r in ours)
    print(f"runs per figure: {args.runs} (medians; 2 noisy cores)")
    print(f"floor  minimal Textual app, launch to mounted and exit   {f_time:6.2f} s  {f_rss:6.0f} MiB")
    print(
        f"opsdash on the demo, launch to first complete overview  {o_time:6.2f} s  {o_rss:6.0f} MiB  "
        f"ratio {o_time / f_time:4.1f}x"
    )
    print(
        f"health pane, 200 checks updated at once: median {statistics.median(frames):6.1f} ms per sweep, "
        f"worst {max(frames):6.1f} ms ({len(frames)} sweeps)"
    )


if __name__ == "__main__":
    main()
