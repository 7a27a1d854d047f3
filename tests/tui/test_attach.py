"""The dashboard attached to a running `opsdash serve` (`opsdash --server URL`): a real service
process probing real local targets, and the dashboard (Textual pilot) showing what it pushes —
without probing anything itself, saying so at once when the service dies, and coming back when
it is restarted."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # (a dev dependency, no stubs)
import pytest
from textual.widgets import Static

from opsdash.core.runbooks.executor import Executor
from opsdash.core.runbooks.parser import parse
from opsdash.ops.attach import Server
from opsdash.storage.history import History
from opsdash.tui.app import OpsdashApp
from opsdash.tui.widgets.table import OpsTable
from tests.conftest import Project, Run
from tests.tui.conftest import SIZE, until
from tests.tui.test_last_known import header
from tests.tui.test_runbooks_pane import BOOK
from tests.unit.ops.test_serve import Serve
from tests.waits import wait_until

TOKEN = "attach-token-canary-5e1d7b3a9c2f4086"  # made up for this test


class Target:
    """/healthy (200) and /flaky (200 until `broken`), keeping which process sent each request
    (`senders`, by pid): an attached dashboard must send none."""

    def __init__(self) -> None:
        self.requests = 0
        self.senders: set[int | None] = set()
        self.broken = False
        target = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                port, ours = self.client_address[1], target.port
                sender = next(
                    (
                        c.pid
                        for c in psutil.net_connections("tcp")
                        if c.laddr and c.laddr.port == port and c.raddr and c.raddr.port == ours
                    ),
                    None,
                )
                target.requests += 1
                target.senders.add(sender)
                failing = self.path.startswith("/flaky") and target.broken
                body = b'{"status":"UP"}'
                self.send_response(503 if failing else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[Target]:
    t = Target()
    yield t
    t.close()


def profile(project: Project, target: Target) -> Path:
    project.profile.write_text(
        project.profile.read_text()
        + f"""
[[checks]]
name = "healthy"
kind = "http"
url = "{target.url}/healthy"
interval = 1
retries = 0

[[checks]]
name = "flaky"
kind = "http"
url = "{target.url}/flaky"
interval = 1
retries = 0
failure_threshold = 1
"""
    )
    return project.profile


def checks_table(app: OpsdashApp) -> dict[str, str]:
    table = app.query_one("#checks", OpsTable)
    return {str(key.value): str(table.get_row(key)[0]) for key in table.rows}


def notices(app: OpsdashApp) -> str:
    return "\n".join(f"{n.title}: {n.message}" for n in app._notifications)


def card(app: OpsdashApp, name: str) -> str:
    return str(app.query_one(f"#overview-{name}", Static).render())


def sessions_table(app: OpsdashApp) -> str:
    tables = app.query("#runbook-list")
    if not tables:
        return ""
    table = tables.first(OpsTable)
    return "\n".join(" ".join(str(c) for c in table.get_row(key)) for key in table.rows)


def start_session(tmp_path: Path, operator: str) -> None:
    """A runbook session started by `operator`, recorded where the service keeps its history."""
    book_file = tmp_path / "deploy.md"
    book_file.write_text(BOOK.replace("{command}", "true"))
    book, _ = parse(book_file)
    assert book is not None
    with History.open(Path(os.environ["OPSDASH_DATA_DIR"])) as history:
        Executor.start(book, {}, operator, history.sessions, lambda gates: [])


def screen_text(app: OpsdashApp) -> str:
    return "\n".join(str(w.render()) for w in app.query(Static)) + header(app)


async def test_the_dashboard_shows_the_service_follows_it_and_says_when_it_is_gone(
    project: Project, target: Target, tmp_path: Path
) -> None:
    serve = Serve("--config", profile(project, target))
    port = int(serve.url.rsplit(":", 1)[1])
    app = OpsdashApp.attached(Server.parse(serve.url))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: " GO " in header(app))
            assert f"service {serve.url}" in header(app) and "BetaSkill (production)" in header(app)
            await pilot.press("3")
            await until(pilot, lambda: checks_table(app) == {"healthy": "OK", "flaky": "OK"})

            target.broken = True  # a check goes down on the target: the service sees it, we hear it
            await until(pilot, lambda: "NO-GO" in header(app))
            await until(pilot, lambda: checks_table(app)["flaky"] == "CRIT")
            assert target.requests > 0 and target.senders == {serve.proc.pid}  # serve probed; we did not
            await until(pilot, lambda: "Alert (service): flaky" in notices(app))  # fired on the service
            await until(pilot, lambda: "flaky" in card(app, "alerts"))

            start_session(tmp_path, "bob")  # another operator, another process: the record says so

            await pilot.press("p")  # polling is the service's: the key says so, and does nothing
            await until(pilot, lambda: "cannot pause it from here" in notices(app))
            await pilot.press("5")  # runbook steps run where they act, not here
            await until(pilot, lambda: "bob" in sessions_table(app))
            assert "tui-deploy" in card(app, "deploy") and "bob" in card(app, "deploy")
            await pilot.press("n")  # a new session
            await until(pilot, lambda: "runs on the machine it changes" in notices(app))

            os.kill(serve.proc.pid, signal.SIGKILL)
            serve.proc.wait()
            await until(pilot, lambda: "UNKNOWN" in header(app) and "NO-GO" not in header(app))
            assert "reconnecting" in header(app)
            await until(pilot, lambda: "Service connection lost" in notices(app))
            await until(pilot, lambda: "stale" in checks_table(app)["flaky"])

            target.broken = False
            again = Serve("--config", project.profile, "--listen", f"127.0.0.1:{port}")
            try:
                await until(pilot, lambda: " GO " in header(app) and "reconnecting" not in header(app))
                await until(pilot, lambda: checks_table(app) == {"healthy": "OK", "flaky": "OK"})
                assert "Connected again" in notices(app)
            finally:
                again.kill()
            assert os.getpid() not in target.senders
    finally:
        serve.kill()


async def refused(url: str, token: str | None, said: str) -> str:
    """Attach with `token`: the service refuses, the header says why and that it is not retried."""
    app = OpsdashApp.attached(Server.parse(url), token)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: said in notices(app) and app.query("#checks") and app.query("#findings"))
        await until(pilot, lambda: app.query("#overview-checks"))
        assert "Service not reached" in notices(app)
        assert "UNKNOWN" in header(app) and "not retrying" in header(app) and "HTTP 401" in header(app)
        return screen_text(app) + notices(app)


async def test_a_token_missing_or_wrong_is_said_on_screen_the_right_one_works_and_none_leaks(
    project: Project, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSDASH_SERVE_TOKEN", TOKEN)
    serve = Serve("--config", profile(project, target))
    monkeypatch.delenv("OPSDASH_SERVE_TOKEN")
    screens: list[str] = []
    try:
        screens.append(await refused(serve.url, None, "needs a token"))
        screens.append(await refused(serve.url, "wrong-token-0123456789", "not this service's"))
        app = OpsdashApp.attached(Server.parse(serve.url), TOKEN)
        async with app.run_test(size=SIZE) as pilot:
            await until(
                pilot, lambda: " GO " in header(app) and app.query("#checks") and app.query("#findings")
            )
            screens.append(screen_text(app) + notices(app) + app.export_screenshot())
    finally:
        code, err = serve.stop()
    assert code == 0
    out = "\n".join([*screens, err])
    assert TOKEN not in out


def test_a_server_that_is_not_a_url_or_a_token_variable_that_is_not_set_exits_3(run: Run) -> None:
    result = run("--server", "ftp://example.invalid")
    assert result.code == 3 and "give the service's URL, e.g. http://127.0.0.1:9477" in result.err
    result = run("--server", "http://alice:pw@127.0.0.1:9477")
    assert result.code == 3 and "put no credentials in the URL" in result.err and "pw" not in result.err
    result = run("--server", "http://127.0.0.1:9477", "--token-env", "NO_SUCH_VARIABLE_HERE")
    assert result.code == 3 and "NO_SUCH_VARIABLE_HERE: that environment variable is not set" in result.err


def test_opsdash_with_opsdash_server_set_attaches_on_a_real_terminal(
    project: Project, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real command on a real terminal, told by the environment alone: OPSDASH_SERVER and the
    token in OPSDASH_SERVE_TOKEN (which it never draws)."""
    import pty
    import select
    import sys

    monkeypatch.setenv("OPSDASH_SERVE_TOKEN", TOKEN)
    serve = Serve("--config", profile(project, target))
    monkeypatch.setenv("OPSDASH_SERVER", serve.url)
    opsdash = str(Path(sys.executable).with_name("opsdash"))
    pid, master = pty.fork()
    if pid == 0:  # the child: the dashboard on a real terminal
        os.execv(opsdash, [opsdash])
    seen = bytearray()

    def drawn(text: bytes) -> bool:
        while select.select([master], [], [], 0)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen.extend(chunk)
        return text in seen

    try:
        wait_until(lambda: drawn(b"GO"), "the service's verdict drawn")
        wait_until(lambda: drawn(f"service {serve.url}".encode()), "the header names the service")
        assert TOKEN.encode() not in seen
    finally:
        os.close(master)
        with contextlib.suppress(ChildProcessError):
            wait_until(lambda: os.waitpid(pid, os.WNOHANG)[0], "the dashboard ends with its terminal")
        serve.kill()
    assert target.senders == {serve.proc.pid}  # the service's probes only, none from the dashboard


def other_target(project: Project, name: str) -> Path:
    """The project's profile under another target name (as a staging profile beside production's)."""
    other = project.profile.with_name(f"{name.lower()}.toml")
    text = project.profile.read_text()
    assert '\nname = "BetaSkill"\n' in text
    other.write_text(text.replace('\nname = "BetaSkill"\n', f'\nname = "{name}"\n', 1))
    return other


async def test_config_with_server_shows_the_profile_s_target_of_the_service(
    project: Project, target: Target
) -> None:
    """`opsdash --config PROFILE --server URL`: the profile picks which of the service's targets is
    shown (as ?target=NAME): its own, or a clear "not served here" naming what the service serves,
    never silently the service's first target."""
    serve = Serve("--config", profile(project, target))
    try:
        staging = OpsdashApp.attached(Server.parse(serve.url).for_profile(other_target(project, "Staging")))
        async with staging.run_test(size=SIZE) as pilot:
            await until(
                pilot,
                lambda: (
                    "no target 'Staging' (it serves: BetaSkill)" in header(staging)
                    and staging.query("#checks")
                    and staging.query("#findings")
                ),  # the panes mounted: leaving now is no race
            )
            assert " GO " not in header(staging)
        production = OpsdashApp.attached(Server.parse(serve.url).for_profile(project.profile))
        async with production.run_test(size=SIZE) as pilot:
            await until(
                pilot,
                lambda: (
                    " GO " in header(production)
                    and production.query("#checks")
                    and production.query("#findings")
                ),
            )
            assert "BetaSkill (production)" in header(production)
    finally:
        serve.kill()
    assert target.senders == {serve.proc.pid}  # the profile's checks were not probed here


def test_config_with_server_naming_two_targets_or_not_loading_exits_3(
    run: Run, project: Project, tmp_path: Path
) -> None:
    both = run("--config", project.profile, "--server", "http://127.0.0.1:9477?target=Staging")
    assert both.code == 3 and "Traceback" not in both.err
    assert "target 'Staging' (?target=)" in both.err and "is target 'BetaSkill'; drop one" in both.err
    broken = tmp_path / "broken.toml"
    broken.write_text("[target\nname = 'x'\n")
    bad = run("--config", broken, "--server", "http://127.0.0.1:9477")
    assert bad.code == 3 and str(broken) in bad.err and "Traceback" not in bad.err
    missing = run("--config", tmp_path / "missing.toml", "--server", "http://127.0.0.1:9477")
    assert missing.code == 3 and "missing.toml" in missing.err and "Traceback" not in missing.err
    web = run("web", "--config", project.profile, "--server", "http://127.0.0.1:9477?target=Staging")
    assert web.code == 3 and "drop one" in web.err  # refused at once, not in each browser tab
