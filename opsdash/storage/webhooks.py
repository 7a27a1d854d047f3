"""Webhook verification's record (`history.webhooks`): the replay cache of delivery ids, and the
failed verifications per source that a burst alert counts. Both are shared by every process that
verifies, so a replay caught by one is caught by all."""

from __future__ import annotations

from opsdash.storage.coordination import in_transaction_lock
from opsdash.storage.repository import Repository, of_target, stored_target


class Webhooks(Repository):
    def seen(self, scheme: str, delivery_id: str, expires_in: float, now: float) -> bool:
        """Record a delivery id; True when it was already there and unexpired (a replay).

        One conditional insert on the (scheme, delivery_id) key: of two processes, or two hosts on
        one PostgreSQL database, verifying the same delivery at once, the second's insert waits for
        the first's to commit and then inserts nothing, so exactly one accepts it."""
        conn = self.history.conn
        with self.history.writing():
            # one verifier at a time purges: two deleting the same expired rows in another order
            # could deadlock on PostgreSQL (on SQLite the write transaction is already alone)
            in_transaction_lock(self.history, "webhook-seen")
            conn.execute("DELETE FROM webhook_seen WHERE expires_at < ? OR expires_at IS NULL", [now])
            cursor = conn.execute(
                "INSERT INTO webhook_seen (scheme, delivery_id, seen_at, expires_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [scheme, delivery_id, now, now + expires_in],
            )
        return cursor.rowcount == 0

    def record_failure(
        self,
        source: str,
        outcome: str,
        at: float,
        window_s: float = float("inf"),
        target: str | None = None,
    ) -> list[float]:
        """Record a failed verification (by `target`'s profile; None: no profile); returns this
        source's failure times within `window_s` before `at`, oldest first: those of `target` and
        of none (written before v15), so a burst against one target is that target's alone. Only
        the window is read (the (source, at) index): a flood of stored failures must not slow
        every later verification."""
        conn = self.history.conn
        with conn:
            conn.execute(
                "INSERT INTO webhook_failures (source, at, outcome, target) VALUES (?, ?, ?, ?)",
                [source, at, outcome, None if target is None else stored_target(target)],
            )
        mine, scope = of_target(target)
        rows = conn.execute(  # a NULL time (an old '--now nan') is not a time: never counted
            f"SELECT at FROM webhook_failures WHERE source = ? AND at >= ?{mine} ORDER BY at",  # noqa: S608
            [source, at - window_s, *scope],
        )
        return [float(r[0]) for r in rows]
