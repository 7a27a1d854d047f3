"""`opsdash serve` held under load: 2,000 http checks polled every 10 s, scraped like Prometheus.

A raw-asyncio HTTP server runs in its own process (its CPU is not counted). `opsdash serve` watches
2,000 http checks against it (interval 10 s, a [STATUS] condition, history, audit and alerts on as
in production; validation off: the profile has no env files). After every check has a first
result, the benchmark holds for --seconds and measures the serve process:
  - CPU: its user+system time over the hold, as % of one core (goal ≤ 20%);
  - RSS: the highest resident set seen, sampled every second (goal ≤ 150 MiB);
  - /metrics: wall time of a scrape every 10 s, as Prometheus would (goal ≤ 100 ms, median and max);
  - probes/s answered by the target against the 200/s the intervals ask for (the watch keeps up).

With --attack, the service is attacked instead of scraped politely: `opsdash serve` runs under
`ulimit -n 1024` with 1,000 checks, and once every check has a result, a client process on
127.0.0.1 holds for --seconds (default 60):
  - 1,100 idle connections (more than the service has descriptors), each reopened when closed;
  - 500 slowloris clients, each sending one more header line a second, reopened when closed;
  - 1,000 clients scraping /metrics back to back (each scrape a new connection, 10 s timeout).
Every 20th check's target flaps (503 every other 20 s), so state changes are audited meanwhile.
/healthz is asked once a second (2 s timeout). Printed: the share of the probes the intervals
schedule during the attack that are in history and that reached the target (goal ≥ 95% for both),
the longest a check went without a result, the state changes audited against those in history,
whether /healthz answered every time, the scrapes that succeeded, and the tracebacks the service
wrote on stderr up to its exit after SIGTERM.

With --database postgresql://...|auto, serve records to PostgreSQL (OPSDASH_DATABASE_URL; `auto`
starts a temporary server from the PostgreSQL server binaries, as the tests do; a URL gets a schema
of its own, dropped after): the same figures, the server's own CPU beside them (not counted in the
goal), and the check results PostgreSQL received over the hold.

Usage: .venv/bin/python benchmarks/serve.py [--checks 2000] [--interval 10] [--seconds 120] [--attack]
                                            [--database postgresql://...|auto]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import resource
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

GOALS = {"cpu": 20.0, "rss": 150.0, "scrape": 100.0, "recorded": 95.0}
ATTACK = {"idle": 1100, "slow": 500, "scrapers": 1000, "open_files": 1024}
ANSWER = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n"
)
DOWN = ANSWER.replace(b"200 OK", b"503 Service Unavailable")
FLAP_EVERY, FLAP_SECONDS = 20, 20


def target_server(
    port_out: multiprocessing.connection.Connection,  # type: ignore[name-defined]
    count: multiprocessing.Value,  # type: ignore[name-defined]
    flap: bool = False,
) -> None:
    """With `flap`, every FLAP_EVERY-th check's path answers 503 in every other FLAP_SECONDS."""

    async def main() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                n = int(head.split(b" ", 2)[1].rsplit(b"/", 1)[1] or 1)
                down = flap and n % FLAP_EVERY == 0 and int(time.time() // FLAP_SECONDS) % 2 == 1
                writer.write((DOWN if down else ANSWER) + b'{"status":"UP"}')
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


def profile(path: Path, port: int, checks: int, interval: float, flap: bool = False) -> None:
    """With `flap`, every result that changes a check's state changes its sustained state (an audit
    record and an alert each), and a failing check is polled on its interval like the others."""
    lines = [
        '[target]\nname = "bench"\nbase_url = "https://app.example.com"\n',
        "[health]\nconcurrency = 50\n",
    ]
    for n in range(checks):
        lines.append(
            f'[[checks]]\nname = "check-{n:04d}"\nkind = "http"\nurl = "http://127.0.0.1:{port}/c/{n}"\n'
            f'interval = {interval}\ntimeout = 5\nretries = 0\nconditions = ["[STATUS] == 200"]\n'
            + (f"retry_interval = {interval}\nfailure_threshold = 1\nsuccess_threshold = 1\n" if flap else "")
        )
    path.write_text("\n".join(lines))


def scrape(url: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        text = answer.read().decode()
    return (time.perf_counter() - t0) * 1000, text


def evaluated(text: str) -> int:
    return sum(len(f.samples) for f in text_string_to_metric_families(text) if f.name == "probe_success")


def wait_for_every_check(url: str, checks: int) -> None:
    """Until serve's /metrics has a result for every check (at most 300 s)."""
    t0 = time.monotonic()
    while evaluated(scrape(url)[1]) < checks:
        if time.monotonic() - t0 > 300:
            raise SystemExit("serve never evaluated every check within 300 s")
        time.sleep(1)


def verdict(value: float, goal: float) -> str:
    return f"goal ≤ {goal:g}: {'met' if value <= goal else 'MISSED'}"


def attacker(port: int, seconds: float, stats: multiprocessing.Array) -> None:  # type: ignore[name-defined]
    """The clients of --attack, for `seconds`: stats = [idle opened, slowloris opened, scrapes ok,
    scrapes failed]."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
            try:
                return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.5)
                return None

        async def hold(slow: bool) -> None:
            while loop.time() < end:
                if (pair := await connect()) is None:
                    continue
                reader, writer = pair
                stats[1 if slow else 0] += 1
                try:
                    if slow:
                        writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                    n = 0
                    while loop.time() < end:  # until the service closes it
                        try:
                            if not await asyncio.wait_for(reader.read(1024), 1):
                                break
                        except TimeoutError:
                            if slow:
                                n += 1
                                writer.write(b"X-Slow-%d: x\r\n" % n)
                                await writer.drain()
                except OSError:
                    pass
                finally:
                    writer.close()

        async def scrape() -> None:
            while loop.time() < end:
                if (pair := await connect()) is None:
                    stats[3] += 1
                    continue
                reader, writer = pair
                try:
                    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    head = await asyncio.wait_for(reader.read(1024), 10)
                    while await asyncio.wait_for(reader.read(1 << 16), 10):
                        pass
                    stats[2 if head.startswith(b"HTTP/1.1 200") else 3] += 1
                except (OSError, TimeoutError):
                    stats[3] += 1
                finally:
                    writer.close()

        clients = [hold(False) for _ in range(ATTACK["idle"])] + [hold(True) for _ in range(ATTACK["slow"])]
        clients += [scrape() for _ in range(ATTACK["scrapers"])]
        await asyncio.wait_for(asyncio.gather(*clients), seconds + 30)

    with contextlib.suppress(TimeoutError):
        asyncio.run(main())


def limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (ATTACK["open_files"], ATTACK["open_files"]))


def healthz(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def recorded(data: Path, since: datetime, until: datetime, interval: float) -> dict[str, float]:
    """From history, for [since, until): the probes the checks' intervals scheduled (each check's
    due times run on from its last result before `since`), those recorded, and the longest a check
    went without a result (s). Over the whole run (an audit record is written after its result, so
    a window would cut pairs apart): the changes of sustained state in history, a check's first
    result included, and the audit records of them."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'history.db'}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT check_name, started_at, sustained FROM check_results").fetchall()
    by_check: dict[str, list[tuple[datetime, str]]] = {}
    for name, started, sustained in rows:
        by_check.setdefault(name, []).append((datetime.fromisoformat(started), sustained))
    out = dict.fromkeys(("scheduled", "recorded", "gap", "changes", "audited"), 0.0)
    for seen in by_check.values():
        seen.sort()
        before = [t for t, _ in seen if t < since]
        if not before:
            continue
        window = [before[-1], *(t for t, _ in seen if since <= t < until), until]
        out["scheduled"] += (until - before[-1]).total_seconds() // interval
        out["recorded"] += len(window) - 2
        out["gap"] = max(out["gap"], *((b - a).total_seconds() for a, b in pairwise(window)))
        out["changes"] += 1 + sum(1 for (_, a), (_, b) in pairwise(seen) if a != b)
    with (data / "audit.log").open() as log:
        out["audited"] = sum(1 for line in log if json.loads(line)["kind"] == "check_result")
    return out


def attack(args: argparse.Namespace) -> None:
    count = multiprocessing.Value("l", 0)
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=target_server, args=(send, count, True), daemon=True)
    server.start()
    port = receive.recv()
    work = Path(tempfile.mkdtemp(prefix="opsdash-bench-attack-"))
    profile(work / "opsdash.toml", port, args.checks, args.interval, flap=True)
    env = {**os.environ, "OPSDASH_DATA_DIR": str(work / "data"), "XDG_CONFIG_HOME": str(work / "config")}
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    command = [opsdash, "serve", "--config", str(work / "opsdash.toml"), "--listen", "127.0.0.1:0"]
    with (work / "stderr.txt").open("w") as err:
        proc = subprocess.Popen(
            [*command, "--no-validate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=limit_files,  # as `ulimit -n 1024` in its shell
        )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    stats = multiprocessing.Array("l", 4)
    polls: list[tuple[float, bool]] = []
    try:
        t0 = time.monotonic()
        wait_for_every_check(url, args.checks)
        time.sleep(args.interval)  # the first burst recorded: from here every check is on its interval
        since, requests0 = datetime.now(UTC), count.value
        client = multiprocessing.Process(
            target=attacker, args=(int(url.rsplit(":", 1)[1]), args.seconds, stats), daemon=True
        )
        client.start()
        while client.is_alive() and time.monotonic() - t0 < 600:
            tick = time.monotonic()
            polls.append((tick, healthz(url)))
            time.sleep(max(0.0, 1 - (time.monotonic() - tick)))
        until, requests1 = datetime.now(UTC), count.value
        client.join(30)
        if client.is_alive():
            client.terminate()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        server.terminate()
    elapsed = (until - since).total_seconds()
    figures = recorded(work / "data", since, until, args.interval)
    share = figures["recorded"] / figures["scheduled"] * 100
    failed = [t for t, ok in polls if not ok]
    stderr = (work / "stderr.txt").read_text(errors="replace")
    print(
        f"opsdash serve under attack: {args.checks} http checks every {args.interval:g} s, ulimit -n "
        f"{ATTACK['open_files']}, attacked {elapsed:.0f} s by {ATTACK['idle']} idle connections, "
        f"{ATTACK['slow']} slowloris clients and {ATTACK['scrapers']} concurrent scrapers"
    )
    made = (requests1 - requests0) / figures["scheduled"] * 100
    met = "met" if min(share, made) >= GOALS["recorded"] else "MISSED"
    print(
        f"  probes recorded        {share:8.1f}%  of the {figures['scheduled']:.0f} scheduled "
        f"({figures['recorded']:.0f} in history)"
    )
    print(
        f"  probes made            {made:8.1f}%  (the target answered {requests1 - requests0}: a probe that "
        f"failed for want of a descriptor is recorded, but was never made)  goal ≥ {GOALS['recorded']:g} "
        f"for both: {met}"
    )
    print(
        f"  longest without result {figures['gap']:8.1f} s  for one check (its interval: {args.interval:g} s)"
    )
    print(
        f"  state changes audited  {figures['audited']:.0f} of the {figures['changes']:.0f} in history, "
        f"whole run (every {FLAP_EVERY}th check flaps every {FLAP_SECONDS} s)"
    )
    print(
        f"  /healthz answered      {len(polls) - len(failed)}/{len(polls)} polls: "
        f"{'throughout' if not failed else 'NOT throughout'}"
    )
    print(
        f"  attack                 {stats[0]} idle and {stats[1]} slowloris connections opened; "
        f"scrapes {stats[2]} answered, {stats[3]} failed"
    )
    print(
        f"  serve stderr           {len(stderr.splitlines())} lines, {stderr.count('Traceback')} tracebacks"
        f"; exit code after SIGTERM: {code}"
    )
    if "Traceback" in stderr:
        print("  the first:\n" + stderr[stderr.index("Traceback") :][:800])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checks", type=int, help="default 2000; 1000 with --attack")
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, help="hold after warm-up (default 120; 60 with --attack)")
    parser.add_argument("--attack", action="store_true", help="idle, slowloris and scrape floods")
    parser.add_argument(
        "--database", metavar="URL", help="record to PostgreSQL: a postgresql:// URL, or auto"
    )
    args = parser.parse_args()
    args.checks = args.checks or (1000 if args.attack else 2000)
    args.seconds = args.seconds or (60.0 if args.attack else 120.0)
    if args.attack:
        attack(args)
        return
    if args.database:
        with team_database(args.database) as (url, counter):
            hold(args, {"OPSDASH_DATABASE_URL": url}, counter)
        return
    hold(args, {}, None)


@contextlib.contextmanager
def team_database(given: str) -> Iterator[tuple[str, Callable[[], tuple[int, float]]]]:
    """A schema of its own on the server (`auto`: a temporary server, tests/pg.py); yields its URL
    and a reader of (check results recorded, the server processes' CPU seconds)."""
    import psutil
    import psycopg

    root = str(Path(__file__).resolve().parents[1])
    if root not in sys.path:
        sys.path.insert(0, root)
    server = None
    if given == "auto":
        from tests.pg import start_server

        server = start_server()
        given = server.admin_url
    name = f"opsdash_serve_bench_{os.getpid()}"
    with psycopg.connect(given, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
    url = f"{given}{'&' if '?' in given else '?'}options=-csearch_path%3D{name}"

    def counter() -> tuple[int, float]:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass('check_results') IS NOT NULL").fetchone()
            rows = conn.execute("SELECT COUNT(*) FROM check_results").fetchone() if row and row[0] else (0,)
        cpu = 0.0
        if server is not None:  # the temporary server's postmaster and its backends
            for pid in _postmaster(server.root):
                with contextlib.suppress(psutil.Error):
                    main = psutil.Process(pid)
                    for proc in [main, *main.children(recursive=True)]:
                        with contextlib.suppress(psutil.Error):
                            times = proc.cpu_times()
                            cpu += times.user + times.system
        return int(rows[0] if rows else 0), cpu

    try:
        yield url, counter
    finally:
        with contextlib.suppress(psycopg.Error), psycopg.connect(given, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        if server is not None:
            server.stop()


def _postmaster(root: Path) -> set[int]:
    pid_file = root / "data" / "postmaster.pid"
    try:
        return {int(pid_file.read_text().split()[0])}
    except (OSError, ValueError, IndexError):
        return set()


def hold(
    args: argparse.Namespace, extra_env: dict[str, str], counter: Callable[[], tuple[int, float]] | None
) -> None:
    count = multiprocessing.Value("l", 0)
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(target=target_server, args=(send, count), daemon=True)
    server.start()
    port = receive.recv()
    work = Path(tempfile.mkdtemp(prefix="opsdash-bench-serve-"))
    profile(work / "opsdash.toml", port, args.checks, args.interval)
    env = {
        **os.environ,
        "OPSDASH_DATA_DIR": str(work / "data"),
        "XDG_CONFIG_HOME": str(work / "config"),
        **extra_env,
    }
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
    import psutil  # only this measure needs it

    me = psutil.Process(proc.pid)
    try:
        t0 = time.monotonic()
        wait_for_every_check(url, args.checks)
        warmup = time.monotonic() - t0
        time.sleep(args.interval)  # let the first burst's recording settle before measuring
        recorded0, db_cpu0 = counter() if counter else (0, 0.0)
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
        recorded1, db_cpu1 = counter() if counter else (0, 0.0)
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
    if counter is not None:
        print(
            f"  PostgreSQL: {recorded1 - recorded0:,} check results recorded over the hold "
            f"({(recorded1 - recorded0) / elapsed:,.0f}/s); its server's CPU "
            f"{(db_cpu1 - db_cpu0) / elapsed * 100:.1f}% of one core (auto only; not in the goal)"
        )


if __name__ == "__main__":
    main()
