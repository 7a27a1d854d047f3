"""The audit tail engine on a 1 GB log: last page, full index, following appends; vs a raw scan.

Builds a JSON-lines log of about --size-mb megabytes (audit-shaped records), then prints:
  - time until the last page (40 lines) is available (mmap backwards scan);
  - time to index every line start (array('Q'), 8 bytes a line);
  - floor: a raw newline count of the same file in 16 MiB chunks, and the ratio of the index to it;
  - follow throughput: lines/s a Follower keeps up with while another process appends;
  - peak RSS of this process;
  - the dashboard's Audit pane on the same log (a child process, headless, 120x36), 3 s after
    start: time from pressing 4 until the newest record is drawn at the bottom of the view, and
    that process's peak RSS (goal: <= 0.3 s, <= 200 MiB), measured --pane-runs times.

Usage: .venv/bin/python benchmarks/audit_tail.py [--size-mb 1024] [--keep PATH] [--pane-runs 5]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
from pathlib import Path

from opsdash.core.audit.tail import Follower, LineIndex


def build_log(path: Path, size_mb: int) -> int:
    template = {
        "seq": 0,
        "ts": "2026-11-26T10:00:00.000+00:00",
        "log_id": "3f9a1c0d5e7b2a64",
        "operator": "alice",
        "host": "deploy-01",
        "kind": "check_result",
        "action": "app-health",
        "subject": "https://app.betaskill.com/health",
        "outcome": "OK",
        "details": {"error_class": None, "run_id": "20261126T100000-abc123"},
        "prev": "a" * 64,
        "mac": "b" * 64,
    }
    target = size_mb * 1024 * 1024
    lines = 0
    with path.open("wb", buffering=16 * 1024 * 1024) as handle:
        written = 0
        batch = []
        while written < target:
            template["seq"] = lines
            line = json.dumps(template, separators=(",", ":")).encode() + b"\n"
            batch.append(line)
            written += len(line)
            lines += 1
            if len(batch) >= 10_000:
                handle.write(b"".join(batch))
                batch.clear()
        handle.write(b"".join(batch))
    return lines


def raw_newline_count(path: Path) -> int:
    count = 0
    fd = os.open(path, os.O_RDONLY)
    try:
        size, position = os.fstat(fd).st_size, 0
        while position < size:
            chunk = os.pread(fd, min(16 * 1024 * 1024, size - position), position)
            count += chunk.count(b"\n")
            position += len(chunk)
    finally:
        os.close(fd)
    return count


def appender(path: str, seconds: float, done: multiprocessing.Value) -> None:  # type: ignore[type-arg]
    line = b'{"seq":1,"kind":"operator_action","action":"follow-benchmark"}\n'
    count = 0
    end = time.perf_counter() + seconds
    with open(path, "ab", buffering=0) as handle:
        while time.perf_counter() < end:
            handle.write(line * 100)
            count += 100
    done.value = count


PANE = r"""
import asyncio, os, re, sys, time
from pathlib import Path
os.environ["OPSDASH_AUDIT_KEY"] = "b" * 40
from opsdash.tui.app import OpsdashApp
from opsdash.tui.widgets.logview import LogView

profile, data = Path(sys.argv[1]), Path(sys.argv[2])
newest = sys.argv[3]

async def main():
    app = OpsdashApp.on_profile(profile, live=False, record=False, data_dir=data)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(3.0)  # the dashboard has started and settled (an operator reads the overview)
        start = time.perf_counter()
        app.simulate_key("4")  # as a key press arrives (the pilot's press() also waits for idle)
        while time.perf_counter() - start < 20:
            logs = app.query(LogView)
            if logs:
                log = logs.first()
                bottom = int(log.scroll_offset.y) + log.size.height - 1
                entry = log.entry_at(min(bottom, log.row_count - 1)) if log.row_count else None
                if entry is not None and newest in entry.text():
                    break
            await asyncio.sleep(0.002)
        took = time.perf_counter() - start
    hwm = int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024
    print(f"{took:.4f} {hwm:.1f}")

asyncio.run(main())
"""


def pane_open(path: Path, runs: int) -> list[tuple[float, float]]:
    """The Audit pane on a data directory whose audit.log is `path` (hard-linked, not copied)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    profile = root / "examples" / "betaskill" / "opsdash.toml"
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        try:
            os.link(path, data / "audit.log")
        except OSError:
            os.symlink(path, data / "audit.log")
        with path.open("rb") as handle:  # the newest record (the follow test appended some)
            handle.seek(max(0, path.stat().st_size - 4096))
            newest = handle.read().rstrip(b"\n").rsplit(b"\n", 1)[-1].decode()
        out = []
        for _ in range(runs):
            done = subprocess.run(
                [sys.executable, "-c", PANE, str(profile), str(data), newest],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "OPSDASH_DATA_DIR": str(data), "XDG_CONFIG_HOME": tmp},
            )
            took, rss = done.stdout.split()[-2:]
            out.append((float(took), float(rss)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--keep", type=Path, help="Reuse/keep the generated log at this path.")
    parser.add_argument("--pane-runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "audit.log"
        if not path.exists():
            t = time.perf_counter()
            lines = build_log(path, args.size_mb)
            gib, took = path.stat().st_size / 2**30, time.perf_counter() - t
            print(f"built {gib:.2f} GiB, {lines:,} lines in {took:.1f} s")
        os.system(f"cat {path} > /dev/null")

        t = time.perf_counter()
        with LineIndex(path) as index:
            page = index.last_lines(40)
            last_page = time.perf_counter() - t
            t = time.perf_counter()
            offsets = index.build()
            full_index = time.perf_counter() - t
        t = time.perf_counter()
        raw = raw_newline_count(path)
        floor = time.perf_counter() - t
        assert len(offsets) == raw, (len(offsets), raw)
        assert len(page) == 40

        follower = Follower.at_end(path)
        done = multiprocessing.Value("q", 0)
        writer = multiprocessing.Process(target=appender, args=(str(path), 3.0, done))
        seen = 0
        t = time.perf_counter()
        writer.start()
        while writer.is_alive() or seen < done.value:
            got = len(follower.poll()[0])
            seen += got
            if not got:
                time.sleep(0.05)
        follow_time = time.perf_counter() - t
        writer.join()
        pane = pane_open(path, args.pane_runs) if args.pane_runs else []
        if args.keep is None:
            path.unlink()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"lines: {raw:,}")
    print(f"last page (40 lines) available after   {last_page * 1000:8.2f} ms")
    mib = len(offsets) * 8 / 2**20
    print(f"full line index                        {full_index:8.2f} s   ({mib:.0f} MiB of offsets)")
    print(f"floor: raw newline count               {floor:8.2f} s")
    print(f"ratio full index / floor               {full_index / floor:8.2f}x")
    rate = seen / follow_time
    print(f"follow: {seen:,} of {done.value:,} appended lines in {follow_time:.1f} s = {rate:,.0f} lines/s")
    print(f"peak RSS of this process               {rss:8.0f} MiB")
    if pane:
        import statistics

        times = [t * 1000 for t, _ in pane]
        mem = statistics.median(r for _, r in pane)
        print(
            f"Audit pane: 4 pressed -> newest record drawn {statistics.median(times):8.1f} ms "
            f"({min(times):.1f}-{max(times):.1f}, {len(times)} runs; goal <= 300 ms), "
            f"peak RSS {mem:.0f} MiB (goal <= 200)"
        )


if __name__ == "__main__":
    main()
