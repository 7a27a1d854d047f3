"""Raising alerts: dedupe, reminders, resolve messages, silences, and delivery with retries.

Delivery never blocks checks and never raises: a channel that fails after its retries is recorded
(history and audit log) and reported on stderr.

Alertmanager channels get Alertmanager's own shape (POST /api/v2/alerts). Alertmanager expects an
active alert to be posted again before its `endsAt`, so every alert is sent there with an `endsAt`
a few minutes ahead and re-posted while it stays open (at most once a minute, as Prometheus does);
deduplication and grouping are then Alertmanager's. A resolved alert is posted with `endsAt` = the
time it resolved.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from opsdash.core.alerts import (
    CHECK_RULES,
    INCIDENT_RULES,
    PREFLIGHT_NO_GO,
    Action,
    Candidate,
    OpenAlert,
    active_silence,
    gate_cause_gone,
    incident_of,
    plan,
)
from opsdash.core.findings import Severity
from opsdash.core.health.probes.base import ProbeFailed
from opsdash.core.profile import AlertChannel, Profile, Silence
from opsdash.core.secrets import redactor
from opsdash.ops import outbound
from opsdash.ops.audit import AuditTrail
from opsdash.storage.history import History
from opsdash.storage.rows import AlertRow

RECEIVER_BODY_CAP = 64 * 1024  # what a receiver answers is only read for its status
EMOJI = {"firing": ":red_circle:", "reminder": ":repeat:", "resolved": ":large_green_circle:"}
ALERTMANAGER_PATH = "/api/v2/alerts"
ALERTMANAGER_RESEND = 60.0  # seconds between posts of a still-open alert, as Prometheus' resend delay
AM_SEVERITY = {"CRIT": "critical", "WARN": "warning", "UNKNOWN": "unknown", "INFO": "info", "OK": "none"}


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def payload(
    channel: AlertChannel,
    event: str,
    alert: dict[str, Any],
    target: str,
    at: float,
    *,
    generator_url: str = "",
    valid_for: float = 4 * ALERTMANAGER_RESEND,
    runbook_url: str | None = None,
) -> Any:
    """What one channel is sent for one alert event (firing, reminder, resolved). `runbook_url`:
    the profile's link template (`{runbook}` is the runbook id), for Alertmanager's `runbook_url`."""
    if channel.kind == "alertmanager":
        return [alertmanager_alert(event, alert, target, at, generator_url, valid_for, runbook_url)]
    if channel.kind == "slack":
        text = (
            f"{EMOJI.get(event, '')} [{alert['severity']}] {alert['title']} — {alert['detail']}"
            + (f" (runbook: {alert['runbook']})" if alert.get("runbook") else "")
            + ("" if event != "resolved" else " — resolved")
        )
        return {"text": redactor.redact(text)}
    body = {
        "source": "opsdash",
        "status": event,
        "alert_id": alert["id"],
        "rule": alert["rule"],
        "key": alert["key"],
        "severity": alert["severity"],
        "title": alert["title"],
        "detail": alert["detail"],
        "runbook": alert.get("runbook"),
        "runbook_url": runbook_link(runbook_url, alert.get("runbook")),
        "target": target,
        "at": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"),
    }
    return {k: redactor.redact(v) if isinstance(v, str) else v for k, v in body.items()}


def runbook_link(template: str | None, runbook: str | None) -> str | None:
    """The profile's `[alerts] runbook_url` with the runbook's id in it."""
    return template.replace("{runbook}", runbook) if template and runbook else None


def alertmanager_alert(
    event: str,
    alert: dict[str, Any],
    target: str,
    at: float,
    generator_url: str,
    valid_for: float,
    runbook_url: str | None = None,
) -> dict[str, Any]:
    """One postableAlert of Alertmanager's v2 API: labels identify it (Alertmanager dedupes on
    them), annotations describe it; `endsAt` in the future while it fires, the resolve time once
    resolved."""
    subject = "check" if alert["rule"] in CHECK_RULES else "subject"
    labels = {
        "alertname": alert["rule"],
        subject: alert["key"],
        "target": target,
        "severity": AM_SEVERITY.get(alert["severity"], str(alert["severity"]).lower()),
    }
    annotations = {"summary": alert["title"], "description": alert["detail"]}
    if alert.get("runbook"):
        annotations["runbook"] = alert["runbook"]
        link = runbook_link(runbook_url, alert["runbook"])
        if link:
            annotations["runbook_url"] = link
    if alert.get("silenced_span"):
        annotations["silenced"] = alert["silenced_span"]
    resolved = event == "resolved"
    ends = (alert.get("resolved_at") or at) if resolved else at + valid_for
    body = {
        "labels": labels,
        "annotations": {k: redactor.redact(str(v)) for k, v in annotations.items()},
        "startsAt": _iso(alert["raised_at"]),
        "endsAt": _iso(ends),
    }
    if generator_url:
        body["generatorURL"] = generator_url
    return body


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def channel_url(channel: AlertChannel) -> str:
    url = channel.url or os.environ.get(channel.url_env or "", "")
    if url and channel.kind == "alertmanager" and not url.rstrip("/").endswith(ALERTMANAGER_PATH):
        url = url.rstrip("/") + ALERTMANAGER_PATH
    return url


def retry_after(value: str | None, now: float) -> float | None:
    """Seconds a `Retry-After` header asks for: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    if value.isascii() and value.isdigit():  # "²" is a digit to isdigit(), not to float()
        return float(value)
    try:
        return max(email.utils.parsedate_to_datetime(value).timestamp() - now, 0.0)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def deliver(channel: AlertChannel, body: Any) -> tuple[bool, int, str]:
    """POST with retries, all within the channel's `timeout`: a receiver that never answers, or
    drips its answer, costs at most that long. Between tries: exponential backoff with full jitter
    (many opsdash processes that lost one receiver do not come back to it in step), or the wait a
    429/503's `Retry-After` asks for; a wait that would pass the timeout is not taken. Returns (ok,
    attempts, last error)."""
    url = channel_url(channel)
    if not url:
        return False, 0, f"{channel.url_env} is not set"
    if channel.url_env:
        redactor.register(url)  # a Slack-style URL is a credential
    data = json.dumps(body).encode()
    deadline = time.monotonic() + channel.timeout
    error, attempt = "", 0
    while True:
        attempt += 1
        try:
            answer = outbound.request(
                "POST",
                url,
                timeout=max(deadline - time.monotonic(), 0.05),
                body=data,
                headers={"Content-Type": "application/json"},
                max_body_bytes=RECEIVER_BODY_CAP,
            )
            if answer.status < 300:
                return True, attempt, ""
            error = f"HTTP {answer.status}"
            asked = (
                retry_after(answer.facts.get("retry_after"), time.time())
                if answer.status in (429, 503)
                else None
            )
        except ProbeFailed as exc:
            error, asked = f"{exc.error.value}: {exc.reason}", None
        wait = asked if asked is not None else random.uniform(0, 0.4 * 2 ** (attempt - 1))  # noqa: S311
        if attempt > channel.retries:
            return False, attempt, error
        if deadline - time.monotonic() < wait + 0.1:
            why = f" (Retry-After {asked:g} s is past the channel's timeout)" if asked is not None else ""
            return False, attempt, error + why
        time.sleep(wait)


Deliver = Callable[[AlertChannel, Any], tuple[bool, int, str]]


def _as_dict(alert: AlertRow) -> dict[str, Any]:
    return dataclasses.asdict(alert)


def silenced_span(alert: AlertRow | OpenAlert, silences: Sequence[Silence], now: float) -> str:
    """Words for the time an alert spent silenced: from when it was raised to when its silence ended."""
    raised = datetime.fromtimestamp(alert.raised_at, UTC)
    silence = active_silence(alert.rule, silences, raised)
    until = silence.end if silence is not None else datetime.fromtimestamp(now, UTC)
    why = f" ({silence.reason})" if silence is not None and silence.reason else ""
    return f"silenced from {_iso(alert.raised_at)} to {_iso(until.timestamp())}{why}"


class AlertDispatcher:
    """Fire, remind, resolve and deliver the profile's alerts; every step is recorded in history and
    the audit trail. `deliver` and `clock` are seams for tests. `generator_url` is the link an
    Alertmanager shows for where an alert came from (`opsdash serve` sets its own address)."""

    def __init__(
        self,
        profile: Profile,
        audit: AuditTrail,
        *,
        deliver: Deliver = deliver,
        clock: Callable[[], float] = time.time,
        generator_url: str | None = None,
    ) -> None:
        self.profile, self.audit, self.deliver, self.clock = profile, audit, deliver, clock
        self.generator_url = generator_url
        self._posted: dict[int, float] = {}  # alert id -> last post to the Alertmanager channels

    @property
    def _valid_for(self) -> float:
        """How long Alertmanager should hold a firing alert without hearing from us again: four
        resend periods, or three polls of the slowest check, whichever is longer."""
        slowest = max((c.interval for c in self.profile.checks), default=0.0)
        return max(4 * ALERTMANAGER_RESEND, 3 * slowest)

    def send_event(self, history: History, alert: AlertRow) -> None:
        """An alert that is an event (a burst), not a state: sent once, nothing to resolve later."""
        now = self.clock()
        if active_silence(alert.rule, self.profile.alerts.silences, datetime.fromtimestamp(now, UTC)) is None:
            self._send(history, "firing", _as_dict(alert))
            history.alerts.mark(alert.id, last_sent_at=now, status="resolved")

    def _send(
        self, history: History, event: str, alert: dict[str, Any], channels: Sequence[AlertChannel] = ()
    ) -> None:
        channels = channels or self.profile.alerts.channels
        at = self.clock()
        target = self.profile.target.name
        link = self.generator_url or self.profile.target.base_url
        bodies = [
            payload(
                channel,
                event,
                alert,
                target,
                at,
                generator_url=link,
                valid_for=self._valid_for,
                runbook_url=self.profile.alerts.runbook_url,
            )
            for channel in channels
        ]
        if any(c.kind == "alertmanager" for c in channels):
            self._posted[alert["id"]] = at
        # Every channel at once: a slow receiver costs its own deadline once, not once per channel.
        with ThreadPoolExecutor(max_workers=max(len(channels), 1)) as pool:
            outcomes = list(pool.map(self.deliver, channels, bodies))
        for channel, (ok, attempts, error) in zip(channels, outcomes, strict=True):
            history.alerts.record_delivery(
                alert["id"], channel.name, event, ok, attempts, error, self.clock()
            )
            if not ok:
                print(
                    f"opsdash: warning: alert {alert['id']} not delivered to {channel.name} after "
                    f"{attempts} attempt(s): {redactor.redact(error)}",
                    file=sys.stderr,
                )
                self.audit.event(
                    "system",
                    "alert-delivery-failed",
                    subject=channel.name,
                    outcome="failed",
                    details={"alert_id": alert["id"], "error": error, "event": event},
                )

    def process(
        self,
        history: History,
        candidates: Sequence[Candidate],
        scope: set[tuple[str, str]],
        now: float | None = None,
    ) -> list[Action]:
        """Decide and carry out fire / remind / resolve for these candidates; returns what was done
        (an alert that stays silenced is not among it)."""
        now = self.clock() if now is None else now
        # this target's open alerts (and those of no target): another profile's check of the same
        # name, in the same record, is another incident, neither reminded nor resolved from here
        rows = {r.id: r for r in history.alerts.firing(self.profile.target.name)}
        open_alerts = {
            (r.rule, r.key): OpenAlert(r.id, r.rule, r.key, r.raised_at, r.last_sent_at)
            for r in rows.values()
        }
        alerts = self.profile.alerts
        actions = plan(candidates, open_alerts, scope, now, alerts.reminder_interval)
        when = datetime.fromtimestamp(now, UTC)
        done: list[Action] = []
        held: set[int] = set()  # open alerts these candidates keep firing
        for action in actions:
            silence = active_silence(action.rule, alerts.silences, when)
            # Each action is claimed in the record before it is sent: when several processes watch
            # one target, the one whose claim lands sends, and the others find nothing to do.
            if action.kind == "fire" and action.alert is not None:
                held.add(action.alert.id)
                # raised inside a silence that has ended: its first notice
                if silence is None and self._fire_late(history, rows[action.alert.id], action, now):
                    done.append(action)
            elif action.kind == "fire":
                if self._fire(history, action, silence, now):
                    done.append(action)
            elif action.kind == "remind":
                assert action.alert is not None and action.candidate is not None
                held.add(action.alert.id)
                if silence is None and history.alerts.claim(
                    action.alert.id, action.alert.last_sent_at, last_sent_at=now
                ):
                    row = {**_as_dict(rows[action.alert.id]), "detail": action.candidate.detail}
                    self._send(history, "reminder", row)
                    done.append(action)
            elif action.kind == "resolve" and self._resolve(history, rows, action, silence, now):
                done.append(action)
        self._refresh(history, candidates, open_alerts, held, now)
        return done

    def settle_gate(self, history: History, now: float | None = None) -> list[Action]:
        """Resolve this target's NO-GO preflight alert once the record shows each of its blocking
        reasons gone: the failing checks seen healthy since, the environment findings absent from a
        later validation (core/alerts.gate_cause_gone). Called after every recorded sweep and
        validation, so the header does not stay NO-GO until someone runs preflight again."""
        target = self.profile.target.name
        alert = next(
            (a for a in history.alerts.firing(target) if a.rule == PREFLIGHT_NO_GO and a.key == target), None
        )
        run_id = history.runs.last(("preflight",), ("CRIT",), target) if alert is not None else None
        if alert is None or run_id is None:
            return []
        blocking = [f for f in history.runs.findings(run_id) if f.severity is Severity.CRIT]
        names = {c.name for c in self.profile.checks}
        rows = history.checks.latest(names & {f.subject for f in blocking}, target)
        healthy = {
            row.check_name
            for row in rows
            if row.sustained == "OK" and _epoch(row.started_at) > alert.raised_at
        }
        later = history.runs.last(("validate",), target=target)
        validation = None
        if later is not None and _epoch((run := history.runs.resolve(later)).started_at) > alert.raised_at:
            validation = history.runs.report(run)
        if not gate_cause_gone(blocking, names, healthy, validation):
            return []
        return self.process(history, [], {(PREFLIGHT_NO_GO, target)}, now)

    def _fire(self, history: History, action: Action, silence: Silence | None, now: float) -> bool:
        c = action.candidate
        assert c is not None
        alert_id = history.alerts.record(
            c.rule,
            c.key,
            c.severity.value,
            c.title,
            c.detail,
            now,
            runbook=c.runbook,
            silenced=silence is not None,
            unless_open=INCIDENT_RULES if c.rule in INCIDENT_RULES else (c.rule,),
            sent_at=None if silence is not None else now,
            target=self.profile.target.name,
            observed_at=c.observed_at,
        )
        if alert_id is None:  # another process opened this incident a moment ago, and sends it
            return False
        self.audit.event(
            "security_event" if c.rule in ("credentials-rejected",) else "system",
            "alert",
            subject=c.key,
            outcome=c.severity.value,
            details={
                "rule": c.rule,
                "alert_id": alert_id,
                "title": c.title,
                "silenced": silence.reason if silence else None,
            },
        )
        if silence is None:
            self._send(history, "firing", _as_dict(history.alerts.get(alert_id)))
        return True

    def _fire_late(self, history: History, row: AlertRow, action: Action, now: float) -> bool:
        assert action.candidate is not None
        if not history.alerts.claim(row.id, None, last_sent_at=now):
            return False
        span = silenced_span(row, self.profile.alerts.silences, now)
        body = {
            **_as_dict(row),
            "detail": f"{action.candidate.detail} (started inside a silence: {span})",
            "silenced_span": span,
        }
        self._send(history, "firing", body)
        self.audit.event(
            "system",
            "alert-after-silence",
            subject=row.key,
            outcome=row.severity,
            details={"rule": row.rule, "alert_id": row.id, "silenced": span},
        )
        return True

    def _resolve(
        self, history: History, rows: dict[int, AlertRow], action: Action, silence: Silence | None, now: float
    ) -> bool:
        assert action.alert is not None
        if not history.alerts.claim(
            action.alert.id, action.alert.last_sent_at, status="resolved", resolved_at=now
        ):
            return False  # resolved, or sent again, by another process since this one read it
        self.audit.event(
            "system",
            "alert-resolved",
            subject=action.key,
            outcome="resolved",
            details={"rule": action.rule, "alert_id": action.alert.id},
        )
        row = rows[action.alert.id]
        self._posted.pop(row.id, None)
        if row.last_sent_at is None or silence is not None:
            return True
        resolved = {**_as_dict(row), "resolved_at": now}
        if self.profile.alerts.send_resolved:
            self._send(history, "resolved", resolved)
        else:  # Alertmanager must still hear the end, or it holds the alert until its endsAt
            am = [c for c in self.profile.alerts.channels if c.kind == "alertmanager"]
            if am:
                self._send(history, "resolved", resolved, am)
        return True

    def _refresh(
        self,
        history: History,
        candidates: Sequence[Candidate],
        open_alerts: dict[tuple[str, str], OpenAlert],
        held: set[int],
        now: float,
    ) -> None:
        """Post the alerts these candidates keep open to Alertmanager again, once a resend period
        has passed (since any process's notice or re-post), so Alertmanager never lets a firing
        alert lapse; `_posted` only spares this process a look at the record."""
        am = [c for c in self.profile.alerts.channels if c.kind == "alertmanager"]
        if not am:
            return
        ids = held | {a.id for c in candidates if (a := incident_of(c, open_alerts)) is not None}
        for alert_id in sorted(ids):
            last = self._posted.get(alert_id)
            if last is not None and now - last < ALERTMANAGER_RESEND:
                continue
            row = history.alerts.get(alert_id)
            if row.status != "firing" or row.last_sent_at is None:
                continue  # resolved meanwhile, or never sent (silenced)
            latest = max(row.last_sent_at, row.posted_at or 0.0)  # by this process or another
            if now - latest < ALERTMANAGER_RESEND:
                self._posted[alert_id] = latest  # count from then: no need to ask the record sooner
                continue
            # claimed in the record: of several processes watching this target, one re-posts
            if history.alerts.claim_refresh(alert_id, now, ALERTMANAGER_RESEND):
                self._send_quietly(row, am, now)

    def _send_quietly(self, row: AlertRow, channels: Sequence[AlertChannel], now: float) -> None:
        """A refresh: not a new delivery (history keeps the notices), but a failure is still said."""
        self._posted[row.id] = now
        link = self.generator_url or self.profile.target.base_url
        for channel in channels:
            body = payload(
                channel,
                "firing",
                _as_dict(row),
                self.profile.target.name,
                now,
                generator_url=link,
                valid_for=self._valid_for,
            )
            ok, attempts, error = self.deliver(channel, body)
            if not ok:
                print(
                    f"opsdash: warning: alert {row.id} not re-sent to {channel.name} after "
                    f"{attempts} attempt(s): {redactor.redact(error)}",
                    file=sys.stderr,
                )
