"""`opsdash webhook verify|sign`: check a captured delivery, build a test one."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opsdash.cli.common import env_options, json_option
from opsdash.cli.render import emit, emit_json
from opsdash.core.errors import InputError
from opsdash.core.findings import SCHEMA_VERSION
from opsdash.core.text import visible
from opsdash.ops.base import Ops

SCHEME_NAMES = ["ikhokha", "github", "stripe", "standard", "slack", "shopify", "generic"]


def _read_body(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the body ({exc.strerror})") from None


def _parse_headers(values: tuple[str, ...]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
            raise click.UsageError(f"--header {value[:60]!r}: expected 'Name: value'")
        headers[name.strip()] = text.strip()
    return headers


@click.group()
def webhook() -> None:
    """Verify captured webhook deliveries, and sign test deliveries."""


@webhook.command("verify")
@click.option("--scheme", type=click.Choice(SCHEME_NAMES), help="Signature scheme. Default: the profile's.")
@click.option(
    "--secret-env",
    "secret_envs",
    multiple=True,
    metavar="VAR",
    help="Environment variable holding a secret (repeatable while rotating). Default: the profile's.",
)
@click.option("--body", "body_path", required=True, metavar="FILE", help="The raw body ('-' for stdin).")
@click.option(
    "--header", "headers", multiple=True, metavar="'Name: value'", help="A delivery header (repeatable)."
)
@click.option(
    "--path", "path", default=None, help="The path the delivery was posted to. Default: the profile's."
)
@click.option("--source-ip", help="Where the delivery came from (checked against allowed_sources).")
@click.option("--now", "now", type=float, help="Verify as of this UNIX time (default: now).")
@env_options
@json_option
def webhook_verify(
    scheme: str | None,
    secret_envs: tuple[str, ...],
    body_path: str,
    headers: tuple[str, ...],
    path: str | None,
    source_ip: str | None,
    now: float | None,
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
) -> None:
    """Verify one delivery: signature over the raw bytes, timestamp tolerance, replay, source.

    The verdict is one of: verified, missing-header, malformed-header, bad-signature, stale,
    from-the-future, replayed, source-not-allowed, app-id-mismatch. Every failure is a security
    event in the audit log, and a burst from one source raises an alert. Secrets come from
    environment variables or the profile, never from the command line.

    \b
    Exit codes: 0 verified, 2 not verified, 3 usage/config error, or the audit log not
    writable (a verdict nobody can audit is not returned).
    """
    from opsdash.ops import webhooks

    ops = Ops.open(config, require=config is not None)
    checked = webhooks.verify(
        ops,
        _read_body(body_path),
        _parse_headers(headers),
        path=path,
        source_ip=source_ip,
        now=now,
        scheme=scheme,
        secret_envs=secret_envs,
        env_files=list(env_files) or None,
        from_env=from_env,
    )
    ops.audit.require_written("webhook verify")  # a rejection nobody can audit is not a verdict
    verdict, alert = checked.verdict, checked.alert
    if as_json:
        shown = None
        if alert is not None:
            shown = {"id": alert.id, "rule": alert.rule, "source": alert.key}
            shown |= {"title": alert.title, "detail": alert.detail}
        emit_json({"schema_version": SCHEMA_VERSION, **verdict.to_dict(), "alert": shown})
    else:
        label = (
            click.style("VERIFIED", fg="green", bold=True)
            if verdict.ok
            else click.style("REJECTED", fg="red", bold=True)
        )
        emit(f"{label}  [{verdict.outcome}] {verdict.scheme}: {visible(verdict.message)}")
        if verdict.delivery_id:
            emit(f"  delivery id: {visible(verdict.delivery_id)}")
        if verdict.skew_s is not None:
            emit(f"  clock skew: {verdict.skew_s:+.0f} s (now minus the delivery's timestamp)")
        for warning in verdict.warnings:
            emit(click.style(f"  WARNING: {visible(warning)}", fg="yellow"))
        if alert:
            emit(click.style(f"  ALERT: {alert.detail}", fg="red"), err=True)
    sys.exit(0 if verdict.ok else 2)


@webhook.command("sign")
@click.option("--scheme", type=click.Choice(SCHEME_NAMES), help="Signature scheme. Default: the profile's.")
@click.option("--secret-env", "secret_env", metavar="VAR", help="Environment variable holding the secret.")
@click.option("--body", "body_path", required=True, metavar="FILE", help="The raw body ('-' for stdin).")
@click.option("--path", "path", default=None, help="Path the delivery will be posted to (iKhokha signs it).")
@click.option("--id", "delivery_id", help="Delivery id (Standard Webhooks, GitHub, Shopify).")
@click.option(
    "--timestamp",
    type=click.IntRange(0, 253_402_300_799),  # up to 9999-12-31: later is no time a receiver reads
    help="UNIX timestamp to sign with (default: now).",
)
@env_options
@json_option
def webhook_sign(
    scheme: str | None,
    secret_env: str | None,
    body_path: str,
    path: str | None,
    delivery_id: str | None,
    timestamp: int | None,
    config: Path | None,
    env_files: tuple[Path, ...],
    from_env: bool | None,
    as_json: bool,
) -> None:
    """Print the signature headers for a body, to build test deliveries (curl -H ...).

    A header value the profile treats as a secret (iKhokha's application id, say) is printed as
    ${VAR}, for your shell to expand; a secret is never printed.

    \b
    Exit codes: 0 printed, 3 no secret or usage/config error.
    """
    from opsdash.ops import webhooks

    headers = webhooks.signed_headers(
        Ops.open(config, require=config is not None),
        _read_body(body_path),
        path=path,
        scheme=scheme,
        secret_env=secret_env,
        delivery_id=delivery_id,
        timestamp=timestamp,
        env_files=list(env_files) or None,
        from_env=from_env,
    )
    if as_json:
        emit_json(headers)
    else:
        for name, value in headers.items():
            emit(f"{name}: {value}")
