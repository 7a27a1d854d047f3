"""The record on one time axis (`history.timeline`): the events of a time window from every table,
as core `incidents.Event`s, for deriving incidents and drawing their timeline.

Each query reads only its window through an index on time. Check results are the big table (a
year is a million rows): only the rows where something was wrong are read (the partial index
`idx_check_results_failing` holds those alone), each with the row of the same check that came
next, which is where it recovered; a run of healthy results changes no state and is never read.
Times are seconds since the epoch (UTC); the tables that keep ISO text are compared in its form.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from opsdash.core.findings import Severity
from opsdash.core.incidents import (
    ALERT_FIRED,
    ALERT_RESOLVED,
    AUDIT,
    CHECK,
    DELIVERY,
    DEPLOY,
    ENV,
    RUN,
    SESSION,
    STEP,
    WEBHOOK,
    Event,
)
from opsdash.storage.repository import CHECK_NAMES, Repository, results_of_target

DEPLOY_KINDS = ("preflight", "verify-deploy")
_SEP = "\x1f"
_HEALTHY = ("OK", "INFO")
_NEXT = (
    "(SELECT n.started_at || char(31) || n.severity || char(31) || n.sustained || char(31) || n.run_id "
    "|| char(31) || n.summary FROM check_results n WHERE n.check_name = f.check_name "
    "AND n.started_at > f.started_at{scope} ORDER BY n.started_at LIMIT 1)"
)


def iso(at: float) -> str:
    """Epoch seconds as the record's ISO text (milliseconds, UTC offset), for comparisons."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


def epoch(text: str) -> float:
    when = datetime.fromisoformat(text)
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


_SEVERITIES = {s.value: s for s in Severity}


def _severity(text: str | None) -> Severity:
    """A stored severity (UNKNOWN for one this opsdash does not know): a dict, not Enum's call,
    which costs a year's listing a tenth of its time."""
    return _SEVERITIES.get(text or "", Severity.UNKNOWN)


def _check(name: str, at: str, severity: str, sustained: str, run_id: str, summary: str) -> Event:
    return Event(
        epoch(at),
        CHECK,
        name,
        summary or "",
        _severity(severity),
        ref=run_id or "",
        failed=severity not in _HEALTHY,
        sustained=_severity(sustained),
    )


class Timeline(Repository):
    """Each query takes the `target` whose record it reads ("": every target's, unscoped): two
    profiles that share a data directory each see only their own incidents."""

    def known_target(self, name: str) -> str | None:
        """The target as the record spells it (case aside), if a run, a watch or an alert names it."""
        row = self.history.conn.execute(
            "SELECT target FROM (SELECT target FROM watches UNION SELECT target FROM alerts "
            "UNION SELECT target FROM runs) AS named WHERE lower(target) = lower(?) LIMIT 1",
            [name],
        ).fetchone()
        return None if row is None else str(row[0])

    def check_changes(self, since: float, until: float, target: str = "") -> list[Event]:
        """Every check result in [since, until) that was not healthy (a failure, or a sustained
        state not OK), and the result of the same check right after each: the events that can
        change a check's state. Healthy results after healthy results change nothing."""
        scope = f" AND {results_of_target('n', ':target')}" if target else ""
        mine = f" AND {results_of_target('f', ':target')}" if target else ""
        rows = self.history.conn.execute(
            f"SELECT f.check_name, f.started_at, f.severity, f.sustained, f.run_id, f.summary, "  # noqa: S608
            f"{_NEXT.format(scope=scope)} FROM check_results f INDEXED BY idx_check_results_failing "
            "WHERE (f.severity != 'OK' OR f.sustained != 'OK') AND f.started_at >= :since "
            f"AND f.started_at < :until{mine}",
            {"since": iso(since), "until": iso(until), "target": target},
        )
        seen: dict[tuple[str, str], Event] = {}
        end = iso(until)
        for name, at, severity, sustained, run_id, summary, after in rows:
            seen[(name, at)] = _check(name, at, severity, sustained, run_id, summary)
            if after is not None:
                n_at, n_sev, n_sus, n_run, n_summary = (str(after).split(_SEP, 4) + [""] * 5)[:5]
                unhealthy = n_sev != "OK" or n_sus != "OK"  # it is a row of this query itself
                if n_at < end and not unhealthy and (name, n_at) not in seen:
                    seen[(name, n_at)] = _check(name, n_at, n_sev, n_sus, n_run, n_summary)
        return sorted(seen.values(), key=lambda e: (e.at, e.source))  # ties: by check, always

    def first_trouble(self) -> float | None:
        """When the record's first unhealthy check result or alert is (None: it has neither): no
        incident starts before it, so reading from there is reading the whole record."""
        conn = self.history.conn
        check = conn.execute(
            "SELECT min(started_at) FROM check_results INDEXED BY idx_check_results_failing "
            "WHERE severity != 'OK' OR sustained != 'OK'"
        ).fetchone()[0]
        alert = conn.execute("SELECT min(raised_at) FROM alerts").fetchone()[0]
        times = [t for t in (None if check is None else epoch(check), alert) if t is not None]
        return min(times, default=None)

    def quiet_at(self, cut: float, quiet_s: float, target: str = "") -> bool:
        """Whether the target's record is quiet at `cut`: deriving incidents from `cut` on then
        gives the very incidents the whole record gives after it (ops.incidents reads a window
        from such a cut instead of the whole record). Quiet means: no check down (its last known
        sustained state before the quiet period, and none going down in it), no alert that holds
        an incident open across the quiet period, and no check whose last result before `cut`
        was unhealthy (failed, or a sustained state not OK) and that has results after it: its
        failing streak would carry on, and the result after it is an event of the record's. A check whose
        last state is down and that is never probed again stays down, as the derivation has it,
        so no cut after it is quiet. Index seeks only: a few per check name, found by a skip
        scan of (check_name, started_at)."""
        before, at = iso(cut - quiet_s - 1), iso(cut)
        alerts = (
            "SELECT 1 FROM alerts WHERE raised_at < :cut_epoch AND (resolved_at IS NULL OR resolved_at >= "  # noqa: S608
            ":before_epoch) AND (rule != 'certificate-expiry' OR severity = 'CRIT')"
            + (" AND (target IS NULL OR target = :target)" if target else "")
            + " LIMIT 1"
        )
        params = {
            "before": before,
            "cut": at,
            "cut_epoch": cut,
            "before_epoch": cut - quiet_s - 1,
            "target": target,
        }
        conn = self.history.conn
        if conn.execute(alerts, params).fetchone():
            return False
        scope = f" AND {results_of_target('f', ':target')}" if target else ""
        went_down = (
            "SELECT 1 FROM check_results f INDEXED BY idx_check_results_failing "  # noqa: S608
            "WHERE (f.severity != 'OK' OR f.sustained != 'OK') AND f.started_at >= :before "
            f"AND f.started_at < :cut AND f.sustained IN ('WARN', 'CRIT'){scope} LIMIT 1"
        )
        if conn.execute(went_down, params).fetchone():
            return False
        rows = conn.execute(
            f"WITH RECURSIVE {CHECK_NAMES} SELECT "  # noqa: S608
            "(SELECT f.sustained FROM check_results f WHERE f.check_name = name AND f.started_at < :before "
            f"AND f.sustained IN ('OK', 'WARN', 'CRIT'){scope} ORDER BY f.started_at DESC LIMIT 1), "
            "(SELECT CASE WHEN f.severity IN ('OK', 'INFO') AND f.sustained = 'OK' THEN 'OK' ELSE 'NOT' END "
            f"FROM check_results f WHERE f.check_name = name AND f.started_at < :cut{scope} "
            "ORDER BY f.started_at DESC LIMIT 1), "
            "EXISTS (SELECT 1 FROM check_results f WHERE f.check_name = name AND f.started_at >= :cut) "
            "FROM names WHERE name IS NOT NULL",
            params,
        )
        return not any(known in ("WARN", "CRIT") or (later and last == "NOT") for known, last, later in rows)

    def alerts(self, since: float, until: float, target: str = "") -> list[Event]:
        """Alerts fired or resolved in the window, and those open across it (fired before): the
        target's, and those that name none (opened before v13, or not by a target's process)."""
        out = []
        for id_, rule, key, severity, title, raised, resolved in self.history.conn.execute(
            "SELECT id, rule, key, severity, title, raised_at, resolved_at FROM alerts "  # noqa: S608
            "WHERE raised_at < ? AND (resolved_at IS NULL OR resolved_at >= ?)"
            + (" AND (target IS NULL OR target = ?)" if target else "")
            + " ORDER BY raised_at, id",
            [until, since, *([target] if target else [])],
        ):
            source = f"{rule}:{key}"
            out.append(Event(float(raised), ALERT_FIRED, source, title, _severity(severity), ref=str(id_)))
            if resolved is not None and resolved < until:
                out.append(
                    Event(
                        float(resolved),
                        ALERT_RESOLVED,
                        source,
                        f"resolved: {title}",
                        Severity.OK,
                        ref=str(id_),
                    )
                )
        return out

    def deliveries(self, since: float, until: float, target: str = "") -> list[Event]:
        """Each alert notice sent (or not) to a channel."""
        return [
            Event(
                float(at),
                DELIVERY,
                f"{rule}:{key}",
                f"{event} to {channel}: {'delivered' if ok else 'FAILED'}"
                + (f" after {attempts} attempts" if attempts and attempts > 1 else ""),
                Severity.OK if ok else Severity.WARN,
                evidence=error or "",
                ref=str(alert_id),
            )
            for alert_id, channel, event, ok, attempts, error, at, rule, key in self.history.conn.execute(
                "SELECT d.alert_id, d.channel, d.event, d.ok, d.attempts, d.error, d.at, a.rule, a.key "
                "FROM alert_deliveries d JOIN alerts a ON a.id = d.alert_id WHERE d.at >= ? AND d.at < ? "
                + ("AND (a.target IS NULL OR a.target = ?) " if target else "")
                + "ORDER BY d.at, d.id",
                [since, until, *([target] if target else [])],
            )
        ]

    def runs(
        self, since: float, until: float, kinds: Sequence[str] = DEPLOY_KINDS, target: str = ""
    ) -> list[Event]:
        """Runs of these kinds started in the window (deploys carry the version they saw)."""
        out = []
        for kind in kinds:
            for run_id, owner, operator, started, verdict, summary in self.history.conn.execute(
                "SELECT run_id, target, operator, started_at, verdict, "  # noqa: S608
                "json_extract(summary, '$.versions') FROM runs "
                "WHERE kind = ? AND started_at >= ? AND started_at < ?"
                + (" AND target = ?" if target else ""),
                [kind, iso(since), iso(until), *([target] if target else [])],
            ):
                version = _version(summary)
                deploy = kind in DEPLOY_KINDS
                title = f"{kind} of {owner}: {verdict}" + (f" (version {version})" if version else "")
                out.append(
                    Event(
                        epoch(started),
                        DEPLOY if deploy else RUN,
                        kind,
                        title,
                        _severity(verdict),
                        operator=operator or "",
                        evidence=version,
                        ref=run_id,
                    )
                )
        return sorted(out, key=lambda e: e.at)

    def runbooks(self, since: float, until: float, target: str = "") -> list[Event]:
        """Every transition of the runbook sessions active in the window, with its operator: a
        session's start and end (SESSION), and each step's (STEP)."""
        conn = self.history.conn
        sessions = {
            sid: (runbook_id, title)
            for sid, runbook_id, title in conn.execute(
                "SELECT id, runbook_id, title FROM runbook_sessions WHERE started_at < ? AND updated_at >= ?"  # noqa: S608
                + (" AND (target IS NULL OR target = '' OR target = ?)" if target else ""),
                [iso(until), iso(since), *([target] if target else [])],
            )
        }
        if not sessions:
            return []
        out = []
        ids = list(sessions)
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            for sid, at, step, event, detail, operator in conn.execute(
                "SELECT session_id, at, step_index, event, detail, operator FROM runbook_events "  # noqa: S608
                f"WHERE session_id IN ({', '.join('?' * len(part))}) ORDER BY id",
                part,
            ):
                when = epoch(at)
                if not since <= when < until:
                    continue
                runbook_id, title = sessions[sid]
                what = f"{title}: {event}" if step is None else f"{title}: step {int(step) + 1} {event}"
                failed = any(word in event for word in ("fail", "abort", "interrupt"))
                out.append(
                    Event(
                        when,
                        SESSION if step is None else STEP,
                        runbook_id,
                        what,
                        Severity.WARN if failed else Severity.INFO,
                        operator=operator or "",
                        evidence=(detail or "")[:500],
                        ref=sid,
                    )
                )
        return sorted(out, key=lambda e: e.at)

    def webhook_failures(self, since: float, until: float, target: str = "") -> list[Event]:
        """Failed webhook verifications, one event per source and minute (a burst is one line):
        the target's, and those that name none (recorded before v15, or with no profile)."""
        return [
            Event(
                float(first),
                WEBHOOK,
                source,
                f"{count} failed webhook verification(s) from {source}",
                Severity.WARN,
                evidence=outcomes or "",
            )
            for source, _minute, first, count, outcomes in self.history.conn.execute(
                "SELECT source, CAST(at / 60 AS INTEGER) AS m, MIN(at), COUNT(*), "  # noqa: S608
                "group_concat(DISTINCT outcome) FROM webhook_failures WHERE at >= ? AND at < ? "
                + ("AND (target IS NULL OR target = ?) " if target else "")
                + "GROUP BY source, m ORDER BY MIN(at)",
                [since, until, *([target] if target else [])],
            )
        ]

    def anchors(self, since: float, until: float, target: str = "") -> list[Event]:
        return [
            Event(
                epoch(at),
                AUDIT,
                "audit",
                f"audit log head anchored after run {run_id} (record {seq})",
                ref=run_id,
            )
            for run_id, seq, at in self.history.conn.execute(
                "SELECT run_id, seq, recorded_at FROM audit_anchors a "  # noqa: S608
                "WHERE recorded_at >= :since AND recorded_at < :until"
                + (f" AND {results_of_target('a', ':target')}" if target else "")
                + " ORDER BY recorded_at, id",
                {"since": iso(since)[:19], "until": iso(until)[:19], "target": target},
            )
        ]

    def env_changes(self, since: float, until: float, target: str = "") -> list[Event]:
        """Env keys whose value's fingerprint changed between two runs that read the env, the later
        in the window (fingerprints only: values are never stored)."""
        conn = self.history.conn
        mine = " AND target = ?" if target else ""
        scope = [target] if target else []
        runs = conn.execute(
            "SELECT run_id, started_at, operator FROM runs r WHERE started_at >= ? AND started_at < ? "  # noqa: S608
            f"AND EXISTS (SELECT 1 FROM env_keys k WHERE k.run_id = r.run_id){mine} ORDER BY started_at",
            [iso(since), iso(until), *scope],
        ).fetchall()
        before = conn.execute(
            "SELECT run_id, started_at, operator FROM runs r WHERE started_at < ? "  # noqa: S608
            f"AND EXISTS (SELECT 1 FROM env_keys k WHERE k.run_id = r.run_id){mine} "
            "ORDER BY started_at DESC LIMIT 1",
            [iso(since), *scope],
        ).fetchone()
        chain = ([before] if before else []) + runs
        out = []
        previous: dict[str, str] | None = None
        for run_id, started, operator in chain:
            now = dict(
                conn.execute("SELECT key, fingerprint FROM env_keys WHERE run_id = ?", [run_id]).fetchall()
            )
            if previous is not None:
                changed = sorted(k for k in now.keys() | previous.keys() if now.get(k) != previous.get(k))
                if changed:
                    out.append(
                        Event(
                            epoch(started),
                            ENV,
                            "env",
                            f"env changed: {', '.join(changed[:8])}" + (" …" if len(changed) > 8 else ""),
                            Severity.INFO,
                            operator=operator or "",
                            evidence="; ".join(
                                f"{k}: {previous.get(k) or 'absent'} -> {now.get(k) or 'absent'}"
                                for k in changed[:8]
                            ),
                            ref=run_id,
                        )
                    )
            previous = now
        return out


def _version(versions: str | None) -> str:
    if not versions:
        return ""
    try:
        data = json.loads(versions)
    except ValueError:
        return ""
    if isinstance(data, dict):
        current = data.get("current")
        return str(current) if current else ""
    return ""
