"""HTTP/1.1 on a fresh connection, timed at the socket.

A probe must report what the server did, not what the client cost. So each request opens its own
connection (as blackbox_exporter does: connect and TLS times are real), llhttp (through httptools,
the parser uvicorn uses) reads the response, and asyncio's transport does TCP and TLS. Every phase —
dns, connect, tls, request, first_byte, body — is timed where it happens (the first byte and the
end of the body are stamped in the protocol's callbacks, not when the awaiting coroutine resumes),
and the phases add up to the total. Nothing is timed while the probe waits for a concurrency slot:
that wait is outside this module.

Measured in `benchmarks/health_sweep.py`: a pooled HTTP client inflates latencies under
concurrency and cost a quarter of blackbox_exporter's throughput; this design is faster than
blackbox_exporter on the same loopback target and reports the same latencies (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import ipaddress
import os
import re
import socket
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit

import httptools

from opsdash import __version__
from opsdash.core.health.probes.base import Resolver

USER_AGENT = f"opsdash/{__version__}"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SAFE = "/%:@!$&'()*+,;=-._~?"  # left as they are in a request target; anything else is escaped
_MAX_HEAD = 64 * 1024  # response head (status line and headers) bigger than this is a protocol error


class TooLarge(Exception):
    """The response body exceeded the cap."""


class BadRedirect(Exception):
    """A redirect to something other than an http(s) URL, or more redirects than allowed."""


@dataclass
class Timeline:
    """Consecutive phases of one exchange; entering a phase closes the previous one, so the phases
    add up to the time since the first one began."""

    phases: dict[str, float] = field(default_factory=dict)
    stage: str | None = None
    since: float = 0.0

    def enter(self, stage: str | None, at: float | None = None) -> None:
        now = time.perf_counter() if at is None else at
        if self.stage is not None:
            self.phases[self.stage] = self.phases.get(self.stage, 0.0) + (now - self.since) * 1000
        self.stage, self.since = stage, now

    def close(self) -> dict[str, float]:
        self.enter(None)
        return self.phases

    @property
    def total_ms(self) -> float:
        return sum(self.phases.values())


class BadResponse(Exception):
    """What the server sent is not HTTP/1.x as the parser reads it."""


class BadRequest(Exception):
    """The check's request cannot be sent as it is (a control character in a header, say)."""


class _Response(asyncio.Protocol):
    """Feeds what the server sends to llhttp (via httptools) and resolves `done` at the end of the
    response, stamping the first byte and the end as they arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_body: int, head_only: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: asyncio.Future[None] = loop.create_future()
        # A connection can fail before anyone awaits `done` (a TLS handshake refused): mark the
        # exception seen so asyncio does not log it as lost; the caller reports its own error.
        self.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.head_complete = False
        self.head_bytes = 0
        self.head_only = head_only
        self.body = bytearray()
        self.max_body = max_body
        self.decoder: zlib._Decompress | None = None
        self.first_byte_at: float | None = None
        self.finished_at = 0.0

    # asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = time.perf_counter()
        if self.done.done():
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BadResponse(str(exc) or type(exc).__name__))
        if not self.head_complete:
            self.head_bytes += len(data)
            if self.head_bytes > _MAX_HEAD:
                self._fail(BadResponse(f"response head larger than {_MAX_HEAD // 1024} KiB"))

    def eof_received(self) -> bool:
        self._ended()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended(exc)

    def _ended(self, exc: Exception | None = None) -> None:
        if self.done.done():
            return
        framed = b"content-length" in self.headers or b"chunked" in self.headers.get(
            b"transfer-encoding", b""
        )
        if self.head_complete and not framed and exc is None:
            self._complete()  # a body delimited by the connection closing
        else:
            self._fail(exc or ConnectionResetError("the server closed the connection mid-response"))

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    def _complete(self) -> None:
        if not self.done.done():
            self.finished_at = time.perf_counter()
            self.done.set_result(None)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim response: the real one follows
            self.headers = {}
            return
        self.status, self.head_complete = status, True
        encoding = self.headers.get(b"content-encoding", b"").strip().lower()
        # We ask for identity; a server that compresses anyway still gets its body read, within the cap.
        if encoding in (b"gzip", b"x-gzip"):
            self.decoder = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif encoding == b"deflate":
            self.decoder = zlib.decompressobj()
        if self.head_only:
            self._complete()

    def on_body(self, data: bytes) -> None:
        # Callbacks must not raise: httptools would wrap the error as a parser error.
        if self.done.done():
            return
        if self.decoder is not None:
            try:
                data = self.decoder.decompress(data, self.max_body + 1 - len(self.body))
            except zlib.error as exc:
                self._fail(BadResponse(f"the compressed body does not decompress: {exc}"))
                return
        self.body += data
        if len(self.body) > self.max_body:
            self._fail(TooLarge())

    def on_message_complete(self) -> None:
        if self.head_complete:
            self._complete()


class _Tls(asyncio.Protocol):
    """TLS between the socket and `_Response`, on memory BIOs. The handshake's cryptography (a
    millisecond of CPU per handshake in OpenSSL 3.0, with the GIL released) runs on a worker thread,
    so handshakes use every core instead of queueing on the event loop (all but the ClientHello,
    ~40 µs, which costs less than the trip to a thread). Bytes that arrive meanwhile
    wait on the loop thread; only the worker touches the SSL object until the handshake is done."""

    def __init__(self, inner: _Response, context: ssl.SSLContext, server_hostname: str) -> None:
        self.inner = inner
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.sslobj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.handshaking = True
        self.pending: list[bytes] = []
        self.ended: BaseException | None = None
        self.wakeup: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        if self.wakeup is not None and not self.wakeup.done():
            self.wakeup.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self.handshaking:
            self.pending.append(data)
            self._wake()
            return
        self.incoming.write(data)
        self._drain()

    def eof_received(self) -> bool:
        if self.handshaking:
            self.ended = ConnectionResetError("the server closed the connection during the TLS handshake")
            self._wake()
        else:
            self.incoming.write_eof()
            self._drain()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handshaking:
            self.ended = exc or ConnectionResetError("the connection closed during the TLS handshake")
            self._wake()
        self.inner.connection_lost(exc)

    def _drain(self) -> None:
        while True:
            try:
                chunk = self.sslobj.read(65536)
            except ssl.SSLWantReadError:
                return
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):  # close_notify, or a close without one
                self.inner.eof_received()
                return
            except ssl.SSLError as exc:
                self.inner._fail(exc)
                return
            if not chunk:
                self.inner.eof_received()
                return
            self.inner.data_received(chunk)

    async def handshake(self, transport: asyncio.Transport) -> None:
        loop = asyncio.get_running_loop()
        first = True
        while True:
            for chunk in self.pending:
                self.incoming.write(chunk)
            self.pending.clear()
            try:
                if first:  # the ClientHello: little cryptography, not worth a trip to a thread
                    self.sslobj.do_handshake()
                else:
                    await loop.run_in_executor(_handshakes(), self.sslobj.do_handshake)
                done = True
            except ssl.SSLWantReadError:
                done = False
            first = False
            flight = self.outgoing.read()
            if flight:
                transport.write(flight)
            if done:
                break
            while not self.pending:
                if self.ended is not None:
                    raise self.ended
                self.wakeup = loop.create_future()
                await self.wakeup
        self.handshaking = False
        for chunk in self.pending:
            self.incoming.write(chunk)
        self.pending.clear()
        self._drain()

    def write(self, transport: asyncio.Transport, data: bytes) -> None:
        self.sslobj.write(data)
        transport.write(self.outgoing.read())


@functools.cache
def _handshakes() -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(
        max_workers=os.cpu_count() or 2, thread_name_prefix="opsdash-tls"
    )


@dataclass(frozen=True)
class Request:
    """One request as a probe or an outbound call asks for it: what to send, and how far to go for
    the answer. Where it goes through (the resolver, the TLS trust) is the caller's to say."""

    method: str
    url: str
    timeout: float  # seconds for the whole exchange, redirects included
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    max_body_bytes: int = 1_000_000
    follow_redirects: bool = False
    max_redirects: int = 5

    @functools.cached_property
    def payload(self) -> bytes:
        """The bytes of the first request, built once: a check's Request is kept across its polls."""
        return Route.of(self.url).payload(self.method, self.headers, self.body)


@dataclass
class Exchange:
    status: int
    body: bytes
    response_time_ms: float  # the sum of the phases
    phases: dict[str, float]
    facts: dict[str, str]
    location: str | None
    ssl_object: ssl.SSLObject | None = None
    # the response's headers as received (lower-case names, raw bytes): the live-site trace reads
    # Content-Type, Content-Encoding and SourceMap; nothing is decoded for a probe that does not ask
    headers: Mapping[bytes, bytes] = field(default_factory=dict)


_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _request(
    method: str, host: str, port: int, default_port: int, target: str, headers: Mapping[str, str], body: bytes
) -> bytes:
    wanted = {k.lower(): (k, v) for k, v in headers.items()}
    base = {
        "host": ("Host", host if port == default_port else f"{host}:{port}"),
        "user-agent": ("User-Agent", USER_AGENT),
        "accept": ("Accept", "*/*"),
        "accept-encoding": ("Accept-Encoding", "identity"),
    }
    lines = [wanted.pop(key, value) for key, value in base.items()]
    lines += [(k, v) for key, (k, v) in wanted.items() if key not in ("connection", "content-length")]
    lines.append(("Connection", "close"))
    if body or method in ("POST", "PUT"):
        lines.append(("Content-Length", str(len(body))))
    for name, value in lines:
        if not _TOKEN.match(name) or any(c in value for c in "\r\n\0"):
            raise BadRequest(f"header {name!r} has a character HTTP does not allow")
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in lines) + "\r\n"
    try:
        return head.encode("latin-1") + body
    except UnicodeEncodeError:
        raise BadRequest("a header value has characters outside Latin-1") from None


def is_ip(host: str) -> bool:
    """Whether `ipaddress.ip_address(host)` accepts `host`, without its cost where the answer is
    plain: a name (neither ':' nor only digits and dots) is not, a canonical dotted quad is."""
    if ":" not in host:
        if not host.replace(".", "").isdigit() or not host.isascii():
            return False
        try:
            if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, host)) == host:
                return True
        except OSError:
            pass
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Route:
    """What a URL says about where a request goes, worked out once per URL (parsing it and asking
    whether its host is an address were ~6% of a sweep's CPU when done on every probe)."""

    secure: bool
    host: str
    port: int
    default_port: int
    address: bool  # the host is an IP address: no DNS
    target: str  # the request target: the path and query, escaped

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def of(url: str) -> Route:
        parts = urlsplit(url)
        secure = parts.scheme == "https"
        host = parts.hostname or ""
        default_port = 443 if secure else 80
        target = quote(parts.path or "/", safe=_SAFE) + (
            f"?{quote(parts.query, safe=_SAFE)}" if parts.query else ""
        )
        return Route(secure, host, parts.port or default_port, default_port, is_ip(host), target)

    def payload(self, method: str, headers: Mapping[str, str], body: bytes) -> bytes:
        return _request(method, self.host, self.port, self.default_port, self.target, headers, body)


async def _one(
    method: str,
    url: str,
    *,
    resolve: Resolver,
    ssl_context: ssl.SSLContext,
    headers: Mapping[str, str],
    body: bytes,
    max_body: int,
    timeline: Timeline,
    facts: dict[str, str],
    deadline: float,
    payload: bytes | None = None,
) -> tuple[_Response, ssl.SSLObject | None]:
    loop = asyncio.get_running_loop()
    route = Route.of(url)
    host, port = route.host, route.port
    if route.address:
        addresses = [host]
    else:
        timeline.enter("dns")
        addresses = await resolve(host, port)
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, f"{host} has no addresses")
    payload = payload or route.payload(method, headers, body)
    protocol = _Response(loop, max_body, head_only=method == "HEAD")
    tls = _Tls(protocol, ssl_context, host) if route.secure else None
    timeline.enter("connect")
    transport: asyncio.Transport | None = None
    error: OSError | None = None
    for address in addresses:
        try:
            transport, _ = await loop.create_connection(lambda: tls or protocol, address, port)
        except OSError as exc:
            error = exc
            continue
        facts["ip"] = address
        break
    if transport is None:
        assert error is not None
        raise error
    try:
        timeline.enter("tls" if tls else "request")
        if tls:
            await tls.handshake(transport)
            timeline.enter("request")
            tls.write(transport, payload)
        else:
            transport.write(payload)
        timeline.enter("first_byte")
        await protocol.done
        assert protocol.first_byte_at is not None
        timeline.enter("body", at=max(protocol.first_byte_at, timeline.since))
        timeline.enter(None, at=protocol.finished_at)
        return protocol, tls.sslobj if tls else None
    finally:
        transport.close()


async def fetch(
    request: Request,
    *,
    resolve: Resolver,
    ssl_context: ssl.SSLContext,
    timeline: Timeline | None = None,
    facts: dict[str, str] | None = None,
) -> Exchange:
    """One request (and its redirects when asked), all within `request.timeout` seconds.

    Raises OSError, ssl.SSLError, BadRequest, BadResponse, TooLarge, BadRedirect or TimeoutError; the caller's
    `timeline` and `facts` then show how far it got (the timeline's stage is where it stopped)."""
    timeline = timeline if timeline is not None else Timeline()
    facts = facts if facts is not None else {}
    method, url, body = request.method, request.url, request.body  # what a redirect changes
    loop = asyncio.get_running_loop()
    deadline = loop.time() + request.timeout
    async with asyncio.timeout_at(deadline):
        for hop in range(request.max_redirects + 1):
            response, sslobj = await _one(
                method,
                url,
                resolve=resolve,
                ssl_context=ssl_context,
                headers=request.headers,
                body=body,
                max_body=request.max_body_bytes,
                timeline=timeline,
                facts=facts,
                deadline=deadline,
                payload=request.payload if hop == 0 else None,
            )
            status = response.status
            location = response.headers.get(b"location", b"").decode("latin-1") or None
            if not (request.follow_redirects and status in REDIRECTS and location):
                break
            url = urljoin(url, location)
            if urlsplit(url).scheme not in ("http", "https"):
                raise BadRedirect(f"redirect to {url!r}, which is not an http(s) URL")
            if hop == request.max_redirects:
                raise BadRedirect(f"more than {request.max_redirects} redirects (last to {url})")
            if status == 303 or (status in (301, 302) and method == "POST"):
                method, body = "GET", b""
    facts["status"] = str(status)
    facts["http_version"] = f"HTTP/{response.parser.get_http_version()}"
    facts["redirects"] = str(hop)
    facts["body_bytes"] = str(len(response.body))  # as read, after any content-encoding
    for header in (b"content-length", b"retry-after"):
        value = response.headers.get(header, b"").decode("latin-1").strip()
        if value and len(value) <= 64:
            facts[header.decode().replace("-", "_")] = value
    return Exchange(
        status=status,
        body=bytes(response.body),
        response_time_ms=timeline.total_ms,
        phases=timeline.phases,
        facts=facts,
        location=location,
        ssl_object=sslobj,
        headers=response.headers,
    )
