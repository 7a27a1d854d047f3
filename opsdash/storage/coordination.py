"""Coordination through the database, the same on SQLite and PostgreSQL: the locks that make a
decision of one process the decision of every process (docs/architecture.md, "Many processes,
one record" and "A team: one database").

- `in_transaction_lock(history, *parts)`: inside a write transaction, serialise every process that
  decides about the same thing (an alert key). On SQLite the write transaction already holds the
  database's one write lock (BEGIN IMMEDIATE), so it is nothing more; on PostgreSQL (READ COMMITTED:
  two transactions that look, see nothing, and insert would both insert) it is a transaction-level
  advisory lock on a key made from `parts`, released at commit or rollback.
- `SessionLock`: held in SHARED mode by every process that drives an exclusive runbook session
  (the one that started it and each that resumed it), for as long as it drives it. On SQLite an
  `flock(LOCK_SH)` on a small file beside the history database; on PostgreSQL
  `pg_try_advisory_lock_shared` on a connection of its own (with TCP keepalives). Both are released
  by the operating system or the server when the holder dies (`kill -9`, a crash, a host lost:
  PostgreSQL notices the closed or timed-out connection), so "is anyone alive driving session S?"
  is `session_driven()`: try the lock EXCLUSIVE and give it back at once; taken means nobody is. Never
  a pid or a heartbeat one process remembers. A PostgreSQL lock's connection lost with a server
  restart is taken again by a keeper thread within KEEP_EVERY seconds (and before any transition).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsdash.core.files import open_private

if TYPE_CHECKING:
    from opsdash.storage.history import History

LOCK_DIR = "runbook-locks"


def backend(history: History) -> str:
    """ "sqlite" or "postgresql": which database this history is on."""
    return history.dialect


def advisory_key(*parts: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks, the same in every process and host."""
    digest = hashlib.sha256("\0".join(("opsdash", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def in_transaction_lock(history: History, *parts: str) -> None:
    """Serialise the rest of the current write transaction with every other process's transaction
    about the same `parts` (see the module's docstring)."""
    if backend(history) == "postgresql":
        history.conn.execute("SELECT pg_advisory_xact_lock(?)", [advisory_key(*parts)])


class Busy(Exception):
    """Another living process holds the lock in a mode that excludes this one."""


# a shared take that collides with another process's probe (an exclusive try given back at once)
# retries for this long before it is called busy
SHARED_RETRY_S = 3.0
# how often a PostgreSQL session lock's connection is asked whether it still lives
KEEP_EVERY = 2.0


def _retrying(attempt: Callable[[], bool]) -> None:
    """Call `attempt` until it returns True; Busy after SHARED_RETRY_S (only a probe collides, and a
    probe gives the lock back at once)."""
    deadline = time.monotonic() + SHARED_RETRY_S
    while not attempt():
        if time.monotonic() > deadline:
            raise Busy
        time.sleep(0.01)


class SessionLock(Protocol):
    def ensure(self) -> None:
        """Still held, or taken again now (its connection died with a server restart)."""

    def release(self) -> None: ...


def _lock_path(history: History, session_id: str) -> Path:
    digest = hashlib.sha256(f"session\0{session_id}".encode()).hexdigest()[:24]
    return history.path.parent / LOCK_DIR / f"{digest}.lock"


def _session_key(session_id: str) -> int:
    return advisory_key("runbook-session", session_id)


def _flock(fd: int, mode: int) -> bool:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


class _FileLock:
    """A shared flock on `runbook-locks/<digest>.lock` beside history.db: per open file, so a probe
    from this very process conflicts with it as one from another process would."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        self.fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            _retrying(lambda: _flock(self.fd, fcntl.LOCK_SH))
        except BaseException:
            os.close(self.fd)
            raise

    def ensure(self) -> None:
        if self.fd < 0:
            raise Busy  # released: never taken again behind the caller's back

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # the lock goes with the descriptor
            self.fd = -1


class _AdvisoryLock:
    """`pg_try_advisory_lock_shared` on a connection of its own (the history connection may be
    closed and reopened): the lock lives exactly as long as this connection, which the server drops
    when the process dies. A keeper thread asks the connection every KEEP_EVERY seconds whether it
    lives, and takes the lock again on a new one when it does not (a server restart)."""

    def __init__(self, url: str, key: int) -> None:
        self.url, self.key = url, key
        self.mutex = threading.Lock()
        self.conn: Any = None
        self.released = threading.Event()
        self._take()
        self.keeper = threading.Thread(target=self._keep, name="opsdash-session-lock", daemon=True)
        self.keeper.start()

    def _take(self) -> None:
        from opsdash.storage.postgres import PgConnection

        # a host that vanishes (power, network) sends no FIN: the server probes the idle connection
        # and drops it, and the lock with it, after about a minute (postgres.SESSION_BOUNDS)
        conn = PgConnection.connect(self.url)
        try:
            _retrying(
                lambda: bool(conn.execute("SELECT pg_try_advisory_lock_shared(?)", [self.key]).fetchone()[0])
            )
        except BaseException:
            conn.close()
            raise
        self.conn = conn

    def _alive(self) -> bool:
        try:
            self.conn.execute("SELECT 1")
        except Exception:
            return False
        return True

    def ensure(self) -> None:
        with self.mutex:
            if self.released.is_set():
                raise Busy
            if self._alive():
                return
            with contextlib.suppress(Exception):
                self.conn.close()
            self._take()

    def _keep(self) -> None:
        while not self.released.wait(KEEP_EVERY):
            with contextlib.suppress(Exception):  # the server is still down: asked again next time
                self.ensure()

    def release(self) -> None:
        with self.mutex:
            if self.released.is_set():
                return
            self.released.set()
            with contextlib.suppress(Exception):  # a connection already gone has released it
                # given back before the connection closes: the server ends a closed connection's
                # backend (and its locks) a moment later, and a probe must not see it still held
                self.conn.execute("SELECT pg_advisory_unlock_shared(?)", [self.key])
            with contextlib.suppress(Exception):
                self.conn.close()


def take_session_lock(history: History, session_id: str) -> SessionLock:
    """This process drives `session_id`: its lock, in shared mode (other drivers hold it too)."""
    if backend(history) == "postgresql":
        return _AdvisoryLock(history.conn.url, _session_key(session_id))  # type: ignore[attr-defined]
    return _FileLock(_lock_path(history, session_id))


def session_driven(history: History, session_id: str) -> bool:
    """Whether a living process (this one included) drives `session_id`: its lock cannot be taken
    exclusively. What is taken is given back at once. On PostgreSQL asked on the history
    connection (inside the caller's write transaction, if any)."""
    if backend(history) == "postgresql":
        key = _session_key(session_id)
        if not history.conn.execute("SELECT pg_try_advisory_lock(?)", [key]).fetchone()[0]:
            return True
        history.conn.execute("SELECT pg_advisory_unlock(?)", [key])
        return False
    path = _lock_path(history, session_id)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # never taken on this machine: nobody drives it
    try:
        return not _flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)  # an exclusive lock taken goes with it


def forget_session_lock(history: History, session_id: str) -> None:
    """A session that ended needs its lock file no more (SQLite)."""
    if backend(history) != "postgresql":
        with contextlib.suppress(OSError):
            _lock_path(history, session_id).unlink()
