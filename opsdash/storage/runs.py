"""Runs: a report's summary, its findings and the fingerprints of the env it read (`history.runs`).

Every text column passes through the redactor on its way in, so a secret cannot be stored even if
a caller slips one into a detail. A run's check results live only in check_results (`history.checks`;
its summary here stays small), so listing a year of runs never reads them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opsdash.core.errors import InputError
from opsdash.core.findings import Finding, Report, Severity
from opsdash.core.secrets import fingerprint, redactor
from opsdash.storage.repository import Repository, compact, stored_target
from opsdash.storage.rows import EnvKey, RunRow

if TYPE_CHECKING:
    from opsdash.core.envfiles import EnvSnapshot
    from opsdash.core.health.model import CheckResult

RUN_COLUMNS = "run_id, kind, target, operator, started_at, duration_ms, verdict, counts"
GREEN = ("OK", "INFO", "WARN")  # a GO: never CRIT or UNKNOWN


class Runs(Repository):
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
        check_results (pass `results`, or call `history.checks.record` with them)."""
        clean = redactor.redact
        summary = {k: v for k, v in report.summary.items() if k != "checks"}
        conn = self.history.conn
        with self.history.writing():
            conn.execute(
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
                    clean(compact(summary) or "{}"),
                ],
            )
            conn.executemany(
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
                conn.executemany(
                    "INSERT INTO env_keys (run_id, key, source, fingerprint, secret, length) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (
                            report.run_id,
                            key,
                            item.source,
                            fingerprint(item.value),
                            int(secret := is_secret(key)),
                            len(item.value) if secret else None,  # as mask() shows it
                        )
                        for key, item in env.values.items()
                    ],
                )
            if results:
                self.history.checks.record(report.run_id, results)  # joins this transaction

    def set_verdict(self, run_id: str, verdict: Severity) -> None:
        """Overwrite a recorded run's verdict (the demo's sample history shows a failed run)."""
        with self.history.conn:
            self.history.conn.execute("UPDATE runs SET verdict = ? WHERE run_id = ?", [verdict.value, run_id])

    # ------------------------------------------------------------------ reading

    def _select(
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
        cursor = self.history.conn.execute(
            f"SELECT {RUN_COLUMNS}, {summary} FROM runs {where} "  # noqa: S608
            f"ORDER BY {order} LIMIT ?",
            [*args, limit],
        )
        runs = [_run(r) for r in cursor]
        if not full and self.history.dialect != "sqlite":  # json_remove is SQLite's: drop it here
            for run in runs:
                run.summary.pop("checks", None)
        return runs

    def recent(
        self,
        *,
        limit: int = 20,
        kind: str | None = None,
        target: str | None = None,
        since: str | None = None,
        until: str | None = None,
        verdict: str | None = None,
        rule: str | None = None,
    ) -> list[RunRow]:
        """The newest runs first (of one kind, of one target, started in [since, until) given as
        the record's ISO text, with this verdict, with a finding of this rule)."""
        where: list[str] = []
        args: list[Any] = []
        for value, test in (
            (kind, "kind = ?"),
            (target, "target = ?"),
            (since, "started_at >= ?"),
            (until, "started_at < ?"),
            (verdict, "+verdict = ?"),  # `+`: the planner keeps to started_at's order
            (rule, "EXISTS (SELECT 1 FROM findings f WHERE f.run_id = runs.run_id AND f.rule = ?)"),
        ):
            if value:
                where.append(test)
                args.append(value)
        return self._select(f"WHERE {' AND '.join(where)}" if where else "", args, limit=limit)

    def resolve(self, ref: str, kind: str | None = None) -> RunRow:
        """A run by id, unique id prefix, or `latest` / `latest~N` (N runs before the latest; with
        `kind`, N runs of that kind before the latest of that kind)."""
        shown = ref if len(ref) <= 40 else ref[:39] + "…"
        if not ref.strip():
            raise InputError("no run given: pass a run id, a unique prefix of one, or latest / latest~N")
        if ref == "latest" or ref.startswith("latest~"):
            back = ref.partition("~")[2]
            if back and not (back.isascii() and back.isdigit() and len(back) <= 9):
                raise InputError(f"run reference {shown!r}: expected latest~N with a number N")
            offset = int(back or 0)
            where, args = ("WHERE kind = ?", [kind]) if kind else ("", [])
            runs = self._select(where, args, limit=offset + 1, full=True)
            if len(runs) <= offset:
                of = f" {kind}" if kind else ""
                raise InputError(f"run {shown!r} not found: history has {len(runs)}{of} run(s)")
            return runs[offset]
        # run ids are 25 characters; a prefix is a range of the primary key's index
        rows = self._select(
            "WHERE run_id >= ? AND run_id < ?", [ref, ref + "\U0010ffff"], limit=2, full=True, order="run_id"
        )
        rows = [r for r in rows if r.run_id.startswith(ref)] if len(ref) <= 64 else []
        if not rows:
            raise InputError(
                f"run {shown!r} not found in history ({self.history.location}); see 'opsdash history list'"
            )
        if len(rows) > 1:
            raise InputError(f"run {shown!r} is ambiguous; type more of the id")
        return rows[0]

    def watching(self, run_id: str, target: str, started_at: str) -> None:
        """A watch's run id belongs to `target`: its check results have no row in runs, and the
        incident timeline scopes check results to a target through this (once per run id)."""
        with self.history.writing():
            self.history.conn.execute(
                "INSERT OR IGNORE INTO watches (run_id, target, started_at) VALUES (?, ?, ?)",
                [run_id, redactor.redact(target), started_at],
            )

    def last(
        self, kinds: tuple[str, ...], verdicts: tuple[str, ...] | None = None, target: str | None = None
    ) -> str | None:
        """The id of the newest run of these kinds (with one of these verdicts; of this target): per
        kind, a walk back along (kind, started_at) that stops at the first match (`+verdict` keeps
        the planner on it)."""
        where = "kind = ?"
        if verdicts is not None:
            where += f" AND +verdict IN ({', '.join('?' for _ in verdicts)})"
        if target is not None:
            where += " AND +target = ?"
        found = []
        for kind in kinds:
            row = self.history.conn.execute(
                f"SELECT started_at, rowid, run_id FROM runs WHERE {where} "  # noqa: S608 - placeholders
                "ORDER BY started_at DESC, rowid DESC LIMIT 1",
                [kind, *(verdicts or ()), *([] if target is None else [stored_target(target)])],
            ).fetchone()
            if row is not None:
                found.append(tuple(row))
        return str(max(found)[2]) if found else None

    def last_green(self, kinds: tuple[str, ...]) -> str | None:
        """The newest run of these kinds that passed (a GO: OK, INFO or WARN, never CRIT or UNKNOWN)."""
        return self.last(kinds, GREEN)

    def findings(self, run_id: str) -> list[Finding]:
        rows = self._dicts("SELECT * FROM findings WHERE run_id = ? ORDER BY id", [run_id])
        return [Finding.from_dict({**r, "evidence": json.loads(r["evidence"])}) for r in rows]

    def env_keys(self, run_id: str) -> list[EnvKey]:
        """The env keys the run read, by name: where each came from and its value's fingerprint."""
        rows = self.history.conn.execute(
            "SELECT key, source, fingerprint, secret FROM env_keys WHERE run_id = ? ORDER BY key", [run_id]
        )
        return [EnvKey(key, source, print_, bool(secret)) for key, source, print_, secret in rows]

    def secret_fingerprints(self, runs: int) -> set[str]:
        """The fingerprints of the secret env values of the newest `runs` runs that read the env:
        what the masker needs to recognise a rotated-away value when it turns up again. Empty when
        the record cannot say (a damaged page must not stop a command that only reads it)."""
        try:
            rows = self.history.conn.execute(
                "SELECT DISTINCT fingerprint FROM env_keys WHERE secret = 1 AND run_id IN (SELECT r.run_id "
                "FROM runs r WHERE EXISTS (SELECT 1 FROM env_keys k WHERE k.run_id = r.run_id) "
                "ORDER BY r.started_at DESC LIMIT ?)",
                [runs],
            ).fetchall()
        except sqlite3.Error:
            return set()
        return {row[0] for row in rows}

    def secret_prints(self, runs: int) -> list[tuple[str, str, int | None]]:
        """(variable, fingerprint, length) of the secret env values of the newest `runs` runs that
        read the env, each once: the previous values a credential trace looks for (a length is
        None for runs recorded before lengths were kept)."""
        rows = self.history.conn.execute(
            "SELECT key, fingerprint, MAX(length) FROM env_keys WHERE secret = 1 AND run_id IN "
            "(SELECT r.run_id FROM runs r WHERE EXISTS (SELECT 1 FROM env_keys k WHERE k.run_id = r.run_id) "
            "ORDER BY r.started_at DESC LIMIT ?) GROUP BY key, fingerprint ORDER BY key, fingerprint",
            [runs],
        ).fetchall()
        return [(key, print_, None if length is None else int(length)) for key, print_, length in rows]

    def report(self, run: RunRow) -> Report:
        """The run's report as it was shown: its findings, and its check results as they ended."""
        summary = run.summary
        if "checks" not in summary:  # recorded by this opsdash: the checks are in their own table
            checks = [row.as_result() for row in self.history.checks.as_reported(run.run_id)]
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
