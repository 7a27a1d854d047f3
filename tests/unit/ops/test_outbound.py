"""Outbound calls from the ops layer against hostile servers: the deploy version URL and alert
channels finish within their own deadline, read at most their cap, and never crash on deep JSON.
Time bounds below are hang guards (the failures they catch took minutes), not timing assertions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from opsdash.core.profile import AlertChannel, Profile
from opsdash.ops.alerts import deliver
from opsdash.ops.versions import read_versions
from tests.servers import Behaviour, ThreadedRawServer

HANG_GUARD = 20.0


@pytest.fixture
def hostile() -> Iterator[Callable[[Behaviour], ThreadedRawServer]]:
    servers: list[ThreadedRawServer] = []

    def start(behaviour: Behaviour) -> ThreadedRawServer:
        servers.append(ThreadedRawServer(behaviour))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


async def drip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + b"x" * 1000:
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(0.2)


async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2000000000\r\n\r\n")
    chunk = b'{"previous": "' + b"9" * 65000
    for _ in range(2_000_000_000 // len(chunk)):
        writer.write(chunk)
        await writer.drain()


async def deep(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    body = b"[" * 100_000 + b"]" * 100_000
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    await writer.drain()


def profile_with_version_url(url: str) -> Profile:
    return Profile.model_validate(
        {"target": {"name": "T", "base_url": "https://app.example.com"}, "deploy": {"version_url": url}}
    )


@pytest.mark.parametrize(
    ("behaviour", "why"),
    [(drip, "within 2s"), (huge, "body larger than 1,000,000 bytes"), (deep, "nested deeper than 64")],
)
def test_version_url_from_a_hostile_server_is_unknown_not_a_hang_or_a_crash(
    hostile: Callable[[Behaviour], ThreadedRawServer], behaviour: Behaviour, why: str
) -> None:
    server = hostile(behaviour)
    t0 = time.monotonic()
    versions = read_versions(profile_with_version_url(server.url), timeout=2)
    assert time.monotonic() - t0 < HANG_GUARD
    assert versions is not None and versions.previous is None
    assert versions.error is not None and why in versions.error, versions.error


@pytest.mark.parametrize("behaviour", [drip, None])
def test_alert_channel_that_drips_or_never_answers_fails_within_its_timeout(
    hostile: Callable[[Behaviour], ThreadedRawServer], behaviour: Behaviour | None
) -> None:
    async def silent(reader: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        await asyncio.sleep(3600)

    server = hostile(behaviour or silent)
    channel = AlertChannel(name="ops", kind="webhook", url=server.url, timeout=1, retries=2)
    t0 = time.monotonic()
    ok, attempts, error = deliver(channel, {"status": "firing"})
    assert time.monotonic() - t0 < HANG_GUARD
    assert not ok and attempts == 1  # the first try used the whole deadline: no time left to retry
    assert "read-timeout" in error and "within 1s" in error, error
