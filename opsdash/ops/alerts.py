"""Raising alerts: dedupe, reminders, resolve messages, silences, and delivery with retries.

Delivery never blocks checks and never raises: a channel that fails after its retries is recorded
(history and audit log) and reported on stderr.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from opsdash.core.alerts import Action, Candidate, OpenAlert, active_silence, plan
from opsdash.core.health.probes.base import ProbeFailed
from opsdash.core.profile import AlertChannel, Profile
from opsdash.core.secrets import redactor
from opsdash.ops import outbound
from opsdash.ops.audit import AuditTrail
from opsdash.storage.history import History
from opsdash.storage.rows import AlertRow

RECEIVER_BODY_CAP = 64 * 1024  # what a receiver answers is only read for its status
EMOJI = {"firing": ":red_circle:", "reminder": ":repeat:", "resolved": ":large_green_circle:"}


def payload(
    channel: AlertChannel, event: str, alert: dict[str, Any], target: str, at: float
) -> dict[str, Any]:
    if channel.kind == "slack":
        text = (
            f"{EMOJI.get(event, '')} [{alert['severity']}] {alert['title']} — {alert['detail']}"
            + (f" (runbook: {alert['runbook']})" if alert.get("runbook") else "")
            + ("" if event != "resolved" else " — resolved")
        )
        return {"text": redactor.redact(text)}
    return {
        "source": "opsdash",
        "status": event,
        "alert_id": alert["id"],
        "rule": alert["rule"],
        "key": alert["key"],
        "severity": alert["severity"],
        "title": alert["title"],
        "detail": alert["detail"],
        "runbook": alert.get("runbook"),
        "target": target,
        "at": datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"),
    }


def deliver(channel: AlertChannel, body: dict[str, Any]) -> tuple[bool, int, str]:
    """POST with retries and backoff, all within the channel's `timeout`: a receiver that never
    answers, or drips its answer, costs at most that long. Returns (ok, attempts, last error)."""
    url = channel.url or os.environ.get(channel.url_env or "", "")
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
        except ProbeFailed as exc:
            error = f"{exc.error.value}: {exc.reason}"
        backoff = 0.2 * 2 ** (attempt - 1)
        if attempt > channel.retries or deadline - time.monotonic() < backoff + 0.1:
            return False, attempt, error
        time.sleep(backoff)


Deliver = Callable[[AlertChannel, dict[str, Any]], tuple[bool, int, str]]


def _as_dict(alert: AlertRow) -> dict[str, Any]:
    return dataclasses.asdict(alert)


class AlertDispatcher:
    """Fire, remind, resolve and deliver the profile's alerts; every step is recorded in history and
    the audit trail. `deliver` and `clock` are seams for tests."""

    def __init__(
        self,
        profile: Profile,
        audit: AuditTrail,
        *,
        deliver: Deliver = deliver,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.profile, self.audit, self.deliver, self.clock = profile, audit, deliver, clock

    def send_event(self, history: History, alert: AlertRow) -> None:
        """An alert that is an event (a burst), not a state: sent once, nothing to resolve later."""
        now = self.clock()
        if active_silence(alert.rule, self.profile.alerts.silences, datetime.fromtimestamp(now, UTC)) is None:
            self._send(history, "firing", _as_dict(alert))
            history.mark_alert(alert.id, last_sent_at=now, status="resolved")

    def _send(self, history: History, event: str, alert: dict[str, Any]) -> None:
        channels = self.profile.alerts.channels
        at = self.clock()
        bodies = [payload(channel, event, alert, self.profile.target.name, at) for channel in channels]
        # Every channel at once: a slow receiver costs its own deadline once, not once per channel.
        with ThreadPoolExecutor(max_workers=max(len(channels), 1)) as pool:
            outcomes = list(pool.map(self.deliver, channels, bodies))
        for channel, (ok, attempts, error) in zip(channels, outcomes, strict=True):
            history.record_delivery(alert["id"], channel.name, event, ok, attempts, error, self.clock())
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
        """Decide and carry out fire / remind / resolve for these candidates; returns what was done."""
        now = self.clock() if now is None else now
        rows = {r.id: r for r in history.open_alerts()}
        open_alerts = {
            (r.rule, r.key): OpenAlert(r.id, r.rule, r.key, r.raised_at, r.last_sent_at)
            for r in rows.values()
        }
        alerts = self.profile.alerts
        actions = plan(candidates, open_alerts, scope, now, alerts.reminder_interval)
        when = datetime.fromtimestamp(now, UTC)
        for action in actions:
            silence = active_silence(action.rule, alerts.silences, when)
            if action.kind == "fire":
                c = action.candidate
                assert c is not None
                alert_id = history.record_alert(
                    c.rule,
                    c.key,
                    c.severity.value,
                    c.title,
                    c.detail,
                    now,
                    runbook=c.runbook,
                    silenced=silence is not None,
                )
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
                    self._send(history, "firing", _as_dict(history.alert(alert_id)))
                    history.mark_alert(alert_id, last_sent_at=now)
            elif action.kind == "remind" and silence is None:
                assert action.alert is not None and action.candidate is not None
                row = {**_as_dict(rows[action.alert.id]), "detail": action.candidate.detail}
                self._send(history, "reminder", row)
                history.mark_alert(action.alert.id, last_sent_at=now)
            elif action.kind == "resolve":
                assert action.alert is not None
                history.mark_alert(action.alert.id, status="resolved", resolved_at=now)
                self.audit.event(
                    "system",
                    "alert-resolved",
                    subject=action.key,
                    outcome="resolved",
                    details={"rule": action.rule, "alert_id": action.alert.id},
                )
                row_ = rows[action.alert.id]
                if alerts.send_resolved and silence is None and row_.last_sent_at is not None:
                    self._send(history, "resolved", _as_dict(row_))
        return actions
