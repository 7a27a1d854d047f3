"""Coordination through the database, the same on SQLite and PostgreSQL: the locks that make a
decision of one process the decision of every process (docs/architecture.md, "Many processes,
one record" and "A team: one database").

- `in_transaction_lock(history, *parts)`: inside a write transaction, serialise every process that
  decides about the same thing (an alert key). On SQLite the write transaction already holds the
  database's one write lock (BEGIN IMMEDIATE), so it is nothing more; on PostgreSQL (READ COMMITTED:
  two transactions that look, see nothing, and insert would both insert) it is a transaction-level
  advisory lock on a key made from `parts`, released at commit or rollback.
- `GroupLock`: held by the process that drives an exclusive runbook session, for as long as it lives.
  On SQLite an `flock` on a small file beside the history database; on PostgreSQL
  `pg_try_advisory_lock` on a connection of its own. Both are released by the operating system or
  the server when the holder dies (`kill -9`, a crash, a host lost: PostgreSQL notices the closed
  or timed-out connection), so "is its driver alive?" is "can I take its lock?", never a pid or a
  heartbeat one process remembers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opsdash.core.files import open_private

if TYPE_CHECKING:
    from opsdash.storage.history import History

LOCK_DIR = "runbook-locks"
# the server's TCP keepalives on a lock's connection: idle 30 s, then 3 probes 10 s apart
KEEPALIVES = (("tcp_keepalives_idle", 30), ("tcp_keepalives_interval", 10), ("tcp_keepalives_count", 3))


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


class GroupLock(Protocol):
    def release(self) -> None: ...


class Busy(Exception):
    """Another living process holds the lock."""


class _FileLock:
    """An flock on `runbook-locks/<digest>.lock` beside history.db: per open file, so a second
    attempt in the same process is refused as one from another process would be."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        self.fd = open_private(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self.fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise Busy from None
            raise

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # the lock goes with the descriptor
            self.fd = -1


class _AdvisoryLock:
    """`pg_try_advisory_lock` on a connection of its own (session-level advisory locks are
    re-entrant on one connection, and the history connection may be closed and reopened): the lock
    lives exactly as long as this connection, which the server drops when the process dies."""

    def __init__(self, conn: Any, key: int) -> None:
        self.conn = conn
        try:
            # a host that vanishes (power, network) sends no FIN: the server probes the idle
            # connection and drops it, and the lock with it, after about a minute
            for setting, value in KEEPALIVES:
                conn.execute(f"SET {setting} = {value}")
            held = conn.execute("SELECT pg_try_advisory_lock(?)", [key]).fetchone()[0]
        except BaseException:
            conn.close()
            raise
        if not held:
            conn.close()
            raise Busy

    def release(self) -> None:
        with contextlib.suppress(Exception):  # a connection already gone has released it
            self.conn.close()


def take_group_lock(history: History, group: str, target: str) -> GroupLock:
    """The lock of (group, target), or Busy while a living process holds it."""
    if backend(history) == "postgresql":
        from opsdash.storage.postgres import PgConnection

        url = history.conn.url  # type: ignore[attr-defined]
        return _AdvisoryLock(PgConnection.connect(url), advisory_key("runbook-group", group, target))
    digest = hashlib.sha256(f"{group}\0{target}".encode()).hexdigest()[:24]
    return _FileLock(history.path.parent / LOCK_DIR / f"{digest}.lock")
