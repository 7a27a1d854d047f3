"""Attached to a running `opsdash serve`: its live picture, read from its /events stream instead of
probing again (the dashboard's `--server URL`).

The client is a small HTTP/1.1 reader on asyncio's streams, not aiohttp's client: importing that
takes longer than importing Textual, and an attached dashboard exists to show the service's verdict
sooner than probing would. It sends one GET, reads the (chunked) body as Server-Sent Events, and
hands each event, decoded (ops/live.py), to `on_event`. When the connection ends, fails or falls
silent for `read_timeout` (the service sends a heartbeat every 10 s), `on_event` hears `Detached`
at once and the client connects again after a backoff; a refusal (a missing or wrong token) is not
retried: it says so and stops.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from opsdash.core.errors import ConfigError

if TYPE_CHECKING:
    from opsdash.core.findings import Report
    from opsdash.core.health.state import SustainedState
    from opsdash.ops.live import TargetPicture
    from opsdash.storage.rows import AlertRow, SessionRow

SERVER_ENV = "OPSDASH_SERVER"
TOKEN_ENV = "OPSDASH_SERVE_TOKEN"  # noqa: S105 (the variable's name, not a token)
BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # seconds before each new attempt; the last repeats
READ_TIMEOUT = 25.0  # seconds of silence (no event, no heartbeat) before the connection is given up
CONNECT_TIMEOUT = 10.0
MAX_HEAD = 64 * 1024
MAX_EVENT = 64 * 1024 * 1024  # one snapshot of thousands of checks is a few MB; more is not serve


@dataclass(frozen=True)
class Server:
    """Where the service is: `url` as given (its query removed), and the target to show."""

    url: str
    host: str
    port: int
    tls: bool
    path: str  # of /events, under any prefix a reverse proxy adds
    target: str | None = None

    @classmethod
    def parse(cls, url: str) -> Server:
        """A refused URL is named masked: the one pasted by mistake may be the team database's."""
        from opsdash.core.secrets import mask_url, redactor, url_secrets

        for credential in url_secrets(url):
            redactor.register(credential)
        shown = mask_url(url)
        try:
            parts = urlsplit(url.strip())
        except ValueError as exc:
            raise ConfigError(f"--server {shown!r}: not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"--server {shown!r}: give the service's URL, e.g. http://127.0.0.1:9477")
        if parts.username or parts.password:
            raise ConfigError(f"--server: put no credentials in the URL; the token goes in {TOKEN_ENV}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ConfigError(f"--server {shown!r}: the port is not a number from 1 to 65535") from None
        wanted = parse_qs(parts.query).get("target")
        target = wanted[0] if wanted else None
        base = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        return cls(
            base, parts.hostname, port, parts.scheme == "https", parts.path.rstrip("/") + "/events", target
        )

    def for_profile(self, config: Path) -> Server:
        """`--config PROFILE` with `--server`: the profile's target on the service, as
        `?target=NAME` would pick it (the service may watch several). Only the target's name is
        read: what is shown (checks, validation, alerts) is the service's, never probed here. A
        `?target=` naming another target is refused, as is a profile that does not load."""
        from opsdash.ops.config import load_config

        name = load_config(config).profile.target.name
        if self.target is not None and self.target != name:
            raise ConfigError(
                f"--server asks for target {self.target!r} (?target=) but --config {config} is target "
                f"{name!r}; drop one of them"
            )
        return replace(self, target=name)


# ------------------------------------------------------------------------------------ events


@dataclass(frozen=True)
class ServicePicture:
    """The whole picture, as the service last sent it in one piece."""

    url: str
    at: float
    targets: list[TargetPicture]
    sessions: list[SessionRow]
    started_at: float | None = None


@dataclass(frozen=True)
class Attached:
    picture: ServicePicture


@dataclass(frozen=True)
class CheckChanged:
    target: str
    state: SustainedState
    at: float


@dataclass(frozen=True)
class Validated:
    target: str
    report: Report | None
    problem: str | None
    at: float


@dataclass(frozen=True)
class AlertsChanged:
    target: str
    alerts: list[AlertRow]
    fired: list[str]
    resolved: list[str]
    at: float


@dataclass(frozen=True)
class SessionsChanged:
    sessions: list[SessionRow]
    at: float


@dataclass(frozen=True)
class Detached:
    """The connection is gone (or never came): `reason`; `retry_in` seconds until the next attempt,
    None when it is not tried again (the service refused this client)."""

    reason: str
    retry_in: float | None = None


Event = Attached | CheckChanged | Validated | AlertsChanged | SessionsChanged | Detached


class Refused(Exception):
    """The service answered, and said no (a token, or no /events there)."""


def decode(url: str, name: str, data: dict[str, Any]) -> Event | None:
    """One SSE event, as what it means; None for one this client does not know (a newer serve)."""
    from opsdash.ops import live

    at = float(data.get("at") or time.time())
    if name == "snapshot":
        targets = [live.TargetPicture.read(t) for t in data.get("targets") or []]
        service = data.get("service") or {}
        return Attached(
            ServicePicture(
                url, at, targets, live.sessions_in(data.get("sessions") or []), service.get("started_at")
            )
        )
    if name == "check":
        return CheckChanged(str(data["target"]), live.state_in(data["state"]), at)
    if name == "validation":
        return Validated(str(data["target"]), live.report_in(data.get("report")), data.get("problem"), at)
    if name == "alerts":
        alerts = [live.alert_in(a) for a in data.get("alerts") or []]
        return AlertsChanged(
            str(data["target"]), alerts, list(data.get("fired") or []), list(data.get("resolved") or []), at
        )
    if name == "sessions":
        return SessionsChanged(live.sessions_in(data.get("sessions") or []), at)
    return None


# ------------------------------------------------------------------------------------ client


@dataclass
class Attachment:
    """Follow the service at `server` until cancelled, telling `on_event` everything."""

    server: Server
    token: str | None
    on_event: Callable[[Event], object]
    backoff: Sequence[float] = BACKOFF
    read_timeout: float = READ_TIMEOUT
    attempts: int = 0  # connections tried since the last one that delivered a snapshot
    _stopped: bool = field(default=False, init=False)

    async def run(self) -> None:
        while True:
            try:
                reason = await self._follow()
            except Refused as exc:
                self.on_event(Detached(str(exc), None))
                return
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                ValueError,
            ) as exc:
                reason = _why(exc)  # a broken connection: Detached, then again after the backoff
            delay = self.backoff[min(self.attempts, len(self.backoff) - 1)]
            self.attempts += 1
            self.on_event(Detached(reason, delay))
            await asyncio.sleep(delay)

    async def _follow(self) -> str:
        """One connection: the reason it ended (the stream's end, or what went wrong)."""
        server = self.server
        context = ssl.create_default_context() if server.tls else None
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port, ssl=context, limit=MAX_HEAD),
            CONNECT_TIMEOUT,
        )
        try:
            host = f"[{server.host}]" if ":" in server.host else server.host
            head = [
                f"GET {server.path} HTTP/1.1",
                f"Host: {host}:{server.port}",
                "Accept: text/event-stream",
                "Cache-Control: no-store",
                "User-Agent: opsdash-dashboard",
            ]
            if self.token:
                head.append(f"Authorization: Bearer {self.token}")
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
            await writer.drain()
            status, headers = await self._head(reader)
            if status != 200:
                body = await self._body_text(reader, headers)
                message = f"HTTP {status}: {body}".strip()
                if status in (401, 403, 404):
                    raise Refused(message)
                return message
            return await self._events(reader, headers)
        finally:
            writer.close()

    async def _head(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
        raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT)
        lines = raw.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise ValueError(f"not an HTTP answer: {lines[0][:60]!r}")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        return int(parts[1]), headers

    async def _body_text(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> str:
        from opsdash.core.text import visible

        length = int(headers.get("content-length", "0") or 0)
        data = (
            await asyncio.wait_for(reader.readexactly(min(length, 4096)), CONNECT_TIMEOUT) if length else b""
        )
        return visible(data.decode("utf-8", "replace").strip())[:300]

    async def _events(self, reader: asyncio.StreamReader, headers: dict[str, str]) -> str:
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        buffer = b""
        while True:
            data = await asyncio.wait_for(self._read(reader, chunked), self.read_timeout)
            if not data:
                return "the service closed the connection"
            buffer += data
            if len(buffer) > MAX_EVENT:
                raise ValueError("an event larger than any the service sends")
            while b"\n\n" in buffer:
                frame, buffer = buffer.split(b"\n\n", 1)
                self._dispatch(frame)

    @staticmethod
    async def _read(reader: asyncio.StreamReader, chunked: bool) -> bytes:
        if not chunked:
            return await reader.read(1 << 16)
        size_line = await reader.readline()
        if not size_line:
            return b""
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            return b""
        data = await reader.readexactly(size)
        await reader.readexactly(2)  # the chunk's CRLF
        return data

    def _dispatch(self, frame: bytes) -> None:
        name, data = "message", []
        for line in frame.decode("utf-8", "replace").split("\n"):
            if line.startswith(":"):
                continue  # a heartbeat
            field_name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field_name == "event":
                name = value
            elif field_name == "data":
                data.append(value)
        if not data:
            return
        try:
            event = decode(self.server.url, name, json.loads("\n".join(data)))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # a serve of another shape:
            # the picture can no longer be trusted, so the connection is dropped (Detached, never
            # the last verdict seen as current) and a fresh snapshot asked for after the backoff
            raise ValueError(f"an {name!r} event this dashboard cannot read ({type(exc).__name__})") from None
        if event is None:
            return
        if isinstance(event, Attached):
            self.attempts = 0  # a working connection: the next failure starts the backoff afresh
        self.on_event(event)


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer and no heartbeat from the service"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is `opsdash serve` running there?)"
    if isinstance(exc, asyncio.IncompleteReadError):
        return "the connection broke off mid-event"
    if isinstance(exc, asyncio.LimitOverrunError):
        return "an answer head larger than any the service sends"
    if isinstance(exc, ssl.SSLError):
        return f"TLS: {exc.reason or exc}"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return str(exc)
