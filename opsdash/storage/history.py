"""The one place that opens the history database.

Runs and their findings are kept with secrets only as fingerprints; every text column passes through
the redactor on its way in, so a secret cannot be stored even if a caller slips one into a detail.
The schema and its migrations are in schema.py.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from opsdash.core.envfiles import EnvSnapshot
from opsdash.core.errors import InputError
from opsdash.core.files import exclusive_lock, open_private
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.secrets import fingerprint, redactor
from opsdash.storage.rows import AlertRow, Anchor, CheckRow, DeliveryRow, EnvKey, RunRow, rows_as
from opsdash.storage.schema import MIGRATIONS, SCHEMA_VERSION

DB_NAME = "history.db"


class History:
    def __init__(self, path: Path, *, shared: bool = False) -> None:
        """`shared`: the connection may be used from several threads, one at a time (the dashboard's
        runbook executor lives across workers)."""
        self.path = path
        try:
            os.close(open_private(path, os.O_RDWR | os.O_CREAT))  # 0600 from birth, never via a link
        except OSError as exc:
            raise InputError(f"{path}: cannot open history database ({exc.strerror or exc})") from None
        try:
            self.db = sqlite_utils.Database(sqlite3.connect(path, timeout=15, check_same_thread=not shared))
            # one opener at a time sets WAL and migrates (two first opens must not race to create the
            # schema); writers then simply queue on SQLite's busy timeout
            with exclusive_lock(Path(f"{path}.lock")):
                self.db.enable_wal()
                self._migrate()
        except sqlite3.DatabaseError as exc:
            raise InputError(f"{path}: cannot open history database ({exc})") from None

    @classmethod
    def open(cls, data_dir: Path, *, shared: bool = False) -> History:
        try:
            data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise InputError(f"{data_dir}: cannot create the data directory ({exc.strerror})") from None
        return cls(data_dir / DB_NAME, shared=shared)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise InputError(
                f"{self.path}: history schema v{version} is newer than this opsdash understands "
                f"(v{SCHEMA_VERSION}); upgrade opsdash"
            )
        for step in range(version, SCHEMA_VERSION):
            with self.db.conn:
                MIGRATIONS[step](self.db)
                self.db.execute(f"PRAGMA user_version = {step + 1}")

    @property
    def schema_version(self) -> int:
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    # ------------------------------------------------------------------ writing

    def record(
        self,
        report: Report,
        *,
        operator: str,
        env: EnvSnapshot | None = None,
        is_secret: Callable[[str], bool] = lambda _k: False,
    ) -> None:
        clean = redactor.redact
        with self.db.conn:
            self.db.table("runs").insert(
                {
                    "run_id": report.run_id,
                    "kind": report.kind,
                    "target": clean(report.target),
                    "operator": clean(operator),
                    "started_at": report.started_at,
                    "duration_ms": report.duration_ms,
                    "verdict": report.verdict.value,
                    "counts": json.dumps(report.counts()),
                    "summary": clean(json.dumps(dict(report.summary))),
                }
            )
            self.db.table("findings").insert_all(
                {
                    "run_id": report.run_id,
                    "rule": f.rule,
                    "severity": f.severity.value,
                    "category": f.category,
                    "subject": clean(f.subject),
                    "title": clean(f.title),
                    "detail": clean(f.detail),
                    "remediation": clean(f.remediation),
                    "runbook": f.runbook,
                    "evidence": clean(json.dumps(dict(f.evidence))),
                }
                for f in report.findings
            )
            if env is not None:
                self.db.table("env_keys").insert_all(
                    {
                        "run_id": report.run_id,
                        "key": key,
                        "source": item.source,
                        "fingerprint": fingerprint(item.value),
                        "secret": int(is_secret(key)),
                    }
                    for key, item in env.values.items()
                )

    def record_checks(
        self, run_id: str, results: Iterable[CheckResult], sustained: Mapping[str, Severity] | None = None
    ) -> None:
        clean = redactor.redact
        rows = [
            {
                "run_id": run_id,
                "check_name": r.name,
                "kind": r.kind,
                "target": clean(r.target),
                "started_at": r.started_at,
                "severity": r.severity.value,
                "sustained": (sustained or {}).get(r.name, r.severity).value,
                "error_class": r.error_class.value if r.error_class else None,
                "summary": clean(r.summary),
                "latency_ms": r.metrics.get("response_time_ms", r.duration_ms),
                "phases": json.dumps(dict(r.phases)),
                "metrics": json.dumps(dict(r.metrics)),
                "facts": clean(json.dumps(dict(r.facts))),
            }
            for r in results
        ]
        with self.db.conn:
            self.db.table("check_results").insert_all(rows)

    def latest_check_results(self, names: Iterable[str]) -> dict[str, CheckRow]:
        """The newest row of each named check: one indexed seek per check (not a GROUP BY scan)."""
        out = {}
        for name in names:
            rows = list(
                self.db.table("check_results").rows_where(
                    "check_name = ?", [name], order_by="started_at DESC, id DESC", limit=1
                )
            )
            if rows:
                out[name] = rows_as(CheckRow, rows)[0]
        return out

    def check_history(self, name: str, limit: int = 50) -> list[CheckRow]:
        """The last `limit` results of one check, oldest first (for sparklines and trends)."""
        rows = list(
            self.db.table("check_results").rows_where(
                "check_name = ?", [name], order_by="started_at DESC, id DESC", limit=limit
            )
        )
        return rows_as(CheckRow, rows[::-1])

    def record_anchor(self, run_id: str, log_id: str, seq: int, mac: str) -> None:
        with self.db.conn:
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
        with self.db.conn:
            self.db.execute("DELETE FROM webhook_seen WHERE expires_at < ? OR expires_at IS NULL", [now])
            cursor = self.db.execute(
                "INSERT OR IGNORE INTO webhook_seen (scheme, delivery_id, seen_at, expires_at) "
                "VALUES (?, ?, ?, ?)",
                [scheme, delivery_id, now, now + expires_in],
            )
        return cursor.rowcount == 0

    def record_webhook_failure(self, source: str, outcome: str, at: float) -> list[float]:
        """Record a failed verification; returns this source's failure times, newest last."""
        with self.db.conn:
            self.db.table("webhook_failures").insert({"source": source, "at": at, "outcome": outcome})
        rows = self.db.execute(  # a NULL time (an old '--now nan') is not a time: never counted
            "SELECT at FROM webhook_failures WHERE source = ? AND at IS NOT NULL ORDER BY at", [source]
        )
        return [float(r[0]) for r in rows]

    def last_alert(self, rule: str, key: str) -> float | None:
        row = self.db.execute(
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
    ) -> int:
        with self.db.conn:
            table = self.db.table("alerts")
            table.insert(
                {
                    "rule": rule,
                    "key": key,
                    "severity": severity,
                    "title": redactor.redact(title),
                    "detail": redactor.redact(detail),
                    "raised_at": at,
                    "resolved_at": None,
                    "status": "firing",
                    "last_sent_at": None,
                    "silenced": int(silenced),
                    "runbook": runbook,
                }
            )
            return int(table.last_pk or 0)

    def open_alerts(self) -> list[AlertRow]:
        return rows_as(
            AlertRow, self.db.table("alerts").rows_where("status = 'firing'", order_by="raised_at")
        )

    def mark_alert(self, alert_id: int, **fields: Any) -> None:
        with self.db.conn:
            self.db.table("alerts").update(alert_id, fields)

    def record_delivery(
        self, alert_id: int, channel: str, event: str, ok: bool, attempts: int, error: str, at: float
    ) -> None:
        with self.db.conn:
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
        marks = ", ".join("?" for _ in kinds)
        row = self.db.execute(
            f"SELECT run_id FROM runs WHERE kind IN ({marks}) AND verdict IN ('OK', 'INFO', 'WARN') "  # noqa: S608
            "ORDER BY started_at DESC, rowid DESC LIMIT 1",
            list(kinds),
        ).fetchone()
        return None if row is None else str(row[0])

    def check_results_of(self, run_id: str) -> list[CheckRow]:
        return rows_as(
            CheckRow, self.db.table("check_results").rows_where("run_id = ?", [run_id], order_by="id")
        )

    def set_verdict(self, run_id: str, verdict: Severity) -> None:
        """Overwrite a recorded run's verdict (the demo's sample history shows a failed run)."""
        with self.db.conn:
            self.db.execute("UPDATE runs SET verdict = ? WHERE run_id = ?", [verdict.value, run_id])

    def purge(self, older_than_days: int, now: datetime | None = None) -> int:
        """Delete runs older than the retention period; returns how many went."""
        cutoff = ((now or datetime.now(UTC)) - timedelta(days=older_than_days)).isoformat(timespec="seconds")
        old_runs = "SELECT run_id FROM runs WHERE started_at < ?"
        with self.db.conn:
            for table in ("findings", "env_keys"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id IN ({old_runs})", [cutoff])  # noqa: S608
            self.db.execute("DELETE FROM check_results WHERE started_at < ?", [cutoff])
            return int(self.db.execute("DELETE FROM runs WHERE started_at < ?", [cutoff]).rowcount)

    # ------------------------------------------------------------------ reading

    @staticmethod
    def _run(row: dict[str, Any]) -> RunRow:
        return RunRow(
            run_id=row["run_id"],
            kind=row["kind"],
            target=row["target"],
            operator=row["operator"],
            started_at=row["started_at"],
            duration_ms=row["duration_ms"],
            verdict=Severity(row["verdict"]),
            counts=json.loads(row["counts"]),
            summary=json.loads(row["summary"]),
        )

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
        rows = self.db.table("runs").rows_where(
            " AND ".join(where) or None, args, order_by="started_at DESC, rowid DESC", limit=limit
        )
        return [self._run(r) for r in rows]

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
            runs = self.list_runs(limit=offset + 1)
            if len(runs) <= offset:
                raise InputError(f"run {shown!r} not found: history has {len(runs)} run(s)")
            return runs[offset]
        rows = (
            list(self.db.table("runs").rows_where("run_id LIKE ? ESCAPE '\\'", [_like_prefix(ref)], limit=2))
            if len(ref) <= 64  # run ids are 25 characters; SQLite refuses absurd LIKE patterns
            else []
        )
        if not rows:
            raise InputError(f"run {shown!r} not found in history ({self.path}); see 'opsdash history list'")
        if len(rows) > 1:
            raise InputError(f"run {shown!r} is ambiguous; type more of the id")
        return self._run(rows[0])

    def findings(self, run_id: str) -> list[Finding]:
        rows = self.db.table("findings").rows_where("run_id = ?", [run_id], order_by="id")
        return [Finding.from_dict({**r, "evidence": json.loads(r["evidence"])}) for r in rows]

    def env_keys(self, run_id: str) -> dict[str, EnvKey]:
        rows = self.db.table("env_keys").rows_where("run_id = ?", [run_id], order_by="key")
        return {r["key"]: EnvKey(r["key"], r["source"], r["fingerprint"], bool(r["secret"])) for r in rows}

    def report(self, run: RunRow) -> Report:
        return Report(
            kind=run.kind,
            target=run.target,
            run_id=run.run_id,
            started_at=run.started_at,
            duration_ms=run.duration_ms,
            findings=tuple(self.findings(run.run_id)),
            summary=run.summary,
        )


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
