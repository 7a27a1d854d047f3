"""`opsdash serve` held under load: 2,000 http checks polled every 10 s, scraped like Prometheus.

A raw-asyncio HTTP server runs in its own process (its CPU is not counted). `opsdash serve` watches
2,000 http checks against it (interval 10 s, a [STATUS] condition, history, audit and alerts on as
in production; validation off: the profile has no env files). After every check has a first
result, the benchmark holds for --seconds and measures the serve process:
  - CPU: its user+system time over the hold, as % of one core (goal ≤ 20%);
  - RSS: the highest resident set seen, sampled every second (goal ≤ 150 MiB);
  - /metrics: wall time of a scrape every 10 s, as Prometheus would (goal ≤ 100 ms, median and max);
  - probes/s answered by the target against the 200/s the intervals ask for (the watch keeps up).

Usage: .venv/bin/python benchmarks/serve.py [--checks 2000] [--interval 10] [--seconds 120]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
from prometheus_client.parser import text_string_to_metric_families

GOALS = {"cpu": 20.0, "rss": 150.0, "scrape": 100.0}
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n"
)


def target_server(port_out: multiprocessing.connection.Connection, count: multiprocessing.Value) -> None:  # type: ignore[name-defined]
    async def main() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await reader.readuntil(b"\r\n\r\n")
                writer.write(ANSWER + b'{"status":"UP"}')
                await writer.drain()
                with count.get_lock():
                    count.value += 1
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0, backlog=1024)
        port_out.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


def profile(path: Path, port: int, checks: int, interval: float) -> None:
    lines = [
        '[target]\nname = "bench"\nbase_url = "https://app.example.com"\n',
        "[health]\nconcurrency = 50\n",
    ]
    for n in range(checks):
        lines.append(
            f'[[checks]]\nname = "check-{n:04d}"\nkind = "http"\nurl = "http://127.0.0.1:{port}/c/{n}"\n'
            f'interval = {interval}\ntimeout = 5\nretries = 0\nconditions = ["[STATUS] == 200"]\n'
        )
    path.write_text("\n".join(lines))


def scrape(url: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return (time.perf_counter() - t0) * 1000, text


def evaluated(text: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(text) if f.name == "probe_success")


def verdict(value: float, goal: float) -> str:
    return f"goal ≤ {goal:g}: {'met' if value <= goal else 'MISSED'}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=120.0, help="hold after warm-up (default 120)")
    args = parser.parse_args()

    count = multiprocessing.Value("l", 0)
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=target_server, args=(send, count), daemon=True)
    server.start()
    port = receive.recv()
    work = Path(tempfile.mkdtemp(prefix="opsdash-bench-serve-"))
    profile(work / "opsdash.toml", port, args.checks, args.interval)
    env = {**os.environ, "OPSDASH_DATA_DIR": str(work / "data"), "XDG_CONFIG_HOME": str(work / "config")}
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    proc = subprocess.Popen(
        [
            opsdash,
            "serve",
            "--config",
            str(work / "opsdash.toml"),
            "--listen",
            "127.0.0.1:0",
            "--no-validate",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    me = psutil.Process(proc.pid)
    try:
        t0 = time.monotonic()
        while evaluated(scrape(url)[1]) < args.checks:
            if time.monotonic() - t0 > 300:
                raise SystemExit("serve never evaluated every check within 300 s")
            time.sleep(1)
        warmup = time.monotonic() - t0
        time.sleep(args.interval)  # let the first burst's recording settle before measuring
        cpu0, requests0, start = me.cpu_times(), count.value, time.monotonic()
        rss, scrapes, next_scrape = 0, [], start
        while (now := time.monotonic()) - start < args.seconds:
            rss = max(rss, me.memory_info().rss)
            if now >= next_scrape:
                ms, text = scrape(url)
                scrapes.append((ms, len(text)))
                next_scrape += 10
            time.sleep(1)
        cpu1, requests1, elapsed = me.cpu_times(), count.value, time.monotonic() - start
    finally:
        proc.terminate()
        code = proc.wait(60)
        server.terminate()
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed * 100
    rss_mib = rss / 2**20
    times = sorted(ms for ms, _ in scrapes)
    rate = (requests1 - requests0) / elapsed
    print(f"opsdash serve: {args.checks} http checks every {args.interval:g} s, held {elapsed:.0f} s")
    print(f"  first result for every check after {warmup:.1f} s")
    print(
        f"  probes answered        {rate:8.1f}/s  (the intervals ask for {args.checks / args.interval:.1f}/s)"
    )
    print(f"  CPU, % of one core     {cpu:8.1f}    {verdict(cpu, GOALS['cpu'])}")
    print(f"  peak RSS               {rss_mib:8.1f} MiB {verdict(rss_mib, GOALS['rss'])}")
    print(
        f"  /metrics scrape        {statistics.median(times):8.1f} ms median, {times[-1]:.1f} ms max over "
        f"{len(times)} scrapes of {scrapes[-1][1] / 1024:.0f} KiB  {verdict(times[-1], GOALS['scrape'])}"
    )
    print(f"  exit code after SIGTERM: {code}")


if __name__ == "__main__":
    main()
