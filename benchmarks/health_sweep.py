"""Health probes against Prometheus's blackbox_exporter: throughput and latency honesty, same run.

A raw-asyncio HTTP(S) server runs in its own process. Against it, at the same concurrency and with a
fresh connection per probe on both sides:
  - opsdash: `run_once` over N http checks with conditions (status and a [BODY] value);
  - peer: blackbox_exporter, started here on a free port with a generated config, driven by a raw
    keep-alive client that asks /probe once per target (the driver's cost counts against the peer,
    as it would for Prometheus scraping it).

Throughput: 500 and 2,000 http checks and 200 https checks at concurrency 50 (checks/s, ratio).
Latency: a server answering after a fixed 50 ms, at concurrency 1, 10, 50 and 200: opsdash's
[RESPONSE_TIME] against blackbox_exporter's own figure for the same endpoint (the sum of its
probe_http_duration_seconds phases, and probe_duration_seconds).

blackbox_exporter is Debian's `prometheus-blackbox-exporter` (apt-get install
prometheus-blackbox-exporter); without it the peer columns are skipped and only opsdash is measured.

Usage: .venv/bin/python benchmarks/health_sweep.py [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import resource
import shutil
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import trustme
from pydantic import TypeAdapter

from opsdash.core.health.probes import ProbeContext, make_ssl_context
from opsdash.core.health.runner import run_once
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


async def opsdash_sweep(urls: Sequence[str], concurrency: int, ca_file: str) -> tuple[float, list[float]]:
    adapter = TypeAdapter(Check)
    checks = [
        adapter.validate_python(
            {
                "name": f"c{i}",
                "kind": "http",
                "url": url,
                "timeout": 10,
                "retries": 0,
                "conditions": ["[STATUS] == 200", "[BODY].payments.success_rate >= 0.95"],
            }
        )
        for i, url in enumerate(urls)
    ]
    ctx = ProbeContext(
        profile=Profile.model_validate({"target": {"name": "bench", "base_url": "https://x.test"}}),
        ssl_context=make_ssl_context(ca_file),
    )
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 http checks only, and the latency table")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
