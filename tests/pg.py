"""A real PostgreSQL server for the tests, started from the server binaries (Debian's `postgresql`
package: initdb, pg_ctl) in a temporary directory, one per test session (so one per xdist worker),
listening on 127.0.0.1 (password auth: the tests see what an operator's URL looks like) and on a
Unix socket in its directory. Each test gets its own schema (`PgServer.database_url()`), so tests
running at once never see each other's rows.

Where the binaries are absent the tests that need them are skipped, saying how to install them.
initdb refuses to run as root: as root the server runs as the `postgres` user (or `nobody`) via
runuser, in a directory that user owns.

benchmarks/history.py --database auto uses the same server (`start_server`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

BIN_ENV = "OPSDASH_PG_BIN"  # a directory holding initdb and pg_ctl, if not found on its own
INSTALL = (
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install them (Debian/Ubuntu: "
    "apt-get install postgresql; macOS: brew install postgresql) or set OPSDASH_PG_BIN to their directory"
)
USER = "opsdash"


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: OPSDASH_PG_BIN, Debian's versioned directory (the
    newest), or PATH."""
    candidates = []
    if os.environ.get(BIN_ENV):
        candidates.append(Path(os.environ[BIN_ENV]))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    found = shutil.which("initdb")
    if found:
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    root: Path
    port: int
    password: str
    run_as: str | None
    bin: Path
    schemas: list[str] = field(default_factory=list)
    options: str = ""  # what pg_ctl start was given (a restart gives it again)

    @property
    def admin_url(self) -> str:
        return f"postgresql://{USER}:{quote(self.password)}@127.0.0.1:{self.port}/opsdash"

    def database_url(self, schema: str | None = None) -> str:
        """A URL whose tables live in a new, empty schema of their own (search_path)."""
        import psycopg

        name = schema or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
        self.schemas.append(name)
        return f"{self.admin_url}?options=-csearch_path%3D{name}"

    def drop(self, url: str) -> None:
        """Drop the schema behind `url` (a test's tables), so a session's server stays small."""
        import psycopg

        name = url.rpartition("%3D")[2]
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        command = [*(["runuser", "-u", self.run_as, "--"] if self.run_as else []), *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)

    def halt(self) -> None:
        """Stop the server (fast: every connection is ended, as in a restart or a failover), keeping
        its data for `start()`."""
        done = self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.root / "data"), "-m", "fast", "-w")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl stop failed: {done.stderr.strip()}")

    def start(self) -> None:
        """Start the server again after `halt()`, on the same port with the same data."""
        done = self._run(
            str(self.bin / "pg_ctl"),
            "start",
            "-D",
            str(self.root / "data"),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "-o",
            self.options,
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.strip()}")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "stop", "-D", str(self.root / "data"), "-m", "immediate", "-w")
        shutil.rmtree(self.root, ignore_errors=True)


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


def start_server() -> PgServer:
    """initdb + pg_ctl start in a new temporary directory; raises RuntimeError with the server's
    own words if it cannot start."""
    binaries = server_binaries()
    if binaries is None:
        raise FileNotFoundError(INSTALL)
    run_as = _run_as()
    root = Path(tempfile.mkdtemp(prefix="opsdash-pg-"))
    password = secrets.token_hex(12)
    (root / "pw").write_text(password + "\n")
    if run_as:
        entry = pwd.getpwnam(run_as)
        os.chmod(root, 0o700)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        os.chown(root / "pw", entry.pw_uid, entry.pw_gid)
    server = PgServer(root, _free_port(), password, run_as, binaries)
    data = root / "data"
    done = server._run(
        str(binaries / "initdb"),
        "-D",
        str(data),
        "-U",
        USER,
        f"--pwfile={root / 'pw'}",
        "--auth-local=trust",
        "--auth-host=scram-sha-256",
        "-E",
        "UTF8",
        "--locale=C",
        "--no-sync",
    )
    if done.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stderr.strip() or done.stdout.strip()}")
    options = (
        f"-c listen_addresses=127.0.0.1 -c port={server.port} -c unix_socket_directories={root} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=60 "
        "-c shared_buffers=32MB"
    )
    server.options = options
    try:
        server.start()
    except RuntimeError as exc:
        log = (root / "log").read_text(errors="replace")[-2000:] if (root / "log").exists() else ""
        server.stop()
        raise RuntimeError(f"{exc} {log}") from None
    server._run(str(binaries / "createdb"), "-h", str(root), "-p", str(server.port), "-U", USER, "opsdash")
    return server


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


# ------------------------------------------------------------------ pytest fixtures
# (a conftest imports them: `from tests.pg import pg_server, pg_url`, marked noqa F401)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """One PostgreSQL server per test session (per xdist worker); skipped where it cannot run."""
    if server_binaries() is None:
        pytest.skip(INSTALL)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (make install)")
    with running_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A postgresql:// URL of an empty schema of this test's own, dropped after it."""
    url = pg_server.database_url()
    yield url
    pg_server.drop(url)
