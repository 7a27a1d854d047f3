"""`opsdash serve`'s HTTP endpoint: aiohttp's server, behind an accept loop that keeps scrapers from
taking what the probes need.

A flood of scrapers may fail scrapes; it must never fail a probe, its record in history or the
audit log, which need descriptors (sockets, SQLite's files, the log) on the same process. So:

- at most `max_connections` at once, by default a quarter of the open-file limit read at start
  (at most 1,024): the other descriptors stay with the probes, SQLite and the audit log;
- at the cap, a client waiting in the backlog takes the slot of the connection idle longest (no
  request being answered: a keep-alive connection between scrapes, or a client still dribbling
  its request head), as nginx reuses idle keep-alive connections; when every connection is busy
  the listening socket is not read until one ends, and the kernel's backlog holds the rest;
- a connection is closed when no complete request head arrives within `idle_timeout` of its
  opening or of its last response: aiohttp's keep-alive timer runs until a head is complete, so
  it is the idle and the header-read (slowloris) timeout at once;
- an accept() short of descriptors backs off and is reported once, where asyncio's own server
  logs a line for every retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import resource
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

MAX_CONNECTIONS = 1024
BACKLOG = socket.SOMAXCONN  # waiting in the kernel costs the process no descriptor
ACCEPT_BATCH = 32  # accepts per wake-up, so a connect flood yields to the probes between batches
ACCEPT_RETRY = 0.5  # seconds before accept() is tried again when the process is out of descriptors
SHUTDOWN_TIMEOUT = 2.0  # seconds a response being written gets on stop
SHORT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})

# A route answers with a response for the endpoint to write, or with a coroutine that writes its
# own (a /events stream: the connection is busy while it runs, so never taken for an idle one,
# and aiohttp's keep-alive timer does not run during a request, so the idle timeout spares it)
Route = Callable[[web.BaseRequest], web.StreamResponse | Awaitable[web.StreamResponse]]


def connection_cap() -> int:
    """A quarter of the soft open-file limit (between 4 and MAX_CONNECTIONS)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(4, min(MAX_CONNECTIONS, soft // 4))


class _Connections(web.Server):
    """aiohttp's connection manager, keeping the open connections in the order they opened."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        freed: asyncio.Event,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        self.open: dict[web.RequestHandler, None] = {}
        self.freed = freed

    def connection_made(self, handler: web.RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open[handler] = None

    def connection_lost(self, handler: web.RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.open.pop(handler, None)
        self.freed.set()


class Endpoint:
    """Serves `route` (a plain function of the request) on HOST:PORT until `close()`."""

    def __init__(
        self, route: Route, *, max_connections: int | None = None, idle_timeout: float = 15.0
    ) -> None:
        self.route = route
        self.max_connections = max_connections or connection_cap()
        self.idle_timeout = idle_timeout
        self.port = 0
        self._busy: set[web.RequestHandler] = set()
        self._listener: socket.socket | None = None
        self._server: _Connections | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._warned = False

    @property
    def connections(self) -> int:
        return len(self._server.open) if self._server is not None else 0

    async def start(self, host: str, port: int) -> int:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=BACKLOG)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._server = _Connections(
            self._answer, asyncio.Event(), keepalive_timeout=self.idle_timeout, access_log=None
        )
        self._accepting = asyncio.create_task(self._accept(), name="serve:accept")
        return self.port

    async def close(self) -> None:
        """Stop accepting, let the responses being written finish (briefly), close every connection."""
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
        if self._listener is not None:
            self._listener.close()
        if self._server is not None:
            await self._server.shutdown(SHUTDOWN_TIMEOUT)

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        """The response is written here, not after return, so a connection being answered is never
        taken for an idle one."""
        self._busy.add(request.protocol)
        try:
            response = self.route(request)
            if not isinstance(response, web.StreamResponse):
                return await response
            with contextlib.suppress(ConnectionError):  # the client left: nothing to answer
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            self._busy.discard(request.protocol)

    async def _accept(self) -> None:
        assert self._listener is not None and self._server is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._readable()
            for _ in range(ACCEPT_BATCH):
                if len(self._server.open) >= self.max_connections and not self._evict_idle():
                    self._server.freed.clear()
                    await self._server.freed.wait()
                    break
                try:
                    sock, _peer = self._listener.accept()
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    break
                except OSError as exc:
                    if exc.errno not in SHORT_OF_RESOURCES:
                        raise
                    self._short_of(exc)
                    await asyncio.sleep(ACCEPT_RETRY)
                    break
                sock.setblocking(False)
                try:
                    await loop.connect_accepted_socket(self._server, sock)
                except OSError:
                    sock.close()

    async def _readable(self) -> None:
        """Until a client waits in the listening socket's backlog."""
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self._listener.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)

    def _evict_idle(self) -> bool:
        """Close the connection idle longest, for the client waiting; False if all are busy."""
        assert self._server is not None
        for handler in self._server.open:
            if handler not in self._busy:
                del self._server.open[handler]
                handler.force_close()
                return True
        return False

    def _short_of(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            print(
                f"opsdash serve: warning: not accepting connections for now: {exc.strerror} "
                f"({self.connections} open); the probes keep their descriptors",
                file=sys.stderr,
                flush=True,
            )
