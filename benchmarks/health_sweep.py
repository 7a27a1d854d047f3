"""Health probes against Prometheus's blackbox_exporter: throughput, CPU and latency honesty, same run.

Default mode (`--target nginx`): nginx (Debian's package, /usr/sbin/nginx) is the target, started
here on 127.0.0.1 with its own prefix, config, pid and logs in a temp dir (non-root; worker_processes
1 unless --nginx-workers says otherwise), answering a small JSON body over http and https (a trustme
certificate made here). The 50 ms endpoint is nginx proxying, over upstream keep-alive, to a tiny
delay server in its own process (nginx cannot sleep); its busy share of a core is printed.

Each side runs in a FRESH process per round, in rotated order (opsdash first in odd rounds,
blackbox_exporter first in even); every probe uses a fresh connection on both sides:
  - opsdash: the real `run_once` over N http checks with `[STATUS] == 200` and
    `[BODY].payments.success_rate >= 0.95`, timed around `run_once` only (the process start and the
    building of the checks are outside), under asyncio and, if installed, uvloop;
  - blackbox_exporter: a fresh exporter whose http module checks the same status
    (valid_status_codes) and body (fail_if_body_not_matches_regexp), driven by a raw keep-alive
    client asking /probe once per target (the driver's CPU counts against the peer, as a Prometheus
    scrape would).
CPU per check is the process CPU time of every process of a side during its sweep / checks
(opsdash: its one process, threads included; blackbox: exporter + driver). nginx's CPU is shown too.

Throughput: 500 and 2,000 http checks and 200 https checks at concurrency 50. Latency: the 50 ms
endpoint at concurrency 1, 10, 50 and 200, opsdash's [RESPONSE_TIME] (queue time reported apart)
against blackbox_exporter's own figure (the sum of its probe_http_duration_seconds phases).

`--target python` is the earlier mode: a raw-asyncio Python server and one long-lived exporter.

Usage: .venv/bin/python benchmarks/health_sweep.py [--rounds 5] [--quick] [--loops asyncio,uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import multiprocessing
import os
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trustme
from bytecode import compile_installed
from pydantic import TypeAdapter

from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes import ProbeContext, make_ssl_context
from opsdash.core.health.runner import Gate, run_once
from opsdash.core.profile import Check, Profile

BODY = b'{"status":"UP","payments":{"success_rate":0.99}}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)
EXPORTERS = ("prometheus-blackbox-exporter", "blackbox_exporter")


class FastHttp(asyncio.Protocol):
    delay = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            write = self.transport.write  # type: ignore[attr-defined]
            if self.delay:
                asyncio.get_running_loop().call_later(self.delay, write, RESPONSE)
            else:
                write(RESPONSE)


def serve(port_queue: multiprocessing.Queue, delay: float, cert_dir: str | None) -> None:  # type: ignore[type-arg]
    FastHttp.delay = delay
    context = None
    if cert_dir:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(f"{cert_dir}/server.pem")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(FastHttp, "127.0.0.1", 0, backlog=4096, ssl=context)
        port_queue.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


class Target:
    """The server process, for one delay and scheme."""

    def __init__(self, delay: float, cert_dir: str | None) -> None:
        queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
        self.process = multiprocessing.Process(target=serve, args=(queue, delay, cert_dir), daemon=True)
        self.process.start()
        port = queue.get(timeout=10)
        self.base = f"{'https' if cert_dir else 'http'}://127.0.0.1:{port}"

    def urls(self, n: int) -> list[str]:
        return [f"{self.base}/health/{i}" for i in range(n)]

    def stop(self) -> None:
        self.process.terminate()
        self.process.join()


# --- opsdash -------------------------------------------------------------------------------------


def sweep_setup(urls: Sequence[str], ca_file: str) -> tuple[list[Check], ProbeContext]:
    """One http check per URL with the two conditions both sides check, and a probe context."""
    adapter = TypeAdapter(Check)
    checks = [
        adapter.validate_python(
            {
                "name": f"c{i}",
                "kind": "http",
                "url": url,
                "timeout": 10,
                "retries": 0,
                "conditions": CONDITIONS,
            }
        )
        for i, url in enumerate(urls)
    ]
    ctx = ProbeContext(
        profile=Profile.model_validate({"target": {"name": "bench", "base_url": "https://x.test"}}),
        ssl_context=make_ssl_context(ca_file),
    )
    return checks, ctx


async def opsdash_sweep(urls: Sequence[str], concurrency: int, ca_file: str) -> tuple[float, list[float]]:
    checks, ctx = sweep_setup(urls, ca_file)
    t0 = time.perf_counter()
    results = await run_once(checks, ctx, concurrency=concurrency)
    elapsed = time.perf_counter() - t0
    failed = [r for r in results if not r.ok]
    if failed:
        raise SystemExit(f"opsdash: {len(failed)} checks failed: {failed[0].summary}")
    return elapsed, [r.metrics["response_time_ms"] for r in results]


# --- blackbox_exporter ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Exporter:
    def __init__(self, binary: str, ca_file: str, workdir: str) -> None:
        config = Path(workdir) / "blackbox.yml"
        config.write_text(
            "modules:\n"
            "  http_2xx:\n    prober: http\n    timeout: 10s\n"
            f"    http:\n      preferred_ip_protocol: ip4\n      tls_config:\n        ca_file: {ca_file}\n"
        )
        self.port = free_port()
        self.process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("blackbox_exporter did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    if length:
        return await reader.readexactly(int(length.group(1)))
    body = b""
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return body
        body += chunk[:-2]


async def exporter_sweep(
    port: int, urls: Sequence[str], concurrency: int
) -> tuple[float, list[float], list[float]]:
    """Drive /probe over `concurrency` keep-alive connections; returns elapsed, the sum of the
    probe_http_duration_seconds phases, and probe_duration_seconds (ms)."""
    queue = list(urls)
    phases_ms: list[float] = []
    total_ms: list[float] = []

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while queue:
            target = queue.pop()
            writer.write(f"GET /probe?module=http_2xx&target={target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            text = (await _read_response(reader)).decode()
            if "\nprobe_success 1" not in text:
                raise SystemExit(f"blackbox_exporter: probe of {target} failed")
            phases = re.findall(r'^probe_http_duration_seconds\{phase="\w+"\} (\S+)', text, re.M)
            phases_ms.append(sum(float(p) for p in phases) * 1000)
            found = re.search(r"^probe_duration_seconds (\S+)", text, re.M)
            assert found is not None
            total_ms.append(float(found.group(1)) * 1000)
        writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, phases_ms, total_ms


# --- the run -------------------------------------------------------------------------------------


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def throughput(
    label: str, target: Target, n: int, args: argparse.Namespace, exporter: Exporter | None
) -> None:
    urls = target.urls(n)
    ours, peer, ratios = [], [], []
    for _ in range(args.rounds):
        elapsed, _lat = asyncio.run(opsdash_sweep(urls, 50, args.ca_file))
        ours.append(n / elapsed)
        if exporter:
            elapsed, _p, _t = asyncio.run(exporter_sweep(exporter.port, urls, 50))
            peer.append(n / elapsed)
            ratios.append(ours[-1] / peer[-1])
    line = f"{label:<24} opsdash {spread(ours, '{:,.0f}')} checks/s"
    if exporter:
        line += f"   blackbox_exporter {spread(peer, '{:,.0f}')} probes/s   ratio {spread(ratios)}x"
    print(line, flush=True)


def latency(target: Target, args: argparse.Namespace, exporter: Exporter | None) -> None:
    for concurrency in (1, 10, 50, 200):
        n = max(20, concurrency * 4)
        urls = target.urls(n)
        ours, peer_phases, peer_total, ratios = [], [], [], []
        for _ in range(args.rounds):
            _e, lat = asyncio.run(opsdash_sweep(urls, concurrency, args.ca_file))
            ours.append(statistics.median(lat))
            if exporter:
                _e, phases, total = asyncio.run(exporter_sweep(exporter.port, urls, concurrency))
                peer_phases.append(statistics.median(phases))
                peer_total.append(statistics.median(total))
                ratios.append(ours[-1] / peer_phases[-1])
        line = f"50 ms endpoint, c={concurrency:<4} opsdash {spread(ours, '{:.1f}')} ms"
        if exporter:
            line += (
                f"   blackbox_exporter phases {spread(peer_phases, '{:.1f}')} ms,"
                f" probe_duration {spread(peer_total, '{:.1f}')} ms   ratio {spread(ratios)}x"
            )
        print(line, flush=True)


def python_main(args: argparse.Namespace) -> None:
    binary = next((b for b in map(shutil.which, EXPORTERS) if b), None)
    if binary is None:
        print("blackbox_exporter not found (apt-get install prometheus-blackbox-exporter): opsdash only")
    workdir = tempfile.mkdtemp(prefix="opsdash-bench-")
    ca = trustme.CA()
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(f"{workdir}/server.pem")
    args.ca_file = f"{workdir}/ca.pem"
    ca.cert_pem.write_to_path(args.ca_file)
    exporter = Exporter(binary, args.ca_file, workdir) if binary else None
    print(f"{os.cpu_count()} cores; {args.rounds} rounds; medians (range); a fresh connection per probe")
    plain, secure, slow = Target(0.0, None), Target(0.0, workdir), Target(0.05, None)
    try:
        throughput("500 http, c=50", plain, 500, args, exporter)
        if not args.quick:
            throughput("2,000 http, c=50", plain, 2000, args, exporter)
            throughput("200 https, c=50", secure, 200, args, exporter)
        latency(slow, args, exporter)
    finally:
        for target in (plain, secure, slow):
            target.stop()
        if exporter:
            exporter.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (opsdash side): {rss:.0f} MiB")


# --- nginx mode: nginx is the target, each side in a fresh process per round, rotated order -----

NGINX = "/usr/sbin/nginx"
DELAY = 0.05  # seconds: the fixed-delay endpoint of the latency table
Side = dict[str, Any]  # what one side's process printed (JSON)
GOALS = {"http_throughput": 1.5, "http_cpu": 0.4, "https_throughput": 1.2, "latency": 1.10}
# blackbox_exporter checks what opsdash's conditions check: the status, and the success rate in the
# body at least 0.95 (a regular expression over the same JSON: 0.95-0.99 or 1)
BODY_REGEXP = r'"success_rate":\s*(0\.9[5-9][0-9]*|1(\.0+)?)[,}]'
CONDITIONS = ["[STATUS] == 200", "[BODY].payments.success_rate >= 0.95"]


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) a live process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (nginx's master and its workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return proc_cpu(pid) + sum(proc_cpu(int(c)) for c in children)


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class DelayProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive behind nginx: every request answered after DELAY seconds."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            later = asyncio.get_running_loop().call_later
            later(DELAY, self.transport.write, RESPONSE)  # type: ignore[attr-defined]


def delay_server(port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(DelayProtocol, "127.0.0.1", port, backlog=4096)
        print("ready", flush=True)
        await server.serve_forever()

    try:
        import uvloop  # the target's own plumbing: as cheap as it can be, for both sides alike

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


class Nginx:
    """nginx on 127.0.0.1 with its own prefix, config, pid and logs in `workdir` (no root needed):
    /health/* answers BODY at once (http and https); /slow/* is proxied over keep-alive to a delay
    server in its own process that answers after DELAY seconds."""

    def __init__(self, workdir: str, workers: str) -> None:
        self.http, self.https, delay_port = free_port(), free_port(), free_port()
        self.delay = subprocess.Popen(
            [sys.executable, __file__, "--side", "delay", "--port", str(delay_port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.delay.stdout is not None
        if self.delay.stdout.readline().strip() != "ready":
            raise SystemExit("the delay server did not start")
        d = workdir
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(f"{d}/tmp/{sub}", exist_ok=True)
        body = BODY.decode()
        Path(f"{d}/nginx.conf").write_text(
            f"""daemon off;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp/body; proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi; uwsgi_temp_path {d}/tmp/uwsgi; scgi_temp_path {d}/tmp/scgi;
  upstream delay {{ server 127.0.0.1:{delay_port}; keepalive 512; keepalive_requests 1000000; }}
  server {{
    listen 127.0.0.1:{self.http} backlog=4096;
    listen 127.0.0.1:{self.https} ssl backlog=4096;
    ssl_certificate {d}/cert.pem;
    ssl_certificate_key {d}/key.pem;
    location /health/ {{ default_type application/json; return 200 '{body}'; }}
    location /slow/ {{
      proxy_pass http://delay; proxy_http_version 1.1; proxy_set_header Connection "";
    }}
  }}
}}
"""
        )
        self.process = subprocess.Popen(
            [NGINX, "-p", d, "-c", f"{d}/nginx.conf", "-e", f"{d}/error.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        wait_port(self.http, "nginx")
        wait_port(self.https, "nginx")

    def urls(self, path: str, n: int, secure: bool = False) -> list[str]:
        base = f"https://127.0.0.1:{self.https}" if secure else f"http://127.0.0.1:{self.http}"
        return [f"{base}/{path}/{i}" for i in range(n)]

    def cpu(self) -> tuple[float, float]:
        return tree_cpu(self.process.pid), proc_cpu(self.delay.pid)

    def stop(self) -> None:
        for process in (self.process, self.delay):
            process.terminate()
            process.wait()


def wait_port(port: int, what: str) -> None:
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"{what} did not start on port {port}")


def blackbox_config(workdir: str, ca_file: str) -> str:
    config = Path(workdir) / "blackbox.yml"
    config.write_text(
        "modules:\n"
        "  http_2xx:\n    prober: http\n    timeout: 10s\n    http:\n"
        "      preferred_ip_protocol: ip4\n      valid_status_codes: [200]\n"
        f"      fail_if_body_not_matches_regexp: ['{BODY_REGEXP}']\n"
        f"      tls_config:\n        ca_file: {ca_file}\n"
    )
    return str(config)


# The sides, each run as `health_sweep.py --side ...` in a fresh process; they print one JSON line.


def opsdash_side(spec: Side) -> Side:
    loop_name = spec["loop"]
    if loop_name == "uvloop":
        import uvloop

        uvloop.install()
    checks, ctx = sweep_setup(spec["urls"], spec["ca_file"])

    gate = Gate(spec["concurrency"])

    async def sweep() -> tuple[float, float, list[CheckResult]]:
        cpu0, t0 = self_cpu(), time.perf_counter()
        results = await run_once(checks, ctx, gate=gate)
        return time.perf_counter() - t0, self_cpu() - cpu0, results

    elapsed, cpu, results = asyncio.run(sweep())
    failed = [r for r in results if not r.ok]
    return {
        "elapsed": elapsed,
        "cpu": {"opsdash": cpu},
        "failed": len(failed),
        "first_failure": failed[0].summary if failed else None,
        "latency": [r.metrics.get("response_time_ms", r.duration_ms) for r in results],
        "queue": [r.queue_ms for r in results],
        "lowest_limit": gate.lowest,
    }


def blackbox_side(spec: Side) -> Side:
    """A fresh blackbox_exporter, and the driver (this process) asking /probe once per target."""
    port = free_port()
    exporter = subprocess.Popen(
        [spec["binary"], f"--config.file={spec['config']}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, "blackbox_exporter")

        async def sweep() -> tuple[float, float, float, list[float], list[float]]:
            exp0, cpu0, t0 = proc_cpu(exporter.pid), self_cpu(), time.perf_counter()
            _e, phases, totals = await exporter_sweep(port, spec["urls"], spec["concurrency"])
            elapsed = time.perf_counter() - t0
            return elapsed, proc_cpu(exporter.pid) - exp0, self_cpu() - cpu0, phases, totals

        elapsed, exp_cpu, driver_cpu, phases, totals = asyncio.run(sweep())
    finally:
        exporter.terminate()
        exporter.wait()
    failed = sum(1 for p in phases if p < 0)
    return {
        "elapsed": elapsed,
        "cpu": {"exporter": exp_cpu, "driver": driver_cpu},
        "failed": failed,
        "first_failure": "probe_success 0" if failed else None,
        "latency": [p for p in phases if p >= 0],
        "probe_duration": totals,
    }


def run_side(side: str, spec: Side, nginx: Nginx) -> Side:
    """One side in a fresh process; the target's CPU (nginx, the delay server) during it, too."""
    ngx0, delay0 = nginx.cpu()
    out = subprocess.run(
        [sys.executable, __file__, "--side", side, "--spec", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{side} side failed:\n{out.stderr[-3000:]}")
    result: Side = json.loads(out.stdout.strip().splitlines()[-1])
    ngx1, delay1 = nginx.cpu()
    result["target_cpu"] = {"nginx": ngx1 - ngx0, "delay": delay1 - delay0}
    if result["failed"]:
        raise SystemExit(f"{side}: {result['failed']} checks failed: {result['first_failure']}")
    return result


def median_range(values: Sequence[float], fmt: str) -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def verdict(ratio: float, goal: float, at_most: bool) -> str:
    met = ratio <= goal if at_most else ratio >= goal
    return f"goal {'≤' if at_most else '≥'} {goal:g}: {'met' if met else 'NOT met'}"


def rounds_of(
    label: str, urls: list[str], concurrency: int, args: argparse.Namespace, nginx: Nginx
) -> dict[str, list[Side]]:
    """Every side once per round, opsdash first in odd rounds and blackbox_exporter first in even."""
    sides: dict[str, list[Side]] = {
        name: [] for name in [*(f"opsdash[{lp}]" for lp in args.loops), "blackbox"]
    }
    for round_no in range(1, args.rounds + 1):
        order = list(sides)
        if round_no % 2 == 0:
            order = order[-1:] + order[:-1]
        for name in order:
            if name == "blackbox":
                if not args.binary:
                    continue
                spec = {
                    "binary": args.binary,
                    "config": args.bb_config,
                    "urls": urls,
                    "concurrency": concurrency,
                }
                sides[name].append(run_side("blackbox", spec, nginx))
            else:
                loop_name = name[len("opsdash[") : -1]
                spec = {"urls": urls, "concurrency": concurrency, "ca_file": args.ca_file, "loop": loop_name}
                sides[name].append(run_side("opsdash", spec, nginx))
        print(
            f"  ({label}: round {round_no} of {args.rounds} done, order {' then '.join(order)})", flush=True
        )
    return {k: v for k, v in sides.items() if v}


def report_throughput(
    label: str, n: int, sides: dict[str, list[Side]], goal: float, cpu_goal: float | None
) -> None:
    print(f"\n{label}: {n} checks per round")
    for name, runs in sides.items():
        rate = [n / r["elapsed"] for r in runs]
        cpu = [sum(r["cpu"].values()) / n * 1000 for r in runs]
        parts = " + ".join(
            f"{k} {statistics.median(r['cpu'][k] for r in runs) / n * 1000:.3f}" for k in runs[0]["cpu"]
        )
        ngx = statistics.median(r["target_cpu"]["nginx"] for r in runs) / n * 1000
        unit = "probes/s" if name == "blackbox" else "checks/s"
        print(
            f"  {name:<18} {median_range(rate, '{:,.0f}')} {unit:<9}"
            f" CPU {median_range(cpu, '{:.3f}')} ms/check"
            f" ({parts}); nginx {ngx:.3f} ms/request"
        )
    if "blackbox" not in sides:
        return
    peer = sides["blackbox"]
    for name, runs in sides.items():
        if name == "blackbox":
            continue
        ratios = [p["elapsed"] / r["elapsed"] for r, p in zip(runs, peer, strict=True)]
        pairs = list(zip(runs, peer, strict=True))
        cpu_ratios = [sum(r["cpu"].values()) / sum(p["cpu"].values()) for r, p in pairs]
        med = statistics.median(ratios)
        print(
            f"  {name} / blackbox: throughput {med:.2f}x (rounds {' '.join(f'{x:.2f}' for x in ratios)};"
            f" {verdict(med, goal, False)})"
        )
        cmed = statistics.median(cpu_ratios)
        text = verdict(cmed, cpu_goal, True) if cpu_goal is not None else "no goal"
        print(
            f"  {'':<{len(name)}}   CPU per check {cmed:.2f}x"
            f" (rounds {' '.join(f'{x:.2f}' for x in cpu_ratios)};"
            f" {text})"
        )


def report_latency(concurrency: int, n: int, sides: dict[str, list[Side]], goal: float) -> None:
    print(
        f"\n{DELAY * 1000:.0f} ms endpoint, c={concurrency}: {n} checks per round, all due when the sweep"
        " starts (so a check's queue time grows with its place in the sweep); median reported latency"
    )
    for name, runs in sides.items():
        lat = [statistics.median(r["latency"]) for r in runs]
        extra = ""
        if name == "blackbox":
            total = [statistics.median(r["probe_duration"]) for r in runs]
            extra = (
                " (sum of probe_http_duration_seconds phases;"
                f" probe_duration {median_range(total, '{:.1f}')} ms)"
            )
        else:
            queue = [statistics.median(r["queue"]) for r in runs]
            p95 = [statistics.quantiles(r["queue"], n=20)[-1] for r in runs]
            lowest = [r["lowest_limit"] for r in runs]
            extra = (
                f" ([RESPONSE_TIME]; queue, reported apart: median {median_range(queue, '{:.1f}')} ms,"
                f" p95 {statistics.median(p95):.1f} ms; in-flight limit went down to {min(lowest)})"
            )
        busy = [r["target_cpu"]["delay"] / r["elapsed"] * 100 for r in runs]
        rate = [n / r["elapsed"] for r in runs]
        print(
            f"  {name:<18} {median_range(lat, '{:.1f}')} ms{extra};"
            f" sweep {median_range(rate, '{:,.0f}')} checks/s;"
            f" delay server busy {statistics.median(busy):.0f}% of a core"
        )
    if "blackbox" not in sides:
        return
    peer = sides["blackbox"]
    for name, runs in sides.items():
        if name == "blackbox":
            continue
        ratios = [
            statistics.median(r["latency"]) / statistics.median(p["latency"])
            for r, p in zip(runs, peer, strict=True)
        ]
        med = statistics.median(ratios)
        print(
            f"  {name} / blackbox: latency {med:.2f}x (rounds {' '.join(f'{x:.2f}' for x in ratios)};"
            f" {verdict(med, goal, True)})"
        )


def nginx_main(args: argparse.Namespace) -> None:
    compile_installed()
    args.binary = next((b for b in map(shutil.which, EXPORTERS) if b), None)
    if args.binary is None:
        print("blackbox_exporter not found (apt-get install prometheus-blackbox-exporter): opsdash only")
    if not os.path.exists(NGINX):
        raise SystemExit("nginx not found (apt-get install nginx)")
    workdir = tempfile.mkdtemp(prefix="opsdash-bench-nginx-")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(f"{workdir}/cert.pem")
    cert.private_key_pem.write_to_path(f"{workdir}/key.pem")
    args.ca_file = f"{workdir}/ca.pem"
    ca.cert_pem.write_to_path(args.ca_file)
    args.bb_config = blackbox_config(workdir, args.ca_file)
    nginx = Nginx(workdir, args.nginx_workers)
    print(
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; target nginx {nginx_version()}"
        f" (worker_processes {args.nginx_workers}); {args.rounds} rounds,"
        " each side a fresh process per round,"
        " opsdash first in odd rounds and blackbox_exporter first in even; medians (range);"
        " ratios taken per round. CPU per check = process CPU of every process of a side during the"
        " sweep (opsdash: its one process; blackbox: exporter + driver) / checks."
    )
    try:
        plan: list[tuple[str, int, bool, float, float | None]] = [
            ("500 http, c=50", 500, False, GOALS["http_throughput"], GOALS["http_cpu"])
        ]
        if not args.quick:
            plan += [
                ("2,000 http, c=50", 2000, False, GOALS["http_throughput"], GOALS["http_cpu"]),
                ("200 https, c=50", 200, True, GOALS["https_throughput"], None),
            ]
        for label, n, secure, goal, cpu_goal in plan:
            sides = rounds_of(label, nginx.urls("health", n, secure), 50, args, nginx)
            report_throughput(label, n, sides, goal, cpu_goal)
        for concurrency in args.latency_concurrency:
            n = max(50, concurrency * 10)
            sides = rounds_of(f"latency c={concurrency}", nginx.urls("slow", n), concurrency, args, nginx)
            report_latency(concurrency, n, sides, GOALS["latency"])
    finally:
        nginx.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def nginx_version() -> str:
    out = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)
    return out.stderr.strip().removeprefix("nginx version: nginx/")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("nginx", "python"), default="nginx")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="500 http checks only, and the latency table")
    parser.add_argument(
        "--loops",
        default=None,
        help="opsdash's event loops, comma-separated (default: asyncio, and uvloop if installed)",
    )
    parser.add_argument("--nginx-workers", default="1", help="nginx worker_processes (1, or auto)")
    parser.add_argument("--latency-concurrency", default="1,10,50,200")
    parser.add_argument("--side", choices=("opsdash", "blackbox", "delay"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side == "delay":
        delay_server(args.port)
        return
    if args.side:
        side = opsdash_side if args.side == "opsdash" else blackbox_side
        print(json.dumps(side(json.loads(args.spec))))
        return
    if args.loops is None:
        args.loops = ["asyncio"] + (["uvloop"] if importlib.util.find_spec("uvloop") else [])
    else:
        args.loops = args.loops.split(",")
    args.latency_concurrency = [int(c) for c in args.latency_concurrency.split(",") if c]
    if args.target == "python":
        python_main(args)
    else:
        nginx_main(args)


if __name__ == "__main__":
    main()
