"""URL variables: well-formed, HTTPS, on the production domain, public, no secrets in query strings,
the provider's production API base, and no dev/sandbox hosts."""

from __future__ import annotations

import fnmatch
import ipaddress
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from opsdash.core.findings import Finding
from opsdash.core.rules import rule
from opsdash.core.secrets import mask_url, secret_param
from opsdash.core.validators.context import Context

_URL_SUFFIXES = ("_URL", "_URI", "_ENDPOINT", "_BASE_URL")
_OTHER_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://\S")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")
_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


def url_variables(ctx: Context) -> list[tuple[str, str]]:
    """(role, variable) for every URL variable: profile roles first, then any *_URL-named variable."""
    seen: set[str] = set()
    out = []
    for role, var in ctx.profile.urls.roles():
        if var not in seen:
            seen.add(var)
            out.append((role, var))
    for var in sorted(ctx.env.values):
        if var not in seen and var.upper().endswith(_URL_SUFFIXES):
            seen.add(var)
            out.append(("other", var))
    return out


def redact_url(url: str, ctx: Context) -> str:
    """The URL with its credentials and every secret-like or known-secret query value masked."""
    return mask_url(url, {v for _, v in ctx.secret_items()})


def local_or_private(host: str) -> str | None:
    host = host.lower().strip(".")
    if host in _LOCAL_NAMES or host.endswith(_LOCAL_SUFFIXES):
        return f"a local name ({host})"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.is_loopback:
        return f"a loopback address ({host})"
    if ip.is_link_local:
        return f"a link-local address ({host})"
    if ip.is_private or ip.is_reserved or ip.is_unspecified:
        return f"a private or reserved address ({host})"
    return None


def _on_domain(host: str, domain: str) -> bool:
    host = host.lower().strip(".")
    return host == domain or host.endswith("." + domain)


def _normalise(url: str) -> str:
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), (parts.hostname or "").lower(), parts.path.rstrip("/"), "", ""))


def denied_host(host: str, patterns: list[str]) -> str | None:
    host = host.lower().strip(".")
    return next((p for p in patterns if fnmatch.fnmatchcase(host, p.lower())), None)


def check_urls(ctx: Context) -> Iterator[Finding]:
    provider = ctx.profile.provider
    domain = ctx.profile.target.production_domain
    secrets = {v for _, v in ctx.secret_items()}
    for role, var in url_variables(ctx):
        raw = ctx.env.get(var)
        if raw is None or raw.strip() == "":
            continue  # required-missing/required-empty speak for absent values
        value = raw.strip()
        shown = redact_url(value, ctx)
        evidence = {"source": ctx.env.source_of(var), "value": shown, "role": role}
        parts = urlsplit(value)
        if role == "other" and parts.scheme not in ("http", "https") and _OTHER_SCHEME.match(value):
            continue  # DATABASE_URL=postgres://…: not an http URL, and no http rule is about it
        try:
            port_ok = parts.port is None or 0 < parts.port < 65536
        except ValueError:
            port_ok = False
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or any(c.isspace() for c in value)
            or not port_ok
        ):
            yield rule("url-malformed").finding(
                var, f"{var} is not an absolute http(s) URL: {shown!r}.", evidence=evidence
            )
            continue
        host = parts.hostname or ""
        if parts.scheme != "https":
            yield rule("url-not-https").finding(
                var, f"{var} uses {parts.scheme}:// ({shown}).", evidence=evidence
            )
        local = local_or_private(host)
        if local:
            yield rule("url-local-or-private").finding(var, f"{var} points at {local}.", evidence=evidence)
        if role in ("webhook", "return", "cancel") and domain and not local and not _on_domain(host, domain):
            yield rule("url-off-domain").finding(
                var, f"{var} points at {host}, not the production domain {domain}.", evidence=evidence
            )
        leaked = [k for k, v in parse_qsl(parts.query, True) if secret_param(k) or v in secrets]
        if leaked:
            yield rule("url-secret-in-query").finding(
                var, f"{var} carries {', '.join(sorted(set(leaked)))} in its query string.", evidence=evidence
            )
        if provider is not None:
            pattern = denied_host(host, provider.denied_hosts)
            if pattern:
                yield rule("dev-host-in-production").finding(
                    var,
                    f"{var} uses {host}, which matches the denied dev/sandbox pattern {pattern!r}.",
                    evidence=evidence,
                )
            if role == "api_base" and _normalise(value) != _normalise(provider.api_base):
                yield rule("api-base-not-production").finding(
                    var,
                    f"{var} is {shown}; the {provider.kind} production API base is {provider.api_base}.",
                    evidence={**evidence, "expected": provider.api_base},
                )


def check_provider_profile(ctx: Context) -> Iterator[Finding]:
    """The profile's own provider base must not be a denied host either."""
    provider = ctx.profile.provider
    if provider is None:
        return
    host = urlsplit(provider.api_base).hostname or ""
    pattern = denied_host(host, provider.denied_hosts)
    if pattern:
        yield rule("dev-host-in-production").finding(
            "provider.api_base",
            f"The profile's provider API base {provider.api_base} matches the denied pattern {pattern!r}.",
            evidence={"source": "profile", "value": provider.api_base},
        )


CHECKS = (check_urls, check_provider_profile)
