"""Audit anchors (`history.anchors`): the audit log's head right after each run was recorded, so a
log cut back to before a run is detectable from the record as well as from the key's anchor file;
and, on a database a team shares, every host's chain: its lines exactly as the host wrote them and
its head, keyed by host, for `opsdash audit verify --all-hosts`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from opsdash.storage.repository import Repository
from opsdash.storage.rows import Anchor, AuditHost, rows_as


class Anchors(Repository):
    def record(self, run_id: str, log_id: str, seq: int, mac: str, host_id: str | None = None) -> None:
        with self.history.writing():
            self.history.conn.execute(
                "INSERT INTO audit_anchors (run_id, log_id, seq, mac, recorded_at, host_id) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [run_id, log_id, seq, mac, datetime.now(UTC).isoformat(timespec="seconds"), host_id],
            )

    def latest(self, host_id: str | None = None) -> Anchor | None:
        """The newest anchor (of one host: on a shared database every host anchors its own log;
        on SQLite, rows from before hosts were recorded are this data directory's too)."""
        where, args = "", []
        if host_id is not None:
            where = "WHERE host_id = ?" + (" OR host_id IS NULL" if self.history.dialect == "sqlite" else "")
            args = [host_id]
        row = self.history.conn.execute(
            f"SELECT id, run_id, log_id, seq, mac, recorded_at FROM audit_anchors {where} "  # noqa: S608
            "ORDER BY id DESC LIMIT 1",
            args,
        ).fetchone()
        return None if row is None else Anchor(*row)

    # ------------------------------------------------------------------ every host's chain

    def host(self, host_id: str) -> AuditHost | None:
        rows = rows_as(AuditHost, self._dicts("SELECT * FROM audit_hosts WHERE host_id = ?", [host_id]))
        return rows[0] if rows else None

    def hosts(self) -> list[AuditHost]:
        return rows_as(AuditHost, self._dicts("SELECT * FROM audit_hosts ORDER BY host_id", []))

    def publish(
        self, head: AuditHost, lines: Sequence[tuple[int | None, bytes]], seen: AuditHost | None
    ) -> bool:
        """Append a host's new lines and move its head, only if the database still holds the head
        this process read (`seen`; None: the host is new): two processes of one host publishing at
        once cannot copy a line twice. False (nothing written) when another got there first."""
        conn = self.history.conn
        with self.history.writing():
            if seen is None:
                cursor = conn.execute(
                    "INSERT INTO audit_hosts (host_id, hostname, data_dir, log_id, seq, mac, stream_bytes, "
                    "lines, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    [
                        head.host_id,
                        head.hostname,
                        head.data_dir,
                        head.log_id,
                        head.seq,
                        head.mac,
                        head.stream_bytes,
                        head.lines,
                        head.updated_at,
                    ],
                )
            else:
                cursor = conn.execute(
                    "UPDATE audit_hosts SET hostname = ?, data_dir = ?, log_id = ?, seq = ?, mac = ?, "
                    "stream_bytes = ?, lines = ?, updated_at = ? WHERE host_id = ? AND stream_bytes = ? "
                    "AND lines = ?",
                    [
                        head.hostname,
                        head.data_dir,
                        head.log_id,
                        head.seq,
                        head.mac,
                        head.stream_bytes,
                        head.lines,
                        head.updated_at,
                        head.host_id,
                        seen.stream_bytes,
                        seen.lines,
                    ],
                )
            if cursor.rowcount != 1:
                return False
            first = seen.lines if seen is not None else 0
            conn.executemany(
                "INSERT INTO audit_lines (host_id, n, seq, line) VALUES (?, ?, ?, ?)",
                [(head.host_id, first + i, seq, line) for i, (seq, line) in enumerate(lines)],
            )
        return True

    def chain(self, host_id: str, batch: int = 5000) -> Iterator[bytes]:
        """A host's lines in the order it wrote them, read in batches."""
        after = -1
        while True:
            rows = self.history.conn.execute(
                "SELECT n, line FROM audit_lines WHERE host_id = ? AND n > ? ORDER BY n LIMIT ?",
                [host_id, after, batch],
            ).fetchall()
            for _n, line in rows:
                yield bytes(line)
            if len(rows) < batch:
                return
            after = rows[-1][0]
