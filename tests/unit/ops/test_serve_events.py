"""`opsdash serve`'s /events: a real service process, real local check targets, and the real
client an attached dashboard uses (ops/attach.py), reading what the service pushes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsdash.ops.attach import Attached, Attachment, CheckChanged, Detached, Event, Server
from tests.conftest import Project, Run
from tests.unit.ops.test_serve import Serve, Stage, write_profile
from tests.waits import read_line, until_async, wait_until

WAIT = 60
TOKEN = "serve-token-canary-7f3a9c1e5b2d4e6f"


class Follower:
    """The attach client on a loop of its own, keeping every event it hears."""

    def __init__(self, url: str, token: str | None = None) -> None:
        self.events: list[Event] = []
        self.attachment = Attachment(Server.parse(url), token, self.events.append, backoff=(0.2,))
        self.loop = asyncio.new_event_loop()
        self.task: asyncio.Task[None] | None = None
        threading.Thread(target=self._main, daemon=True).start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.task = self.loop.create_task(self.attachment.run())
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(self.task)

    def close(self) -> None:
        if self.task is not None:
            self.loop.call_soon_threadsafe(self.task.cancel)

    def snapshots(self) -> list[Attached]:
        return [e for e in list(self.events) if isinstance(e, Attached)]

    def detached(self) -> list[Detached]:
        return [e for e in list(self.events) if isinstance(e, Detached)]

    def states(self, check: str) -> list[str]:
        return [
            e.state.label
            for e in list(self.events)
            if isinstance(e, CheckChanged) and e.state.last and e.state.last.name == check
        ]


@pytest.fixture
def stage() -> Iterator[Stage]:
    s = Stage()
    yield s
    s.close()


def until(condition: Any, what: str) -> Any:
    return wait_until(condition, what, WAIT)


def test_snapshot_then_changes_as_they_happen(project: Project, stage: Stage) -> None:
    serve = Serve("--config", write_profile(project, stage))
    follower = Follower(serve.url)
    try:
        first = until(lambda: follower.snapshots(), "the first snapshot")[0].picture
        assert [t.name for t in first.targets] == ["BetaSkill"]
        target = first.targets[0]
        assert target.checks == ["healthy", "flaky"]
        until(lambda: "CRIT" in follower.states("flaky"), "flaky goes down, pushed")
        stage.fixed = True
        until(lambda: follower.states("flaky")[-1:] == ["OK"], "flaky recovers, pushed")
        assert not follower.detached()
    finally:
        follower.close()
        serve.kill()


def events_answer(url: str, token: str | None = None) -> tuple[int, str, str]:
    """GET /events: (status, content type, the start of the body)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=WAIT) as sock:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        sock.sendall(f"GET /events HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data or (b"event: snapshot" not in data and b" 200 " in data[:15]):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if b" 200 " not in data[:15] and b"\r\n\r\n" in data:
                data += sock.recv(65536)
                break
    head, _, body = data.decode("utf-8", "replace").partition("\r\n\r\n")
    lines = head.split("\r\n")
    kind = next(
        (v.strip() for k, _, v in (h.partition(":") for h in lines[1:]) if k.lower() == "content-type"), ""
    )
    return int(lines[0].split()[1]), kind, body


def test_a_token_guards_events_only_and_never_shows(
    project: Project, stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSDASH_SERVE_TOKEN", TOKEN)
    serve = Serve("--config", write_profile(project, stage))
    try:
        status, _kind, body = events_answer(serve.url)
        assert status == 401 and "needs a token for /events" in body and "Bearer" in body
        status, _kind, body = events_answer(serve.url, "not-the-token-0123456789")
        assert status == 401 and "not this service's" in body
        status, kind, body = events_answer(serve.url, TOKEN)
        assert status == 200 and kind.startswith("text/event-stream") and "event: snapshot" in body
        assert serve.get("/metrics")[0] == 200  # Prometheus scrapes as before, with no token
        assert serve.get("/healthz")[0] == 200
    finally:
        code, err = serve.stop()
    assert code == 0 and TOKEN not in err


def test_beyond_loopback_events_is_closed_without_a_token(project: Project, stage: Stage) -> None:
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    proc = subprocess.Popen(
        [opsdash, "serve", "--listen", "0.0.0.0:0", "--config", str(write_profile(project, stage))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = read_line(proc.stdout).strip().rsplit(":", 1)[1]
        status, _kind, body = events_answer(f"http://127.0.0.1:{port}")
        assert status == 403 and "listens beyond loopback and has no token" in body
        assert "OPSDASH_SERVE_TOKEN" in body
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=WAIT)
    assert "no token (OPSDASH_SERVE_TOKEN or --token-env): /events is closed" in err


def test_a_token_that_is_missing_or_short_stops_serve_with_a_clear_line(
    project: Project, stage: Stage, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = write_profile(project, stage)
    result = run("serve", "--config", profile, "--token-env", "NO_SUCH_TOKEN_VARIABLE")
    assert result.code == 3 and "NO_SUCH_TOKEN_VARIABLE: that environment variable is not set" in result.err
    monkeypatch.setenv("SHORT_TOKEN", "abc123")
    result = run("serve", "--config", profile, "--token-env", "SHORT_TOKEN")
    assert result.code == 3 and "SHORT_TOKEN is 6 characters; use at least 16" in result.err
    assert "abc123" not in result.out + result.err


def test_the_idle_timeout_spares_a_stream(project: Project, stage: Stage) -> None:
    """A connection with no request head for 0.5 s is closed; a stream (a request being answered)
    is not, however long it runs."""
    serve = Serve("--config", write_profile(project, stage), "--idle-timeout", "0.5")
    follower = Follower(serve.url)
    try:
        until(lambda: len(follower.states("healthy")) >= 4, "four results of a 1 s check, pushed")
        assert len(follower.snapshots()) == 1 and not follower.detached()
    finally:
        follower.close()
        serve.kill()


def test_a_client_that_stops_reading_does_not_hold_up_the_probes(project: Project, stage: Stage) -> None:
    """A client that never reads: serve's writes to it back up, its queue overflows, and it is owed
    a fresh snapshot; meanwhile the probes run on and another dashboard hears every change."""
    serve = Serve("--config", write_profile(project, stage))
    host, port = serve.url.removeprefix("http://").rsplit(":", 1)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    stalled.connect((host, int(port)))
    stalled.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    follower = Follower(serve.url)
    try:
        until(lambda: follower.snapshots(), "the reading client attaches")
        before = stage.requests["/healthy"]
        heard = len(follower.states("healthy"))
        until(lambda: stage.requests["/healthy"] >= before + 3, "the probes go on")
        until(lambda: len(follower.states("healthy")) >= heard + 3, "the reading client hears each")
        assert not follower.detached()
    finally:
        follower.close()
        stalled.close()
        code, _err = serve.stop()
    assert code == 0  # the stalled stream did not keep serve from stopping


def test_the_client_says_at_once_when_serve_dies_and_comes_back(project: Project, stage: Stage) -> None:
    serve = Serve("--config", write_profile(project, stage))
    port = serve.url.rsplit(":", 1)[1]
    follower = Follower(serve.url)
    try:
        until(lambda: follower.snapshots(), "attached")
        os.kill(serve.proc.pid, signal.SIGKILL)
        serve.proc.wait()
        lost = until(lambda: follower.detached(), "the client hears the connection end")[0]
        assert lost.retry_in is not None and "closed" in lost.reason
        again = Serve("--config", project.profile, "--listen", f"127.0.0.1:{port}")
        try:
            until(lambda: len(follower.snapshots()) == 2, "attached again, with a fresh snapshot")
        finally:
            again.kill()
    finally:
        follower.close()
        serve.kill()


async def test_a_client_that_falls_behind_gets_a_fresh_snapshot_and_publishing_never_waits() -> None:
    """In-process, so the backlog is big enough to overflow at once: 2,000 changes of 8 KB are
    published to a client that is not reading (each call returns at once: the probes' callbacks
    never wait on a client), its queue overflows, what it missed is dropped, and when it reads
    again it is sent a fresh snapshot, then the changes after it."""
    from opsdash.ops.serve.events import Broadcast
    from opsdash.ops.serve.http import Endpoint

    generation = {"n": 0}
    broadcast = Broadcast(
        lambda: {"generation": generation["n"]}, token=None, open_without_token=True, max_streams=4
    )
    endpoint = Endpoint(lambda req: broadcast.stream(req))
    port = await endpoint.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        await until_async(lambda: broadcast.clients, "the client is attached")
        client = next(iter(broadcast.clients))
        for n in range(2000):
            generation["n"] = n
            broadcast.publish("check", {"n": n, "pad": "x" * 8192})
        assert client.resyncs > 0
        generation["n"] = 2000
        broadcast.publish("check", {"n": "after", "pad": ""})
        seen = b""
        while b'"n":"after"' not in seen:
            seen += await asyncio.wait_for(reader.read(1 << 20), WAIT)
        assert seen.count(b"event: snapshot") == 2  # the first, and the one owed after the overflow
        assert b'{"generation":2000}' in seen  # what was current when it read again
        assert seen.count(b"event: check") < 2000  # what it missed was dropped, not kept for it
    finally:
        writer.close()
        broadcast.close()
        await endpoint.close()


def test_every_string_on_the_wire_is_masked_even_one_json_would_escape() -> None:
    from opsdash.core.findings import Severity
    from opsdash.core.health.model import CheckResult
    from opsdash.core.health.state import SustainedState
    from opsdash.core.secrets import redactor
    from opsdash.ops import live

    secret = 'canary"with\\quote-9f8e7d6c5b4a'  # made up: a quote and a backslash JSON escapes
    redactor.register(secret)
    try:
        result = CheckResult(
            "api",
            "http",
            f"https://x.test/?key={secret}",
            Severity.CRIT,
            f"got {secret}",
            "",
            1.0,
            facts={secret: secret},
        )
        frame = live.encode("check", {"target": "T", "state": live.state_out(SustainedState(last=result))})
    finally:
        redactor.clear()
    text = frame.decode()
    assert secret not in text and json_escaped(secret) not in text and "canary" not in text
    assert "sha256:" in text  # the masked fingerprint stands in its place
    state = live.state_in(json.loads(text.split("data: ", 1)[1])["state"])
    assert state.last is not None and state.last.severity is Severity.CRIT  # and it still decodes


def json_escaped(text: str) -> str:
    return json.dumps(text)[1:-1]


def test_a_server_url_names_its_events_path_and_target() -> None:
    server = Server.parse("https://ops.example.test/opsdash/?target=Staging")
    assert (server.host, server.port, server.tls) == ("ops.example.test", 443, True)
    assert server.path == "/opsdash/events" and server.target == "Staging"
    assert server.url == "https://ops.example.test/opsdash"
    assert Server.parse("http://[::1]:9477").port == 9477


def test_config_show_masks_the_serve_token(
    project: Project, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSDASH_SERVE_TOKEN", TOKEN)
    for args in ((), ("--json",)):
        result = run("config", "show", "--config", project.profile, *args)
        assert result.code == 0 and TOKEN not in result.out + result.err
    row = next(r for r in json.loads(result.out) if r["key"] == "opsdash.serve_token")
    assert row["source"] == "env OPSDASH_SERVE_TOKEN"
    assert row["value"].startswith(f"•••• ({len(TOKEN)} chars") and "sha256:" in row["value"]


async def test_a_client_that_takes_no_write_for_the_write_timeout_is_dropped() -> None:
    """A peer that stopped reading (or vanished without a word): once the socket's buffers are full
    a write waits, and after `write_timeout` the stream ends and its connection with it."""
    from opsdash.ops.serve.events import Broadcast
    from opsdash.ops.serve.http import Endpoint

    broadcast = Broadcast(lambda: {}, token=None, open_without_token=True, max_streams=4, write_timeout=0.5)
    endpoint = Endpoint(lambda req: broadcast.stream(req))
    port = await endpoint.start("127.0.0.1", 0)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # small: the backlog builds fast
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    _reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    try:
        writer.write(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
        await until_async(lambda: broadcast.clients, "the client is attached")

        async def fills() -> bool:
            for _ in range(50):
                broadcast.publish("check", {"pad": "x" * 65536})
            return not broadcast.clients

        await until_async(fills, "the stream is dropped once a write waits past its timeout")
        await until_async(lambda: endpoint.connections == 0, "its connection is closed, not left waiting")
    finally:
        writer.close()
        broadcast.close()
        await endpoint.close()


@pytest.mark.parametrize(
    "frame",
    [
        b'event: check\ndata: {"target": "x"}\n\n',
        b"event: snapshot\ndata: []\n\n",
        b"event: check\ndata: {no\n\n",
    ],
)
async def test_an_event_the_dashboard_cannot_read_drops_the_connection_and_asks_afresh(frame: bytes) -> None:
    """A serve of another shape (or a proxy mangling the stream) sends an event this client cannot
    read: the client used to die there for good, its last verdict left on screen as current. It
    now says Detached, as for a broken connection, and reconnects to a fresh snapshot."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        connections.append(len(connections))
        first = len(connections) == 1
        body = frame if first else b'event: snapshot\ndata: {"targets": [], "sessions": []}\n\n'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + body)
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await reader.read()  # open until the client goes
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    events: list[Event] = []
    attachment = Attachment(Server.parse(f"http://127.0.0.1:{port}"), None, events.append, backoff=(0.05,))
    task = asyncio.create_task(attachment.run())
    try:
        await until_async(lambda: any(isinstance(e, Attached) for e in events), "a fresh snapshot", WAIT)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.close()
    first = events[0]
    assert isinstance(first, Detached) and "cannot read" in first.reason and first.retry_in == 0.05
    assert len(connections) == 2


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://opsdash:Team-Db-Pw-42@db.internal/opsdash", "give the service's URL"),
        ("http://[::1", "not a valid URL"),
        ("http://ops:Team-Db-Pw-42@[::1:x", "not a valid URL"),
    ],
)
def test_a_refused_server_url_is_named_masked(url: str, said: str) -> None:
    """The team database's URL pasted where the service's belongs: refused, its password masked
    (it was printed in clear); a malformed one is a clear error, not an internal one."""
    from opsdash.core.errors import ConfigError

    with pytest.raises(ConfigError, match=said) as refused:
        Server.parse(url)
    assert "Team-Db-Pw-42" not in str(refused.value)
