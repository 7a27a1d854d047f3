"""Alerts and their deliveries (`history.alerts`): the incident record every process shares.

An alert is opened, reminded and resolved with conditional writes, so of two processes that decide
the same thing at once exactly one acts on it (docs/architecture.md, "Many processes, one record"),
on SQLite (one writer at a time) and on PostgreSQL (READ COMMITTED: the open takes a per-key
advisory lock for its look-then-insert; a claim is one conditional UPDATE, which PostgreSQL
re-checks against the row a concurrent claim left, so the second finds nothing to change).

Every lookup by key is a target's (`target=`): two profiles that share a data directory or a
database, each with a check called "api", have an incident each. An alert that names no target
(written before v13, or by a process with no profile) is every target's, as it always was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opsdash.core.secrets import redactor
from opsdash.storage.coordination import in_transaction_lock
from opsdash.storage.repository import Repository, of_target, stored_target
from opsdash.storage.rows import AlertRow, DeliveryRow, rows_as


class Alerts(Repository):
    def record(
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
        target: str | None = None,
        observed_at: float | None = None,
    ) -> int | None:
        """Open an alert; with `unless_open`, only if no alert of those rules is firing for `key`
        (of this `target`, or of none):
        the check and the insert are one write transaction, so of two processes that see the same
        failure at once exactly one opens the incident (and sends it); the other gets None.
        `sent_at`: the alert is being sent now (claimed, so no one else sends it first). `target`:
        the profile target whose process opened it (another target's open alert of the same key
        does not stop this one; the incident timeline scopes by it).
        `observed_at`: when the failure was seen; an incident of `unless_open` resolved since then
        (by another process, on a later healthy result) is not re-opened by this older evidence."""
        conn = self.history.conn
        mine, scope = of_target(target)
        with self.history.writing():
            # the look and the insert, one at a time (per key: a NULL-target alert is every target's)
            in_transaction_lock(self.history, "alert", key)
            if unless_open:
                marks = ", ".join("?" * len(unless_open))
                if conn.execute(
                    f"SELECT 1 FROM alerts WHERE status = 'firing' AND key = ? AND rule IN ({marks}){mine} "  # noqa: S608
                    "LIMIT 1",
                    [key, *unless_open, *scope],
                ).fetchone():
                    return None
                if (
                    observed_at is not None
                    and conn.execute(
                        f"SELECT 1 FROM alerts WHERE status = 'resolved' AND key = ? AND rule IN ({marks}) "  # noqa: S608
                        f"AND resolved_at >= ?{mine} LIMIT 1",
                        [key, *unless_open, observed_at, *scope],
                    ).fetchone()
                ):
                    return None
            cursor = conn.execute(
                "INSERT INTO alerts (rule, key, severity, title, detail, raised_at, resolved_at, status, "
                "last_sent_at, silenced, runbook, target) "
                "VALUES (?, ?, ?, ?, ?, ?, NULL, 'firing', ?, ?, ?, ?) RETURNING id",
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
                    None if target is None else stored_target(target),
                ],
            )
            return int(cursor.fetchone()[0])

    def mark(self, alert_id: int, **fields: Any) -> None:
        if not fields:
            return
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self.history.conn:
            sql = f"UPDATE alerts SET {columns} WHERE id = ?"  # noqa: S608 (column names from code)
            self.history.conn.execute(sql, [*fields.values(), alert_id])

    def claim(self, alert_id: int, seen_sent_at: float | None, **fields: Any) -> bool:
        """Change a firing alert only if it is still as this process last read it (firing, and sent
        last at `seen_sent_at`): a conditional update, so a reminder, a late first notice or a
        resolve is claimed, and sent, by exactly one of the processes that decided on it."""
        columns = ", ".join(f"{name} = ?" for name in fields)
        seen, args = ("IS NULL", []) if seen_sent_at is None else ("= ?", [seen_sent_at])
        with self.history.writing():
            cursor = self.history.conn.execute(
                f"UPDATE alerts SET {columns} WHERE id = ? AND status = 'firing' AND last_sent_at {seen}",  # noqa: S608
                [*fields.values(), alert_id, *args],
            )
        return cursor.rowcount == 1

    def claim_refresh(self, alert_id: int, now: float, every: float) -> bool:
        """Claim the re-post of a firing alert to Alertmanager: only when neither a notice nor a
        re-post (by any process) was made in the last `every` seconds. Two `serve` replicas watching
        one target re-post it once a period between them, not once each."""
        due = now - every
        with self.history.writing():
            cursor = self.history.conn.execute(
                "UPDATE alerts SET posted_at = ? WHERE id = ? AND status = 'firing' AND last_sent_at <= ? "
                "AND (posted_at IS NULL OR posted_at <= ?)",
                [now, alert_id, due, due],
            )
        return cursor.rowcount == 1

    def record_delivery(
        self, alert_id: int, channel: str, event: str, ok: bool, attempts: int, error: str, at: float
    ) -> None:
        with self.history.conn:
            self.history.conn.execute(
                "INSERT INTO alert_deliveries (alert_id, channel, event, ok, attempts, error, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [alert_id, channel, event, int(ok), attempts, redactor.redact(error), at],
            )

    # ------------------------------------------------------------------ reading

    def get(self, alert_id: int) -> AlertRow:
        rows = rows_as(AlertRow, self._dicts("SELECT * FROM alerts WHERE id = ?", [alert_id]))
        if not rows:
            raise KeyError(f"no alert {alert_id}")
        return rows[0]

    def firing(self, target: str | None = None) -> list[AlertRow]:
        """The open alerts (of `target` and of no target; None: every one), oldest first."""
        mine, scope = of_target(target)
        return rows_as(
            AlertRow,
            self._dicts(f"SELECT * FROM alerts WHERE status = 'firing'{mine} ORDER BY raised_at, id", scope),  # noqa: S608
        )

    def all(self, rule: str | None = None) -> list[AlertRow]:
        """Every alert (of one rule), firing or resolved, oldest first."""
        where, args = ("WHERE rule = ?", [rule]) if rule else ("", [])
        return rows_as(AlertRow, self._dicts(f"SELECT * FROM alerts {where} ORDER BY raised_at, id", args))  # noqa: S608

    def last_raised(self, rule: str, key: str, target: str | None = None) -> float | None:
        """When the newest alert of `rule` for `key` (of `target`, or of none) was raised (None: never)."""
        mine, scope = of_target(target)
        row = self.history.conn.execute(
            f"SELECT raised_at FROM alerts WHERE rule = ? AND key = ?{mine} ORDER BY raised_at DESC LIMIT 1",  # noqa: S608
            [rule, key, *scope],
        ).fetchone()
        return None if row is None else float(row[0])

    def deliveries(self, alert_id: int | None = None) -> list[DeliveryRow]:
        """Every delivery attempt (of one alert), in the order they were made."""
        where, args = ("WHERE alert_id = ?", [alert_id]) if alert_id is not None else ("", [])
        return rows_as(DeliveryRow, self._dicts(f"SELECT * FROM alert_deliveries {where} ORDER BY id", args))  # noqa: S608
