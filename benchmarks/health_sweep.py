"""A health sweep of many loopback endpoints: opsdash's runner vs a bare httpx gather.

A fast raw-asyncio HTTP server runs in its own process (so client and server each get a core).
Then, at the same concurrency over the same URLs:
  - peer: one shared `httpx.AsyncClient`, `asyncio.gather` behind a semaphore (PLAN §7's baseline);
  - opsdash: `run_once` over N http checks with conditions, phases and metrics.
Prints medians of total time, checks/s, median reported latency, peak RSS, and the ratio.

Usage: .venv/bin/python benchmarks/health_sweep.py [--checks 500] [--concurrency 50] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import statistics
import time

import httpx
from pydantic import TypeAdapter

from opsdash.core.health.probes import ProbeContext
from opsdash.core.health.runner import run_once
from opsdash.core.profile import Check, Profile

BODY = b'{"status":"UP","payments":{"success_rate":0.99}}'
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


class FastHttp(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


def serve(port_queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(FastHttp, "127.0.0.1", 0, backlog=2048)
        port_queue.put(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    asyncio.run(main())


async def bare_httpx(urls: list[str], concurrency: int) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:

        async def one(url: str) -> None:
            async with gate:
                t = time.perf_counter()
                response = await client.get(url)
                response.raise_for_status()
                latencies.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(u) for u in urls))
        return time.perf_counter() - t0, latencies


async def opsdash_sweep(urls: list[str], concurrency: int) -> tuple[float, list[float], int]:
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
        profile=Profile.model_validate({"target": {"name": "bench", "base_url": "https://x.test"}})
    )
    t0 = time.perf_counter()
    results = await run_once(checks, ctx, concurrency=concurrency)
    elapsed = time.perf_counter() - t0
    failed = sum(1 for r in results if not r.ok)
    return elapsed, [r.metrics.get("response_time_ms", 0.0) for r in results], failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(queue,), daemon=True)
    server.start()
    port = queue.get(timeout=10)
    urls = [f"http://127.0.0.1:{port}/health/{i}" for i in range(args.checks)]
    peer_times, peer_lat, ours_times, ours_lat = [], [], [], []
    try:
        for _ in range(args.rounds):
            elapsed, lat = asyncio.run(bare_httpx(urls, args.concurrency))
            peer_times.append(elapsed)
            peer_lat.append(statistics.median(lat))
            elapsed, lat, failed = asyncio.run(opsdash_sweep(urls, args.concurrency))
            if failed:
                raise SystemExit(f"{failed} checks failed against the loopback server")
            ours_times.append(elapsed)
            ours_lat.append(statistics.median(lat))
    finally:
        server.terminate()
    peer, ours = statistics.median(peer_times), statistics.median(ours_times)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.checks} checks at concurrency {args.concurrency}, {args.rounds} rounds (medians; 2 cores)")
    print(
        f"peer   httpx.AsyncClient gather   {peer:6.2f} s  {args.checks / peer:7.0f} req/s     "
        f"median latency {statistics.median(peer_lat):7.1f} ms"
    )
    print(
        f"opsdash run_once (http checks)    {ours:6.2f} s  {args.checks / ours:7.0f} checks/s  "
        f"median latency {statistics.median(ours_lat):7.1f} ms"
    )
    print(f"ratio opsdash/peer throughput: {peer / ours:.2f}x   peak RSS (this process): {rss:.0f} MiB")


if __name__ == "__main__":
    main()
