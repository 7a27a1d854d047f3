"""Dashboard start-up as an operator sees it, and the health pane's update cost.

Every app is launched the same way, in a detached tmux window of 120x36, and the window is polled
with `tmux capture-pane` until the text appears (what a person would see):
  - floor: a minimal Textual app, launch to its one line ("GO: ready") on screen;
  - opsdash on the demo target (`opsdash --config <demo profile>`, the real command, which records
    history), three marks on the header: the last known verdict painted (the record's verdict,
    marked "(last known, N min ago — checking…)"), the first paint of any header, and the live
    verdict (GO or NO-GO, not marked last known);
  - cases: the demo's own short history (and the same with OPSDASH_EARLY=0: no start-up child,
    ops/early.py); a year of history (10,000 runs of the demo's 7 checks,
    kept: retention set to 400 days) with a 1 GiB audit log in the data directory; and the first
    start after the retention window passed (the same year, ending 91 days ago, default 90-day
    retention, the 1 GiB log; a fresh copy of that database for every launch, so every launch
    purges it all); and attached to a running `opsdash serve` on the same machine (`opsdash
    --server URL`: the service has probed and validated already; the dashboard shows its verdict,
    pushed over /events, and probes nothing), from launch to the header's first paint and to the
    service's live verdict;
  - the ratio of each median to the floor's median in the same run, the runs interleaved (floor,
    then each case, round by round), per-run ratios' range, and the goal beside each ratio;
  - peak RSS (VmHWM) of each app process when its last mark appeared;
  - the health pane with 200 checks all updating at once (in process, headless).

The year of history is recorded through opsdash's own storage API with benchmarks/history.py's
generator (its results, 7 checks a run, the demo's target name); the 1 GiB audit log is written
once by benchmarks/audit_tail.py's `build_log` (format-2 shaped JSON lines, sequential `seq`) and
hard-linked into each data directory (the audit log's rotation size is raised to 4 GiB so it
stays the current log). `--keep DIR` keeps both and reuses them on the next run.

opsdash and its dependencies are byte-compiled first, as `pip install` leaves them (bytecode.py).

Usage: .venv/bin/python benchmarks/startup.py [--runs 7] [--retention-runs 7] [--log-mb 1024]
       [--history-runs 10000] [--checks-per-run 7] [--keep DIR] [--no-health]
       [--cases demo,alone,year,purge,attached]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
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
# a verdict on screen: the last known one (marked), or the live one if it came first
KNOWN = re.compile(r"^ (UNKNOWN +\(last known, |(GO|NO-GO)( \(stale\))?  )")
FIRST_PAINT = re.compile(r"^ (UNKNOWN|GO|NO-GO)\b")
VERDICT = re.compile(r"^ (GO|NO-GO)( \(stale\))?  (?!\(last known)")
MARKS = {"known": KNOWN, "paint": FIRST_PAINT, "verdict": VERDICT}
GOALS = {"known": 1.5, "paint": None, "verdict": 2.5}
ATTACHED_MARKS = {"paint": FIRST_PAINT, "verdict": VERDICT}
ATTACHED_GOALS = {"paint": None, "verdict": 1.5}  # issue #34: the service's verdict within 1.5x the floor
CASES = ("demo", "alone", "year", "purge", "attached")
SESSION = f"opsdash-startup-bench-{os.getpid()}"  # its own: two benchmarks on one machine must not share one
CHECKS_PER_RUN = 7  # the demo profile's checks (--checks-per-run: more, as a bigger profile records)
GiB = 4 * 1024**3


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=False).stdout


def launch(
    command: list[str],
    env: dict[str, str],
    marks: dict[str, re.Pattern[str]],
    deadline: float = 60,
    linger: float = 0.0,
) -> dict[str, float]:
    """Seconds from launch until each mark's pattern matches the screen's first line (or any
    line for the floor), and "rss" in MiB; the window is closed afterwards (`linger` seconds
    after the last mark: a warm-up lets the dashboard keep its settled verdict)."""
    tmux("kill-session", "-t", SESSION)
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    line = f"exec env {exports} {shlex.join(command)}"
    seen: dict[str, float] = {}
    start = time.perf_counter()
    tmux("new-session", "-d", "-s", SESSION, "-x", "120", "-y", "36", line)
    pid = tmux("list-panes", "-t", SESSION, "-F", "#{pane_pid}").strip()
    end = start + deadline
    while len(seen) < len(marks) and time.perf_counter() < end:
        screen = tmux("capture-pane", "-p", "-t", SESSION)
        now = time.perf_counter() - start
        for name, pattern in marks.items():
            if name not in seen and any(pattern.search(row) for row in screen.splitlines()[:2]):
                seen[name] = now
        time.sleep(0.02)  # each capture is a process: poll gently, the app needs the CPU
    time.sleep(linger)
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


def start_serve(opsdash: str, profile: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """`opsdash serve` on the profile, on a free loopback port, once it has validated and probed
    every check (its /events snapshot then holds a verdict): the process and its URL."""
    import json
    import urllib.request

    service = subprocess.Popen(
        [opsdash, "serve", "--config", str(profile), "--listen", "127.0.0.1:0"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert service.stdout is not None
    url = service.stdout.readline().strip()
    if not url.startswith("http://"):
        service.kill()
        raise SystemExit("opsdash serve did not start on the demo profile")
    end = time.monotonic() + 60
    while time.monotonic() < end:  # evaluated: every check has a result and validation ran
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
            targets = json.load(answer)["targets"]
        if targets and all(t["evaluated"] == t["checks"] and t["validated_at"] for t in targets):
            return service, url
        time.sleep(0.2)
    service.kill()
    raise SystemExit("opsdash serve never evaluated the demo's checks")


def fill_audit_log(path: Path, megabytes: int) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from audit_tail import build_log

    t0 = time.perf_counter()
    build_log(path, megabytes)
    print(f"  audit log: {megabytes} MiB written in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def fill_history(data: Path, target: str, runs: int, end: datetime, checks: int) -> None:
    """A year of `target`'s runs ending at `end`, recorded as opsdash records them."""
    from history import make_report, make_results

    from opsdash.storage.history import History

    t0 = time.perf_counter()
    rng = random.Random(18)
    step = timedelta(days=365) / runs
    start = end - timedelta(days=365)
    with History.open(data) as history:
        for run in range(runs):
            started = start + step * run
            results = make_results(run, checks, started, rng)
            report = dataclasses.replace(make_report(run, results, started), target=target)
            history.runs.record(report, operator="bench", results=results)
        history.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    print(f"  history: {runs:,} runs to {end:%Y-%m-%d} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


def data_dir(base: Path, name: str, history: Path | None, log: Path) -> Path:
    """A data directory with a copy of `history` (a fresh one each time) and the audit log linked."""
    where = base / name
    if where.exists():
        shutil.rmtree(where)
    where.mkdir(parents=True)
    if history is not None:
        shutil.copyfile(history, where / "history.db")
    os.link(log, where / "audit.log")
    return where


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


def ratio_text(values: list[float], floors: list[float], goal: float | None) -> str:
    ratio = statistics.median(values) / statistics.median(floors)
    per_run = [v / f for v, f in zip(values, floors, strict=False)]
    text = f"{ratio:4.2f}x (per run {min(per_run):.2f}–{max(per_run):.2f})"
    if goal is not None:
        text += f"  goal <= {goal}x: {'met' if ratio <= goal else 'NOT met'}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="launches per case")
    parser.add_argument("--retention-runs", type=int, default=None, help="launches of the purge case")
    parser.add_argument("--log-mb", type=int, default=1024)
    parser.add_argument("--history-runs", type=int, default=10_000)
    parser.add_argument("--checks-per-run", type=int, default=CHECKS_PER_RUN, help="check results per run")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the generated history and log here")
    parser.add_argument("--no-health", action="store_true", help="skip the health pane figure")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default: all)"
    )
    args = parser.parse_args()
    wanted = set(args.cases.split(","))
    if not wanted <= set(CASES):
        parser.error(f"--cases: unknown {', '.join(sorted(wanted - set(CASES)))}")
    retention_runs = args.runs if args.retention_runs is None else args.retention_runs
    compile_installed()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from opsdash.demo.control import BackgroundDemo

    try:
        from opsdash.ops.glance import quick_target
    except ImportError:  # an opsdash from before the last known verdict (run for a before/after)

        def quick_target(config: Path) -> tuple[str, str] | None:
            return None

    opsdash = str(Path(sys.executable).with_name("opsdash"))
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as tmp:
        store = args.keep or Path(tmp) / "store"
        store.mkdir(parents=True, exist_ok=True)
        base = {
            "XDG_CONFIG_HOME": str(Path(tmp) / "cfg"),
            "OPSDASH_AUDIT_KEY": "b" * 40,
            "OPSDASH_AUDIT_MAX_BYTES": str(GiB),
            "TERM": "xterm-256color",
        }
        plain = {**base, "OPSDASH_DATA_DIR": str(Path(tmp) / "data")}
        os.environ.update(plain)
        demo = BackgroundDemo(Path(tmp) / "demo", Path(plain["OPSDASH_DATA_DIR"]), [])
        minimal = Path(tmp) / "minimal.py"
        minimal.write_text(MINIMAL)
        try:
            assert demo.profile is not None
            target = (quick_target(demo.profile) or ("BetaSkill", "production"))[0]
            log = store / f"audit-{args.log_mb}.log"
            size = f"{args.history_runs}x{args.checks_per_run}"
            year, old = store / f"year-{size}.db", store / f"old-{size}.db"
            year_env: dict[str, str] = {}
            if wanted & {"year", "purge"}:
                if not log.exists():
                    fill_audit_log(log, args.log_mb)
                now = datetime.now(UTC)
                for path, end in ((year, now), (old, now - timedelta(days=91))):
                    if not path.exists():
                        fill_history(
                            Path(tmp) / path.stem, target, args.history_runs, end, args.checks_per_run
                        )
                        shutil.move(Path(tmp) / path.stem / "history.db", path)
                year_env = {
                    **base,
                    "OPSDASH_DATA_DIR": str(data_dir(Path(tmp), "year", year, log)),
                    "OPSDASH_HISTORY_RETENTION_DAYS": "400",
                }
            command = [opsdash, "--config", str(demo.profile)]
            for env in (plain, year_env):  # warm-up: page cache, the settled verdict recorded
                if env:  # (kept by a worker just after it is shown: a window closed at once loses it)
                    launch(command, env, MARKS, linger=3.0)
            if "attached" in wanted:  # the service runs through every round, as it would in production
                served = {**base, "OPSDASH_DATA_DIR": str(Path(tmp) / "serve-data")}
                service, url = start_serve(opsdash, demo.profile, served)
                attached = [opsdash, "--server", url]
                launch(attached, base, ATTACHED_MARKS)  # warm-up
            cases: dict[str, list[dict[str, float]]] = {c: [] for c in CASES}
            alone = {**plain, "OPSDASH_EARLY": "0"}
            floor: list[dict[str, float]] = []
            for round_ in range(max(args.runs, retention_runs)):  # interleaved: noise hits every case
                floor.append(
                    launch([sys.executable, str(minimal)], base, {"verdict": re.compile("GO: ready")})
                )
                if round_ < args.runs:
                    if "demo" in wanted:
                        cases["demo"].append(launch(command, plain, MARKS))
                    if "alone" in wanted:
                        cases["alone"].append(launch(command, alone, MARKS))
                    if "year" in wanted:
                        cases["year"].append(launch(command, year_env, MARKS))
                    if "attached" in wanted:
                        cases["attached"].append(launch(attached, base, ATTACHED_MARKS))
                if round_ < retention_runs and "purge" in wanted:
                    fresh = {**base, "OPSDASH_DATA_DIR": str(data_dir(Path(tmp), "purge", old, log))}
                    cases["purge"].append(launch(command, fresh, MARKS, deadline=180))
                print(f"  round {round_ + 1} done", file=sys.stderr)
        finally:
            if "attached" in wanted and "service" in locals():
                service.terminate()
                service.wait(30)
            demo.stop()
    frames = [] if args.no_health else asyncio.run(health_frames(20))
    floors = [r["verdict"] for r in floor]
    print(
        f"launches per case: {args.runs} (purge case: {retention_runs}); median (range); tmux 120x36; "
        f"ratios: median / floor median, per-run ratios against the same round's floor"
    )
    if wanted & {"year", "purge"}:
        runs, checks = f"{args.history_runs:,}", args.checks_per_run
        print(f"history: {runs} runs x {checks} checks; audit log {args.log_mb} MiB")
    floor_rss = statistics.median(r["rss"] for r in floor)
    print(
        f"floor  minimal Textual app, launch to its text on screen  {summary(floors)}  {floor_rss:4.0f} MiB"
    )
    titles = {
        "demo": "opsdash on the demo (its own short history)",
        "alone": "the same without the start-up child (OPSDASH_EARLY=0)",
        "year": f"a year of history + {args.log_mb} MiB audit log",
        "purge": "first start after the retention window passed (purges the year)",
        "attached": "attached to a serve on the same machine (opsdash --server URL; probes nothing)",
    }
    names = {
        "known": "last known verdict painted",
        "paint": "header first painted",
        "verdict": "live verdict",
    }
    for case, runs in cases.items():
        if not runs:
            continue
        rss = statistics.median(r["rss"] for r in runs)
        print(f"{titles[case]}   peak RSS {rss:.0f} MiB")
        goals = ATTACHED_GOALS if case == "attached" else GOALS
        for mark, name in names.items():
            if mark not in goals:
                continue
            values = [r[mark] for r in runs]
            same_rounds = floors[: len(values)]
            shown = "the service's live verdict" if case == "attached" and mark == "verdict" else name
            print(f"    {shown:28} {summary(values)}  ratio {ratio_text(values, same_rounds, goals[mark])}")
    if frames:
        print(
            f"health pane, 200 checks updated at once: median {statistics.median(frames):6.1f} ms per sweep, "
            f"worst {max(frames):6.1f} ms ({len(frames)} sweeps)"
        )


if __name__ == "__main__":
    main()
