"""Audit anchors (`history.anchors`): the audit log's head right after each run was recorded, so a
log cut back to before a run is detectable from the record as well as from the key's anchor file."""

from __future__ import annotations

from datetime import UTC, datetime

from opsdash.storage.repository import Repository
from opsdash.storage.rows import Anchor


class Anchors(Repository):
    def record(self, run_id: str, log_id: str, seq: int, mac: str) -> None:
        conn = self.history.conn
        with conn:
            conn.execute(
                "INSERT INTO audit_anchors (run_id, log_id, seq, mac, recorded_at) VALUES (?, ?, ?, ?, ?)",
                [run_id, log_id, seq, mac, datetime.now(UTC).isoformat(timespec="seconds")],
            )

    def latest(self) -> Anchor | None:
        row = self.history.conn.execute(
            "SELECT id, run_id, log_id, seq, mac, recorded_at FROM audit_anchors ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else Anchor(*row)
