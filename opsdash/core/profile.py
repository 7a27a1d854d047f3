"""The target profile: what one deployment looks like (env files, variable roles, URLs, policy,
provider, health checks, webhook, deploy, alerts, runbooks). Plain pydantic models, no settings,
paths or storage: the core validates and probes against these."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

CLIENT_PREFIXES = ["VITE_", "NEXT_PUBLIC_", "REACT_APP_", "PUBLIC_"]
SECRET_PATTERNS = ["*SECRET*", "*PASSWORD*", "*PASSWD*", "*TOKEN*", "*PRIVATE_KEY*", "*API_KEY*"]
DENIED_HOSTS = ["*sandbox*", "*staging*", "*.test", "*.local", "dev.*", "*.dev.*", "test.*", "*.test.*"]


def check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError(f"{value!r} is not a valid http(s) URL")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    return value


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TraceSection(_Section):
    """`[target.trace]`: where `opsdash secrets trace` looks for the target's secret values."""

    repo: Path | None = Field(
        None,
        description="The app's git repository (relative to this file): every object in it, reachable or "
        "not, is searched. Unset: only --repo.",
    )
    paths: list[Path] = Field(
        default=[],
        description="Files and directories also searched (source, build output; relative to this file). "
        "bundle_dir is searched too when set.",
    )
    skip_dirs: list[str] = Field(
        default=[".git", "node_modules"], description="Directory names not descended into under paths."
    )
    max_file_bytes: int = Field(
        100_000_000, ge=1, description="A larger file under paths is reported as not searched."
    )


class TargetSection(_Section):
    name: str = Field(description="Name of the deployment, shown in every report.")
    environment: str = Field("production", description="Environment this profile describes.")
    base_url: str = Field(description="Public URL of the application, e.g. https://app.betaskill.com.")
    domain: str | None = Field(
        None,
        description="Production domain; app URLs must be on it or a subdomain. Default: base_url's host.",
    )
    client_prefixes: list[str] = Field(
        default=list(CLIENT_PREFIXES),
        description="Variable prefixes a front-end bundler ships to the browser (Vite bundles VITE_*).",
    )
    bundle_dir: Path | None = Field(
        None, description="Built front-end (e.g. dist/) to scan for leaked secrets."
    )
    trace: TraceSection = Field(
        default_factory=TraceSection, description="Where `opsdash secrets trace` looks."
    )

    _check_base_url = field_validator("base_url")(check_http_url)

    @property
    def production_domain(self) -> str:
        return (self.domain or urlsplit(self.base_url).hostname or "").lower().strip(".")


class EnvSection(_Section):
    framework: Literal["plain", "vite", "next", "cra"] = Field(
        "plain",
        description="How the app reads its env files. vite/next/cra: the framework's files for `mode` "
        "(.env, .env.local, .env.MODE, .env.MODE.local in its order), read with Node's dotenv and "
        "dotenv-expand. plain: `files` as listed, values literal.",
    )
    mode: str = Field("production", description="The build mode whose env files the framework reads.")
    dir: Path = Field(Path("."), description="Where the framework's env files are (relative to this file).")
    files: list[Path] = Field(
        default=[],
        description="Env files, in load order (later wins). With a framework: files read after its own.",
    )
    example: Path | None = Field(None, description="The .env.example the env files are compared with.")
    development: Path | None = Field(
        None, description="The development env file; secrets must differ from it."
    )
    from_process: bool = Field(False, description="Also read the process environment (as --from-env does).")
    mode_variable: str | None = Field(
        None, description="Variable holding the app's mode, e.g. VITE_NODE_ENV."
    )
    mode_expected: str = Field("production", description="Value the mode variable must have.")
    test_mode_variable: str | None = Field(
        None, description="Variable that switches the provider to test mode."
    )
    required: list[str] = Field(default=[], description="Variables that must be set and non-empty.")
    secrets: list[str] = Field(default=[], description="Variables holding secrets (never shown).")
    secret_patterns: list[str] = Field(
        default=list(SECRET_PATTERNS),
        description="Name patterns that also mark a variable as secret (matched without client prefix).",
    )
    fallback_variables: list[str] = Field(
        default=["*FALLBACK*"],
        description="Variables (or patterns) that enable fallback/dev credentials; must be false.",
    )
    min_secret_length: int = Field(16, ge=1, description="Shorter secrets are reported as weak.")

    def env_files(self) -> list[Path]:
        """The files the app's loader reads, lowest precedence first: the framework's own that exist,
        then `files`. A plain profile's `files` are all returned, present or not (absent is an error)."""
        from opsdash.core.envfiles import framework_files

        own = [p for p in framework_files(self.framework, self.mode, self.dir) if p.is_file()]
        known = {p.resolve() for p in own}  # a listed file the framework reads anyway keeps its place
        return [*own, *(p for p in self.files if p.resolve() not in known)]


class UrlsSection(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    webhook: list[str] = Field(default=[], description="Variables holding webhook (callback) URLs.")
    return_: list[str] = Field(default=[], alias="return", description="Payment return URLs.")
    cancel: list[str] = Field(default=[], description="Payment cancel URLs.")
    api_base: list[str] = Field(default=[], description="Variables holding the provider API base.")
    other: list[str] = Field(
        default=[], description="Other URL variables (any *_URL variable is checked too)."
    )

    def roles(self) -> Iterator[tuple[str, str]]:
        for role in ("webhook", "return", "cancel", "api_base", "other"):
            for name in getattr(self, "return_" if role == "return" else role):
                yield role, name


class PolicyRule(_Section):
    variable: str = Field(description="Variable the policy reads.")
    expected: str = Field(description="Required value; booleans compare as booleans (true/1/yes/on).")
    description: str = Field("", description="What the setting enforces, e.g. 'HTTPS only'.")
    severity: Literal["info", "warn", "crit"] = Field("crit", description="Severity when violated.")
    runbook: str | None = Field(None, description="Runbook id that fixes a violation.")


class ProviderSection(_Section):
    kind: Literal["ikhokha", "generic"] = Field("ikhokha", description="Payment provider.")
    api_base: str = Field(
        "https://api.ikhokha.com/public-api/v1/api", description="The provider's production API base URL."
    )
    app_id_variable: str | None = Field(None, description="Variable holding the application id (IK-APPID).")
    secret_variable: str | None = Field(None, description="Variable holding the application secret.")
    webhook_secret_variable: str | None = Field(None, description="Variable holding the webhook secret.")
    denied_hosts: list[str] = Field(
        default=list(DENIED_HOSTS),
        description="Host patterns of dev/sandbox/test systems that production must never use.",
    )

    _check_api_base = field_validator("api_base")(check_http_url)


CHECK_KINDS = ("http", "tcp", "dns", "tls", "provider", "webhook")

# The dashboard's themes and key-binding ids, here so `config validate` rejects a typo (file:line)
# before the dashboard starts; tests/tui/test_theme_and_keymap.py keeps them equal to the TUI's.
DASHBOARD_THEMES = (
    *("textual-dark", "textual-light", "ansi-dark", "ansi-light", "opsdash-mono", "atom-one-dark"),
    *("atom-one-light", "catppuccin-frappe", "catppuccin-latte", "catppuccin-macchiato"),
    *("catppuccin-mocha", "dracula", "flexoki", "gruvbox", "monokai", "nord", "rose-pine"),
    *("rose-pine-dawn", "rose-pine-moon", "solarized-dark", "solarized-light", "tokyo-night"),
)
KEYMAP_IDS = (
    *("app.quit", "app.help", "app.back", "app.pane.overview", "app.pane.validation"),
    *("app.pane.health", "app.pane.audit", "app.pane.runbooks", "app.pane.history", "app.pane.timeline"),
    *(
        "validation.rerun",
        "validation.open_runbook",
        "validation.copy",
        "validation.filter",
        "validation.trace",
    ),
    *("health.pause", "health.open_runbook", "health.copy", "health.filter"),
    *("audit.verify", "audit.filter", "audit.follow", "audit.oldest", "audit.copy"),
    *("runbooks.open", "runbooks.new", "runbooks.copy", "runbooks.list", "runbooks.step.confirm"),
    *("runbooks.step.retry", "runbooks.step.mark-done", "runbooks.step.skip", "runbooks.step.abort"),
    *("runbooks.step.interrupt",),
    *("history.open", "history.mark", "history.diff", "history.reload", "history.filter"),
    *("history.filters",),
    *("timeline.open", "timeline.export", "timeline.reload", "timeline.filter"),
    *("table.down", "table.up", "table.first", "table.last", "filter.clear", "filter.keep"),
    *("log.down", "log.up", "help.close"),
)


def check_theme(value: str) -> str:
    if value not in DASHBOARD_THEMES:
        raise ValueError(f"unknown theme {value!r}; one of: {', '.join(DASHBOARD_THEMES)}")
    return value


def check_keymap(value: dict[str, str]) -> dict[str, str]:
    unknown = sorted(set(value) - set(KEYMAP_IDS))
    if unknown:
        raise ValueError(
            f"unknown key binding id(s) {', '.join(unknown)}; the ids are listed by ? in the dashboard"
        )
    empty = sorted(k for k, v in value.items() if not v.strip())
    if empty:
        raise ValueError(f"no key given for {', '.join(empty)}")
    return value


class CheckBase(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", description="Unique name, e.g. app-health.")
    timeout: float = Field(5.0, gt=0, le=300, description="Seconds for the whole probe, retries excluded.")
    interval: float = Field(30.0, ge=1, description="Seconds between polls in the dashboard and --watch.")
    retry_interval: float | None = Field(
        None,
        ge=1,
        description="Seconds between polls while the check is failing but not yet down, or recovering, "
        "so a change is confirmed (or dismissed) sooner. Default: a third of interval, at least 1 s.",
    )
    retries: int = Field(1, ge=0, le=5, description="Retries for transient errors (reset, timeout, 5xx).")
    failure_threshold: int = Field(
        3, ge=1, description="Consecutive failures before the check counts as down."
    )
    success_threshold: int = Field(2, ge=1, description="Consecutive successes before a down check recovers.")
    severity: Literal["warn", "crit"] = Field("crit", description="Severity of a failure of this check.")
    runbook: str | None = Field(None, description="Runbook for failures (default: by error class).")
    conditions: list[str] = Field(
        default=[], description="Conditions such as '[STATUS] == 200' or '[BODY].status == UP'."
    )

    @field_validator("conditions")
    @classmethod
    def _parse_conditions(cls, value: list[str]) -> list[str]:
        from opsdash.core.health.conditions import parse_all

        parse_all(value)
        return value


class CertThresholds(_Section):
    warn_days: float = Field(
        30, ge=0, description="WARN when a certificate of the chain expires sooner (https only; 0: off)."
    )
    crit_days: float = Field(
        7, ge=0, description="CRIT when a certificate of the chain expires sooner (https only; 0: off)."
    )


class HttpCheck(CheckBase, CertThresholds):
    kind: Literal["http"]
    url: str = Field(description="URL to request.")
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default={})
    body: str = ""
    expect_status: list[int] = Field(
        default=[200], description="Accepted statuses when no condition names [STATUS]."
    )
    follow_redirects: bool = False
    max_redirects: int = Field(5, ge=0, le=30)
    max_body_bytes: int = Field(1_000_000, ge=0, description="Larger bodies fail the check as too-large.")
    metrics: list[str] = Field(default=[], description="Extra [BODY] paths kept as metrics.")

    _check_url = field_validator("url")(check_http_url)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        import re

        for name, text in value.items():
            if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
                raise ValueError(f"header {name}: control characters (CR, LF ...) are not allowed in a value")
        return value


class TcpCheck(CheckBase):
    kind: Literal["tcp"]
    host: str
    port: int = Field(ge=1, le=65535)


class DnsCheck(CheckBase):
    kind: Literal["dns"]
    hostname: str
    expect: list[str] = Field(default=[], description="Addresses that must be among the answers.")


class TlsCheck(CheckBase, CertThresholds):
    kind: Literal["tls"]
    host: str
    port: int = Field(443, ge=1, le=65535)
    server_name: str | None = Field(None, description="SNI and name to verify. Default: host.")
    min_version: Literal["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] = Field(
        "TLSv1.2",
        description="Oldest protocol the server may accept; a server still accepting an older one is "
        "tls-old-protocol (WARN).",
    )


def _optional_url(value: str | None) -> str | None:
    return None if value is None else check_http_url(value)


class ProviderCheck(CheckBase):
    kind: Literal["provider"]
    base_url: str | None = Field(None, description="API base to probe. Default: provider.api_base.")
    endpoint: Literal["history", "status"] = Field(
        "history", description="Read-only endpoint: payments/history (today) or getStatus of a made-up id."
    )

    _check_base = field_validator("base_url")(_optional_url)


class WebhookCheck(CheckBase):
    kind: Literal["webhook"]
    url: str = Field(description="The app's webhook (callback) endpoint.")
    signed_delivery: bool = Field(
        False, description="Also send a correctly signed, clearly marked test delivery that must be accepted."
    )

    _check_url = field_validator("url")(check_http_url)


Check = Annotated[
    HttpCheck | TcpCheck | DnsCheck | TlsCheck | ProviderCheck | WebhookCheck, Field(discriminator="kind")
]


class WebhookSection(_Section):
    scheme: Literal["ikhokha", "github", "stripe", "standard", "slack", "shopify", "generic"] = Field(
        "ikhokha", description="Signature scheme of the provider's deliveries."
    )
    path: str = Field("/", description="Path the deliveries are sent to (iKhokha signs it).")
    secret_variables: list[str] = Field(
        default=[],
        description="Variables holding the active webhook secrets; several while rotating. Default: the "
        "provider's webhook secret variable.",
    )
    app_id_variable: str | None = Field(
        None, description="iKhokha: IK-APPID must equal this variable's value."
    )
    tolerance: int = Field(300, ge=1, description="Seconds a timestamp may be old or in the future.")
    allowed_sources: list[str] = Field(default=[], description="CIDRs deliveries may come from.")
    burst_threshold: int = Field(
        5, ge=1, description="Failed verifications from one source that raise an alert."
    )
    burst_window: int = Field(300, ge=1, description="Seconds the burst threshold counts over.")
    message_template: str = Field("{path}{body}", description="iKhokha: what is signed (PLAN §6).")
    escape: bool = Field(True, description="iKhokha: backslash-escape \\ \" ' and NUL before signing.")
    header: str = Field("X-Signature", description="generic: the signature header.")
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field("", description="generic: text before the signature, e.g. sha256=.")
    template: str = Field(
        "{body}", description="generic: signed message, with {body} {timestamp} {id} {path}."
    )
    timestamp_header: str | None = None
    id_header: str | None = None

    @field_validator("allowed_sources")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        import ipaddress

        for net in value:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(
                    f"{net!r} is not an IP network (e.g. 203.0.113.0/24 or 2001:db8::/32)"
                ) from None
        return value

    @field_validator("path", "message_template", "template")
    @classmethod
    def _templates(cls, value: str, info: ValidationInfo) -> str:
        from opsdash.core.webhooks import templates

        check = {
            "path": templates.validate_path,
            "message_template": templates.validate_message_template,
            "template": templates.validate_template,
        }[info.field_name or ""]
        check(value)
        return value


class DeploySection(_Section):
    version_url: str | None = Field(None, description="URL answering JSON with the current/previous release.")
    current_field: str = Field("current", description="JSON field (dotted path) of the running release.")
    previous_field: str = Field("previous", description="JSON field (dotted path) of the previous release.")
    version_command: str | None = Field(
        None, description="Instead of a URL: a command printing that JSON (run with the shell)."
    )
    rollback_runbook: str = Field("rollback", description="Runbook id that rolls a deploy back.")
    latency_regression: float = Field(
        1.5, gt=1, description="verify-deploy: latency ratio to the green run that warns."
    )
    latency_floor_ms: float = Field(
        100, ge=0, description="verify-deploy: ignore latency increases smaller than this."
    )
    metric_drop: float = Field(
        0.1, gt=0, lt=1, description="verify-deploy: a body metric falling by this share warns."
    )

    _check_url = field_validator("version_url")(lambda v: None if v is None else check_http_url(v))


class AlertChannel(_Section):
    name: str = Field(description="Shown in delivery reports.")
    kind: Literal["webhook", "slack", "alertmanager"] = Field(
        description="webhook: generic JSON; slack: Slack-compatible; alertmanager: Prometheus Alertmanager's "
        "v2 API (url is its base, e.g. http://127.0.0.1:9093; alerts go to /api/v2/alerts)."
    )
    url: str | None = Field(None, description="Receiver URL (if it holds no secret).")
    url_env: str | None = Field(None, description="Variable holding the URL (Slack URLs are secrets).")
    timeout: float = Field(
        2.0, gt=0, le=60, description="Seconds for the whole delivery, retries included; then it is failed."
    )
    retries: int = Field(2, ge=0, le=5, description="Retries within that time, with backoff.")

    @model_validator(mode="after")
    def _one_url(self) -> AlertChannel:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url or url_env")
        if self.url is not None:
            check_http_url(self.url)
        return self


class Silence(_Section):
    start: datetime = Field(description="Start of the maintenance window (ISO time with zone).")
    end: datetime = Field(description="End of the maintenance window.")
    reason: str = ""
    rules: list[str] = Field(default=[], description="Only these alert rules (default: all).")


class AlertsSection(_Section):
    reminder_interval: int = Field(
        3600, ge=60, description="Seconds before a still-firing alert is sent again."
    )
    send_resolved: bool = Field(True, description="Send a message when an alert resolves.")
    runbook_url: str | None = Field(
        None,
        description="Link to an alert's runbook, `{runbook}` standing for its id, e.g. "
        "'https://wiki.example.com/runbooks/{runbook}': Alertmanager's runbook_url annotation.",
    )
    channels: list[AlertChannel] = Field(default=[])
    silences: list[Silence] = Field(default=[])

    @field_validator("runbook_url")
    @classmethod
    def _runbook_link(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if "{runbook}" not in value or "{runbook}" in urlsplit(value).netloc or not value.isprintable():
            raise ValueError("runbook_url is a printable http(s) URL with {runbook} for the runbook id")
        link = check_http_url(value.replace("{runbook}", "rollback"))
        if "@" in urlsplit(link).netloc:
            raise ValueError("runbook_url must not carry credentials: it is sent with every alert")
        return value


class RunbooksSection(_Section):
    dirs: list[Path] = Field(default=[Path("runbooks")], description="Directories of runbook Markdown files.")
    shipped: bool = Field(True, description="Also offer the runbooks that ship with opsdash.")


class ServeSection(_Section):
    validate_interval: float = Field(
        300,
        ge=10,
        description="opsdash serve: seconds between validations of the environment (and audit verifies).",
    )


class HealthSection(_Section):
    concurrency: int = Field(
        50,
        ge=1,
        le=1000,
        description="Most probes in flight at once (fewer while the event loop falls behind).",
    )
    ca_file: Path | None = Field(None, description="Extra CA bundle to trust (internal CAs, the demo).")


class Profile(_Section):
    """A deployment opsdash validates and watches."""

    target: TargetSection
    env: EnvSection = Field(default_factory=EnvSection)
    urls: UrlsSection = Field(default_factory=UrlsSection)
    policy: list[PolicyRule] = Field(default=[])
    provider: ProviderSection | None = None
    health: HealthSection = Field(default_factory=HealthSection)
    checks: list[Check] = Field(default=[])
    webhook: WebhookSection = Field(default_factory=WebhookSection)
    runbooks: RunbooksSection = Field(default_factory=RunbooksSection)
    deploy: DeploySection = Field(default_factory=DeploySection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)
    serve: ServeSection = Field(default_factory=ServeSection)

    @field_validator("checks")
    @classmethod
    def _unique_names(cls, checks: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for check in checks:
            if check.name in seen:
                raise ValueError(f"two checks are named {check.name!r}")
            seen.add(check.name)
        return checks

    def check(self, name: str) -> Any:
        return next((c for c in self.checks if c.name == name), None)

    def is_client_exposed(self, name: str) -> bool:
        return name.startswith(tuple(self.target.client_prefixes))

    def strip_client_prefix(self, name: str) -> str:
        for prefix in self.target.client_prefixes:
            if name.startswith(prefix):
                return name[len(prefix) :]
        return name

    def is_secret(self, name: str) -> bool:
        """Declared secret, or named like one, with or without a client prefix (VITE_X_SECRET is one)."""
        bare = self.strip_client_prefix(name)
        declared = set(self.env.secrets) | {
            v
            for v in (
                self.provider and self.provider.secret_variable,
                self.provider and self.provider.webhook_secret_variable,
                self.provider and self.provider.app_id_variable,
            )
            if v
        }
        if name in declared or bare in declared:
            return True
        return any(fnmatch.fnmatchcase(bare.upper(), p.upper()) for p in self.env.secret_patterns)

    def variables_named(self) -> set[str]:
        """Every variable the profile mentions by name."""
        names = set(self.env.required) | set(self.env.secrets) | {v for _, v in self.urls.roles()}
        names |= {p.variable for p in self.policy}
        for v in (self.env.mode_variable, self.env.test_mode_variable):
            if v:
                names.add(v)
        if self.provider:
            names |= {
                v
                for v in (
                    self.provider.app_id_variable,
                    self.provider.secret_variable,
                    self.provider.webhook_secret_variable,
                )
                if v
            }
        names |= {v for v in self.env.fallback_variables if not any(c in v for c in "*?[")}
        return names
