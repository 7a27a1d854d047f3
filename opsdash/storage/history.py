"""The one place that opens the history database: `History` owns the connection and hands it to
the repositories, one per table family.

`History` opens (creating the file without ever opening a second descriptor on it), migrates, checks
integrity and runs write transactions (`writing()`: BEGIN IMMEDIATE, joining one already open).
The data is reached through its repositories, `history.runs`, `.checks`, `.alerts`, `.sessions`,
`.webhooks`, `.anchors` and `.trace`, each querying only its own tables over this one connection;
`purge`/`compact` (retention.py) span them all. The schema and its migrations are in schema.py,
the row types in rows.py.

Two backends behind the same seam: SQLite (the default: a file in the data directory, `conn` is
sqlite3's own connection) and PostgreSQL (`History.open(data_dir, database="postgresql://...")`:
a team's shared record; `conn` is postgres.PgConnection, which speaks the same API and SQL text,
see postgres.py). `dialect` says which; `location` is what messages name (a URL's password masked).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar, overload

from opsdash.core.errors import InputError
from opsdash.core.files import LinkRefused, exclusive_lock, open_private
from opsdash.storage import retention
from opsdash.storage.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    import sqlite_utils

    from opsdash.storage.alerts import Alerts
    from opsdash.storage.anchors import Anchors
    from opsdash.storage.checks import Checks
    from opsdash.storage.runs import Runs
    from opsdash.storage.sessions import RunbookSessions
    from opsdash.storage.timeline import Timeline
    from opsdash.storage.trace import Trace
    from opsdash.storage.webhooks import Webhooks

DB_NAME = "history.db"
# PRAGMA quick_check reads the whole file (about a second a gigabyte): once a day, not on every
# open. Between checks a query that reaches a damaged page fails with the same clear message.
INTEGRITY_CHECK_EVERY = timedelta(hours=24)
RECOVERY = "docs/operator-guide.md, 'The history database'"
_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)
R = TypeVar("R")


class _Repository(Generic[R]):
    """`history.<name>`: the repository `module:Class` over this History, made (and its module
    imported) on first use, then kept in the instance like a cached_property."""

    def __init__(self, where: str) -> None:
        self.module, _, self.cls = where.partition(":")
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, history: None, owner: type) -> _Repository[R]: ...
    @overload
    def __get__(self, history: History, owner: type | None = None) -> R: ...
    def __get__(self, history: History | None, owner: type | None = None) -> R | _Repository[R]:
        if history is None:  # on the class: the descriptor itself
            return self
        repository: R = getattr(importlib.import_module(self.module), self.cls)(history)
        history.__dict__[self.name] = repository  # later reads find it there, not here
        return repository


class History:
    """The connection owner. Its repositories are made on first use, so a command imports only
    the ones it reads (`history list`: runs)."""

    runs: _Repository[Runs] = _Repository("opsdash.storage.runs:Runs")
    checks: _Repository[Checks] = _Repository("opsdash.storage.checks:Checks")
    alerts: _Repository[Alerts] = _Repository("opsdash.storage.alerts:Alerts")
    sessions: _Repository[RunbookSessions] = _Repository("opsdash.storage.sessions:RunbookSessions")
    webhooks: _Repository[Webhooks] = _Repository("opsdash.storage.webhooks:Webhooks")
    anchors: _Repository[Anchors] = _Repository("opsdash.storage.anchors:Anchors")
    trace: _Repository[Trace] = _Repository("opsdash.storage.trace:Trace")
    timeline: _Repository[Timeline] = _Repository("opsdash.storage.timeline:Timeline")

    def __init__(
        self,
        path: Path,
        *,
        shared: bool = False,
        read_only: bool = False,
        integrity_check: bool = True,
        busy_timeout: float = 15,
        database: str | None = None,
        reading: bool = False,
    ) -> None:
        """`shared`: the connection may be used from several threads, one at a time (the dashboard's
        runbook executor lives across workers). `read_only`: open without writing anything (a data
        directory opsdash may not write): no migration, no lock file, no integrity bookkeeping.
        `busy_timeout`: seconds to wait for another process's lock before SQLite says busy.
        `integrity_check`: run the daily quick_check if it is due (readers leave it to the next
        recording command: it reads the whole file, and `history list` should not wait for that).
        `database`: a postgresql:// URL: the record is that database, not the file at `path` (which
        still names the data directory: runbook output stays local)."""
        self.path = path
        self.read_only = read_only
        self._db: sqlite_utils.Database | None = None
        self.dialect = "sqlite"
        self.location = str(path)
        if database:
            self._open_postgres(database, read_only=read_only, timeout=busy_timeout, reading=reading)
            return
        if not read_only:
            try:
                create_database_file(path)
                if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
                    # SQLite would open it read-only without a word, and fail at the first write
                    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
            except OSError as exc:
                if exc.errno in _READ_ONLY_ERRNOS:
                    raise InputError(read_only_message(path, exc.strerror)) from None
                raise InputError(f"{path}: cannot open history database ({exc.strerror or exc})") from None
        try:
            if read_only:
                conn = sqlite3.connect(
                    f"{path.resolve().as_uri()}?mode=ro",
                    uri=True,
                    timeout=busy_timeout,
                    check_same_thread=not shared,
                )
            else:
                # every write transaction takes the write lock at BEGIN, waiting its turn on the
                # busy timeout: a deferred one that read first fails at once with "database is
                # locked" when another process wrote meanwhile
                conn = sqlite3.connect(
                    path, timeout=busy_timeout, check_same_thread=not shared, isolation_level="IMMEDIATE"
                )
            self.conn = conn
        except sqlite3.DatabaseError as exc:
            raise self.explain(exc) from None
        try:
            if read_only:
                self._check_readable()
            else:
                # one opener at a time sets WAL and migrates (two first opens must not race to create
                # the schema); writers then simply queue on SQLite's busy timeout
                with exclusive_lock(Path(f"{path}.lock")):
                    if (
                        self.schema_version == 0
                        and not self.conn.execute("SELECT 1 FROM sqlite_master").fetchone()
                    ):
                        # only before the first table: later it takes a full VACUUM (see compact)
                        self.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
                    self.conn.execute("PRAGMA journal_mode = WAL")
                    self._migrate()
                    if integrity_check:
                        self._check_integrity_if_due()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise self.explain(exc) from None
        except BaseException:
            self.conn.close()
            raise

    def _open_postgres(self, url: str, *, read_only: bool, timeout: float, reading: bool = False) -> None:
        """`reading`: a command that only reads; a database with no schema yet is then left as it is
        (History.open reads it as an empty history), as a missing file is never created to be read."""
        from opsdash.storage import postgres

        self.dialect = "postgresql"
        self.location = postgres.shown(url)
        if not postgres.is_database_url(url):
            raise InputError(
                f"database {self.location!r}: expected a postgresql:// URL "
                "(postgresql://user:password@host:5432/dbname)"
            )
        try:
            self.conn = postgres.PgConnection.connect(url, connect_timeout=timeout, lock_timeout=timeout)  # type: ignore[assignment]
        except sqlite3.DatabaseError as exc:
            raise self.explain(exc) from None
        try:
            version = postgres.schema_version(self.conn)  # type: ignore[arg-type]
            if reading and version == 0:
                self.conn.close()
                self.conn = None  # type: ignore[assignment]
                return
            if read_only:
                self._check_readable()
            elif version != SCHEMA_VERSION:
                postgres.migrate(self.conn)  # type: ignore[arg-type]  # (a newer one: refused below)
                self._check_readable()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise self.explain(exc) from None
        except BaseException:
            self.conn.close()
            raise

    @classmethod
    def open(
        cls, data_dir: Path, *, shared: bool = False, write: bool = True, database: str | None = None
    ) -> History:
        """`write=False` for commands that only read: a data directory opsdash may not write (or one
        with no history yet) is read as it is, never created or migrated. `database`: a
        postgresql:// URL to keep the record in instead of the data directory's file."""
        path = data_dir / DB_NAME
        if database:
            history = cls(path, shared=shared, database=database, reading=not write)
            return cls.empty(path) if history.conn is None else history
        if not write:
            if not path.exists():
                return cls.empty(path)
            if not (os.access(data_dir, os.W_OK) and os.access(path, os.W_OK)):
                return cls(path, shared=shared, read_only=True)
            try:
                return cls(path, shared=shared, integrity_check=False)
            except InputError as exc:
                if "read-only" not in str(exc):
                    raise
                return cls(path, shared=shared, read_only=True)
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            if exc.errno in _READ_ONLY_ERRNOS:
                raise InputError(read_only_message(path, exc.strerror)) from None
            raise InputError(f"{data_dir}: cannot create the data directory ({exc.strerror})") from None
        return cls(path, shared=shared)

    @classmethod
    def empty(cls, path: Path) -> History:
        """No history recorded yet, read without creating anything: an empty in-memory database."""
        history = cls.__new__(cls)
        history.path, history.read_only = path, True
        history.dialect, history.location = "sqlite", str(path)
        history.conn, history._db = sqlite3.connect(":memory:", check_same_thread=False), None
        history._migrate()
        return history

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for the schema, migrations and small tables;
        imported on first use (it costs a tenth of a second), so reading history never loads it.
        SQLite only: a repository that must work on both backends uses `conn`."""
        if self.dialect != "sqlite":
            raise RuntimeError("sqlite-utils works on SQLite only; use history.conn")
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def close(self) -> None:
        sessions = self.__dict__.get("sessions")
        if sessions is not None:  # park the runbook sessions this process drives, release their locks
            with contextlib.suppress(Exception):
                sessions.close()
        self.conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if self.dialect != "sqlite" and exc is not None:
            self.conn.rollback()  # a PostgreSQL transaction left open by the failure
        self.close()
        if isinstance(exc, sqlite3.DatabaseError):  # a damaged page met mid-query, a full disk, ...
            raise self.explain(exc) from None

    def explain(self, exc: sqlite3.DatabaseError) -> InputError:
        """An SQLite error as one sentence naming the file and what to do."""
        if self.dialect == "postgresql":
            return self._explain_postgres(exc)
        text = str(exc)
        if "malformed" in text or "not a database" in text or "encrypted" in text or "corrupt" in text:
            return InputError(corrupt_message(self.path, text))
        if "readonly" in text or "read-only" in text:
            return InputError(read_only_message(self.path, text))
        if "disk is full" in text:
            return InputError(
                f"{self.path}: the disk is full ({text}); nothing was half-written: free some space and "
                "run again"
            )
        if "locked" in text or "busy" in text:
            return InputError(f"{self.path}: the history database is busy ({text}); try again")
        return InputError(f"{self.path}: cannot open history database ({text})")

    def _explain_postgres(self, exc: sqlite3.DatabaseError) -> InputError:
        """A PostgreSQL error (its text already masked by postgres.py) as one sentence naming the
        database (password masked) and what to do."""
        text = " ".join(str(exc).split())
        state = getattr(exc, "sqlstate", None)
        where = f"database {self.location}"
        if state is None:  # refused while connecting: libpq's words say why
            if "password authentication failed" in text or "no password supplied" in text:
                state = "28P01"
            elif "database" in text and "does not exist" in text:
                state = "3D000"
        if state is not None and state.startswith("28"):
            return InputError(
                f"{where}: the server refused the credentials ({text}); check the user and password"
            )
        if state == "3D000":
            return InputError(f"{where}: no such database ({text}); create it (createdb) first")
        # a server's answer (a lock timeout, 55P03) is not a connection's failure, whatever its words
        if state is None or state.startswith("08"):
            return InputError(
                f"{where}: cannot connect ({text}); check the URL (OPSDASH_DATABASE_URL or "
                "[opsdash] database) and that the server is running and reachable"
            )
        if state.startswith("42501") or "permission denied" in text:
            return InputError(f"{where}: permission denied ({text}); the user needs CREATE on its schema")
        if state in ("53100", "53200"):
            return InputError(
                f"{where}: the server is out of space or memory ({text}); nothing was half-written"
            )
        if state in ("40001", "40P01", "55P03"):
            return InputError(f"{where}: the database is busy ({text}); try again")
        return InputError(f"{where}: {text}")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction that holds the write lock from its first statement (BEGIN
        IMMEDIATE), so a read inside it never has to be upgraded after another writer got in."""
        conn = self.conn
        if conn.in_transaction:  # inside a caller's transaction: its commit is this one's
            yield
            return
        if self.dialect == "postgresql":
            conn.begin_writing()  # type: ignore[attr-defined]
        else:
            conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.rollback()  # nothing to do if SQLite already rolled it back
            raise
        conn.commit()

    def _migrate(self) -> None:
        """Every pending step in one transaction: a failure (a full disk) rolls all of it back, so the
        database is never half-made and the next open simply runs them again."""
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{self.path}: history schema v{version} is newer than this opsdash understands "
                f"(v{SCHEMA_VERSION}); upgrade opsdash"
            )
        if version == SCHEMA_VERSION:
            return
        from opsdash.storage.schema import MIGRATIONS

        with self.db.atomic():
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](self.db)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_readable(self) -> None:
        version = self.schema_version
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{self.location}: history schema v{version} is newer than this opsdash understands "
                f"(v{SCHEMA_VERSION}); upgrade opsdash"
            )
        if version < SCHEMA_VERSION:
            raise InputError(
                f"{self.location}: history schema v{version} is older than this opsdash's "
                f"(v{SCHEMA_VERSION}) and the data directory is read-only, so it cannot be upgraded; "
                "run opsdash once with write access"
            )

    def _check_integrity_if_due(self, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'checked_at'").fetchone()
        try:
            last = datetime.fromisoformat(row[0]) if row else None
        except ValueError:
            last = None
        if last is not None and timedelta(0) <= now - last < INTEGRITY_CHECK_EVERY:
            return
        self.check_integrity()
        with self.conn:
            self.conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('checked_at', ?)",
                [now.isoformat(timespec="seconds")],
            )

    def check_integrity(self) -> None:
        """PRAGMA quick_check: raises InputError naming the file and the recovery when it is damaged.
        (PostgreSQL checks its own pages: nothing to do there.)"""
        if self.dialect != "sqlite":
            return
        problems = [str(r[0]) for r in self.conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise InputError(corrupt_message(self.path, "; ".join(problems)[:200]))

    @property
    def schema_version(self) -> int:
        if self.dialect == "postgresql":
            from opsdash.storage import postgres

            return postgres.schema_version(self.conn)  # type: ignore[arg-type]
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ retention

    def purge(
        self,
        older_than_days: int,
        now: datetime | None = None,
        *,
        runs: int = retention.BATCH_RUNS,
        on_batch: Callable[[retention.Batch], None] | None = None,
    ) -> int:
        """Delete what is older than the retention period from every table, batch after batch (each
        its own short transaction), and give the space back; how many runs went (retention.py says
        what is kept whatever its age)."""
        return retention.purge(self, older_than_days, now, runs=runs, on_batch=on_batch)

    def purge_batch(
        self, older_than_days: int, now: datetime | None = None, *, runs: int = retention.BATCH_RUNS
    ) -> retention.Batch:
        """One batch of the purge: the oldest `runs` runs (and what else is as old) in one short
        transaction; `.done` once nothing older than the retention period is left. An SQLite
        failure (busy past the timeout, a full disk) is an InputError saying so: the batch rolled
        back whole, and the next one starts where it did."""
        try:
            return retention.purge_batch(self, older_than_days, now, runs=runs)
        except sqlite3.DatabaseError as exc:
            raise self.explain(exc) from None

    def vacuum_step(self, pages: int = retention.VACUUM_PAGES) -> retention.Vacuumed:
        """Give at most `pages` free pages back in one short transaction (`.left`: still free)."""
        try:
            return retention.vacuum_step(self, pages)
        except sqlite3.DatabaseError as exc:
            raise self.explain(exc) from None

    def reclaim(self) -> None:
        retention.reclaim(self)

    def compact(self) -> int:
        """Rebuild the file with incremental auto-vacuum; the bytes given back."""
        return retention.compact(self)


def create_database_file(path: Path) -> None:
    """Make `path` an empty 0600 file if it does not exist, refusing a symbolic link, without ever
    opening the database file itself.

    SQLite keeps its locks as POSIX advisory locks, and closing *any* descriptor of a file drops
    every such lock the process holds on it: a connection of this process (another thread's, the
    dashboard's runbook store) would silently lose its locks, another process would think itself
    alone and check-point or delete the WAL under it, and the database corrupts ("How To Corrupt an
    SQLite Database File", 2.2). So the file is made under a temporary name, closed, and only then
    linked into place; a file that already exists is only looked at (lstat)."""
    try:
        if stat.S_ISLNK(os.lstat(path).st_mode):
            raise LinkRefused(errno.ELOOP, f"{path} is a symbolic link; opsdash does not write through links")
        return
    except FileNotFoundError:
        pass
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.new")
    os.close(open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL))  # nothing can lock this inode yet
    try:
        os.link(temp, path)  # atomic, and never replaces: of two first openers one makes the file
    except FileExistsError:
        pass
    finally:
        os.unlink(temp)
    if stat.S_ISLNK(os.lstat(path).st_mode):  # planted between the two calls
        raise LinkRefused(errno.ELOOP, f"{path} is a symbolic link; opsdash does not write through links")


def read_only_message(path: Path, why: str | None) -> str:
    return (
        f"{path.parent}: the data directory is read-only ({why or 'not writable'}); this command "
        "records history and cannot run here. 'opsdash history list/show/diff' still read it; "
        "pass --no-history to run without recording, or set OPSDASH_DATA_DIR to a writable directory"
    )


def corrupt_message(path: Path, detail: str) -> str:
    return (
        f"{path}: the history database is corrupt ({detail}). Move it aside and run again to start "
        f"a new one (mv '{path}' '{path}.corrupt'); to keep what is still readable: "
        f"sqlite3 '{path}.corrupt' .recover > history-salvaged.sql. See {RECOVERY}"
    )
