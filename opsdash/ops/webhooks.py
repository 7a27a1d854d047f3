"""Webhook deliveries: build the profile's verifier, verify a delivery (replay store, audit, burst
alert), and sign test deliveries."""

from __future__ import annotations

import dataclasses
import math
import os
import secrets as random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opsdash.core.alerts import WEBHOOK_BURST
from opsdash.core.envfiles import EnvSnapshot
from opsdash.core.errors import ConfigError, InputError
from opsdash.core.profile import Profile, WebhookSection
from opsdash.core.secrets import redactor
from opsdash.core.text import visible
from opsdash.core.validators import load_target_env
from opsdash.core.webhooks import (
    BurstRule,
    Delivery,
    SchemeOptions,
    Verdict,
    Verifier,
    sign,
    validate_path,
)
from opsdash.ops.base import Ops
from opsdash.storage.history import History
from opsdash.storage.rows import AlertRow

_EMPTY = "the secret is empty (or only blanks), and an HMAC with an empty key is one anybody can compute"


def _env_or_process(name: str, env: EnvSnapshot | None, process_env: Mapping[str, str]) -> str | None:
    """The variable's value in the env files, else in the environment; "" when set but empty."""
    values = [env.get(name) if env is not None else None, process_env.get(name)]
    return next((v for v in values if v), next((v for v in values if v is not None), None))


def verifier_for(
    profile: Profile | None,
    *,
    scheme: str | None = None,
    secret_envs: Sequence[str] = (),
    env: EnvSnapshot | None = None,
    process_env: Mapping[str, str] | None = None,
    seen: Callable[[str, str, int], bool] | None = None,
) -> Verifier:
    """A verifier from the profile's [webhook] section; secrets come only from environment variables
    named by --secret-env or by the profile, never from the command line."""
    process_env = os.environ if process_env is None else process_env
    cfg = profile.webhook if profile is not None else WebhookSection()
    provider = profile.provider if profile is not None else None
    chosen = scheme or cfg.scheme
    if secret_envs:
        missing = [v for v in secret_envs if v not in process_env]
        if missing:
            raise ConfigError(f"--secret-env {', '.join(missing)}: not set in the environment")
        empty = [v for v in secret_envs if not process_env[v].strip()]
        if empty:
            raise ConfigError(f"--secret-env {', '.join(empty)}: {_EMPTY}")
        secrets_ = [process_env[v] for v in secret_envs]
    else:
        names = cfg.secret_variables or [v for v in [provider and provider.webhook_secret_variable] if v]
        if not names:
            raise ConfigError("no webhook secret: pass --secret-env VAR, or set webhook.secret_variables")
        found = [_env_or_process(n, env, process_env) for n in names]
        secrets_ = [s for s in found if s and s.strip()]
        if not secrets_:
            blank = [n for n, s in zip(names, found, strict=True) if s is not None and not s.strip()]
            if blank:
                raise ConfigError(f"webhook secret {', '.join(blank)}: {_EMPTY}")
            raise ConfigError(f"webhook secret {', '.join(names)} is not set in the env files or environment")
    for value in secrets_:
        redactor.register(value)
    app_id = None
    if chosen == "ikhokha":
        app_id = _app_id(cfg, provider.app_id_variable if provider else None, env, process_env)
    try:
        validate_path(cfg.path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    # SchemeOptions' fields are the [webhook] section's names: everything but app_id comes across as is
    tunables = {f.name for f in dataclasses.fields(SchemeOptions)} - {"app_id"}
    options = SchemeOptions(app_id=app_id, **cfg.model_dump(include=tunables))
    try:
        return Verifier(chosen, secrets_, options, cfg.allowed_sources, seen)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _app_id(
    cfg: WebhookSection, provider_var: str | None, env: EnvSnapshot | None, process_env: Mapping[str, str]
) -> str | None:
    """The application id IK-APPID must equal. A variable named for it but unset is a config error:
    checking nothing would accept any IK-APPID without a word."""
    name, where = (
        (cfg.app_id_variable, "webhook.app_id_variable")
        if cfg.app_id_variable
        else (provider_var, "provider.app_id_variable")
    )
    if not name:
        return None
    value = _env_or_process(name, env, process_env)
    if value is None or not value.strip():
        raise ConfigError(
            f"{name} ({where}) is {'empty' if value is not None else 'not set'} in the env files or "
            "environment: IK-APPID cannot be checked "
            "against the application id"
        )
    return value


def _finite_now(now: float | None) -> None:
    if now is not None and not math.isfinite(now):
        raise InputError(f"--now {now}: not a UNIX time (give a finite number of seconds)")


def _path_or_profile(path: str | None, profile: Profile | None) -> str:
    if path is None:
        return profile.webhook.path if profile else "/"
    try:
        validate_path(path, "--path")
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return path


def _target_env(ops: Ops, env_files: Sequence[Path] | None, from_env: bool | None) -> EnvSnapshot | None:
    profile = ops.profile_or_none
    if profile is None:
        return None
    return load_target_env(profile, env_files=env_files, from_env=from_env, required=False)


@dataclass(frozen=True)
class Checked:
    verdict: Verdict
    alert: AlertRow | None  # a burst alert this delivery raised


def verify(
    ops: Ops,
    body: bytes,
    headers: Mapping[str, str],
    *,
    path: str | None = None,
    source_ip: str | None = None,
    now: float | None = None,
    scheme: str | None = None,
    secret_envs: Sequence[str] = (),
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
) -> Checked:
    """Verify one delivery: signature, clock, replay (ids kept in history), source. Every outcome is
    audited; failures count toward the burst rule, whose alert goes to the profile's channels."""
    _finite_now(now)  # NaN would pass every tolerance, and is stored as NULL
    profile = ops.profile_or_none
    delivery_path = _path_or_profile(path, profile)
    env = _target_env(ops, env_files, from_env)
    at = ops.clock() if now is None else now
    with ops.history() as history:
        verifier = verifier_for(
            profile,
            scheme=scheme,
            secret_envs=secret_envs,
            env=env,
            seen=lambda s, i, exp: history.webhooks.seen(s, i, exp, at),
        )
        delivery = Delivery(body, dict(headers), delivery_path, source_ip)
        burst = BurstRule(profile.webhook.burst_threshold, profile.webhook.burst_window) if profile else None
        verdict, alert = record_delivery(ops, verifier, delivery, at, history, burst)
        if alert is not None and profile is not None:
            ops.alerts.send_event(history, alert)
    return Checked(verdict, alert)


def record_delivery(
    ops: Ops,
    verifier: Verifier,
    delivery: Delivery,
    now: float,
    history: History,
    burst: BurstRule | None = None,
) -> tuple[Verdict, AlertRow | None]:
    """Verify, audit, and count failures toward the burst rule; returns the verdict and any alert."""
    verdict = verifier.verify(delivery, now)
    # the source is stored and shown: a control character or lone surrogate in it must not stop that
    source = visible(delivery.source_ip[:100]) if delivery.source_ip else "unknown"
    details: dict[str, Any] = {
        "scheme": verdict.scheme,
        "message": verdict.message,
        "delivery_id": verdict.delivery_id,
        "clock_skew_s": verdict.skew_s,
    }
    if verdict.warnings:
        details["warnings"] = list(verdict.warnings)
    if verdict.ok:
        action, kind = "webhook-verify", "operator_action"
    else:
        action, kind = "webhook-verification-failed", "security_event"
    ops.audit.event(kind, action, subject=source, outcome=verdict.outcome.value, details=details)
    if verdict.ok:
        return verdict, None
    rule = burst or BurstRule()
    profile = ops.profile_or_none  # whose failure it is: its timeline shows it, its burst counts it
    target = profile.target.name if profile is not None else None
    failures = history.webhooks.record_failure(source, verdict.outcome.value, now, rule.window_s, target)
    if not rule.should_alert(failures, history.alerts.last_raised(WEBHOOK_BURST, source, target), now):
        return verdict, None
    recent = sum(1 for t in failures if now - t <= rule.window_s)
    title = f"Burst of failed webhook verifications from {source}"
    window = f"{rule.window_s:.0f} s"
    detail = f"{recent} failed verifications from {source} within {window} (latest: {verdict.outcome})"
    alert_id = history.alerts.record(WEBHOOK_BURST, source, "CRIT", title, detail, now, target=target)
    assert alert_id is not None  # opened unconditionally: a burst is an event, not a state
    ops.audit.event(
        "security_event",
        "alert",
        subject=source,
        outcome="CRIT",
        details={"rule": WEBHOOK_BURST, "alert_id": alert_id, "detail": detail},
    )
    return verdict, history.alerts.get(alert_id)


def signed_headers(
    ops: Ops,
    body: bytes,
    *,
    path: str | None = None,
    scheme: str | None = None,
    secret_env: str | None = None,
    delivery_id: str | None = None,
    timestamp: int | None = None,
    env_files: Sequence[Path] | None = None,
    from_env: bool | None = None,
) -> dict[str, str]:
    """Signature headers for a test delivery. A header value the profile treats as a secret
    (iKhokha's application id, say) comes back as ${VAR} for the shell to expand."""
    profile = ops.profile_or_none
    verifier = verifier_for(
        profile,
        scheme=scheme,
        secret_envs=(secret_env,) if secret_env else (),
        env=_target_env(ops, env_files, from_env),
    )
    delivery = Delivery(body, {}, _path_or_profile(path, profile))
    stamp = int(ops.clock()) if timestamp is None else timestamp
    msg_id = delivery_id or f"msg_{random.token_hex(12)}"
    if not msg_id.isprintable() or msg_id != msg_id.strip():
        raise InputError(
            f"--id {visible(msg_id)[:60]!r}: a delivery id is printable text, no blanks around it"
        )
    headers = sign(
        verifier.scheme, verifier.secrets[0], delivery, verifier.options, timestamp=stamp, delivery_id=msg_id
    )
    app_id_var = profile and (
        profile.webhook.app_id_variable or (profile.provider and profile.provider.app_id_variable)
    )
    if verifier.scheme == "ikhokha" and app_id_var and profile is not None and profile.is_secret(app_id_var):
        headers["IK-APPID"] = f"${{{app_id_var}}}"  # a secret in this profile: name it, never print it
    return headers
