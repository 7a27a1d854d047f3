"""The built-in demo target: a BetaSkill workspace with generated fake credentials.

The env file is shaped like BetaSkill's own production-readiness plan (secrets under VITE_, the
webhook secret equal to the API secret), so the demo shows what opsdash catches. Every value is
generated at start-up; nothing real is ever written.
"""

from __future__ import annotations

import secrets
from pathlib import Path

FAULTS: dict[str, str] = {
    "provider-down": "the iKhokha API answers 503",
    "provider-slow": "the iKhokha API takes 4 s to answer (the check allows 2 s)",
    "credentials-rejected": "the iKhokha API rejects the app's credentials (401)",
    "cert-expiring": "the app serves a certificate that expires in 20 days",
    "cert-expired": "the app serves an expired certificate",
    "webhook-unsigned": "the app's webhook endpoint accepts unsigned deliveries",
    "app-down": "the app's health endpoint answers 503",
    "payments-degraded": "the app reports a payment success rate of 72%",
    "app-slow": "the app's health endpoint takes 600 ms longer to answer",
    "secret-rotated": "the iKhokha API secret was rotated (the app's env file and the API agree)",
    "env-plan-shaped": "the env file is the one BetaSkill's plan describes (secrets under VITE_)",
    "bundle-leak": "the live site serves a JavaScript bundle (and its source map) built with the iKhokha "
    "API secret in it, as a VITE_ variable puts it there (the build from before any rotation)",
    "old-secret-accepted": "the iKhokha API still accepts the API secret from before the rotation "
    "(the rotation was not completed: the old value was never revoked)",
}

_PACKAGED = Path(__file__).with_name("betaskill.toml")
_CHECKOUT = Path(__file__).resolve().parents[2] / "examples" / "betaskill" / "opsdash.toml"


def example_profile_text() -> str:
    for candidate in (_PACKAGED, _CHECKOUT):
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    raise FileNotFoundError("the BetaSkill example profile is missing from this installation")


def betaskill_env(*, plan_shaped: bool = False) -> dict[str, str]:
    """A BetaSkill production environment with fresh fake credentials.

    By default it is correct (no findings). `plan_shaped` gives the environment BetaSkill's own plan
    describes: secrets under VITE_ (bundled into the browser) and the webhook secret equal to the API
    secret.
    """
    if plan_shaped:
        api_secret = secrets.token_hex(16)
        return {
            "VITE_IKHOKHA_API_KEY": "IK" + secrets.token_hex(16).upper(),
            "VITE_IKHOKHA_API_SECRET": api_secret,
            "VITE_IKHOKHA_WEBHOOK_SECRET": api_secret,
            "VITE_NODE_ENV": "production",
            "VITE_IKHOKHA_TEST_MODE": "false",
        }
    return {
        "VITE_NODE_ENV": "production",
        "VITE_IKHOKHA_TEST_MODE": "false",
        "IKHOKHA_API_KEY": "IK" + secrets.token_hex(16).upper(),
        "IKHOKHA_API_SECRET": secrets.token_hex(16),
        "IKHOKHA_WEBHOOK_SECRET": secrets.token_hex(16),
        "IKHOKHA_API_BASE": "https://api.ikhokha.com/public-api/v1/api",
        "PAYMENT_WEBHOOK_URL": "https://app.betaskill.com/api/payments/ikhokha/webhook",
        "PAYMENT_RETURN_URL": "https://app.betaskill.com/payments/success",
        "PAYMENT_CANCEL_URL": "https://app.betaskill.com/payments/cancelled",
        "ENFORCE_HTTPS": "true",
        "WEBHOOK_SIGNATURE_VALIDATION": "true",
        "SECURITY_LOGGING": "true",
        "MONITORING_ENABLED": "true",
        "USE_FALLBACK_CREDENTIALS": "false",
    }


def env_text(values: dict[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())
