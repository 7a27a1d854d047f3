"""Servers the tests start on 127.0.0.1: well-behaved (HTTP and HTTPS via trustme) and hostile."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import json
import re
import socket
import ssl
import struct
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

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


def json_handler(body: dict[str, Any], status: int = 200) -> Callable[[Request], Awaitable[Response]]:
    """A handler for `http_server` that answers every request with `body` as JSON."""

    async def handler(_req: Request) -> Response:
        return Response.json(json.dumps(body), status)

    return handler


Behaviour = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


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


class _ServerThread:
    """A server on 127.0.0.1 on an event loop in a thread of its own, for tests that drive opsdash
    synchronously (the CLI, the ops layer, a subprocess): `_open` starts it and says how to stop it."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the server thread never started listening"

    async def _open(self) -> tuple[int, Callable[[], Awaitable[None]]]:
        """Start listening; the port, and a coroutine function that stops."""
        raise NotImplementedError

    async def _main(self) -> None:
        self.port, shut = await self._open()
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        self.ready.set()
        await self.stop.wait()
        await shut()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(10)


class ThreadedRawServer(_ServerThread):
    """A TCP server in a thread of its own, behaving as `behaviour` says: a hostile peer."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        super().__init__()

    async def _open(self) -> tuple[int, Callable[[], Awaitable[None]]]:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self.behaviour(reader, writer)
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)

        async def shut() -> None:
            server.close()

        return server.sockets[0].getsockname()[1], shut

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"


class ThreadedHttpServer(_ServerThread):
    """`http_server` in a thread of its own: every request answered by `handler`."""

    def __init__(
        self, handler: Callable[[Request], Awaitable[Response]], ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        super().__init__()

    async def _open(self) -> tuple[int, Callable[[], Awaitable[None]]]:
        server = HttpServer(self.handler, self.ssl_context)
        return await server.start(), server.close

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"


# Alertmanager's v2 OpenAPI: postableAlert = labels (required), annotations, startsAt, endsAt, generatorURL
POSTABLE_ALERT_FIELDS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def assert_postable_alert(alert: Any) -> None:
    """`alert` is one alert Alertmanager's POST /api/v2/alerts accepts: only its fields, labels
    present with Prometheus label names, every label and annotation a string, ISO 8601 times."""
    assert isinstance(alert, dict), alert
    assert set(alert) <= POSTABLE_ALERT_FIELDS and "labels" in alert, alert
    assert all(LABEL_NAME.match(k) and isinstance(v, str) for k, v in alert["labels"].items()), alert
    assert all(isinstance(v, str) for v in alert.get("annotations", {}).values()), alert
    for field in ("startsAt", "endsAt"):
        dt.datetime.fromisoformat(alert[field])


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Chain:
    """Root → intermediate → leaf for 127.0.0.1, each dated as the test needs. Built with
    `cryptography` because trustme cannot date an intermediate. `server` presents leaf and
    intermediate; `ca_pem` is the root a client must trust."""

    def __init__(self, *, leaf_days: float, intermediate_days: float) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        def name(cn: str) -> x509.Name:
            return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

        def issue(
            subject: str,
            issuer: str,
            key: ec.EllipticCurvePrivateKey,
            signer: ec.EllipticCurvePrivateKey,
            days: float,
            *,
            ca: bool,
        ) -> x509.Certificate:
            builder = (
                x509.CertificateBuilder()
                .subject_name(name(subject))
                .issuer_name(name(issuer))
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(NOW - dt.timedelta(days=60))
                .not_valid_after(NOW + dt.timedelta(days=days))
                .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            )
            if ca:
                builder = builder.add_extension(
                    x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
                )
            else:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                    critical=False,
                )
            return builder.sign(signer, hashes.SHA256())

        keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(3)]
        root = issue("opsdash test root", "opsdash test root", keys[0], keys[0], 3650, ca=True)
        self.intermediate = issue(
            "opsdash test intermediate", "opsdash test root", keys[1], keys[0], intermediate_days, ca=True
        )
        self.leaf = issue("127.0.0.1", "opsdash test intermediate", keys[2], keys[1], leaf_days, ca=False)
        pem = serialization.Encoding.PEM
        self.ca_pem = root.public_bytes(pem)
        self.chain_pem = self.leaf.public_bytes(pem) + self.intermediate.public_bytes(pem)
        self.key_pem = keys[2].private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def server(self, directory: str) -> ssl.SSLContext:
        chain, key = f"{directory}/chain.pem", f"{directory}/key.pem"
        with open(chain, "wb") as f:
            f.write(self.chain_pem)
        with open(key, "wb") as f:
            f.write(self.key_pem)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(chain, key)
        return ctx

    def ca_file(self, directory: str) -> str:
        path = f"{directory}/root.pem"
        with open(path, "wb") as f:
            f.write(self.ca_pem)
        return path
