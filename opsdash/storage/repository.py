"""What every repository is: a small typed class over the one connection its `History` owns.

A repository never opens, closes or migrates anything and keeps no state that another process must
agree with; it runs its queries on `history.conn` and its writes in `history.writing()` (which
joins a transaction a caller already holds, so a run and its check results land together)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from opsdash.core.secrets import redactor

if TYPE_CHECKING:
    from opsdash.storage.history import History


class Repository:
    def __init__(self, history: History) -> None:
        self.history = history

    def _dicts(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        """Rows as column -> value, for building the repository's typed rows (never returned)."""
        return as_dicts(self.history.conn.execute(sql, list(args)))

    def _insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Rows that share their columns, by name (table and column names come from code)."""
        if not rows:
            return
        names = list(rows[0])
        sql = (
            f"INSERT INTO {table} ({', '.join(names)}) "  # noqa: S608 - names from code
            f"VALUES ({', '.join('?' for _ in names)})"
        )
        if len(rows) == 1:
            self.history.conn.execute(sql, [rows[0][n] for n in names])
        else:
            self.history.conn.executemany(sql, [[row[n] for n in names] for row in rows])

    def _update(self, table: str, key: str, value: Any, row: Mapping[str, Any]) -> int:
        """Set `row`'s columns on the row whose `key` is `value`; how many rows changed."""
        columns = ", ".join(f"{name} = ?" for name in row)
        cursor = self.history.conn.execute(
            f"UPDATE {table} SET {columns} WHERE {key} = ?",  # noqa: S608 - names from code
            [*row.values(), value],
        )
        return int(cursor.rowcount)


def as_dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    """(A PostgreSQL cursor, postgres.PgCursor, reads the same.)"""
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


_encode = json.JSONEncoder(separators=(",", ":")).encode  # one encoder, not one per call


def compact(value: Mapping[str, Any] | Sequence[Any]) -> str | None:
    """JSON without spaces, NULL for nothing (a byte a row is a megabyte over a year of runs)."""
    return _encode(value) if value else None


def day_before(at: str) -> str:
    return _shift(at, -1)


def day_after(at: str) -> str:
    return _shift(at, 1)


def _shift(at: str, days: int) -> str:
    try:
        return (datetime.fromisoformat(at) + timedelta(days=days)).isoformat(timespec="milliseconds")
    except ValueError:
        return at


def stored_target(target: str) -> str:
    """A target as the record spells it (masked as when it was written), to compare with."""
    return redactor.redact(target)


def of_target(target: str | None) -> tuple[str, list[Any]]:
    """The condition (and its argument) that keeps a table's rows of `target` and those that name
    no target (written before the table had the column: every target's); None: every row."""
    if target is None:
        return "", []
    return " AND (target IS NULL OR target = ?)", [stored_target(target)]


def results_of_target(alias: str, placeholder: str = "?") -> str:
    """The condition that keeps the check results (table alias `alias`) of the target bound to
    `placeholder` (twice, for "?"): those whose run (or watch) is that target's, and those whose
    run id is in neither table (a watch from before v13: every target's)."""
    t, p = alias, placeholder
    return (
        f"NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = {t}.run_id AND r.target != {p}) "  # noqa: S608
        f"AND NOT EXISTS (SELECT 1 FROM watches w WHERE w.run_id = {t}.run_id AND w.target != {p})"
    )


# The distinct check names as a CTE `names(name)`, one index seek on (check_name, started_at) each
# (a skip scan; not a scan of a million rows): `WITH RECURSIVE {CHECK_NAMES} SELECT ... FROM names`.
CHECK_NAMES = (
    "names(name) AS (SELECT MIN(check_name) FROM check_results UNION ALL "
    "SELECT (SELECT MIN(check_name) FROM check_results WHERE check_name > name) FROM names "
    "WHERE name IS NOT NULL)"
)
