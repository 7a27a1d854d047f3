"""Outbound HTTP from the ops layer — alert channels and the deploy version URL — on the probes'
wire engine: one overall deadline (a server that drips bytes cannot stretch it), a body cap, and a
JSON reader that refuses absurd nesting. Each call runs on its own short-lived event loop in a
worker thread, so it behaves the same from the CLI, a watch thread or the dashboard."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import Any

from opsdash.core.health.errors import ErrorClass
from opsdash.core.health.probes import make_ssl_context, system_resolver
from opsdash.core.health.probes.base import ProbeFailed
from opsdash.core.health.probes.http import exchange
from opsdash.core.health.probes.wire import Exchange, Request

MAX_JSON_DEPTH = 64


def request(
    method: str,
    url: str,
    *,
    timeout: float,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    ca_file: str | None = None,
    max_body_bytes: int = 1_000_000,
) -> Exchange:
    """One request, finished or abandoned within `timeout` seconds; failures raise ProbeFailed with
    the same error classes and reasons as a health check's."""
    outcome: list[Exchange | BaseException] = []

    async def go() -> Exchange:
        wanted = Request(method, url, timeout, headers or {}, body, max_body_bytes)
        return await exchange(wanted, resolve=system_resolver, ssl_context=make_ssl_context(ca_file))

    def run() -> None:
        try:
            outcome.append(asyncio.run(go()))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, name="opsdash-outbound", daemon=True)
    worker.start()
    worker.join(timeout + 5)  # the loop's own deadline ends it first; this only guards a stuck loop
    if not outcome:
        raise ProbeFailed(ErrorClass.READ_TIMEOUT, f"no complete answer within {timeout:g}s")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result


def loads(data: bytes | str) -> Any:
    """JSON from a server, refusing nesting deeper than MAX_JSON_DEPTH (ValueError, never a
    RecursionError) and keeping huge integers (Python refuses over 4,300 digits by default)."""
    depth = deepest = 0
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    quoted = escaped = False
    for ch in text:  # a cheap scan before the recursive parser sees it
        if quoted:
            escaped, quoted = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            quoted = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1
    return json.loads(text, parse_int=_int)


def _int(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:  # over the int-to-str digit limit
        return float(text)
