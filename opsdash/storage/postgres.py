"""PostgreSQL behind the storage seam: a connection that speaks the part of sqlite3's API the
repositories use, over psycopg 3, so every repository keeps one SQL text for both backends.

The seam (what History and the repositories rely on, on either backend):

- `history.conn.execute(sql, params)` / `.executemany(sql, rows)` with `?` placeholders, returning a
  cursor with `fetchone`, `fetchall`, iteration, `rowcount`, `description` and (after an INSERT
  into a table whose key is an integer `id`) `lastrowid`;
- `history.conn.in_transaction`, `.commit()`, `.rollback()`, and `with history.conn:` (a
  transaction: begun if none is open, committed at the end, joined when one is);
- `history.writing()`: a write transaction that holds the database's one write lock from its first
  statement. SQLite's BEGIN IMMEDIATE is, on PostgreSQL, BEGIN plus a transaction-scoped advisory
  lock (`WRITE_LOCK`), so a check-then-insert (one incident per key, one holder per exclusive
  group) is decided by exactly one writer on any host, as it is by one process on one file;
- `history.dialect`: "sqlite" or "postgresql", for the few places that differ in more than text
  (retention's vacuum, the schema version's home);
- every error is an `sqlite3.DatabaseError` (here `PgError`, with the password masked), so an
  `except sqlite3.Error` in a repository holds on both.

`translate()` rewrites a statement once (cached) from SQLite's dialect: placeholders, INSERT OR
IGNORE / OR REPLACE (ON CONFLICT on the table's key), `rowid` (PostgreSQL's ctid), `IS ?`,
json_extract / json_remove, group_concat, char(), the planner hint `+column`, CAST to INTEGER
(SQLite truncates). SQLite connections are never wrapped: its hot paths run on sqlite3 itself.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from opsdash.core.secrets import mask_url, redactor, url_secrets
from opsdash.storage.schema import IDENTITY_TABLES, STEPS, TABLE_KEYS, Change

if TYPE_CHECKING:
    import psycopg

SCHEMES = ("postgresql", "postgres")
# pg_advisory_xact_lock keys: opsdash's writers, and its migrations (two hosts upgrading at once)
WRITE_LOCK = 0x6F70_7364_0001
MIGRATE_LOCK = 0x6F70_7364_0002
CONNECT_TIMEOUT = 10  # seconds: an unreachable server is an error, not a hang
LOCK_TIMEOUT = 15.0  # seconds a write waits for the team's write lock: SQLite's busy timeout
# a process stopped inside a transaction (Ctrl-Z, a debugger) or a host gone mid-way must not hold
# the team's write lock for the 2 h the kernel's keepalives take: the server ends such a session
SESSION_BOUNDS = {
    "idle_in_transaction_session_timeout": "120s",
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}


def is_database_url(value: str | None) -> bool:
    return bool(value) and str(value).split("://", 1)[0].lower() in SCHEMES and "://" in str(value)


def shown(url: str) -> str:
    """The URL as it may be printed: its password masked."""
    return mask_url(url)


class PgError(sqlite3.DatabaseError):
    """A PostgreSQL error as the storage layer raises it: an sqlite3.DatabaseError (so one except
    clause holds on both backends), its text with the URL's credentials masked. `sqlstate` is
    PostgreSQL's error code (None for a connection that never started)."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _pg_error(exc: Exception, url: str = "") -> PgError:
    text = str(exc).strip() or type(exc).__name__
    for secret in url_secrets(url) if url else []:
        text = text.replace(secret, "****")
    return PgError(redactor.redact(text), getattr(exc, "sqlstate", None))


# ------------------------------------------------------------------ translating SQLite's dialect

# TABLE_KEYS: the key of each table an INSERT OR REPLACE may hit (ON CONFLICT needs it named);
# IDENTITY_TABLES: those whose key is an identity `id` (an INSERT there returns it, for `lastrowid`)

_INSERT_OR = re.compile(r"^\s*INSERT\s+OR\s+(IGNORE|REPLACE)\s+INTO\s+(\w+)\s*\(([^)]*)\)", re.I)
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+(\w+)\b", re.I)
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bBEGIN\s+(IMMEDIATE|DEFERRED|EXCLUSIVE)\b", re.I), "BEGIN"),
    (re.compile(r"\browid\b"), "ctid"),
    (re.compile(r"\s+INDEXED\s+BY\s+\w+", re.I), ""),  # SQLite's planner pin; PostgreSQL plans alone
    (re.compile(r"\bIS\s+\?", re.I), "IS NOT DISTINCT FROM ?"),
    # the repository drops the key itself (Runs); text is returned as it was written
    (re.compile(r"\bjson_remove\((\w+(?:\.\w+)?),\s*'\$\.\w+'\)"), r"\1"),
    (re.compile(r"\bjson_extract\((\w+(?:\.\w+)?),\s*'\$\.(\w+)'\)"), r"(\1::json ->> '\2')"),
    (re.compile(r"\bgroup_concat\((DISTINCT\s+)?([\w.]+)\)", re.I), r"string_agg(\1\2, ',')"),
    (re.compile(r"\bchar\((\d+)\)"), r"chr(\1)"),
    (re.compile(r"(?<=[\s(,])\+(?=[a-z_])"), ""),  # SQLite's "do not use this index" hint
    (re.compile(r"\bCAST\(([^()]*)\s+AS\s+INTEGER\)", re.I), r"CAST(trunc(\1) AS BIGINT)"),
)


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # sqlite3's named placeholder, :since


@lru_cache(maxsize=512)
def translate(sql: str, returning_id: bool = False) -> str:
    """One statement in SQLite's dialect as PostgreSQL (psycopg's `%s` placeholders)."""
    out = sql
    conflict = ""
    match = _INSERT_OR.match(out)
    if match:
        how, table, columns = match.group(1).upper(), match.group(2), match.group(3)
        out = out[: match.start()] + f"INSERT INTO {table} ({columns})" + out[match.end() :]
        if how == "IGNORE":
            conflict = " ON CONFLICT DO NOTHING"
        else:
            key = TABLE_KEYS.get(table)
            if not key:
                raise PgError(f"INSERT OR REPLACE into {table}: its key is not known")
            names = [c.strip() for c in columns.split(",")]
            sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in names if c not in key)
            conflict = f" ON CONFLICT ({', '.join(key)}) " + (
                f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
            )
    for pattern, replacement in _REWRITES:
        out = pattern.sub(replacement, out)
    parts = out.split("'")  # placeholders and percent signs outside string literals
    for i in range(0, len(parts), 2):
        parts[i] = _NAMED.sub(r"%(\1)s", parts[i].replace("%", "%%").replace("?", "%s"))
    for i in range(1, len(parts), 2):
        parts[i] = parts[i].replace("%", "%%")
    out = "'".join(parts).rstrip().rstrip(";") + conflict
    if returning_id:
        out += " RETURNING id"
    return out


def _returns_id(sql: str) -> bool:
    match = _INSERT_INTO.match(sql)
    return bool(match and match.group(1) in IDENTITY_TABLES and "RETURNING" not in sql.upper())


# ------------------------------------------------------------------ the connection


class PgCursor:
    """What sqlite3.Cursor offers that the repositories read."""

    def __init__(self, cursor: psycopg.Cursor[Any], lastrowid: int | None = None) -> None:
        self._cursor = cursor
        self.lastrowid = lastrowid

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def description(self) -> Any:
        return self._cursor.description

    def fetchone(self) -> Any:
        return self._cursor.fetchone() if self._cursor.description else None

    def fetchall(self) -> list[Any]:
        return self._cursor.fetchall() if self._cursor.description else []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


class PgConnection:
    """A psycopg connection in autocommit mode, with sqlite3's transaction API on top: a statement
    outside a transaction commits alone; `with conn:` and History.writing() open one."""

    dialect = "postgresql"

    def __init__(self, raw: psycopg.Connection[Any], url: str) -> None:
        self.raw = raw
        self.url = url
        self._entered: list[bool] = []

    @classmethod
    def connect(
        cls, url: str, *, connect_timeout: float = CONNECT_TIMEOUT, lock_timeout: float = LOCK_TIMEOUT
    ) -> PgConnection:
        """A connection with opsdash's bounds on waiting (`SESSION_BOUNDS`), each unless the URL
        (`?options=-c lock_timeout=...`), the role or the server's configuration sets its own."""
        import psycopg

        try:
            raw = psycopg.connect(
                url, autocommit=True, connect_timeout=max(1, round(connect_timeout)), prepare_threshold=5
            )
            bounds = {**SESSION_BOUNDS, "lock_timeout": f"{max(1, round(lock_timeout * 1000))}ms"}
            # each only where nothing chose a value (source 'default': not the URL's options, the
            # role, the database or the server's configuration); one round trip for all of them
            raw.execute(
                "SELECT set_config(s.name, v.value, false) FROM pg_settings s JOIN (VALUES "  # noqa: S608
                + ", ".join("(%s, %s)" for _ in bounds)
                + ") AS v(name, value) ON v.name = s.name WHERE s.source = 'default'",
                [item for pair in bounds.items() for item in pair],
            )
        except psycopg.Error as exc:
            raise _pg_error(exc, url) from None
        except (ValueError, TypeError) as exc:  # a URL libpq cannot parse
            raise _pg_error(exc, url) from None
        return cls(raw, url)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> PgCursor:
        import psycopg

        returning = _returns_id(sql)
        text = translate(sql, returning)
        # with no parameters psycopg sends the text as it is (the simple protocol, which also takes
        # two statements at once): only then may a doubled %% stay undone
        args = params if params else (() if "%" in text else None)
        try:
            cursor = self.raw.execute(text, args)
            if returning:
                row = cursor.fetchone()
                return PgCursor(cursor, int(row[0]) if row else None)
            return PgCursor(cursor)
        except psycopg.Error as exc:
            raise _pg_error(exc, self.url) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> PgCursor:
        import psycopg

        try:
            cursor = self.raw.cursor()
            rows = rows if isinstance(rows, list) else list(rows)
            if len(rows) == 1:  # one statement: no pipeline to enter and leave
                cursor.execute(translate(sql), rows[0])
            elif rows:  # nothing to send: no pipeline round trip either
                cursor.executemany(translate(sql), rows)  # pipelined
            return PgCursor(cursor)
        except psycopg.Error as exc:
            raise _pg_error(exc, self.url) from None

    def copy_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        *,
        types: Sequence[str] | None = None,
    ) -> int:
        """COPY rows in (the bulk path: a sweep's check results, a migration); how many. Table and
        column names come from code. With `types` (each column's PostgreSQL type) the COPY is
        binary: the server parses no text and psycopg dumps each value by its column's type (a
        tenth faster a sweep); a value of another type is then an error, not a conversion."""
        import psycopg

        count = 0
        binary = " (FORMAT BINARY)" if types else ""
        try:
            with (
                self.raw.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN{binary}") as copy,
            ):
                if types:
                    copy.set_types(list(types))
                for row in rows:
                    copy.write_row(row)
                    count += 1
        except psycopg.Error as exc:
            raise _pg_error(exc, self.url) from None
        except (TypeError, ValueError, OverflowError) as exc:  # a value its column's type cannot hold
            raise PgError(f"COPY {table}: row {count + 1}: {redactor.redact(str(exc))}") from None
        return count

    def commit(self) -> None:
        if self.in_transaction:
            self.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            with contextlib.suppress(PgError):  # the connection is gone: nothing left to roll back
                self.execute("ROLLBACK")

    def close(self) -> None:
        self.raw.close()

    def __enter__(self) -> PgConnection:
        began = not self.in_transaction
        if began:
            self.execute("BEGIN")
        self._entered.append(began)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if not self._entered.pop():
            return  # joined a caller's transaction: its end is this one's
        if kind is None:
            self.commit()
        else:
            self.rollback()

    def begin_writing(self) -> None:
        """BEGIN IMMEDIATE's equivalent: a transaction holding opsdash's one write lock. Not got
        (a lock_timeout, a cancel): the transaction is rolled back, as SQLite's busy BEGIN leaves
        none open, so the connection's next write starts clean instead of failing as aborted."""
        try:
            self.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")  # one round trip
        except PgError:
            self.rollback()
            raise


# ------------------------------------------------------------------ the schema on PostgreSQL


def migrate(conn: PgConnection, steps: Sequence[Sequence[Change]] = STEPS) -> int:
    """Every pending step in one transaction under an advisory lock (two hosts upgrading at once:
    the second waits, then finds nothing to do). Returns the version the database was at."""
    with conn:
        conn.execute(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
        conn.execute("CREATE TABLE IF NOT EXISTS opsdash_schema (version BIGINT NOT NULL)")
        row = conn.execute("SELECT version FROM opsdash_schema").fetchone()
        if row is None:
            conn.execute("INSERT INTO opsdash_schema (version) VALUES (0)")
        version = int(row[0]) if row else 0
        if version >= len(steps):
            return version
        for step in steps[version:]:
            for change in step:
                for statement in change.postgres():
                    conn.execute(statement)
        conn.execute("UPDATE opsdash_schema SET version = ?", [len(steps)])
    return version


def schema_version(conn: PgConnection) -> int:
    """The schema's version (0: no schema yet), in one round trip (outside a transaction: a
    missing table fails only this statement)."""
    try:
        found = conn.execute("SELECT version FROM opsdash_schema").fetchone()
    except PgError as exc:
        if exc.sqlstate != "42P01":  # undefined_table: nothing made yet
            raise
        return 0
    return int(found[0]) if found else 0
