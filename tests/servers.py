"""Servers the tests start on 127.0.0.1: well-behaved (HTTP and HTTPS via trustme) and hostile."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import trustme

from opsdash.demo.httpserver import HttpServer, Request, Response

NOW = dt.datetime.now(dt.UTC)


class Certs:
    """A test CA and server contexts for every certificate situation the checks must tell apart."""

    def __init__(self) -> None:
        self.ca = trustme.CA()
        self.other_ca = trustme.CA()  # not trusted by the client: stands in for self-signed/unknown issuers
        ids = ("127.0.0.1", "localhost")
        self.valid = self._ctx(self.ca.issue_cert(*ids, not_after=NOW + dt.timedelta(days=200)))
        self.expiring_20d = self._ctx(self.ca.issue_cert(*ids, not_after=NOW + dt.timedelta(days=20)))
        self.expiring_3d = self._ctx(self.ca.issue_cert(*ids, not_after=NOW + dt.timedelta(days=3)))
        self.expired = self._ctx(
            self.ca.issue_cert(
                *ids, not_before=NOW - dt.timedelta(days=60), not_after=NOW - dt.timedelta(days=1)
            )
        )
        self.wrong_host = self._ctx(self.ca.issue_cert("shop.example.test"))
        self.untrusted = self._ctx(self.other_ca.issue_cert(*ids))
        self.tls12_only = self._ctx(self.ca.issue_cert(*ids))
        self.tls12_only.maximum_version = ssl.TLSVersion.TLSv1_2

    @staticmethod
    def _ctx(cert: trustme.LeafCert) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        return ctx

    def ca_file(self, directory: str) -> str:
        path = f"{directory}/ca.pem"
        self.ca.cert_pem.write_to_path(path)
        return path


@contextlib.asynccontextmanager
async def http_server(
    handler: Callable[[Request], Awaitable[Response]], ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[HttpServer]:
    server = HttpServer(handler, ssl_context)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def raw_server(
    on_connect: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A TCP server whose behaviour is the given coroutine: never answer, drip-feed, reset ..."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await on_connect(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def never_answers(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    await asyncio.sleep(3600)


async def drip_feed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while True:
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(0.05)


async def huge_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    size = 50_000_000
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"y" * 65536
    for _ in range(size // len(chunk)):
        writer.write(chunk)
        await writer.drain()


async def reset_after_request(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
    writer.transport.abort()


async def redirect_loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(65536):
        writer.write(b"HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()


async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.1)


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
