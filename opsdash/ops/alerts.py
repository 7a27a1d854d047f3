"""Raising alerts: dedupe, reminders, resolve messages, silences, and delivery with retries.

Delivery never blocks checks and never raises: a channel that fails after its retries is recorded
(history and audit log) and reported on stderr.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from opsdash.core.alerts import Action, Candidate, OpenAlert, active_silence, plan
from opsdash.core.findings import Severity
from opsdash.core.health.model import CheckResult
from opsdash.core.profile import AlertChannel, Profile
from opsdash.core.secrets import redactor
from opsdash.ops.audit import audit_event
from opsdash.ops.config import OpsdashSettings
from opsdash.storage.history import History

EMOJI = {"firing": ":red_circle:", "reminder": ":repeat:", "resolved": ":large_green_circle:"}


def payload(channel: AlertChannel, event: str, alert: dict[str, Any], target: str) -> dict[str, Any]:
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
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def deliver(channel: AlertChannel, body: dict[str, Any]) -> tuple[bool, int, str]:
    """POST with retries and backoff; (ok, attempts, last error)."""
    import httpx

    url = channel.url or os.environ.get(channel.url_env or "", "")
    if not url:
        return False, 0, f"{channel.url_env} is not set"
    if channel.url_env:
        redactor.register(url)  # a Slack-style URL is a credential
    error = ""
    for attempt in range(1, channel.retries + 2):
        try:
            response = httpx.post(url, json=body, timeout=channel.timeout, trust_env=False)
            if response.status_code < 300:
                return True, attempt, ""
            error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if attempt <= channel.retries:
            time.sleep(0.5 * 2 ** (attempt - 1))
    return False, channel.retries + 1, error


def send_event_alert(
    settings: OpsdashSettings, operator: str, profile: Profile, history: History, alert: dict[str, Any]
) -> None:
    """An alert that is an event (a burst), not a state: sent once, nothing to resolve later."""
    if active_silence(alert["rule"], profile.alerts.silences, datetime.now(UTC)) is None:
        _send(settings, operator, profile, history, "firing", alert)
        history.mark_alert(alert["id"], last_sent_at=time.time(), status="resolved")


def _send(
    settings: OpsdashSettings,
    operator: str,
    profile: Profile,
    history: History,
    event: str,
    alert: dict[str, Any],
) -> None:
    for channel in profile.alerts.channels:
        ok, attempts, error = deliver(channel, payload(channel, event, alert, profile.target.name))
        history.record_delivery(alert["id"], channel.name, event, ok, attempts, error, time.time())
        if not ok:
            print(
                f"opsdash: warning: alert {alert['id']} not delivered to {channel.name} after {attempts} "
                f"attempt(s): {redactor.redact(error)}",
                file=sys.stderr,
            )
            audit_event(
                settings,
                operator,
                "system",
                "alert-delivery-failed",
                subject=channel.name,
                outcome="failed",
                details={"alert_id": alert["id"], "error": error, "event": event},
            )


def process(
    settings: OpsdashSettings,
    operator: str,
    profile: Profile,
    history: History,
    candidates: Sequence[Candidate],
    scope: set[tuple[str, str]],
    now: float | None = None,
) -> list[Action]:
    """Decide and carry out fire / remind / resolve for these candidates; returns what was done."""
    now = time.time() if now is None else now
    open_rows = history.open_alerts()
    open_alerts = {
        (r["rule"], r["key"]): OpenAlert(r["id"], r["rule"], r["key"], r["raised_at"], r["last_sent_at"])
        for r in open_rows
    }
    rows = {r["id"]: r for r in open_rows}
    actions = plan(candidates, open_alerts, scope, now, profile.alerts.reminder_interval)
    when = datetime.fromtimestamp(now, UTC)
    for action in actions:
        silence = active_silence(action.rule, profile.alerts.silences, when)
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
            audit_event(
                settings,
                operator,
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
                alert = {
                    "id": alert_id,
                    "rule": c.rule,
                    "key": c.key,
                    "severity": c.severity.value,
                    "title": c.title,
                    "detail": c.detail,
                    "runbook": c.runbook,
                }
                _send(settings, operator, profile, history, "firing", alert)
                history.mark_alert(alert_id, last_sent_at=now)
        elif action.kind == "remind" and silence is None:
            assert action.alert is not None and action.candidate is not None
            row = {**rows[action.alert.id], "detail": action.candidate.detail}
            _send(settings, operator, profile, history, "reminder", row)
            history.mark_alert(action.alert.id, last_sent_at=now)
        elif action.kind == "resolve":
            assert action.alert is not None
            history.mark_alert(action.alert.id, status="resolved", resolved_at=now)
            audit_event(
                settings,
                operator,
                "system",
                "alert-resolved",
                subject=action.key,
                outcome="resolved",
                details={"rule": action.rule, "alert_id": action.alert.id},
            )
            if (
                profile.alerts.send_resolved
                and silence is None
                and rows[action.alert.id]["last_sent_at"] is not None
            ):
                _send(settings, operator, profile, history, "resolved", rows[action.alert.id])
    return actions


class BackgroundAlerts:
    """Alert processing off the event loop (a slow channel must not delay probes), one at a time,
    each with its own database connection. Optionally records the results first, and reports the
    alerts that fired (the dashboard turns them into notifications)."""

    def __init__(
        self,
        settings: OpsdashSettings,
        operator: str,
        profile: Profile,
        *,
        run_id: str | None = None,
        on_fired: Callable[[list[str]], None] | None = None,
    ) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="opsdash-alerts")
        self.settings, self.operator, self.profile = settings, operator, profile
        self.run_id, self.on_fired = run_id, on_fired

    def submit(
        self,
        candidates: Sequence[Candidate],
        scope: set[tuple[str, str]],
        results: Sequence[CheckResult] = (),
        sustained: dict[str, Severity] | None = None,
    ) -> None:
        self._pool.submit(self._run, list(candidates), set(scope), list(results), dict(sustained or {}))

    def _run(
        self,
        candidates: list[Candidate],
        scope: set[tuple[str, str]],
        results: list[CheckResult],
        sustained: dict[str, Severity],
    ) -> None:
        try:
            with History.open(self.settings.resolved_data_dir()) as history:
                if results and self.run_id:
                    history.record_checks(self.run_id, results, sustained)
                actions = process(self.settings, self.operator, self.profile, history, candidates, scope)
        except Exception as exc:  # never let a background failure pass silently
            print(f"opsdash: warning: alerts not processed: {type(exc).__name__}: {exc}", file=sys.stderr)
            return
        fired = [a.candidate.title for a in actions if a.kind == "fire" and a.candidate is not None]
        if fired and self.on_fired is not None:
            self.on_fired(fired)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
