"""`audit verify` against a bare HMAC-SHA256 loop over the same lines, measured in the same run.

Writes a format-2 audit log of --records records (audit-shaped, about 400 bytes a line) through the
same encoder `AuditLog.append` uses, with the chain linked as appends link it, then for each of
--rounds rounds times, in alternating order:
  - `verify()` over the whole file (what `opsdash audit verify` runs, anchors aside);
  - floor A: `hmac.digest(key, line, "sha256")` for every line of the same file;
  - floor B: the same with a pre-keyed HMAC copied per line (the fastest bare loop found);
and prints records/s for each with the median and range, and the ratio of verify to the faster
floor per round (median and range). A format-1 log (the previous format, still verified) is timed
once for comparison.

Usage: .venv/bin/python benchmarks/audit_verify.py [--records 250000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hmac
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opsdash.core.audit.log import FORMAT, encode, line_bytes, mac_of
from opsdash.core.audit.verify import verify

KEY = b"benchmark-audit-key-0123456789abcdef0123"


def record(seq: int, prev: str) -> dict[str, object]:
    return {
        "v": FORMAT,
        "seq": seq,
        "log_id": "3f9a1c0d5e7b2a64",
        "prev": prev,
        "kind": "check_result" if seq else "system",
        "ts": "2026-11-26T10:00:00.000+00:00",
        "operator": "alice",
        "host": "deploy-01",
        "action": "app-health" if seq else "genesis",
        "subject": "https://app.betaskill.com/health" if seq else "",
        "outcome": "OK" if seq else "",
        "details": {"error_class": None, "latency_ms": 41.7, "run_id": "20261126T100000-abc123"}
        if seq
        else {},
    }


def build(path: Path, count: int, fmt: int) -> int:
    prev = ""
    with path.open("wb", buffering=16 * 1024 * 1024) as handle:
        for seq in range(count):
            fields = record(seq, prev)
            if fmt == 2:
                line, prev = encode(KEY, fields)
            else:
                legacy = {k: v for k, v in fields.items() if k != "v"}
                legacy["mac"] = prev = mac_of(KEY, legacy)
                line = line_bytes(legacy)
            handle.write(line)
    return path.stat().st_size


def bare_digest(path: Path) -> int:
    n = 0
    digest = hmac.digest
    with path.open("rb") as handle:
        for line in handle:
            digest(KEY, line, "sha256")
            n += 1
    return n


def bare_keyed(path: Path) -> int:
    n = 0
    keyed = hmac.new(KEY, digestmod="sha256")
    with path.open("rb") as handle:
        for line in handle:
            h = keyed.copy()
            h.update(line)
            h.hexdigest()
            n += 1
    return n


def verified(directory: Path) -> int:
    result = verify(directory, KEY)
    assert result.ok, result.problem
    return result.records


def rate(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - start)


def spread(values: list[float], fmt: str = "{:,.0f}") -> str:
    low, mid, high = (fmt.format(v) for v in (min(values), statistics.median(values), max(values)))
    return f"median {mid} (range {low}–{high})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=250_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        v2, v1 = Path(tmp, "v2"), Path(tmp, "v1")
        v2.mkdir()
        v1.mkdir()
        size = build(v2 / "audit.log", args.records, 2)
        build(v1 / "audit.log", args.records, 1)
        print(f"log: {args.records:,} records, {size / 2**20:.1f} MiB (format 2)")
        log = v2 / "audit.log"
        bare_digest(log)  # warm the page cache
        rates: dict[str, list[float]] = {"verify": [], "digest": [], "keyed": []}
        ratios: list[float] = []
        for round_ in range(args.rounds):
            order = ["verify", "digest", "keyed"]
            if round_ % 2:
                order.reverse()
            got = {}
            for name in order:
                fn = {
                    "verify": lambda: verified(v2),
                    "digest": lambda: bare_digest(log),
                    "keyed": lambda: bare_keyed(log),
                }[name]
                got[name] = rate(fn)
                rates[name].append(got[name])
            ratios.append(got["verify"] / max(got["digest"], got["keyed"]))
        print(f"verify (format 2)            records/s {spread(rates['verify'])}")
        print(f"floor A: hmac.digest loop    records/s {spread(rates['digest'])}")
        print(f"floor B: pre-keyed HMAC copy records/s {spread(rates['keyed'])}")
        print(f"ratio verify / faster floor  {spread(ratios, '{:.2f}')}  (goal >= 0.5)")
        print(f"verify (format 1, previous)  records/s {rate(lambda: verified(v1)):,.0f} (one run)")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of this process     {peak:.0f} MiB (verify streams: constant memory)")


if __name__ == "__main__":
    main()
