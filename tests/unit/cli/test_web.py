"""`opsdash web` as a browser and an intruder meet it: a real server process; the dashboard drawn in
headless Chromium (driven over the DevTools protocol); WebSockets from other pages, from no page,
and without the token refused; no listening beyond this machine without a token."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Project, fake_secret
from tests.waits import read_line, until_async, wait_for_path, wait_until

OPSDASH = str(Path(sys.executable).with_name("opsdash"))
WAIT = 60
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Web:
    """`opsdash web` on 127.0.0.1 and a free port, answering."""

    def __init__(self, *args: str, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [OPSDASH, "web", "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.announced = read_line(self.proc.stderr)
        assert f"open {self.base}" in self.announced, self.announced
        wait_until(lambda: self.status("/") is not None, "the server answers")

    def status(self, path: str, headers: Mapping[str, str] | None = None) -> int | None:
        request = urllib.request.Request(self.base + path, headers=dict(headers or {}))
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return exc.code
        except OSError:
            return None

    def websocket(self, headers: Mapping[str, str]) -> int:
        """The answer to a WebSocket handshake (urllib would send `Connection: close` instead)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
        try:
            connection.request("GET", "/ws", headers={**UPGRADE, **headers})
            return connection.getresponse().status
        finally:
            connection.close()

    def stop(self) -> str:
        """Everything the server printed, after SIGTERM."""
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=WAIT)
        return self.announced + out + err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def test_web_refuses_websockets_from_other_pages_and_from_no_page() -> None:
    """Before any dashboard process starts: a page on another site (Origin), and a program that
    sends no Origin at all (another user of this machine)."""
    web = Web()
    try:
        assert web.status("/") == 200
        assert web.websocket({"Origin": "https://evil.example"}) == 403
        assert web.websocket({}) == 403
        assert web.websocket({"Origin": f"http://localhost:{web.port + 1}"}) == 403
    finally:
        web.kill()


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_listening_beyond_this_machine_needs_a_token(host: str) -> None:
    done = subprocess.run(
        [OPSDASH, "web", "--host", host, "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=WAIT,  # a server that started anyway never ends: this fails the test
    )
    assert done.returncode == 3
    assert f"listening on {host}, beyond this machine, needs a token" in done.stderr
    assert "OPSDASH_WEB_TOKEN" in done.stderr and "--new-token" in done.stderr


def test_a_short_token_is_refused() -> None:
    done = subprocess.run(
        [OPSDASH, "web", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, "OPSDASH_WEB_TOKEN": "hunter2"},
    )
    assert done.returncode == 3
    assert "OPSDASH_WEB_TOKEN is 7 characters; use at least 16" in done.stderr
    assert "hunter2" not in done.stderr


def test_with_a_token_the_page_and_websocket_need_it_and_it_is_never_logged() -> None:
    token = fake_secret("webtoken")
    web = Web(env={"OPSDASH_WEB_TOKEN": token})
    try:
        origin = {"Origin": web.base}
        assert "<OPSDASH_WEB_TOKEN>" in web.announced and token not in web.announced
        assert web.status("/") == 403
        assert web.status("/?token=" + fake_secret()) == 403
        assert web.status("/?token=" + token) == 200
        assert web.websocket(origin) == 403
        assert web.websocket({**origin, "Cookie": f"opsdash-web-{web.port}={fake_secret()}"}) == 403
        # what the page's own WebSocket carries: the cookie the page was served with
        assert web.websocket({**origin, "Cookie": f"opsdash-web-{web.port}={token}"}) == 101
        # the right token does not make another page's connection acceptable
        assert (
            web.websocket({"Origin": "https://evil.example", "Cookie": f"opsdash-web-{web.port}={token}"})
            == 403
        )
        printed = web.stop()
    finally:
        web.kill()
    assert "GET /?token=" in printed  # the access log is there, with the token masked
    assert token not in printed


def test_new_token_is_printed_once_and_opens_the_page() -> None:
    web = Web("--new-token")
    try:
        token = web.announced.split("?token=", 1)[1].split()[0]
        assert len(token) >= 32
        assert web.status("/") == 403
        assert web.status("/?token=" + token) == 200
        printed = web.stop()
    finally:
        web.kill()
    assert printed.count(token) == 1


# --- the dashboard in a real browser --------------------------------------------------------------

# Catches the page's xterm.js Terminal as textual-serve's script stores it (`this.terminal = ...`),
# so the test reads the screen as drawn, cell by cell, rather than the bytes sent to it.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", {value, writable: true, configurable: true, enumerable: true});
    window.opsdashTerminal = value;
  },
});
"""
SCREEN = """(() => {
  const t = window.opsdashTerminal;
  if (!t) return "";
  const lines = [];
  for (let i = 0; i < t.rows; i++) {
    const line = t.buffer.active.getLine(t.buffer.active.viewportY + i);
    lines.push(line ? line.translateToString(true) : "");
  }
  return lines.join("\\n");
})()"""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,800",
    "--remote-debugging-port=0",
    # The page asks for a web font from the internet: no test goes there.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


class DevTools:
    """One page of a browser, driven over the Chrome DevTools Protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.last = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last += 1
        await self.ws.send_json({"id": self.last, "method": method, "params": params})
        async for message in self.ws:
            answer: dict[str, Any] = json.loads(message.data)
            if answer.get("id") == self.last:  # events in between are not asked for here
                assert "error" not in answer, answer
                result: dict[str, Any] = answer["result"]
                return result
        raise AssertionError(f"the browser went away during {method}")

    async def screen(self) -> str:
        result = await self.call("Runtime.evaluate", expression=SCREEN, returnByValue=True)
        return str(result["result"].get("value", ""))

    async def press(self, key: str) -> None:
        await self.call("Runtime.evaluate", expression="window.opsdashTerminal.focus()")
        await self.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key)
        await self.call("Input.dispatchKeyEvent", type="keyUp", key=key)


@contextlib.asynccontextmanager
async def chromium_tab(tmp_path: Path, url: str) -> AsyncIterator[DevTools]:
    """A headless Chromium page on `url`, whose terminal the test can read and type into."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no Chromium on this machine: apt-get install chromium (Debian) runs this test")
    profile_dir = tmp_path / "chromium"
    with (tmp_path / "chromium.log").open("w") as log:
        browser = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
            stdout=log,
            stderr=log,
        )
    try:
        # Chromium writes its DevTools port there once it listens
        port_file = wait_for_path(profile_dir / "DevToolsActivePort")
        port = wait_until(lambda: port_file.read_text().split("\n")[0].strip(), "DevTools port written")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as answer:
                page = next(t for t in await answer.json() if t["type"] == "page")
            async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                tab = DevTools(ws)
                await tab.call("Page.enable")
                await tab.call("Page.addScriptToEvaluateOnNewDocument", source=CATCH_TERMINAL)
                await tab.call("Page.navigate", url=url)
                yield tab
    finally:
        browser.kill()
        browser.wait()


async def test_the_dashboard_draws_in_chromium_and_answers_keys(project: Project, tmp_path: Path) -> None:
    token = fake_secret("webtoken")
    web = Web("--config", str(project.profile), env={"OPSDASH_WEB_TOKEN": token})
    try:
        async with chromium_tab(tmp_path, f"{web.base}/?token={token}") as tab:

            async def shows(text: str) -> bool:
                return text in await tab.screen()

            await until_async(lambda: shows("Overview"), "the dashboard's Overview pane drawn")
            screen = await tab.screen()
            assert "BetaSkill" in screen and "Validation" in screen
            assert "d diffs them" not in screen
            await tab.press("6")
            await until_async(lambda: shows("d diffs them"), "the History pane shown after pressing 6")
        printed = web.stop()
    finally:
        web.kill()
    assert "needs a terminal" not in printed
    assert token not in printed


async def test_web_server_attaches_each_browsers_dashboard_to_a_running_serve(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.servers import ThreadedHttpServer, json_handler
    from tests.unit.ops.test_serve import Serve

    target = ThreadedHttpServer(json_handler({"status": "UP"}))
    check = f'\n[[checks]]\nname = "app"\nkind = "http"\nurl = "{target.base_url}/health"\ninterval = 1\n'
    project.profile.write_text(project.profile.read_text() + check)
    token = fake_secret("servetoken")
    monkeypatch.setenv("OPSDASH_SERVE_TOKEN", token)
    serve = Serve("--config", project.profile)
    web = Web("--server", serve.url)  # the token reaches each dashboard through the environment
    try:
        async with chromium_tab(tmp_path, f"{web.base}/") as tab:

            async def shows(text: str) -> bool:
                return text in await tab.screen()

            await until_async(lambda: shows(f"service {serve.url}"), "the dashboard says it is attached")
            await until_async(lambda: shows("Overview"), "its Overview pane drawn")
            assert token not in await tab.screen()
        printed = web.stop()
    finally:
        web.kill()
        serve.kill()
        target.close()
    assert token not in printed


def test_web_refuses_a_server_that_is_not_a_url() -> None:
    result = subprocess.run(
        [OPSDASH, "web", "--server", "ftp://example.invalid"], capture_output=True, text=True, timeout=WAIT
    )
    assert result.returncode == 3 and "give the service's URL" in result.stderr
