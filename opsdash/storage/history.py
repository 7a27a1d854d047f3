"""The one place that opens the history database.

Runs and their findings are kept with secrets only as fingerprints; every text column passes through
the redactor on its way in, so a secret cannot be stored even if a caller slips one into a detail.
A run's check results live only in check_results (its summary in `runs` stays small), so listing a
year of runs never reads them. The schema and its migrations are in schema.py.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsdash.core.errors import InputError
from opsdash.core.files import LinkRefused, exclusive_lock, open_private
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.secrets import fingerprint, redactor
from opsdash.storage.rows import AlertRow, Anchor, CheckRow, DeliveryRow, EnvKey, RunRow, rows_as
from opsdash.storage.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    import sqlite_utils

    from opsdash.core.envfiles import EnvSnapshot
    from opsdash.core.health.model import CheckResult

DB_NAME = "history.db"
# PRAGMA quick_check reads the whole file (about a second a gigabyte): once a day, not on every
# open. Between checks a query that reaches a damaged page fails with the same clear message.
INTEGRITY_CHECK_EVERY = timedelta(hours=24)
# A database an older opsdash made without auto_vacuum is converted by one full VACUUM; retention
# does that itself below this size (about a second), above it `opsdash history compact` does.
AUTO_COMPACT_BYTES = 64 * 1024 * 1024
RECOVERY = "docs/operator-guide.md, 'The history database'"
_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS)

RUN_COLUMNS = "run_id, kind, target, operator, started_at, duration_ms, verdict, counts"
CHECK_COLUMNS = (
    "run_id",
    "check_name",
    "kind",
    "target",
    "started_at",
    "severity",
    "sustained",
    "error_class",
    "summary",
    "latency_ms",
    "duration_ms",
    "attempts",
    "hint",
    "runbook",
    "phases",
    "conditions",
    "metrics",
    "facts",
    "facts_id",
    "findings",
)
_INSERT_CHECK = (
    f"INSERT INTO check_results ({', '.join(CHECK_COLUMNS)}) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join('?' for _ in CHECK_COLUMNS)})"
)
# facts that change with every probe stay with the row; the rest are shared (see _share_facts)
_OWN_FACT_SUFFIXES = ("_days_left",)
_SHARED_CACHE_MAX = 10_000
_CHECK_TEXT = tuple(
    CHECK_COLUMNS.index(c)
    for c in ("target", "summary", "hint", "conditions", "facts", "facts_id", "findings")
)
_FACTS_ID, _STARTED = CHECK_COLUMNS.index("facts_id"), CHECK_COLUMNS.index("started_at")


class History:
    def __init__(
        self, path: Path, *, shared: bool = False, read_only: bool = False, integrity_check: bool = True
    ) -> None:
        """`shared`: the connection may be used from several threads, one at a time (the dashboard's
        runbook executor lives across workers). `read_only`: open without writing anything (a data
        directory opsdash may not write): no migration, no lock file, no integrity bookkeeping.
        `integrity_check`: run the daily quick_check if it is due (readers leave it to the next
        recording command: it reads the whole file, and `history list` should not wait for that)."""
        self.path = path
        self.read_only = read_only
        self._shared: dict[bytes, tuple[int, str]] = {}  # shared facts: digest -> (id, last_used)
        self._db: sqlite_utils.Database | None = None
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
                    f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=15, check_same_thread=not shared
                )
            else:
                # every write transaction takes the write lock at BEGIN, waiting its turn on the
                # busy timeout: a deferred one that read first fails at once with "database is
                # locked" when another process wrote meanwhile
                conn = sqlite3.connect(
                    path, timeout=15, check_same_thread=not shared, isolation_level="IMMEDIATE"
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

    @classmethod
    def open(cls, data_dir: Path, *, shared: bool = False, write: bool = True) -> History:
        """`write=False` for commands that only read: a data directory opsdash may not write (or one
        with no history yet) is read as it is, never created or migrated."""
        path = data_dir / DB_NAME
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
        history.path, history.read_only, history._shared = path, True, {}
        history.conn, history._db = sqlite3.connect(":memory:", check_same_thread=False), None
        history._migrate()
        return history

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for the schema, migrations and small tables;
        imported on first use (it costs a tenth of a second), so reading history never loads it."""
        if self._db is None:
            import sqlite_utils

            self._db = sqlite_utils.Database(self.conn)
        return self._db

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self.close()
        if isinstance(exc, sqlite3.DatabaseError):  # a damaged page met mid-query, a full disk, ...
            raise self.explain(exc) from None

    def explain(self, exc: sqlite3.DatabaseError) -> InputError:
        """An SQLite error as one sentence naming the file and what to do."""
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

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction that holds the write lock from its first statement (BEGIN
        IMMEDIATE), so a read inside it never has to be upgraded after another writer got in."""
        conn = self.conn
        if conn.in_transaction:  # inside a caller's transaction: its commit is this one's
            yield
            return
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
                f"{self.path}: history schema v{version} is newer than this opsdash understands "
                f"(v{SCHEMA_VERSION}); upgrade opsdash"
            )
        if version < SCHEMA_VERSION:
            raise InputError(
                f"{self.path}: history schema v{version} is older than this opsdash's (v{SCHEMA_VERSION}) "
                "and the data directory is read-only, so it cannot be upgraded; run opsdash once with "
                "write access"
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
        """PRAGMA quick_check: raises InputError naming the file and the recovery when it is damaged."""
        problems = [str(r[0]) for r in self.conn.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise InputError(corrupt_message(self.path, "; ".join(problems)[:200]))

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ writing

    def record(
        self,
        report: Report,
        *,
        operator: str,
        env: EnvSnapshot | None = None,
        is_secret: Callable[[str], bool] = lambda _k: False,
        results: Sequence[CheckResult] | None = None,
    ) -> None:
        """A run, its findings, its env fingerprints and (given `results`) its check results, in one
        transaction. The summary's `checks` are not copied into `runs`: they are the run's rows in
        check_results (pass `results`, or call record_checks with them)."""
        clean = redactor.redact
        summary = {k: v for k, v in report.summary.items() if k != "checks"}
        with self.writing():
            self.conn.execute(
                "INSERT INTO runs (run_id, kind, target, operator, started_at, duration_ms, verdict, counts, "
                "summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    report.run_id,
                    report.kind,
                    clean(report.target),
                    clean(operator),
                    report.started_at,
                    report.duration_ms,
                    report.verdict.value,
                    json.dumps(report.counts()),
                    clean(_compact(summary) or "{}"),
                ],
            )
            self.conn.executemany(
                "INSERT INTO findings (run_id, rule, severity, category, subject, title, detail, "
                "remediation, runbook, evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        report.run_id,
                        f.rule,
                        f.severity.value,
                        f.category,
                        clean(f.subject),
                        clean(f.title),
                        clean(f.detail),
                        clean(f.remediation),
                        f.runbook,
                        clean(json.dumps(dict(f.evidence))),
                    )
                    for f in report.findings
                ],
            )
            if env is not None:
                self.conn.executemany(
                    "INSERT INTO env_keys (run_id, key, source, fingerprint, secret) VALUES (?, ?, ?, ?, ?)",
                    [
                        (report.run_id, key, item.source, fingerprint(item.value), int(is_secret(key)))
                        for key, item in env.values.items()
                    ],
                )
            if results:
                self._insert_checks(report.run_id, results, None)

    def record_checks(
        self, run_id: str, results: Iterable[CheckResult], sustained: Mapping[str, Severity] | None = None
    ) -> None:
        with self.writing():
            self._insert_checks(run_id, results, sustained)

    def _insert_checks(
        self, run_id: str, results: Iterable[CheckResult], sustained: Mapping[str, Severity] | None
    ) -> None:
        """Plain executemany: sqlite-utils' insert_all (dicts, 76-row chunks, a savepoint each) ran
        at 0.43x of it; benchmarks/history.py holds this path against raw sqlite3."""
        rows: list[tuple[Any, ...]] = [
            (
                run_id,
                r.name,
                r.kind,
                r.target,
                r.started_at,
                r.severity.value,
                sustained.get(r.name, r.severity).value if sustained else r.severity.value,
                r.error_class.value if r.error_class else None,
                r.summary,
                r.metrics.get("response_time_ms", r.duration_ms),
                round(r.duration_ms, 1),
                r.attempts,
                r.hint,
                r.runbook,
                _compact({k: round(v, 2) for k, v in r.phases.items()}),
                _compact([c.to_dict() for c in r.conditions]),
                _compact(r.metrics),
                *_split_facts(r.facts),
                _compact([f.to_dict() for f in r.findings]),
            )
            for r in results
        ]
        rows = _redacted(rows, _CHECK_TEXT)  # before sharing: a body is stored as it will be read
        ids = self._share_facts({(row[_FACTS_ID], row[_STARTED]) for row in rows if row[_FACTS_ID]})
        self.conn.executemany(
            _INSERT_CHECK,
            [(*row[:_FACTS_ID], ids.get(row[_FACTS_ID]), *row[_FACTS_ID + 1 :]) for row in rows],
        )

    def _share_facts(self, uses: set[tuple[str, str]]) -> dict[str, int]:
        """The id of each shared-facts body (inserted when new). `last_used` is kept within a day of
        the newest row that uses a body, so retention can drop bodies no row can still refer to
        without a scan of check_results (see purge)."""
        newest: dict[str, str] = {}
        for body, at in uses:
            newest[body] = max(at, newest.get(body, ""))
        cache = self._shared
        if len(cache) > _SHARED_CACHE_MAX:
            cache.clear()
        digests = {body: hashlib.blake2b(body.encode(), digest_size=16).digest() for body in newest}
        unknown = [d for d in digests.values() if d not in cache]
        for start in range(0, len(unknown), 500):
            part = unknown[start : start + 500]
            for id_, digest, used in self.conn.execute(
                "SELECT id, digest, last_used FROM shared_facts "  # noqa: S608 - placeholders only
                f"WHERE digest IN ({', '.join('?' * len(part))})",
                part,
            ):
                cache[bytes(digest)] = (int(id_), _day_after(str(used)))
        ids: dict[str, int] = {}
        for body, digest in digests.items():
            at, known = newest[body], cache.get(digest)
            if known is not None and at <= known[1]:  # used within a day of this row: nothing to write
                ids[body] = known[0]
                continue
            if known is not None:
                cursor = self.conn.execute(
                    "UPDATE shared_facts SET last_used = ? WHERE id = ? AND digest = ?",
                    [at, known[0], digest],
                )
                if cursor.rowcount != 1:  # retention in another process dropped it: store it again
                    cursor = self.conn.execute(
                        "INSERT INTO shared_facts (digest, body, last_used) VALUES (?, ?, ?)",
                        [digest, body, at],
                    )
                    known = (int(cursor.lastrowid or 0), at)
            else:
                cursor = self.conn.execute(
                    "INSERT INTO shared_facts (digest, body, last_used) VALUES (?, ?, ?)", [digest, body, at]
                )
                known = (int(cursor.lastrowid or 0), at)
            cache[digest] = (known[0], _day_after(at))
            ids[body] = known[0]
        return ids

    def _check_rows(
        self, where: str, args: Sequence[Any], order: str, limit: int | None = None
    ) -> list[CheckRow]:
        cursor = self.conn.execute(
            "SELECT c.*, s.body AS shared_facts FROM check_results c "  # noqa: S608 - fixed clauses
            f"LEFT JOIN shared_facts s ON s.id = c.facts_id WHERE {where} ORDER BY {order}"
            + ("" if limit is None else f" LIMIT {int(limit)}"),
            list(args),
        )
        return rows_as(CheckRow, _as_dicts(cursor))

    def _dicts(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        return _as_dicts(self.conn.execute(sql, list(args)))

    def latest_check_results(self, names: Iterable[str]) -> dict[str, CheckRow]:
        """The newest row of each named check: one indexed seek per check (not a GROUP BY scan)."""
        out = {}
        for name in names:
            rows = self._check_rows("c.check_name = ?", [name], "c.started_at DESC, c.id DESC", 1)
            if rows:
                out[name] = rows[0]
        return out

    def check_history(self, name: str, limit: int = 50) -> list[CheckRow]:
        """The last `limit` results of one check, oldest first (for sparklines and trends)."""
        return self._check_rows("c.check_name = ?", [name], "c.started_at DESC, c.id DESC", limit)[::-1]

    def record_anchor(self, run_id: str, log_id: str, seq: int, mac: str) -> None:
        with self.conn:
            self.db.table("audit_anchors").insert(
                {
                    "run_id": run_id,
                    "log_id": log_id,
                    "seq": seq,
                    "mac": mac,
                    "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )

    def latest_anchor(self) -> Anchor | None:
        rows = rows_as(Anchor, self.db.table("audit_anchors").rows_where(order_by="id DESC", limit=1))
        return rows[0] if rows else None

    def seen_delivery(self, scheme: str, delivery_id: str, expires_in: float, now: float) -> bool:
        """Record a delivery id; True when it was already there and unexpired (a replay)."""
        with self.conn:
            self.conn.execute("DELETE FROM webhook_seen WHERE expires_at < ? OR expires_at IS NULL", [now])
            cursor = self.conn.execute(
                "INSERT OR IGNORE INTO webhook_seen (scheme, delivery_id, seen_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                [scheme, delivery_id, now, now + expires_in],
            )
        return cursor.rowcount == 0

    def record_webhook_failure(
        self, source: str, outcome: str, at: float, window_s: float = float("inf")
    ) -> list[float]:
        """Record a failed verification; returns this source's failure times within `window_s`
        before `at`, oldest first. Only the window is read (the (source, at) index): a flood of
        stored failures must not slow every later verification."""
        with self.conn:
            self.db.table("webhook_failures").insert({"source": source, "at": at, "outcome": outcome})
        rows = self.conn.execute(  # a NULL time (an old '--now nan') is not a time: never counted
            "SELECT at FROM webhook_failures WHERE source = ? AND at >= ? ORDER BY at",
            [source, at - window_s],
        )
        return [float(r[0]) for r in rows]

    def last_alert(self, rule: str, key: str) -> float | None:
        row = self.conn.execute(
            "SELECT raised_at FROM alerts WHERE rule = ? AND key = ? ORDER BY raised_at DESC LIMIT 1",
            [rule, key],
        ).fetchone()
        return None if row is None else float(row[0])

    def record_alert(
        self,
        rule: str,
        key: str,
        severity: str,
        title: str,
        detail: str,
        at: float,
        *,
        runbook: str | None = None,
        silenced: bool = False,
        unless_open: Sequence[str] = (),
        sent_at: float | None = None,
    ) -> int | None:
        """Open an alert; with `unless_open`, only if no alert of those rules is firing for `key`:
        the check and the insert are one write transaction, so of two processes that see the same
        failure at once exactly one opens the incident (and sends it); the other gets None.
        `sent_at`: the alert is being sent now (claimed, so no one else sends it first)."""
        with self.writing():
            if unless_open:
                marks = ", ".join("?" * len(unless_open))
                if self.conn.execute(
                    f"SELECT 1 FROM alerts WHERE status = 'firing' AND key = ? AND rule IN ({marks}) LIMIT 1",  # noqa: S608
                    [key, *unless_open],
                ).fetchone():
                    return None
            cursor = self.conn.execute(
                "INSERT INTO alerts (rule, key, severity, title, detail, raised_at, resolved_at, status, "
                "last_sent_at, silenced, runbook) VALUES (?, ?, ?, ?, ?, ?, NULL, 'firing', ?, ?, ?)",
                [
                    rule,
                    key,
                    severity,
                    redactor.redact(title),
                    redactor.redact(detail),
                    at,
                    sent_at,
                    int(silenced),
                    runbook,
                ],
            )
            return int(cursor.lastrowid or 0)

    def open_alerts(self) -> list[AlertRow]:
        return rows_as(
            AlertRow, self.db.table("alerts").rows_where("status = 'firing'", order_by="raised_at")
        )

    def mark_alert(self, alert_id: int, **fields: Any) -> None:
        with self.conn:
            self.db.table("alerts").update(alert_id, fields)

    def claim_alert(self, alert_id: int, seen_sent_at: float | None, **fields: Any) -> bool:
        """Change a firing alert only if it is still as this process last read it (firing, and sent
        last at `seen_sent_at`): a conditional update, so a reminder, a late first notice or a
        resolve is claimed, and sent, by exactly one of the processes that decided on it."""
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self.conn:
            cursor = self.conn.execute(
                f"UPDATE alerts SET {columns} WHERE id = ? AND status = 'firing' AND last_sent_at IS ?",  # noqa: S608
                [*fields.values(), alert_id, seen_sent_at],
            )
        return cursor.rowcount == 1

    def record_delivery(
        self, alert_id: int, channel: str, event: str, ok: bool, attempts: int, error: str, at: float
    ) -> None:
        with self.conn:
            self.db.table("alert_deliveries").insert(
                {
                    "alert_id": alert_id,
                    "channel": channel,
                    "event": event,
                    "ok": int(ok),
                    "attempts": attempts,
                    "error": redactor.redact(error),
                    "at": at,
                }
            )

    def deliveries(self, alert_id: int | None = None) -> list[DeliveryRow]:
        where, args = ("alert_id = ?", [alert_id]) if alert_id is not None else (None, [])
        return rows_as(DeliveryRow, self.db.table("alert_deliveries").rows_where(where, args, order_by="id"))

    def alerts(self, rule: str | None = None) -> list[AlertRow]:
        where, args = ("rule = ?", [rule]) if rule else (None, [])
        return rows_as(AlertRow, self.db.table("alerts").rows_where(where, args, order_by="raised_at, id"))

    def alert(self, alert_id: int) -> AlertRow:
        return rows_as(AlertRow, [self.db.table("alerts").get(alert_id)])[0]

    def last_green(self, kinds: tuple[str, ...]) -> str | None:
        """The newest run of these kinds that passed (a GO: OK, INFO or WARN, never CRIT or UNKNOWN)."""
        return self.last_run(kinds, ("OK", "INFO", "WARN"))

    def last_run(self, kinds: tuple[str, ...], verdicts: tuple[str, ...] | None = None) -> str | None:
        """The newest run of these kinds (with one of these verdicts): per kind, a walk back along
        (kind, started_at) that stops at the first match (`+verdict` keeps the planner on it)."""
        where = "kind = ?"
        if verdicts is not None:
            where += f" AND +verdict IN ({', '.join('?' for _ in verdicts)})"
        found = []
        for kind in kinds:
            row = self.conn.execute(
                f"SELECT started_at, rowid, run_id FROM runs WHERE {where} "  # noqa: S608 - placeholders
                "ORDER BY started_at DESC, rowid DESC LIMIT 1",
                [kind, *(verdicts or ())],
            ).fetchone()
            if row is not None:
                found.append(tuple(row))
        return str(max(found)[2]) if found else None

    def check_results_of(self, run_id: str) -> list[CheckRow]:
        """Every check result recorded under a run, in the order they were recorded."""
        return self._check_rows("c.run_id = ?", [run_id], "c.id")

    def run_checks(self, run_id: str) -> list[dict[str, Any]]:
        """A run's check results as its report showed them: the last result of each check, in the
        order the checks first ran (verify-deploy records every stable sweep; its report shows the
        final one)."""
        last: dict[str, CheckRow] = {}
        for row in self.check_results_of(run_id):
            last[row.check_name] = row
        return [row.as_result() for row in last.values()]

    def set_verdict(self, run_id: str, verdict: Severity) -> None:
        """Overwrite a recorded run's verdict (the demo's sample history shows a failed run)."""
        with self.conn:
            self.conn.execute("UPDATE runs SET verdict = ? WHERE run_id = ?", [verdict.value, run_id])

    # ------------------------------------------------------------------ retention

    def purge(self, older_than_days: int, now: datetime | None = None) -> int:
        """Delete what is older than the retention period from every table, then give the space
        back to the file system; returns how many runs went. Kept whatever their age: runbook
        sessions still active (and their runs), firing alerts, and each audit log's newest anchor."""
        now = now or datetime.now(UTC)
        cutoff_dt = now - timedelta(days=older_than_days)
        cutoff, cutoff_ts = cutoff_dt.isoformat(timespec="seconds"), cutoff_dt.timestamp()
        active = "SELECT id FROM runbook_sessions WHERE status = 'active'"
        old_runs = f"SELECT run_id FROM runs WHERE started_at < ? AND run_id NOT IN ({active})"  # noqa: S608
        ended = "SELECT id FROM runbook_sessions WHERE status != 'active' AND updated_at < ?"
        with self.writing():
            execute = self.db.execute
            for table in ("findings", "env_keys"):
                execute(f"DELETE FROM {table} WHERE run_id IN ({old_runs})", [cutoff])  # noqa: S608
            for name in self._check_names():  # one index range per check (no index on started_at alone)
                execute("DELETE FROM check_results WHERE check_name = ? AND started_at < ?", [name, cutoff])
            sessions = [str(r[0]) for r in execute(ended, [cutoff])]
            for table, column in (
                ("runbook_events", "session_id"),
                ("runbook_steps", "session_id"),
                ("runbook_sessions", "id"),
            ):
                execute(f"DELETE FROM {table} WHERE {column} IN ({ended})", [cutoff])  # noqa: S608
            gone = int(execute(f"DELETE FROM runs WHERE run_id IN ({old_runs})", [cutoff]).rowcount)  # noqa: S608
            execute(
                "DELETE FROM audit_anchors WHERE recorded_at < ? "
                "AND id NOT IN (SELECT MAX(id) FROM audit_anchors GROUP BY log_id)",
                [cutoff],
            )
            resolved = (
                "SELECT id FROM alerts WHERE status = 'resolved' AND COALESCE(resolved_at, raised_at) < ?"
            )
            execute(f"DELETE FROM alert_deliveries WHERE at < ? OR alert_id IN ({resolved})", [cutoff_ts] * 2)  # noqa: S608
            execute(f"DELETE FROM alerts WHERE id IN ({resolved})", [cutoff_ts])  # noqa: S608
            # a body's last_used is at most a day older than the newest row using it (_share_facts)
            execute("DELETE FROM shared_facts WHERE last_used < ?", [_day_before(cutoff)])
            execute("DELETE FROM webhook_failures WHERE at < ? OR at IS NULL", [cutoff_ts])
            execute("DELETE FROM webhook_seen WHERE expires_at < ? OR expires_at IS NULL", [now.timestamp()])
        self._shared.clear()
        self._remove_outputs(sessions)
        self.reclaim()
        return gone

    def _check_names(self) -> list[str]:
        """The distinct check names, one index seek each (not a scan of a million rows)."""
        rows = self.conn.execute(
            "WITH RECURSIVE names(name) AS ("
            " SELECT MIN(check_name) FROM check_results"
            " UNION ALL"
            " SELECT (SELECT MIN(check_name) FROM check_results WHERE check_name > name) FROM names"
            " WHERE name IS NOT NULL"
            ") SELECT name FROM names WHERE name IS NOT NULL"
        )
        return [str(r[0]) for r in rows]

    def _remove_outputs(self, sessions: Iterable[str]) -> None:
        folder = self.path.parent / "runbook-output"
        for session in sessions:
            for file in folder.glob(f"{_glob_escape(session)}-*.out"):
                file.unlink(missing_ok=True)

    def reclaim(self) -> None:
        """Give freed pages back to the file system: incremental vacuum when the file has it; a
        file an older opsdash made without it is converted once if small (else: history compact)."""
        mode = int(self.conn.execute("PRAGMA auto_vacuum").fetchone()[0])
        try:
            if mode == 2:
                # executescript steps it to the end (execute() frees one page); a passive
                # checkpoint then lets the file shrink without waiting on readers
                self.conn.executescript("PRAGMA incremental_vacuum;")
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            elif self.path.stat().st_size <= AUTO_COMPACT_BYTES:
                self.compact()
        except sqlite3.OperationalError:  # another process holds the file: the next purge does it
            if self.conn.in_transaction:
                self.conn.rollback()

    def compact(self) -> int:
        """Rebuild the file with incremental auto-vacuum (a full VACUUM: needs free space of the
        file's size, and takes a while on a large file); returns the bytes given back."""
        before = self.path.stat().st_size
        self.conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        self.conn.execute("VACUUM")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return before - self.path.stat().st_size

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _run(row: Sequence[Any]) -> RunRow:
        return RunRow(
            run_id=row[0],
            kind=row[1],
            target=row[2],
            operator=row[3],
            started_at=row[4],
            duration_ms=row[5],
            verdict=Severity(row[6]),
            counts=json.loads(row[7]),
            summary=json.loads(row[8] or "{}"),
        )

    def _runs(
        self,
        where: str,
        args: Sequence[Any],
        *,
        limit: int,
        full: bool = False,
        order: str = "started_at DESC, rowid DESC",
    ) -> list[RunRow]:
        # a listing never carries check results (rows an older opsdash wrote copied them into summary)
        summary = "summary" if full else "json_remove(summary, '$.checks')"
        cursor = self.conn.execute(
            f"SELECT {RUN_COLUMNS}, {summary} FROM runs {where} "  # noqa: S608
            f"ORDER BY {order} LIMIT ?",
            [*args, limit],
        )
        return [self._run(r) for r in cursor]

    def list_runs(
        self, *, limit: int = 20, kind: str | None = None, target: str | None = None
    ) -> list[RunRow]:
        where, args = [], []
        if kind:
            where.append("kind = ?")
            args.append(kind)
        if target:
            where.append("target = ?")
            args.append(target)
        return self._runs(f"WHERE {' AND '.join(where)}" if where else "", args, limit=limit)

    def resolve(self, ref: str) -> RunRow:
        """A run by id, unique id prefix, or `latest` / `latest~N` (N runs before the latest)."""
        shown = ref if len(ref) <= 40 else ref[:39] + "…"
        if not ref.strip():
            raise InputError("no run given: pass a run id, a unique prefix of one, or latest / latest~N")
        if ref == "latest" or ref.startswith("latest~"):
            back = ref.partition("~")[2]
            if back and not (back.isascii() and back.isdigit() and len(back) <= 9):
                raise InputError(f"run reference {shown!r}: expected latest~N with a number N")
            offset = int(back or 0)
            runs = self._runs("", [], limit=offset + 1, full=True)
            if len(runs) <= offset:
                raise InputError(f"run {shown!r} not found: history has {len(runs)} run(s)")
            return runs[offset]
        # run ids are 25 characters; a prefix is a range of the primary key's index
        rows = self._runs(
            "WHERE run_id >= ? AND run_id < ?", [ref, ref + "\U0010ffff"], limit=2, full=True, order="run_id"
        )
        rows = [r for r in rows if r.run_id.startswith(ref)] if len(ref) <= 64 else []
        if not rows:
            raise InputError(f"run {shown!r} not found in history ({self.path}); see 'opsdash history list'")
        if len(rows) > 1:
            raise InputError(f"run {shown!r} is ambiguous; type more of the id")
        return rows[0]

    def findings(self, run_id: str) -> list[Finding]:
        rows = self._dicts("SELECT * FROM findings WHERE run_id = ? ORDER BY id", [run_id])
        return [Finding.from_dict({**r, "evidence": json.loads(r["evidence"])}) for r in rows]

    def secret_fingerprints(self, runs: int) -> set[str]:
        """The fingerprints of the secret env values of the newest `runs` runs that read the env:
        what the masker needs to recognise a rotated-away value when it turns up again. Empty when
        the record cannot say (a damaged page must not stop a command that only reads it)."""
        try:
            rows = self.conn.execute(
                "SELECT DISTINCT fingerprint FROM env_keys WHERE secret = 1 AND run_id IN (SELECT r.run_id "
                "FROM runs r WHERE EXISTS (SELECT 1 FROM env_keys k WHERE k.run_id = r.run_id) "
                "ORDER BY r.started_at DESC LIMIT ?)",
                [runs],
            ).fetchall()
        except sqlite3.Error:
            return set()
        return {row[0] for row in rows}

    def env_keys(self, run_id: str) -> dict[str, EnvKey]:
        rows = self._dicts("SELECT * FROM env_keys WHERE run_id = ? ORDER BY key", [run_id])
        return {r["key"]: EnvKey(r["key"], r["source"], r["fingerprint"], bool(r["secret"])) for r in rows}

    def report(self, run: RunRow) -> Report:
        summary = run.summary
        if "checks" not in summary:  # recorded by this opsdash: the checks are in their own table
            checks = self.run_checks(run.run_id)
            summary = {**summary, "checks": checks} if checks else summary
        return Report(
            kind=run.kind,
            target=run.target,
            run_id=run.run_id,
            started_at=run.started_at,
            duration_ms=run.duration_ms,
            findings=tuple(self.findings(run.run_id)),
            summary=summary,
        )


def _as_dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


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


_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per call


def _compact(value: Mapping[str, Any] | Sequence[Any]) -> str | None:
    """JSON without spaces, NULL for nothing (a byte a row is a megabyte over a year of runs)."""
    return _encode(value) if value else None


def _split_facts(facts: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(this row's own facts, the facts to share): what changes with every probe (days left)
    stays with the row; the shared body keeps every key in its place (null where the row has
    its own), so merging them gives the probe's facts in the probe's order."""
    own = {k: v for k, v in facts.items() if k.endswith(_OWN_FACT_SUFFIXES)}
    if not own:
        return None, _compact(facts)
    return _compact(own), _compact({k: None if k in own else v for k, v in facts.items()})


def _redacted(rows: list[tuple[Any, ...]], text: Sequence[int]) -> list[tuple[Any, ...]]:
    """The rows with every secret the redactor knows masked in their text columns. One pass over
    the batch finds out whether any is there at all (nearly always not), instead of one per cell."""
    joined = "\x00".join(str(row[i]) for row in rows for i in text if row[i])
    if redactor.redact(joined) == joined:
        return rows
    clean = redactor.redact
    return [
        tuple(clean(v) if i in text and isinstance(v, str) else v for i, v in enumerate(row)) for row in rows
    ]


def _day_before(at: str) -> str:
    try:
        return (datetime.fromisoformat(at) - timedelta(days=1)).isoformat(timespec="milliseconds")
    except ValueError:
        return at


def _day_after(at: str) -> str:
    try:
        return (datetime.fromisoformat(at) + timedelta(days=1)).isoformat(timespec="milliseconds")
    except ValueError:
        return at


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)
