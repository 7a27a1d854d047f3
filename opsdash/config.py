"""opsdash's own settings and the target profile, loaded from one TOML file.

The file has an optional `[opsdash]` table (opsdash's settings; `OPSDASH_*` environment variables
override it) and the target profile: `[target]`, `[env]`, `[urls]`, `[[policy]]`, `[provider]`.
Errors name the file and line. No UI types live here.
"""

from __future__ import annotations

import contextvars
import fnmatch
import getpass
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from opsdash import paths
from opsdash.errors import ConfigError

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


class TargetSection(_Section):
    name: str = Field(description="Name of the deployment, shown in every report.")
    environment: str = Field("production", description="Environment this profile describes.")
    base_url: str = Field(description="Public URL of the application, e.g. https://app.betaskill.com.")
    domain: str | None = Field(
        None,
        description="Production domain; app URLs must be on it or a subdomain. Default: base_url's host.",
    )
    client_prefixes: list[str] = Field(
        default_factory=lambda: list(CLIENT_PREFIXES),
        description="Variable prefixes a front-end bundler ships to the browser (Vite bundles VITE_*).",
    )
    bundle_dir: Path | None = Field(
        None, description="Built front-end (e.g. dist/) to scan for leaked secrets."
    )

    _check_base_url = field_validator("base_url")(check_http_url)

    @property
    def production_domain(self) -> str:
        return (self.domain or urlsplit(self.base_url).hostname or "").lower().strip(".")


class EnvSection(_Section):
    files: list[Path] = Field(default_factory=list, description="Env files, in load order (later wins).")
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
    required: list[str] = Field(default_factory=list, description="Variables that must be set and non-empty.")
    secrets: list[str] = Field(default_factory=list, description="Variables holding secrets (never shown).")
    secret_patterns: list[str] = Field(
        default_factory=lambda: list(SECRET_PATTERNS),
        description="Name patterns that also mark a variable as secret (matched without client prefix).",
    )
    fallback_variables: list[str] = Field(
        default_factory=lambda: ["*FALLBACK*"],
        description="Variables (or patterns) that enable fallback/dev credentials; must be false.",
    )
    min_secret_length: int = Field(16, ge=1, description="Shorter secrets are reported as weak.")


class UrlsSection(_Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    webhook: list[str] = Field(default_factory=list, description="Variables holding webhook (callback) URLs.")
    return_: list[str] = Field(default_factory=list, alias="return", description="Payment return URLs.")
    cancel: list[str] = Field(default_factory=list, description="Payment cancel URLs.")
    api_base: list[str] = Field(default_factory=list, description="Variables holding the provider API base.")
    other: list[str] = Field(
        default_factory=list, description="Other URL variables (any *_URL variable is checked too)."
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
        default_factory=lambda: list(DENIED_HOSTS),
        description="Host patterns of dev/sandbox/test systems that production must never use.",
    )

    _check_api_base = field_validator("api_base")(check_http_url)


CHECK_KINDS = ("http", "tcp", "dns", "tls", "provider", "webhook")


class CheckBase(_Section):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$", description="Unique name, e.g. app-health.")
    timeout: float = Field(5.0, gt=0, le=300, description="Seconds for the whole probe, retries excluded.")
    interval: float = Field(30.0, ge=1, description="Seconds between polls in the dashboard and --watch.")
    retries: int = Field(1, ge=0, le=5, description="Retries for transient errors (reset, timeout, 5xx).")
    failure_threshold: int = Field(
        3, ge=1, description="Consecutive failures before the check counts as down."
    )
    success_threshold: int = Field(2, ge=1, description="Consecutive successes before a down check recovers.")
    severity: Literal["warn", "crit"] = Field("crit", description="Severity of a failure of this check.")
    runbook: str | None = Field(None, description="Runbook for failures (default: by error class).")
    conditions: list[str] = Field(
        default_factory=list, description="Conditions such as '[STATUS] == 200' or '[BODY].status == UP'."
    )

    @field_validator("conditions")
    @classmethod
    def _parse_conditions(cls, value: list[str]) -> list[str]:
        from opsdash.core.health.conditions import parse_all

        parse_all(value)
        return value


class HttpCheck(CheckBase):
    kind: Literal["http"]
    url: str = Field(description="URL to request.")
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str = ""
    expect_status: list[int] = Field(
        default_factory=lambda: [200], description="Accepted statuses when no condition names [STATUS]."
    )
    follow_redirects: bool = False
    max_redirects: int = Field(5, ge=0, le=30)
    max_body_bytes: int = Field(1_000_000, ge=0, description="Larger bodies fail the check as too-large.")
    metrics: list[str] = Field(default_factory=list, description="Extra [BODY] paths kept as metrics.")

    _check_url = field_validator("url")(check_http_url)


class TcpCheck(CheckBase):
    kind: Literal["tcp"]
    host: str
    port: int = Field(ge=1, le=65535)


class DnsCheck(CheckBase):
    kind: Literal["dns"]
    hostname: str
    expect: list[str] = Field(default_factory=list, description="Addresses that must be among the answers.")


class TlsCheck(CheckBase):
    kind: Literal["tls"]
    host: str
    port: int = Field(443, ge=1, le=65535)
    server_name: str | None = Field(None, description="SNI and name to verify. Default: host.")
    warn_days: float = Field(30, ge=0, description="WARN when the certificate expires sooner.")
    crit_days: float = Field(7, ge=0, description="CRIT when the certificate expires sooner.")
    min_version: Literal["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"] = "TLSv1.2"


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
        default_factory=list,
        description="Variables holding the active webhook secrets; several while rotating. Default: the "
        "provider's webhook secret variable.",
    )
    app_id_variable: str | None = Field(
        None, description="iKhokha: IK-APPID must equal this variable's value."
    )
    tolerance: int = Field(300, ge=1, description="Seconds a timestamp may be old or in the future.")
    allowed_sources: list[str] = Field(default_factory=list, description="CIDRs deliveries may come from.")
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
    kind: Literal["webhook", "slack"] = Field(description="webhook: generic JSON; slack: Slack-compatible.")
    url: str | None = Field(None, description="Receiver URL (if it holds no secret).")
    url_env: str | None = Field(None, description="Variable holding the URL (Slack URLs are secrets).")
    timeout: float = Field(5.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=5)

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
    rules: list[str] = Field(default_factory=list, description="Only these alert rules (default: all).")


class AlertsSection(_Section):
    reminder_interval: int = Field(
        3600, ge=60, description="Seconds before a still-firing alert is sent again."
    )
    send_resolved: bool = Field(True, description="Send a message when an alert resolves.")
    channels: list[AlertChannel] = Field(default_factory=list)
    silences: list[Silence] = Field(default_factory=list)


class RunbooksSection(_Section):
    dirs: list[Path] = Field(
        default_factory=lambda: [Path("runbooks")], description="Directories of runbook Markdown files."
    )
    shipped: bool = Field(True, description="Also offer the runbooks that ship with opsdash.")


class HealthSection(_Section):
    concurrency: int = Field(50, ge=1, le=1000, description="Probes in flight at once.")
    ca_file: Path | None = Field(None, description="Extra CA bundle to trust (internal CAs, the demo).")


class Profile(_Section):
    """A deployment opsdash validates and watches."""

    target: TargetSection
    env: EnvSection = Field(default_factory=EnvSection)
    urls: UrlsSection = Field(default_factory=UrlsSection)
    policy: list[PolicyRule] = Field(default_factory=list)
    provider: ProviderSection | None = None
    health: HealthSection = Field(default_factory=HealthSection)
    checks: list[Check] = Field(default_factory=list)
    webhook: WebhookSection = Field(default_factory=WebhookSection)
    runbooks: RunbooksSection = Field(default_factory=RunbooksSection)
    deploy: DeploySection = Field(default_factory=DeploySection)
    alerts: AlertsSection = Field(default_factory=AlertsSection)

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


class SettingsTable(_Section):
    """opsdash's own settings as written in the [opsdash] table of the config file."""

    data_dir: Path | None = Field(
        None, description="History database and audit log directory. Default: the platform's user data dir."
    )
    operator: str | None = Field(None, description="Who is operating; recorded in history. Default: OS user.")
    history_retention_days: int = Field(90, ge=1, description="Runs older than this are purged from history.")
    theme: str = Field(
        "textual-dark", description="Dashboard theme; 'ansi-dark' uses the terminal's 16 colours."
    )
    keymap: dict[str, str] = Field(
        default_factory=dict, description='Key remapping by binding id, e.g. {"health.pause" = "space"}.'
    )
    audit_max_bytes: int = Field(
        100 * 1024 * 1024, ge=4096, description="The audit log rotates to a numbered file at this size."
    )


class ConfigFile(Profile):
    """The whole opsdash.toml: opsdash's own settings plus the target profile."""

    opsdash: SettingsTable = Field(
        default_factory=SettingsTable,
        description="opsdash's own settings; OPSDASH_* variables override them.",
    )


# ---------------------------------------------------------------- opsdash's own settings

_file_table: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "opsdash_file_table", default=None
)


class _FileTableSource(PydanticBaseSettingsSource):
    """The `[opsdash]` table of the config file, below environment variables in priority."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return (_file_table.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        table = _file_table.get() or {}
        return {k: v for k, v in table.items() if k in self.settings_cls.model_fields}


class OpsdashSettings(BaseSettings, SettingsTable):
    """opsdash's own settings: flags, then OPSDASH_* variables, then [opsdash] in the config file."""

    model_config = SettingsConfigDict(env_prefix="OPSDASH_", extra="ignore", frozen=True)

    # Environment only, never the config file (which may be committed): see audit_key() in services.
    audit_key: SecretStr | None = Field(
        None,
        description="Audit-log HMAC key (OPSDASH_AUDIT_KEY). Default: 0600 file in the config dir.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileTableSource(settings_cls))

    def resolved_data_dir(self) -> Path:
        return (self.data_dir or paths.default_data_dir()).expanduser()

    def resolved_operator(self) -> str:
        if self.operator:
            return self.operator
        for var in ("USER", "LOGNAME", "USERNAME"):
            if os.environ.get(var):
                return os.environ[var]
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"


def load_settings(file_table: Mapping[str, Any] | None = None, **overrides: Any) -> OpsdashSettings:
    token = _file_table.set(dict(file_table or {}))
    try:
        return OpsdashSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        env_name = "OPSDASH_" + field.upper()
        where = env_name if env_name in os.environ else f"[opsdash].{field}"
        raise ConfigError(f"{where}: {err['msg']}") from None
    finally:
        _file_table.reset(token)


# ---------------------------------------------------------------- loading and locating errors


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    text: str
    profile: Profile
    file_table: Mapping[str, Any]


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*="""
)


def _split_key(key: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in key.split("."))


def locate(text: str, loc: tuple[str | int, ...], *, exact: bool = False) -> int | None:
    """Best-effort line number of a TOML location such as ('policy', 1, 'expected').

    Without `exact`, the line of the closest enclosing key or table is returned when the location
    itself is not written in the file."""
    aot_index: dict[tuple[str | int, ...], int] = {}
    current: tuple[str | int, ...] = ()
    best_line, best_len = None, 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = _split_key(header.group(2))
            path: tuple[str | int, ...] = ()
            for part in parts:
                path = (*path, part)
                if path in aot_index and not (header.group(1) == "[[" and path == parts):
                    path = (*path, aot_index[path])
            if header.group(1) == "[[":
                index = aot_index.get(parts, -1) + 1
                aot_index[parts] = index
                path = (*parts, index)
            current = path
            full = current
        else:
            key = _KEY.match(line)
            if not key:
                continue
            full = (*current, *_split_key(key.group(1)))
        n = len(full)
        if n > best_len and tuple(loc[:n]) == full:
            best_line, best_len = lineno, n
    if exact and best_len != len(loc):
        return None
    return best_line


def _format_loc(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _strip_tags(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Drop pydantic's union tags (checks.0.http.url -> checks.0.url) so the path matches the file."""
    out: list[str | int] = []
    for part in loc:
        if part == "function-after" or (part in CHECK_KINDS and out and isinstance(out[-1], int)):
            continue
        out.append(part)
    return tuple(out)


def validation_messages(exc: ValidationError, path: Path, text: str) -> list[str]:
    messages = []
    # A misspelt key also makes the real key "missing": report the misspelling first.
    errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
    for err in errors:
        loc = _strip_tags(tuple(err["loc"]))
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = (*loc, "kind")
        line = locate(text, loc) if loc else None
        where = f"{path}:{line}" if line else str(path)
        if err["type"] == "extra_forbidden":
            section = _format_loc(loc[:-1]) or "the top level"
            messages.append(f"{where}: unknown key {loc[-1]!r} in {section}")
        elif err["type"] == "missing":
            messages.append(f"{where}: {_format_loc(loc)} is required but missing")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            messages.append(f"{where}: {_format_loc(loc) or 'config'}: {msg}")
    return messages


def find_config(explicit: Path | None = None, cwd: Path | None = None) -> Path:
    if explicit is not None:
        return explicit
    from_env = paths.env_path("OPSDASH_CONFIG")
    if from_env is not None:
        return from_env
    candidates = paths.config_candidates(cwd)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no configuration found (looked in {looked}); pass --config, set OPSDASH_CONFIG, "
        "or run 'opsdash init' to write one"
    )


def read_config_text(path: Path) -> str:
    from opsdash.core.files import UnreadableFile, read_text

    try:
        return read_text(path, "config file")
    except UnreadableFile as exc:
        raise ConfigError(str(exc)) from None


_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_config(path: Path, text: str) -> tuple[ConfigFile | None, list[str]]:
    """Parse and validate; returns every problem as 'file:line: message'."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        pos = _TOML_POS.search(msg)
        if pos:
            where = f"{path}:{pos.group(1)}:{pos.group(2)}"
            msg = _TOML_POS.sub("", msg).strip()
        else:
            where = f"{path}:{text.count(chr(10)) + 1}"
        return None, [f"{where}: invalid TOML: {msg}"]
    try:
        return ConfigFile.model_validate(data), []
    except ValidationError as exc:
        return None, validation_messages(exc, path, text)


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = value.expanduser()
    return value if value.is_absolute() else base / value


def load_config(path: Path) -> LoadedConfig:
    """Load a config file; raise ConfigError naming file and line on the first problem."""
    text = read_config_text(path)
    parsed, problems = parse_config(path, text)
    if parsed is None:
        more = (
            f" (+{len(problems) - 1} more; 'opsdash config validate' lists all)" if len(problems) > 1 else ""
        )
        raise ConfigError(problems[0] + more)
    base = path.resolve().parent
    target = parsed.target.model_copy(update={"bundle_dir": _resolve(base, parsed.target.bundle_dir)})
    env = parsed.env.model_copy(
        update={
            "files": [_resolve(base, f) for f in parsed.env.files],
            "example": _resolve(base, parsed.env.example),
            "development": _resolve(base, parsed.env.development),
        }
    )
    health = parsed.health.model_copy(update={"ca_file": _resolve(base, parsed.health.ca_file)})
    runbooks = parsed.runbooks.model_copy(update={"dirs": [_resolve(base, d) for d in parsed.runbooks.dirs]})
    fields = {name: getattr(parsed, name) for name in Profile.model_fields}
    profile = Profile(**{**fields, "target": target, "env": env, "health": health, "runbooks": runbooks})
    return LoadedConfig(
        path=path, text=text, profile=profile, file_table=parsed.opsdash.model_dump(exclude_unset=True)
    )


def config_schema() -> dict[str, Any]:
    schema = ConfigFile.model_json_schema(by_alias=True)
    schema["properties"]["opsdash"] = OpsdashSettings.model_json_schema()
    schema["properties"]["opsdash"]["title"] = (
        "opsdash settings ([opsdash] table; OPSDASH_* env vars override)"
    )
    return schema
