"""Dashboard start-up as an operator sees it, and the health pane's update cost.

Both apps are launched the same way, in a detached tmux window of 120x36, and the window is
polled with `tmux capture-pane` until the text appears (what a person would see):
  - floor: a minimal Textual app, launch to its one line ("GO: ready") on screen;
  - opsdash on the demo target (`opsdash --config <demo profile>`, the real command), launch to
    the header first painted (the verdict bar, UNKNOWN while it works) and to a verdict
    (GO or NO-GO) in the header;
  - the same with a 100 MB audit log in the data directory (nothing may read it at start);
  - the ratio of each median to the floor, measured in the same run, runs interleaved;
  - peak RSS (VmHWM) of each app process when its text appeared;
  - the health pane with 200 checks all updating at once (in process, headless).

opsdash and its dependencies are byte-compiled first, as `pip install` leaves them (bytecode.py).

Usage: .venv/bin/python benchmarks/startup.py [--runs 7] [--log-mb 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bytecode import compile_installed

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = """
from textual.app import App
from textual.widgets import Static
class Minimal(App):
    def compose(self):
        yield Static("GO: ready")
Minimal().run()
"""
FIRST_PAINT = re.compile(r"^ (UNKNOWN|GO|NO-GO)\b")
VERDICT = re.compile(r"^ (GO|NO-GO)( \(stale\))? ")
SESSION = "opsdash-startup-bench"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def launch(command: list[str], env: dict[str, str], marks: dict[str, re.Pattern[str]]) -> dict[str, float]:
    """Seconds from launch until each mark's pattern matches the screen's first line (or any
    line for the floor), and "rss" in MiB; the window is closed afterwards."""
    tmux("kill-session", "-t", SESSION)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    line = f"exec env {exports} {shlex.join(command)}"
    seen: dict[str, float] = {}
    start = time.perf_counter()
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "36", line)
    pid = tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}").strip()
    deadline = start + 60
    while len(seen) < len(marks) and time.perf_counter() < deadline:
        screen = tmux("capture-pane", "-p", "-t", SESSION)
        now = time.perf_counter() - start
        for name, pattern in marks.items():
            if name not in seen and any(pattern.search(row) for row in screen.splitlines()[:2]):
                seen[name] = now
        time.sleep(0.02)  # each capture is a process: poll gently, the app needs the CPU
    rss = 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    except (OSError, AttributeError, ValueError):
        pass
    tmux("kill-session", "-t", SESSION)
    if len(seen) < len(marks):
        raise SystemExit(f"{command[:3]}: never showed {set(marks) - set(seen)}; last screen:\n{screen}")
    return {**seen, "rss": rss}


def fill_audit_log(path: Path, megabytes: int) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from audit_tail import build_log

    build_log(path, megabytes)


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


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} s ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--log-mb", type=int, default=100)
    args = parser.parse_args()
    compile_installed()
    from opsdash.demo.control import BackgroundDemo

    opsdash = str(Path(sys.executable).with_name("opsdash"))
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        base = {
            "XDG_CONFIG_HOME": str(Path(tmp) / "cfg"),
            "OPSDASH_AUDIT_KEY": "b" * 40,
            "TERM": "xterm-256color",
        }
        plain = {**base, "OPSDASH_DATA_DIR": str(Path(tmp) / "data")}
        logged = {**base, "OPSDASH_DATA_DIR": str(Path(tmp) / "data-log")}
        Path(logged["OPSDASH_DATA_DIR"]).mkdir(parents=True)
        fill_audit_log(Path(logged["OPSDASH_DATA_DIR"]) / "audit.log", args.log_mb)
        os.environ.update(plain)
        demo = BackgroundDemo(Path(tmp) / "demo", Path(plain["OPSDASH_DATA_DIR"]), [])
        minimal = Path(tmp) / "minimal.py"
        minimal.write_text(MINIMAL)
        floor, ours, ours_log = [], [], []
        marks = {"paint": FIRST_PAINT, "verdict": VERDICT}
        try:
            assert demo.profile is not None
            command = [opsdash, "--config", str(demo.profile)]
            launch(command, plain, marks)  # warm-up: page cache, history database created
            for _ in range(args.runs):  # interleaved, so slow moments of the machine hit all three
                floor.append(
                    launch([sys.executable, str(minimal)], base, {"verdict": re.compile("GO: ready")})
                )
                ours.append(launch(command, plain, marks))
                ours_log.append(launch(command, logged, marks))
        finally:
            demo.stop()
    frames = asyncio.run(health_frames(20))
    f_time = statistics.median(r["verdict"] for r in floor)
    print(f"runs per figure: {args.runs} (median, range in brackets; 2 noisy cores); tmux 120x36")
    floor_rss = statistics.median(r["rss"] for r in floor)
    floor_text = summary([r["verdict"] for r in floor])
    print(
        f"floor   minimal Textual app, launch to its text on screen      {floor_text}  {floor_rss:4.0f} MiB"
    )
    for label, runs in (("opsdash on the demo", ours), (f"  + {args.log_mb} MB audit log", ours_log)):
        paint = [r["paint"] for r in runs]
        verdict = [r["verdict"] for r in runs]
        rss = statistics.median(r["rss"] for r in runs)
        paint_ratio = statistics.median(paint) / f_time
        verdict_ratio = statistics.median(verdict) / f_time
        print(f"{label:29} first paint (header)          {summary(paint)}  ratio {paint_ratio:4.2f}x")
        print(
            f"{'':29} verdict (GO/NO-GO) in header  {summary(verdict)}  "
            f"ratio {verdict_ratio:4.2f}x  {rss:4.0f} MiB"
        )
    print(
        f"health pane, 200 checks updated at once: median {statistics.median(frames):6.1f} ms per sweep, "
        f"worst {max(frames):6.1f} ms ({len(frames)} sweeps)"
    )


if __name__ == "__main__":
    main()
