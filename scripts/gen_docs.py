"""Generate docs/troubleshooting.md (one entry per rule id and error class) and
docs/configuration.md (every profile and settings field, from the schema).

Usage: .venv/bin/python scripts/gen_docs.py [--check]   (--check: fail if the files are stale)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opsdash.core.health.errors import ERROR_INFO, ErrorClass
from opsdash.core.profile import (
    AlertChannel,
    AlertsSection,
    CheckBase,
    DeploySection,
    DnsCheck,
    EnvSection,
    HealthSection,
    HttpCheck,
    PolicyRule,
    ProviderCheck,
    ProviderSection,
    RunbooksSection,
    Silence,
    TargetSection,
    TcpCheck,
    TlsCheck,
    TraceSection,
    UrlsSection,
    WebhookCheck,
    WebhookSection,
)
from opsdash.core.rules import RULES
from opsdash.ops.config import ConfigFile, OpsdashSettings

ROOT = Path(__file__).resolve().parents[1]

WHY = {
    "env-not-production": "Development mode can enable debug output, relaxed checks and test endpoints in the app.",
    "test-mode-enabled": "In test mode iKhokha takes no real money: learners enrol without paying.",
    "required-missing": "The app starts without a value it needs, and fails at the first payment rather than at deploy.",
    "required-empty": "An empty value usually means a secret manager or CI variable did not inject; the app sees ''.",
    "dotenv-parse-error": "Loaders recover from broken lines differently; the app may read another value than you wrote.",
    "dotenv-duplicate-key": "Only one of the two values is used; the next person may edit the other one.",
    "env-value-altered": "The build inlines the value its loader read (cut at a #, or with $NAME expanded), not the one in the file: the app gets something nobody checked.",
    "example-drift": "The example is how the next deploy learns what to set; drift means a variable gets forgotten.",
    "secret-client-exposed": "The bundler inlines a VITE_ (NEXT_PUBLIC_, REACT_APP_) variable into the JavaScript it ships wherever the code reads it (all of them where code reads import.meta.env whole): the secret is one build away from public.",
    "secret-in-bundle": "The secret is readable by anyone who opens the site's JavaScript, whatever the variable is called.",
    "secret-in-git-history": "Every clone, fork and CI cache of the repository holds the value, reachable or not "
    "(a deleted branch, a stash, an old pack); deleting the file or rewriting history does not take it back.",
    "secret-in-source": "A hard-coded value (a fallback in source, a build, a copied env file) ships with the "
    "code and outlives every rotation of the environment's value.",
    "previous-secret-in-history": "A rotated-away value is harmless only if the provider revoked it; where it "
    "still works, whoever has the repository can still sign with it.",
    "secret-served-live": "Every visitor's browser has downloaded the value, and caches, CDNs and archives keep copies: "
    "it is public until it is rotated. UNKNOWN when an asset could not be fetched or decoded: what it serves was "
    "not looked at.",
    "previous-secret-still-accepted": "The rotation replaced the value in the app but did not revoke the old one at "
    "the provider, and the old one sits where others can read it (git history, an old build, the live site).",
    "secret-reused": "One leak or one rotation then affects two things at once; iKhokha callbacks signed with the API "
    "secret are a known case to confirm with the provider.",
    "secret-placeholder": "The provider rejects it (payments fail), or worse, it is a known test credential.",
    "secret-matches-dev": "Development secrets sit on laptops and in CI logs; production must not share them.",
    "secret-weak": "Short or repetitive secrets can be guessed or brute-forced offline from a signature.",
    "fallback-credentials-enabled": "With fallbacks on, a missing production secret silently becomes a dev one.",
    "url-malformed": "The app or the provider cannot use it: redirects, callbacks or API calls fail.",
    "url-not-https": "Payment data, signatures and session cookies cross the network in clear text.",
    "url-off-domain": "Learners return to, or callbacks go to, a site that is not production.",
    "url-local-or-private": "The provider cannot reach a private address; callbacks and returns are lost.",
    "url-secret-in-query": "Query strings end up in access logs, analytics and Referer headers.",
    "api-base-not-production": "Calls go to a sandbox or an old API version: no real payments, or failures.",
    "dev-host-in-production": "Production talks to a development or sandbox system.",
    "policy-violation": "A setting the deployment's security depends on is off.",
    "tls-expired": "Browsers refuse the site and the provider refuses callbacks: a full outage.",
    "tls-expiring-soon": "Renewal is due; left alone it becomes an outage on a known date.",
    "tls-not-yet-valid": "Browsers refuse a certificate before its start date: the site is down for them.",
    "tls-untrusted": "Clients cannot verify the server; browsers warn or refuse, and API clients fail.",
    "tls-hostname-mismatch": "The certificate is for another name; clients refuse the connection.",
    "tls-old-protocol": "TLS 1.0/1.1 are broken and refused by payment-industry rules (PCI DSS).",
    "check-failed": "A live check does not pass: the service, a dependency or the configuration is broken now.",
    "webhook-accepts-unsigned": "Anyone can send a callback that marks an unpaid order as paid.",
    "webhook-rejects-signed": "Real callbacks are refused: payments succeed but courses never unlock.",
    "rollback-version-unknown": "Without the previous release there is nothing to roll back to in a hurry.",
    "rollback-runbook-invalid": "The rollback steps are missing or broken exactly when they are needed.",
    "rollback-no-green-run": "There is no known-good baseline to compare a deploy with or return to.",
    "version-mismatch": "The release you think you deployed is not the one serving learners.",
    "deploy-unstable": "The deploy did not settle; it is failing or flapping.",
    "latency-regression": "Slower pages and API calls lose enrolments and can hit provider timeouts.",
    "env-changed": "An unplanned change of a secret or setting between runs is a red flag.",
    "metric-dropped": "A health metric such as payment success fell after the deploy.",
    "cert-days-dropped": "An older or shorter certificate is being served since the deploy.",
}

CLASS_WHY = {
    ErrorClass.DNS: "The name does not resolve: a DNS change, an expired domain, or a typo in the profile.",
    ErrorClass.REFUSED: "The host is up but nothing listens: the service is down or the port is wrong.",
    ErrorClass.RESET: "Something dropped the connection mid-way: a crash, a proxy, a firewall or a WAF.",
    ErrorClass.CONNECT_TIMEOUT: "Packets go unanswered: a firewall, a security group, or the host is down.",
    ErrorClass.READ_TIMEOUT: "The server accepted the connection but did not answer in time: overload or a hung dependency.",
    ErrorClass.TLS_EXPIRED: "The certificate's end date has passed.",
    ErrorClass.TLS_NOT_YET_VALID: "The certificate's start date is in the future: a clock or issuance problem.",
    ErrorClass.TLS_UNTRUSTED: "No trusted CA vouches for the certificate: self-signed, or a missing intermediate.",
    ErrorClass.TLS_HOSTNAME: "The certificate's names do not include the host that was asked for.",
    ErrorClass.TLS_HANDSHAKE: "Client and server found no common protocol or cipher, or the server broke the handshake.",
    ErrorClass.HTTP_AUTH: "401/403: the credentials were refused (wrong, rotated or revoked).",
    ErrorClass.HTTP_NOT_FOUND: "404: the path or API base is wrong, or the deploy removed the route.",
    ErrorClass.HTTP_RATE_LIMITED: "429: too many requests for the provider's limit.",
    ErrorClass.HTTP_5XX: "5xx: the service or something behind it is failing.",
    ErrorClass.HTTP_STATUS: "Another status than the check expects (a redirect, say).",
    ErrorClass.TOO_MANY_REDIRECTS: "The redirects never end: a loop between http/https, hosts or login.",
    ErrorClass.CONDITION: "The service answered, but a condition ([BODY].status == UP, say) is false.",
    ErrorClass.BODY_UNPARSEABLE: "A JSON condition met a body that is not JSON (an error page, usually).",
    ErrorClass.TOO_LARGE: "The body exceeded the check's size cap: the wrong URL, or a runaway response.",
    ErrorClass.PROTOCOL: "The reply was not HTTP: the wrong port or scheme, or a broken proxy.",
    ErrorClass.CONFIG: "opsdash could not evaluate the check: missing credentials or an invalid check.",
}


def troubleshooting() -> str:
    missing = set(RULES) - set(WHY)
    if missing:
        raise SystemExit(f"scripts/gen_docs.py: WHY has no entry for {', '.join(sorted(missing))}")
    lines = [
        "# Troubleshooting",
        "",
        "<!-- Generated by scripts/gen_docs.py from opsdash's rules and error classes. Do not edit by hand. -->",
        "",
        "Every finding opsdash reports has a rule id, and every failed check an error class. Find yours below:",
        "what it means, why it matters, how to fix it, and the runbook that walks you through it.",
        "",
        "## Rules",
        "",
    ]
    for category in dict.fromkeys(r.category for r in RULES.values()):
        lines += [f"### {category}", ""]
        for rule in (r for r in RULES.values() if r.category == category):
            lines += [
                f"#### `{rule.id}`",
                "",
                f"**{rule.title}** (default severity {rule.severity.value})",
                "",
                f"- Why it matters: {WHY[rule.id]}",
                f"- Fix: {rule.remediation}",
            ]
            if rule.runbook:
                lines.append(f"- Runbook: `opsdash runbook run {rule.runbook}`")
            lines.append("")
    lines += ["## Check error classes", ""]
    for error in ErrorClass:
        info = ERROR_INFO[error]
        lines += [
            f"#### `{error.value}`",
            "",
            f"**{info.title}**" + (" (retried within the probe: often transient)" if info.transient else ""),
            "",
            f"- What it means: {CLASS_WHY[error]}",
            f"- Fix: {info.hint}",
        ]
        if info.runbook:
            lines.append(
                f"- Runbook: `opsdash runbook run {info.runbook}` (provider and webhook checks name their own)"
            )
        lines.append("")
    return "\n".join(lines)


def _type(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return prop["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in prop:
        return " or ".join(_type(p, defs) for p in prop["anyOf"] if p.get("type") != "null") or "null"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    if prop.get("type") == "object":
        return "table"
    return str(prop.get("type", "any"))


def _default(model: type[BaseModel], name: str) -> str:
    field = model.model_fields.get(name)
    if field is None or field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None:
        return "none"
    if hasattr(value, "model_dump"):
        return "see below"
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, list):
        value = [str(v) for v in value]
    return (
        f"`{value}`".replace("|", "\\|")
        if value not in ([], {}, "")
        else ("empty" if value != "" else '`""`')
    )


def _section(
    title: str,
    model: type[BaseModel],
    schema: dict[str, Any],
    defs: dict[str, Any],
    skip: tuple[str, ...] = (),
    intro: str = "",
) -> list[str]:
    lines = [f"## {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += ["| Field | Type | Default | Description |", "|---|---|---|---|"]
    for name, prop in schema.get("properties", {}).items():
        if name in skip:
            continue
        field_name = "return_" if name == "return" else name
        desc = prop.get("description", "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{name}` | {_type(prop, defs)} | {_default(model, field_name)} | {desc} |")
    return [*lines, ""]


def configuration() -> str:
    schema = ConfigFile.model_json_schema(by_alias=True)
    defs = schema["$defs"]
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_docs.py from the configuration schema. Do not edit by hand. -->",
        "",
        "One TOML file (`--config`, `$OPSDASH_CONFIG`, `./opsdash.toml`, then `~/.config/opsdash/opsdash.toml`)",
        "holds opsdash's own settings (`[opsdash]`) and the target profile. `opsdash config schema` prints the JSON",
        "Schema; `opsdash config show` every value with its source. See `examples/betaskill/opsdash.toml`.",
        "",
    ]
    settings = OpsdashSettings.model_json_schema()
    lines += _section(
        "[opsdash] — opsdash's own settings",
        OpsdashSettings,
        settings,
        defs,
        intro="Every setting can also come from an `OPSDASH_<NAME>` environment variable, which wins "
        "over the file. `audit_key` comes only from `OPSDASH_AUDIT_KEY`, and `serve_token` only from "
        "`OPSDASH_SERVE_TOKEN` (the file may be committed).",
    )
    sections = [
        ("target", TargetSection),
        ("target.trace", TraceSection),
        ("env", EnvSection),
        ("urls", UrlsSection),
        ("[[policy]]", PolicyRule),
        ("provider", ProviderSection),
        ("webhook", WebhookSection),
        ("health", HealthSection),
        ("deploy", DeploySection),
        ("alerts", AlertsSection),
        ("[[alerts.channels]]", AlertChannel),
        ("[[alerts.silences]]", Silence),
        ("runbooks", RunbooksSection),
    ]
    for title, model in sections:
        lines += _section(title if title.startswith("[") else f"[{title}]", model, defs[model.__name__], defs)
    lines += ["## [[checks]]", "", "Every check has the common fields; `kind` selects the rest.", ""]
    common = tuple(CheckBase.model_fields)
    shared = {"properties": {k: v for k, v in defs["HttpCheck"]["properties"].items() if k in common}}
    lines += _section("Common to every check", CheckBase, shared, defs)[2:]
    for kind, model in (
        ("http", HttpCheck),
        ("tcp", TcpCheck),
        ("dns", DnsCheck),
        ("tls", TlsCheck),
        ("provider", ProviderCheck),
        ("webhook", WebhookCheck),
    ):
        lines += _section(f'kind = "{kind}"', model, defs[model.__name__], defs, skip=common)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for path, text in (
        (ROOT / "docs" / "troubleshooting.md", troubleshooting()),
        (ROOT / "docs" / "configuration.md", configuration()),
    ):
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        raise SystemExit(f"stale: {', '.join(stale)}; run .venv/bin/python scripts/gen_docs.py")


if __name__ == "__main__":
    sys.exit(main())
