"""Every rule id opsdash reports, with its category, default severity, remediation and runbook.

Ids are a public contract (scripts and CI match on them): add new ones, never rename.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import EllipsisType
from typing import Any

from opsdash.core.findings import Finding, Severity

# Runbook ids shipped in runbooks/ (the runbook issue adds the files).
RB_ROTATION = "credential-rotation"
RB_PREDEPLOY = "pre-deploy-checklist"
RB_ROLLBACK = "rollback"
RB_PROVIDER = "payment-provider-outage"
RB_WEBHOOK = "webhook-signature-failures"
RB_TLS = "tls-certificate"


@dataclass(frozen=True)
class Rule:
    id: str
    category: str
    severity: Severity
    title: str
    remediation: str
    runbook: str | None = None

    def finding(
        self,
        subject: str,
        detail: str,
        *,
        evidence: Mapping[str, Any] | None = None,
        severity: Severity | None = None,
        remediation: str | None = None,
        runbook: str | EllipsisType | None = ...,
        title: str | None = None,
    ) -> Finding:
        return Finding(
            rule=self.id,
            severity=severity or self.severity,
            category=self.category,
            subject=subject,
            title=title or self.title,
            detail=detail,
            remediation=remediation or self.remediation,
            runbook=self.runbook if runbook is ... else runbook,
            evidence={k: str(v) for k, v in (evidence or {}).items()},
        )


_C, _W, _I = Severity.CRIT, Severity.WARN, Severity.INFO

RULES: dict[str, Rule] = {
    r.id: r
    for r in [
        # environment
        Rule(
            "env-not-production",
            "environment",
            _C,
            "App is not in production mode",
            "Set the mode variable to the production value in the production env file and rebuild.",
            RB_PREDEPLOY,
        ),
        Rule(
            "test-mode-enabled",
            "environment",
            _C,
            "Payment provider test mode is on",
            "Set the test-mode variable to false so real payments are taken, then rebuild and redeploy.",
            RB_PREDEPLOY,
        ),
        Rule(
            "required-missing",
            "environment",
            _C,
            "Required variable is missing",
            "Add the variable to the production env file (or the deployment's environment).",
            RB_PREDEPLOY,
        ),
        Rule(
            "required-empty",
            "environment",
            _C,
            "Required variable is empty",
            "Give the variable its production value; an empty value usually means a failed secret injection.",
            RB_PREDEPLOY,
        ),
        Rule(
            "dotenv-parse-error",
            "environment",
            _C,
            "Env file line cannot be parsed",
            "Fix the quoting on that line; loaders disagree on broken lines, so the app may see another "
            "value.",
        ),
        Rule(
            "env-value-altered",
            "environment",
            _W,
            "The framework reads another value than the file shows",
            "Quote the value (an unquoted # starts a comment for Node's dotenv) or escape $ as \\$ "
            "(dotenv-expand expands it), so the build gets what the file says.",
        ),
        Rule(
            "dotenv-duplicate-key",
            "environment",
            _W,
            "Variable set twice in one env file",
            "Delete one of the two lines so nobody edits the value that is silently ignored.",
        ),
        Rule(
            "example-drift",
            "environment",
            _W,
            "Env file differs from .env.example",
            "Add the missing variable, or remove it from .env.example if the app no longer reads it.",
        ),
        # credentials
        Rule(
            "secret-client-exposed",
            "credentials",
            _C,
            "Secret is under a client-exposed prefix (shipped to browsers when read)",
            "Rename the variable without the client prefix, move signing to the server, rotate the secret "
            "if any deployed build may have shipped it, rebuild and check the bundle.",
            RB_ROTATION,
        ),
        Rule(
            "secret-in-bundle",
            "credentials",
            _C,
            "Secret value found in the built front-end bundle",
            "Rotate the secret now, remove it from client code and variables, rebuild and rescan.",
            RB_ROTATION,
        ),
        Rule(
            "secret-reused",
            "credentials",
            _W,
            "Same secret used for two purposes",
            "Use a distinct secret per purpose so one leak or rotation does not affect the other.",
            RB_ROTATION,
        ),
        Rule(
            "secret-placeholder",
            "credentials",
            _C,
            "Secret is a placeholder or test value",
            "Set the real production credential from the provider's dashboard or your secret manager.",
            RB_ROTATION,
        ),
        Rule(
            "secret-matches-dev",
            "credentials",
            _C,
            "Production secret equals the development one",
            "Issue separate production credentials; development values are shared widely.",
            RB_ROTATION,
        ),
        Rule(
            "secret-weak",
            "credentials",
            _W,
            "Secret is short or low in entropy",
            "Generate a long random secret (e.g. 32+ random characters) and rotate it in.",
            RB_ROTATION,
        ),
        Rule(
            "fallback-credentials-enabled",
            "credentials",
            _C,
            "Fallback credentials are enabled",
            "Turn fallback credentials off in production so a missing secret fails loudly.",
            RB_PREDEPLOY,
        ),
        # urls
        Rule(
            "url-malformed",
            "urls",
            _C,
            "URL is malformed",
            "Write a full absolute URL such as https://app.example.com/path.",
        ),
        Rule(
            "url-not-https",
            "urls",
            _C,
            "URL does not use HTTPS",
            "Use https:// so payment data and signatures are never sent in clear text.",
        ),
        Rule(
            "url-off-domain",
            "urls",
            _W,
            "URL is not on the production domain",
            "Point the URL at the production domain; return and webhook URLs elsewhere lose payments.",
        ),
        Rule(
            "url-local-or-private",
            "urls",
            _C,
            "URL points at a local or private address",
            "Use the public production URL; the provider cannot reach localhost or private networks.",
        ),
        Rule(
            "url-secret-in-query",
            "urls",
            _C,
            "Secret in a URL query string",
            "Move the secret into a header or the server; query strings end up in logs and referrers.",
            RB_ROTATION,
        ),
        Rule(
            "api-base-not-production",
            "urls",
            _C,
            "Provider API base is not the production endpoint",
            "Set the API base to the provider's production endpoint.",
            RB_PREDEPLOY,
        ),
        Rule(
            "dev-host-in-production",
            "urls",
            _C,
            "Development or sandbox host used in production",
            "Replace the host with its production equivalent.",
            RB_PREDEPLOY,
        ),
        # policy
        Rule(
            "policy-violation",
            "policy",
            _C,
            "Required setting has the wrong value",
            "Set the variable to the value the policy requires and redeploy.",
            RB_PREDEPLOY,
        ),
        # tls and live checks (reported by the health checks)
        Rule(
            "tls-expired",
            "tls",
            _C,
            "Certificate has expired",
            "Renew and deploy the certificate now.",
            RB_TLS,
        ),
        Rule(
            "tls-expiring-soon",
            "tls",
            _W,
            "Certificate expires soon",
            "Renew the certificate before it expires; check that automatic renewal is running.",
            RB_TLS,
        ),
        Rule(
            "tls-not-yet-valid",
            "tls",
            _C,
            "Certificate is not yet valid",
            "Check the server's clock and the certificate's start date (notBefore); serve one already valid.",
            RB_TLS,
        ),
        Rule(
            "tls-untrusted",
            "tls",
            _C,
            "Certificate is not trusted",
            "Serve a certificate from a public CA with its full chain.",
            RB_TLS,
        ),
        Rule(
            "tls-hostname-mismatch",
            "tls",
            _C,
            "Certificate does not match the host name",
            "Serve a certificate whose names include this host.",
            RB_TLS,
        ),
        Rule(
            "tls-old-protocol",
            "tls",
            _W,
            "Server negotiates an outdated TLS version",
            "Disable TLS 1.0 and 1.1 on the server.",
            RB_TLS,
        ),
        Rule(
            "check-failed",
            "health",
            _C,
            "Health check failed",
            "See the check's error class for the recovery hint.",
            RB_PROVIDER,
        ),
        Rule(
            "webhook-accepts-unsigned",
            "webhooks",
            _C,
            "Webhook endpoint accepts unsigned deliveries",
            "Verify the signature of every delivery before acting on it.",
            RB_WEBHOOK,
        ),
        Rule(
            "webhook-rejects-signed",
            "webhooks",
            _C,
            "Webhook endpoint rejects correctly signed deliveries",
            "Check the webhook secret configured in the app against the provider's.",
            RB_WEBHOOK,
        ),
        # deploy gates (preflight, verify-deploy, rollback readiness)
        Rule(
            "rollback-version-unknown",
            "deploy",
            _C,
            "Previous release is not known",
            "Set [deploy] version_url (or version_command) so opsdash can read the current and previous "
            "release; without it a rollback has no target.",
            RB_ROLLBACK,
        ),
        Rule(
            "rollback-runbook-invalid",
            "deploy",
            _C,
            "Rollback runbook is missing or broken",
            "Add the rollback runbook (or fix it until 'opsdash runbook check' passes) before deploying.",
            RB_ROLLBACK,
        ),
        Rule(
            "rollback-no-green-run",
            "deploy",
            _W,
            "No green run to roll back to",
            "Run 'opsdash preflight' while production is healthy, so there is a known-good baseline.",
            RB_PREDEPLOY,
        ),
        Rule(
            "version-mismatch",
            "deploy",
            _C,
            "Served release is not the expected one",
            "The deploy did not land (or landed somewhere else): check the deploy output, or roll back.",
            RB_ROLLBACK,
        ),
        Rule(
            "deploy-unstable",
            "deploy",
            _C,
            "Checks did not settle after the deploy",
            "Roll back unless the cause is understood and a fix is minutes away.",
            RB_ROLLBACK,
        ),
        Rule(
            "latency-regression",
            "deploy",
            _W,
            "Check latency regressed since the last green run",
            "Compare the release's changes that touch this path; roll back if users notice.",
            RB_ROLLBACK,
        ),
        Rule(
            "env-changed",
            "deploy",
            _W,
            "Environment changed since the last green run",
            "Confirm the change was intended (a rotation, a new setting); an unplanned change is a red flag.",
            RB_ROTATION,
        ),
        Rule(
            "metric-dropped",
            "deploy",
            _W,
            "A health metric fell since the last green run",
            "Look at what the metric measures (payment success, say) before declaring the deploy good.",
            RB_ROLLBACK,
        ),
        Rule(
            "cert-days-dropped",
            "deploy",
            _W,
            "A certificate now expires sooner than before",
            "A different (older or shorter) certificate is being served: check the deploy's TLS setup.",
            RB_TLS,
        ),
        # credential trace (opsdash secrets trace)
        Rule(
            "secret-in-git-history",
            "trace",
            _C,
            "A current secret is in the app's git history",
            "Rotate the secret now: anyone with a clone (or the remote) has it, and rewriting history does "
            "not un-leak it. Then remove it from the files and, if you must, purge it from history "
            "(git filter-repo) and ask every holder of a clone to re-clone.",
            RB_ROTATION,
        ),
        Rule(
            "secret-in-source",
            "trace",
            _C,
            "A current secret is in the app's files",
            "Rotate the secret, then remove the hard-coded value (a fallback in source, a build, a copied "
            "env file) and read it from the server's environment only.",
            RB_ROTATION,
        ),
        Rule(
            "previous-secret-in-history",
            "trace",
            _I,
            "A previous (rotated-away) secret is in the app's history or files",
            "Confirm the rotation revoked it at the provider (a revoked value found here is harmless); "
            "if it still works, revoke it now.",
            RB_ROTATION,
        ),
        # the credential trace, live site (`opsdash secrets trace --live`, preflight, the trace gate)
        Rule(
            "secret-served-live",
            "trace",
            _C,
            "The live site serves a secret to every visitor",
            "Rotate the secret now: every visitor has downloaded it, so removing it from the bundle does "
            "not un-leak it. Then move the variable off the client prefix, rebuild, redeploy and trace "
            "again.",
            RB_ROTATION,
        ),
        Rule(
            "previous-secret-still-accepted",
            "trace",
            _C,
            "A previous (rotated-away) secret is still accepted by the provider",
            "Revoke the old value in the provider's dashboard now: the rotation is not done while it "
            "still works, and it was found where others can read it.",
            RB_ROTATION,
        ),
    ]
}


def rule(rule_id: str) -> Rule:
    return RULES[rule_id]
