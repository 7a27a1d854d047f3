"""The credential trace's record (`history.trace`): per repository, the git objects already read
clean under one set of needles, and where the objects that held a value were put.

A scan row is one repository (its absolute git directory) under one needle set (`Matcher.key`, a
hash of fingerprints: no value is ever stored). What was clean for some values says nothing about
others, so each needle set has its own scan; a repository keeps its NEEDLE_SETS newest (so `secrets
trace` and a preflight reading other env files do not erase each other's), a new set beyond them
drops the oldest. Paths are stored as the trace shows them: a value in a path is masked. Object
ids are kept as raw bytes (20, or 32 in a SHA-256 repository), in a WITHOUT ROWID table: ~30 bytes
a row, so a repository of a million objects costs ~30 MB once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from opsdash.storage.repository import Repository

NEEDLE_SETS = 3  # needle sets remembered per repository; a new one beyond them drops the oldest


class Trace(Repository):
    def scan_id(self, repo: str, needles: str) -> int | None:
        """The scan of `repo` under `needles`, or None (never scanned, or under other needles)."""
        row = self.history.conn.execute(
            "SELECT id FROM trace_scans WHERE repo = ? AND needles = ?", [repo, needles]
        ).fetchone()
        return int(row[0]) if row else None

    def clean(self, scan_id: int) -> set[str]:
        rows = self.history.conn.execute("SELECT oid FROM trace_objects WHERE scan_id = ?", [scan_id])
        return {oid.hex() for (oid,) in rows}

    def places(self, scan_id: int) -> list[tuple[str, str, str]]:
        """(object id, commit, path): where the objects that held a value were put."""
        rows = self.history.conn.execute(
            "SELECT oid, commit_id, path FROM trace_places WHERE scan_id = ? ORDER BY oid, commit_id, path",
            [scan_id],
        )
        return [(str(oid), str(commit), str(path)) for oid, commit, path in rows]

    def remember(
        self,
        repo: str,
        needles: str,
        clean: Iterable[str],
        places: Mapping[str, Iterable[tuple[str, str]]],
    ) -> int:
        """Add this scan's clean objects and the places of its found objects; a repository scanned
        under other needles before starts over. Returns the scan's id."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        conn = self.history.conn
        with self.history.writing():
            row = conn.execute(
                "SELECT id FROM trace_scans WHERE repo = ? AND needles = ?", [repo, needles]
            ).fetchone()
            if row is None:
                kept = conn.execute(  # a few per repository: no LIMIT -1 (SQLite's own), slice here
                    "SELECT id FROM trace_scans WHERE repo = ? ORDER BY updated_at DESC, id DESC", [repo]
                ).fetchall()
                for (old,) in kept[NEEDLE_SETS - 1 :]:
                    self._forget(int(old))
                scan_id = int(
                    conn.execute(
                        "INSERT INTO trace_scans (repo, needles, updated_at) VALUES (?, ?, ?)",
                        [repo, needles, now],
                    ).lastrowid
                    or 0
                )
            else:
                scan_id = int(row[0])
                conn.execute("UPDATE trace_scans SET updated_at = ? WHERE id = ?", [now, scan_id])
            conn.executemany(
                "INSERT OR IGNORE INTO trace_objects (scan_id, oid) VALUES (?, ?)",
                ((scan_id, bytes.fromhex(oid)) for oid in clean),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO trace_places (scan_id, oid, commit_id, path) VALUES (?, ?, ?, ?)",
                ((scan_id, oid, commit, path) for oid, where in places.items() for commit, path in where),
            )
        return scan_id

    def forget(self, repo: str) -> bool:
        """Drop what is remembered of `repo` under every needle set (`secrets trace --full`); True
        if there was something."""
        conn = self.history.conn
        with self.history.writing():
            rows = conn.execute("SELECT id FROM trace_scans WHERE repo = ?", [repo]).fetchall()
            for (scan_id,) in rows:
                self._forget(int(scan_id))
        return bool(rows)

    def _forget(self, scan_id: int) -> None:
        conn = self.history.conn
        conn.execute("DELETE FROM trace_objects WHERE scan_id = ?", [scan_id])
        conn.execute("DELETE FROM trace_places WHERE scan_id = ?", [scan_id])
        conn.execute("DELETE FROM trace_scans WHERE id = ?", [scan_id])
