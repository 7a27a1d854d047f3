"""`GET /events`: the service's live picture pushed to attached dashboards as Server-Sent Events.

A client gets a full snapshot first, then each change as it happens (ops/live.py says what each
event holds), and a heartbeat comment every `heartbeat` seconds, so both ends notice a dead
connection. The probes never wait for a client: a change is put on each client's own bounded
queue without waiting; a client whose queue is full (too slow, or gone quiet) loses what is queued
and gets a fresh snapshot instead, once it reads again. A write that takes longer than
`write_timeout` ends the stream, and the socket's TCP_USER_TIMEOUT lets the kernel drop a peer that
stopped acknowledging, so a silent dead client holds its connection for seconds, not for ever.

Streams are counted apart from scrapes: at most `max_streams` at once (half the connection cap),
so dashboards can never take every connection Prometheus needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from aiohttp import web

from opsdash.ops.live import encode

QUEUE_SIZE = 256  # changes waiting per client before it is sent a fresh snapshot instead
HEARTBEAT = 10.0  # seconds between heartbeat comments
WRITE_TIMEOUT = 10.0  # seconds one write may wait for a client before the stream is dropped
TOKEN_ENV = "OPSDASH_SERVE_TOKEN"  # noqa: S105 (the variable's name, not a token)
MIN_TOKEN_LENGTH = 16
_RESYNC = object()  # on a client's queue: what was queued is gone, send a snapshot
_END = object()  # the service is stopping


class Client:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_SIZE)
        self.resyncs = 0

    def offer(self, frame: bytes | object) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            while not self.queue.empty():  # what it missed is in the snapshot it gets next
                self.queue.get_nowait()
            self.resyncs += 1
            self.queue.put_nowait(_RESYNC)


class Broadcast:
    """The clients attached now, and the one way a change reaches them."""

    def __init__(
        self,
        snapshot: Callable[[], dict[str, Any]],
        *,
        token: str | None,
        open_without_token: bool,
        max_streams: int,
        heartbeat: float = HEARTBEAT,
        write_timeout: float = WRITE_TIMEOUT,
    ) -> None:
        """`snapshot`: the whole picture now (a dict, encoded here). `open_without_token`: a
        loopback listener without a token lets any local client attach; beyond loopback, /events
        needs one."""
        self.snapshot = snapshot
        self.token = token
        self.open_without_token = open_without_token
        self.max_streams = max_streams
        self.heartbeat, self.write_timeout = heartbeat, write_timeout
        self.clients: set[Client] = set()
        self.sent = 0  # frames handed to client queues (for tests and the curious)

    @property
    def attached(self) -> bool:
        return bool(self.clients)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Never waits: called from the probes' own callbacks on the event loop."""
        if not self.clients:
            return
        frame = encode(event, data)
        for client in self.clients:
            client.offer(frame)
            self.sent += 1

    def refresh(self) -> None:
        """What the clients hold changed shape (a reload): each gets a fresh snapshot."""
        for client in self.clients:
            client.offer(_RESYNC)

    def close(self) -> None:
        for client in self.clients:
            client.offer(_END)

    # -------------------------------------------------------------------------------- HTTP

    def refusal(self, request: web.BaseRequest) -> web.Response | None:
        """Why this request may not attach (401/403/503 with a line an operator can act on), or None."""
        if self.token is None:
            if self.open_without_token:
                return None
            return _text(
                403,
                "this service listens beyond loopback and has no token, so /events is closed: start "
                f"`opsdash serve` with {TOKEN_ENV} set (or --token-env NAME)\n",
            )
        scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not sent:
            return _text(
                401,
                "this service needs a token for /events: send 'Authorization: Bearer <token>' "
                f"(opsdash --server reads it from {TOKEN_ENV})\n",
                www_authenticate='Bearer realm="opsdash"',
            )
        if not hmac.compare_digest(sent.strip().encode(), self.token.encode()):
            return _text(401, "the token sent for /events is not this service's\n", www_authenticate="Bearer")
        if len(self.clients) >= self.max_streams:
            return _text(503, f"{len(self.clients)} dashboards attached already; try again later\n")
        return None

    async def stream(self, request: web.BaseRequest) -> web.StreamResponse:
        """One client's stream, until it leaves, falls silent on a write, or the service stops."""
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx in front: pass each event on at once
            }
        )
        client = Client()
        self.clients.add(client)
        try:
            _drop_dead_peers(request, self.heartbeat + self.write_timeout)
            await response.prepare(request)
            await self._write(response, encode("snapshot", self.snapshot()))
            while True:
                try:
                    frame = await asyncio.wait_for(client.queue.get(), self.heartbeat)
                except TimeoutError:
                    frame = b": heartbeat\n\n"
                if frame is _END:
                    break
                if frame is _RESYNC:
                    frame = encode("snapshot", self.snapshot())
                assert isinstance(frame, bytes)
                await self._write(response, frame)
        except ConnectionError:
            return response  # gone
        except TimeoutError:  # too slow to take one write: its connection ends now, unwritten
            if request.transport is not None:
                request.transport.abort()
            return response
        finally:
            self.clients.discard(client)
        with contextlib.suppress(ConnectionError, RuntimeError, TimeoutError):
            await asyncio.wait_for(response.write_eof(), self.write_timeout)
        return response

    async def _write(self, response: web.StreamResponse, frame: bytes) -> None:
        await asyncio.wait_for(response.write(frame), self.write_timeout)


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _drop_dead_peers(request: web.BaseRequest, seconds: float) -> None:
    """Unacknowledged data for `seconds` ends the connection (Linux's TCP_USER_TIMEOUT), and
    keep-alive probes notice a peer that vanished while nothing was being sent."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(seconds * 1000))


def _text(status: int, body: str, *, www_authenticate: str | None = None) -> web.Response:
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    if www_authenticate:
        headers["WWW-Authenticate"] = www_authenticate
    return web.Response(status=status, body=body.encode(), headers=headers)
