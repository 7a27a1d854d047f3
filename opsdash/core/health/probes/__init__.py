"""One probe of one check, for every check kind. Probes never raise: every failure is a result.

HTTP goes over a fresh connection per probe, timed at the socket (`wire.py`): honest connect and
TLS phases, and no shared pool whose bookkeeping would inflate latencies under concurrency. TLS
checks make a direct handshake and read the whole presented chain (`net.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.model import CheckResult
from opsdash.core.health.probes.base import (
    Attempt,
    ProbeContext,
    ProbeFailed,
    make_ssl_context,
    system_resolver,
)
from opsdash.core.health.probes.http import probe_http
from opsdash.core.health.probes.net import probe_dns, probe_tcp, probe_tls
from opsdash.core.health.probes.provider import probe_provider, probe_webhook
from opsdash.core.profile import Check

__all__ = ["ProbeContext", "ProbeFailed", "make_ssl_context", "probe", "system_resolver"]


_PROBES: dict[str, Callable[[Any, ProbeContext, datetime, float], Awaitable[CheckResult]]] = {
    "http": probe_http,
    "tcp": probe_tcp,
    "dns": probe_dns,
    "tls": probe_tls,
    "provider": probe_provider,
    "webhook": probe_webhook,
}


async def probe(check: Check, ctx: ProbeContext, *, due: float | None = None) -> CheckResult:
    """Probe once, retrying transient failures with backoff. Never raises for network trouble.

    `due` (on the perf counter) is when the probe was due: the time from then until it began is its
    `queue_ms` (waiting for a concurrency slot), reported apart and never part of its timings."""
    attempts = 0
    queue_ms = 0.0
    while True:
        attempts += 1
        started, t0 = ctx.now(), time.perf_counter()
        if attempts == 1 and due is not None:
            queue_ms = max(0.0, (t0 - due) * 1000)
        try:
            result = await _PROBES[check.kind](check, ctx, started, t0)
        except Exception as exc:  # a bug in a probe must not take the runner down
            failure = f"internal error: {type(exc).__name__}: {exc}"
            result = Attempt(check, check.name, started, t0).failed(ErrorClass.CONFIG, failure)
        transient = result.error_class is not None and result.error_class.info.transient
        if not transient or attempts > check.retries:
            if attempts > 1 or queue_ms:
                result = dataclasses.replace(result, attempts=attempts, queue_ms=queue_ms)
            return result
        await asyncio.sleep(min(0.1 * 2 ** (attempts - 1), 2.0))
