"""Check results: one row per probe (`history.checks`), read as "latest per check", "last N of a
check" and "a run's results".

The facts a check's results share (a certificate's subject, issuer, dates, chain) are stored once in
shared_facts; a row keeps only what changes with every probe (days left) and the shared body's id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opsdash.core.secrets import redactor
from opsdash.storage.repository import (
    CHECK_NAMES,
    Repository,
    as_dicts,
    compact,
    day_after,
    results_of_target,
)
from opsdash.storage.rows import CheckRow, rows_as

if TYPE_CHECKING:
    from opsdash.core.findings import Severity
    from opsdash.core.health.model import CheckResult
    from opsdash.storage.history import History

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
_OWN_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {}  # a facts' key order -> its own keys
_SHARED_CACHE_MAX = 10_000
_CHECK_TEXT = tuple(
    CHECK_COLUMNS.index(c)
    for c in ("target", "summary", "hint", "conditions", "facts", "facts_id", "findings")
)
_FACTS_ID, _STARTED = CHECK_COLUMNS.index("facts_id"), CHECK_COLUMNS.index("started_at")
_NEWEST_FIRST = "c.started_at DESC, c.id DESC"
_TOUCH_FACTS = "UPDATE shared_facts SET last_used = ? WHERE id = ? AND digest = ?"
# PostgreSQL's types of CHECK_COLUMNS, for the binary COPY (schema.py: text unless it says otherwise)
_NUMERIC = {"latency_ms": "float8", "duration_ms": "float8", "attempts": "int8", "facts_id": "int8"}
CHECK_TYPES = tuple(_NUMERIC.get(c, "text") for c in CHECK_COLUMNS)


class Checks(Repository):
    def __init__(self, history: History) -> None:
        super().__init__(history)
        # shared facts: body -> (id, fresh until: a day after the last_used written, digest)
        self._shared: dict[str, tuple[int, str, bytes]] = {}

    def forget_shared(self) -> None:
        """Retention dropped shared bodies: ask the database again before reusing an id."""
        self._shared.clear()

    def record(
        self, run_id: str, results: Iterable[CheckResult], sustained: Mapping[str, Severity] | None = None
    ) -> None:
        """Plain executemany on SQLite (sqlite-utils' insert_all: dicts, 76-row chunks, a savepoint
        each, ran at 0.43x of it), a binary COPY on PostgreSQL; benchmarks/history.py holds this
        path against raw sqlite3 and raw psycopg."""
        rows: list[list[Any]] = [
            [
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
                compact({k: round(v, 2) for k, v in r.phases.items()}),
                compact([c.to_dict() for c in r.conditions]),
                compact(r.metrics),
                *_split_facts(r.facts),
                compact([f.to_dict() for f in r.findings]),
            ]
            for r in results
        ]
        rows = _redacted(rows, _CHECK_TEXT)  # before sharing: a body is stored as it will be read
        newest: dict[str, str] = {}  # each shared body, and the newest row that uses it
        for row in rows:
            body = row[_FACTS_ID]
            if body and row[_STARTED] > newest.get(body, ""):
                newest[body] = row[_STARTED]
        with self.history.writing():
            ids = self._share_facts(newest) if newest else {}
            for row in rows:  # the body's id in its place
                row[_FACTS_ID] = ids.get(row[_FACTS_ID]) if row[_FACTS_ID] else None
            if self.history.dialect == "sqlite":
                self.history.conn.executemany(_INSERT_CHECK, rows)
            else:  # PostgreSQL: a binary COPY, its bulk path (a sweep is up to thousands of rows)
                self.history.conn.copy_rows("check_results", CHECK_COLUMNS, rows, types=CHECK_TYPES)  # type: ignore[attr-defined]

    def _share_facts(self, newest: Mapping[str, str]) -> dict[str, int]:
        """The id of each shared-facts body (inserted when new), given the newest row that uses
        it. `last_used` is kept within a day of the newest row that uses a body, so retention can
        drop bodies no row can still refer to without a scan of check_results (see retention.purge).
        The cache is keyed by the body itself: a sweep's bodies are nearly always those of the
        sweep before, found with no hashing and no statement."""
        conn = self.history.conn
        cache = self._shared
        if len(cache) > _SHARED_CACHE_MAX:
            cache.clear()
        unknown = {body: _digest(body) for body in newest if body not in cache}
        if unknown:
            by_digest = {digest: body for body, digest in unknown.items()}
            found = list(by_digest)
            for start in range(0, len(found), 500):
                part = found[start : start + 500]
                for id_, digest, used in conn.execute(
                    "SELECT id, digest, last_used FROM shared_facts "  # noqa: S608 - placeholders only
                    f"WHERE digest IN ({', '.join('?' * len(part))})",
                    part,
                ):
                    cache[by_digest[bytes(digest)]] = (int(id_), day_after(str(used)), bytes(digest))
        ids: dict[str, int] = {}
        stale: list[tuple[str, str, int, bytes]] = []  # (body, newest use, id, digest)
        for body, at in newest.items():
            known = cache.get(body)
            if known is None:
                continue
            if at <= known[1]:  # used within a day: nothing to write
                ids[body] = known[0]
            else:
                stale.append((body, at, known[0], known[2]))
        # one batch for the bodies last used over a day ago (a round trip each costs on a server);
        # only if retention dropped one meanwhile does each go alone, to find which. (One UPDATE
        # with a CASE per id measured slower on PostgreSQL than this pipelined executemany.)
        if len(stale) > 1 and conn.executemany(_TOUCH_FACTS, [s[1:] for s in stale]).rowcount == len(stale):
            for body, at, id_, digest in stale:
                ids[body] = id_
                cache[body] = (id_, day_after(at), digest)
            stale = []
        for body, at, id_, digest in stale:
            if conn.execute(_TOUCH_FACTS, [at, id_, digest]).rowcount != 1:
                # retention in another process dropped it: store it again
                id_ = self._store_facts(body, digest, at)
            ids[body] = id_
            cache[body] = (id_, day_after(at), digest)
        for body, at in newest.items():
            if body not in ids:  # in no cache and not in the database: new
                digest = unknown.get(body) or _digest(body)
                ids[body] = self._store_facts(body, digest, at)
                cache[body] = (ids[body], day_after(at), digest)
        return ids

    def _store_facts(self, body: str, digest: bytes, at: str) -> int:
        cursor = self.history.conn.execute(
            "INSERT INTO shared_facts (digest, body, last_used) VALUES (?, ?, ?)", [digest, body, at]
        )
        return int(cursor.lastrowid or 0)

    # ------------------------------------------------------------------ reading

    def _select(
        self, where: str, args: Sequence[Any], order: str, limit: int | None = None
    ) -> list[CheckRow]:
        cursor = self.history.conn.execute(
            "SELECT c.*, s.body AS shared_facts FROM check_results c "  # noqa: S608 - fixed clauses
            f"LEFT JOIN shared_facts s ON s.id = c.facts_id WHERE {where} ORDER BY {order}"
            + ("" if limit is None else f" LIMIT {int(limit)}"),
            list(args),
        )
        return rows_as(CheckRow, as_dicts(cursor))

    def latest(self, names: Iterable[str], target: str | None = None) -> list[CheckRow]:
        """The newest row of each named check that has one, in the order named: one indexed seek
        per check (not a GROUP BY scan). With `target`, that target's newest (its runs' and
        watches', and those of a watch that named none): another profile's check of the same
        name in the same record is not this one."""
        if target is None:
            where, scope = "c.check_name = ?", []
        else:
            where, scope = f"c.check_name = ? AND {results_of_target('c')}", [target, target]
        return [row for name in names for row in self._select(where, [name, *scope], _NEWEST_FIRST, 1)]

    def recent(self, name: str, limit: int = 50) -> list[CheckRow]:
        """The last `limit` results of one check, oldest first (for sparklines and trends)."""
        return self._select("c.check_name = ?", [name], _NEWEST_FIRST, limit)[::-1]

    def of_run(self, run_id: str) -> list[CheckRow]:
        """Every check result recorded under a run, in the order they were recorded."""
        return self._select("c.run_id = ?", [run_id], "c.id")

    def as_reported(self, run_id: str) -> list[CheckRow]:
        """A run's check results as its report showed them: the last result of each check, in the
        order the checks first ran (verify-deploy records every stable sweep; its report shows the
        final one)."""
        last: dict[str, CheckRow] = {}
        for row in self.of_run(run_id):
            last[row.check_name] = row
        return list(last.values())

    def names(self) -> list[str]:
        """The distinct check names, one index seek each (not a scan of a million rows)."""
        rows = self.history.conn.execute(
            f"WITH RECURSIVE {CHECK_NAMES} SELECT name FROM names WHERE name IS NOT NULL"  # noqa: S608
        )
        return [str(r[0]) for r in rows]


def _split_facts(facts: Mapping[str, str]) -> tuple[str | None, str | None]:
    """(this row's own facts, the facts to share): what changes with every probe (days left)
    stays with the row; the shared body keeps every key in its place (null where the row has
    its own), so merging them gives the probe's facts in the probe's order."""
    if not facts:
        return None, None
    names = tuple(facts)
    own = _OWN_KEYS.get(names)
    if own is None:  # a check's facts have the same keys probe after probe: decided once
        if len(_OWN_KEYS) > _SHARED_CACHE_MAX:
            _OWN_KEYS.clear()
        own = _OWN_KEYS[names] = tuple(k for k in names if k.endswith(_OWN_FACT_SUFFIXES))
    if not own:
        return None, compact(facts)
    shared: dict[str, str | None] = dict(facts)
    for name in own:
        shared[name] = None
    return compact({name: facts[name] for name in own}), compact(shared)


def _redacted(rows: list[list[Any]], text: Sequence[int]) -> list[list[Any]]:
    """The rows with every secret the redactor knows masked in their text columns. One pass over
    the batch finds out whether any is there at all (nearly always not), instead of one per cell."""
    joined = "\x00".join(str(row[i]) for row in rows for i in text if row[i])
    if redactor.redact(joined) == joined:
        return rows
    clean = redactor.redact
    return [[clean(v) if i in text and isinstance(v, str) else v for i, v in enumerate(row)] for row in rows]


def _digest(body: str) -> bytes:
    return hashlib.blake2b(body.encode(), digest_size=16).digest()
