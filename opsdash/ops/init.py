"""`opsdash init`: a starter profile from what is in a project directory.

It reads what the build reads: the framework (its config file or package.json), the mode the build
script builds in (`vite build --mode staging`), literal `envPrefix` and `outDir`/`distDir`, and the
env files of that mode in the framework's layering. It writes variable names, and of values only
the app's own URLs (scheme, host and path; never a query or credentials) — never a secret.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from opsdash.core.envfiles import framework_files, read_env_file
from opsdash.core.errors import ConfigError, OpsdashError
from opsdash.core.files import write_file
from opsdash.core.profile import CLIENT_PREFIXES, SECRET_PATTERNS
from opsdash.core.secrets import mask_url, redactor, secret_like
from opsdash.core.text import visible
from opsdash.ops.config import parse_config

ENV_CANDIDATES = (".env", ".env.production", ".env.production.local")
MODE_CANDIDATES = ("VITE_NODE_ENV", "NODE_ENV", "VITE_APP_ENV", "APP_ENV", "VITE_MODE", "NEXT_PUBLIC_ENV")
_IKHOKHA = re.compile("IKHOKHA", re.IGNORECASE)
_PROVIDER_DOMAINS = ("ikhokha.com",)
_CONFIGS = {
    "vite": ("vite.config.ts", "vite.config.mts", "vite.config.js", "vite.config.mjs", "vite.config.cjs"),
    "next": ("next.config.ts", "next.config.mjs", "next.config.js", "next.config.cjs"),
}
_PACKAGES = {"vite": "vite", "next": "next", "cra": "react-scripts"}
_DEFAULT_PREFIX = {"vite": ["VITE_"], "next": ["NEXT_PUBLIC_"], "cra": ["REACT_APP_"]}
_DEFAULT_BUNDLE = {"vite": "dist", "next": ".next/static", "cra": "build"}
_STRING = r"""(['"`])([^'"`\n]+)\1"""
_RUN_SCRIPT = re.compile(r"(?:npm run|yarn(?: run)?|pnpm(?: run)?|bun run)\s+([\w:.-]+)\s*$")
_VITE_BUILD = re.compile(r"\bvite\s+build\b[^\n]*")
_MODE_FLAG = re.compile(r"(?:--mode(?:=|\s+)|-m\s+)(\S*)")
_MODE_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")  # what an env file's name can carry

# A boolean switch whose safe production value follows from its name. (pattern, expected, severity)
_POLICIES = (
    ("*ENFORCE*HTTPS*", "true", "crit"),
    ("*HTTPS_ONLY*", "true", "crit"),
    ("*SIGNATURE_VALIDATION*", "true", "crit"),
    ("*SIGNATURE_VERIFICATION*", "true", "crit"),
    ("*VERIFY_SIGNATURE*", "true", "crit"),
    ("*CSRF*", "true", "crit"),
    ("*SECURITY_LOGGING*", "true", "crit"),
    ("*AUDIT_LOG*", "true", "warn"),
    ("*MONITORING*", "true", "warn"),
    ("*DEBUG*", "false", "crit"),
    ("*INSECURE*", "false", "crit"),
    ("*ALLOW_HTTP", "false", "crit"),
    ("*SKIP_*VERIF*", "false", "crit"),
    ("*DISABLE_*SECURITY*", "false", "crit"),
)
_BOOLEAN = {"true", "false", "1", "0", "yes", "no", "on", "off"}


def _q(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _list(values: list[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _bare(name: str) -> str:
    for prefix in CLIENT_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def _is_secret(name: str) -> bool:
    return any(fnmatch.fnmatchcase(_bare(name).upper(), p) for p in SECRET_PATTERNS)


def _url_role(name: str) -> str | None:
    upper = name.upper()
    if not upper.endswith(("_URL", "_URI", "_ENDPOINT", "_API_BASE", "_BASE")):
        return None
    if "WEBHOOK" in upper or "CALLBACK" in upper or "NOTIFY" in upper:
        return "webhook"
    if "CANCEL" in upper:
        return "cancel"
    if "RETURN" in upper or "SUCCESS" in upper:
        return "return"
    if "API" in upper and ("BASE" in upper or "ENDPOINT" in upper or _IKHOKHA.search(upper)):
        return "api_base"
    return "other"


@dataclass
class Project:
    """What init reads of a front-end project: its framework, its build, what its config says literally."""

    framework: str = "plain"
    config: str | None = None
    build: str | None = None  # the command package.json's build script runs
    mode: str = "production"  # the mode that build builds in
    prefixes: list[str] = field(default_factory=list)
    bundle: str | None = None
    notes: list[str] = field(default_factory=list)


def _build_command(scripts: dict[str, str]) -> str | None:
    """The command `npm run build` runs, through `npm run other` hops."""
    name, seen = "build", set()
    while isinstance(scripts.get(name), str) and name not in seen:
        seen.add(name)
        hop = _RUN_SCRIPT.fullmatch(scripts[name].strip())
        if hop is None:
            return scripts[name]
        name = hop.group(1)
    return None


def _build_mode(framework: str, command: str | None) -> tuple[str, str | None, str | None]:
    """The mode Vite builds in (`--mode X` / `-m X` on `vite build`; Next and CRA always build
    production), the `vite build ...` words it was read from, and what could not be read."""
    if framework != "vite" or not command:
        return "production", None, None
    for part in re.split(r"&&|\|\||;", command):
        build = _VITE_BUILD.search(part)
        flag = _MODE_FLAG.search(build.group(0)) if build else None
        if build is None or flag is None:
            continue
        words = build.group(0).strip()
        mode = flag.group(1).strip("'\"")
        if _MODE_NAME.fullmatch(mode):
            return mode, words, None
        return "production", words, f"the build's --mode {mode!r} is not a name opsdash can read"
    return "production", None, None


def _read_package(directory: Path) -> tuple[dict[str, object], dict[str, str]]:
    """package.json's dependencies (both tables) and scripts; empty when it is missing or malformed."""
    try:
        data = json.loads((directory / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, {}
    data = data if isinstance(data, dict) else {}

    def table(name: str) -> dict[str, object]:
        found = data.get(name)
        return found if isinstance(found, dict) else {}

    scripts = {k: v for k, v in table("scripts").items() if isinstance(v, str)}
    return {**table("dependencies"), **table("devDependencies")}, scripts


def detect(directory: Path) -> Project:
    package, scripts = _read_package(directory)
    project = Project()
    for framework in ("vite", "next", "cra"):
        config = next((n for n in _CONFIGS.get(framework, ()) if (directory / n).is_file()), None)
        if config or _PACKAGES[framework] in package:
            project = Project(framework, config)
            break
    if project.framework == "plain":
        return project
    project.mode, words, unreadable = _build_mode(project.framework, _build_command(scripts))
    project.build = visible(redactor.redact(words)) if words else None  # only `vite build ...`
    if unreadable:
        project.notes.append(f"{unreadable}: set [env] mode by hand")
    elif project.mode != "production":
        project.notes.append(
            f"the build script runs {project.build!r}: opsdash reads the env files of mode "
            f"{project.mode!r}, as that build does. Is that the build you deploy to production?"
        )
    text = ""
    if project.config:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            text = (directory / project.config).read_text(encoding="utf-8")[:200_000]
    project.prefixes = list(_DEFAULT_PREFIX[project.framework])
    project.bundle = _DEFAULT_BUNDLE[project.framework]
    if project.framework == "vite" and "envPrefix" in text:
        literal = re.search(r"envPrefix\s*:\s*" + _STRING, text)
        listed = re.search(r"envPrefix\s*:\s*\[([^\]]*)\]", text)
        if literal:
            project.prefixes = [literal.group(2)]
        elif listed and re.fullmatch(r"(\s*" + _STRING + r"\s*,?)*\s*", listed.group(1)):
            project.prefixes = [m.group(2) for m in re.finditer(_STRING, listed.group(1))]
        else:
            project.notes.append(f"envPrefix in {project.config} is computed: set client_prefixes by hand")
    if project.framework == "vite" and re.search(r"\bdefine\s*:", text):
        project.notes.append(
            f"{project.config} has a define block: a server variable it inlines reaches the browser "
            "whatever its prefix; scan the bundle (bundle_dir) after every build"
        )
    out_key = "outDir" if project.framework == "vite" else "distDir"
    if out_key in text:
        literal = re.search(out_key + r"\s*:\s*" + _STRING, text)
        if literal:
            out = literal.group(2).rstrip("/")
            project.bundle = out if project.framework == "vite" else f"{out}/static"
        else:
            project.notes.append(f"{out_key} in {project.config} is computed: set bundle_dir by hand")
    return project


def _https(value: str) -> tuple[str, str] | None:
    """(host, scheme://host/path) of an https URL with a dotted host; no query, fragment, userinfo
    or `;params`, and no path at all when a segment of it looks like a secret (a hook's token)."""
    try:
        parts = urlsplit(value.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "https" or "." not in host:
        return None
    netloc = host if port in (None, 443) else f"{host}:{port}"
    path = parts.path.split(";", 1)[0]
    if any(secret_like(segment) for segment in path.split("/")):
        path = "/"
    return host, f"https://{netloc}{path}"


def _app_host(values: dict[str, str], api_hosts: set[str]) -> str | None:
    """The app's own host: the most common among its https URLs, not the provider's or an API's.

    A variable's name does not decide it (`IKHOKHA_RETURN_URL` points at the app); the host does.
    The pages the provider sends the buyer back to (return, cancel, webhook) count double."""
    hosts: Counter[str] = Counter()
    for key, value in values.items():
        found = _https(value)
        if found is None:
            continue
        host = found[0]
        if host in api_hosts or any(host == d or host.endswith("." + d) for d in _PROVIDER_DOMAINS):
            continue
        hosts[host] += 2 if _url_role(key) in ("webhook", "return", "cancel") else 1
    return hosts.most_common(1)[0][0] if hosts else None


def _policies(values: dict[str, str], skip: set[str]) -> list[str]:
    """[[policy]] rules for the boolean switches whose safe production value follows from the name."""
    out: list[str] = []
    for key in sorted(values):
        if key in skip or values[key].strip().lower() not in _BOOLEAN:
            continue
        bare = _bare(key).upper()
        match = next(((e, s) for p, e, s in _POLICIES if fnmatch.fnmatchcase(bare, p)), None)
        if match is None:
            continue
        expected, severity = match
        out += [
            "",
            "[[policy]]",
            f"variable = {_q(key)}",
            f"expected = {_q(expected)}",
            f"description = {_q(f'{key} is {expected} in production (init read it from the name)')}",
        ]
        if severity != "crit":
            out.append(f"severity = {_q(severity)}")
    return out


def _runbook_checks() -> dict[str, list[str]]:
    """Check names the shipped runbooks gate on, each with the runbooks that name it."""
    from opsdash.core.runbooks.gates import parse_gates
    from opsdash.ops.runbooks import load_runbooks, shipped_runbooks_dir

    shipped = shipped_runbooks_dir()
    books, _problems = load_runbooks([shipped] if shipped else [])
    names: dict[str, list[str]] = {}
    for book in books:
        for step in book.steps:
            if step.kind == "check":
                for gate in parse_gates(step.action)[0]:
                    if gate.kind == "check" and book.id not in names.setdefault(gate.target, []):
                        names[gate.target].append(book.id)
    return names


@dataclass(frozen=True)
class _Facts:
    """What the checks are written from."""

    base_url: str
    host: str | None
    provider: bool
    api_host: str | None
    return_page: str | None
    webhook_url: str | None


def _check(name: str, facts: _Facts) -> list[str] | None:
    """The [[checks]] table for a check the shipped runbooks name, or None when init cannot write it."""
    head = ["", "[[checks]]", f"name = {_q(name)}"]
    if name == "app-health":
        return [
            "",
            "# Adjust the path and conditions to your app's health endpoint.",
            *head[1:],
            'kind = "http"',
            f"url = {_q(facts.base_url + '/')}",
            'conditions = ["[STATUS] == 200", "[RESPONSE_TIME] < 2000"]',
        ]
    if name in ("app-tls", "app-port") and facts.host:
        kind = "tls" if name == "app-tls" else "tcp"
        return [*head, f"kind = {_q(kind)}", f"host = {_q(facts.host)}", "port = 443"]
    if name == "payment-return-page" and facts.return_page:
        return [*head, 'kind = "http"', f"url = {_q(facts.return_page)}"]
    if name == "webhook-endpoint" and facts.webhook_url:
        return [*head, 'kind = "webhook"', f"url = {_q(facts.webhook_url)}", "signed_delivery = false"]
    if name == "ikhokha-api" and facts.provider:
        return [*head, 'kind = "provider"', 'endpoint = "history"']
    if name == "ikhokha-tls" and facts.provider and facts.api_host:
        return [*head, 'kind = "tls"', f"host = {_q(facts.api_host)}", "port = 443"]
    return None


def _checks(facts: _Facts) -> tuple[list[str], list[str]]:
    """Live checks under the names the shipped runbooks gate on, and notes for the ones init cannot write."""
    wanted = _runbook_checks()
    names = list(
        dict.fromkeys(["app-health", "app-tls", *(["ikhokha-api"] if facts.provider else []), *wanted])
    )
    lines = ["", "# Live checks, named as the shipped runbooks' gates name them."]
    notes: list[str] = []
    for name in names:
        table = _check(name, facts)
        if table is not None:
            lines += table
        elif name in wanted:
            notes.append(
                f"the shipped runbook(s) {', '.join(wanted[name])} gate on a check {name!r} that init could "
                "not write from this project: add it ('opsdash runbook check' names what is missing)"
            )
    return lines, notes


def build_profile(
    directory: Path, *, base_url: str | None = None, ask: Callable[[], str | None] | None = None
) -> str:
    project = detect(directory)
    if project.framework == "plain":
        env_files = [name for name in ENV_CANDIDATES if (directory / name).is_file()]
    else:
        env_files = [
            p.name for p in framework_files(project.framework, project.mode, directory) if p.is_file()
        ]
    example = ".env.example" if (directory / ".env.example").is_file() else None
    development = ".env.development" if (directory / ".env.development").is_file() else None
    keys: dict[str, str] = {}
    for name in env_files:
        for item in read_env_file(directory / name)[0]:
            keys[item.key] = item.value  # later files win, as the loader does
    for item in read_env_file(directory / example)[0] if example else []:
        keys.setdefault(item.key, "")
    names = sorted(keys)
    roles: dict[str, list[str]] = {}
    for key in names:
        role = _url_role(key)
        if role:
            roles.setdefault(role, []).append(key)
    api_hosts = {found[0] for k in roles.get("api_base", []) if (found := _https(keys[k]))}
    host = _app_host(keys, api_hosts)
    if base_url is None and host is None and ask is not None:
        base_url = ask()
    if base_url:
        found = _https(base_url)
        if found is None:
            shown = visible(mask_url(base_url))
            raise ConfigError(f"base URL {shown!r} is not an https URL with a host name")
        host, base_url = found[0], found[1].rstrip("/")
    elif host:
        base_url = f"https://{host}"
    mode = next((m for m in MODE_CANDIDATES if m in keys), None)
    test_mode = next((k for k in names if "TEST_MODE" in k.upper() or "SANDBOX" in k.upper()), None)
    secrets = [k for k in names if _is_secret(k)]
    bundle = project.bundle or ("dist" if (directory / "dist").is_dir() else None)
    prefixes = project.prefixes or list(CLIENT_PREFIXES)  # a known framework exposes its own prefixes only
    has_provider = any(_IKHOKHA.search(k) for k in names)
    pages = {
        role: next((p[1] for k in roles.get(role, []) if (p := _https(keys[k])) and p[0] == host), None)
        for role in ("return", "webhook")
    }
    facts = _Facts(
        base_url or "https://app.example.com",
        host,
        has_provider,
        next(iter(sorted(api_hosts)), None) or ("api.ikhokha.com" if has_provider else None),
        pages["return"],
        pages["webhook"],
    )
    check_lines, check_notes = _checks(facts)
    name = directory.resolve().name or "app"
    lines = [
        "# opsdash profile written by 'opsdash init'. Review every value, then run 'opsdash validate'.",
        "# Read: variable names, and of values only the app's own URLs; no secret value is stored here.",
        *(f"# NOTE: {note}" for note in [*project.notes, *check_notes]),
        "",
        "[target]",
        f"name = {_q(name)}",
        'environment = "production"',
        f"base_url = {_q(facts.base_url)}" + ("" if base_url else "  # TODO: your production URL"),
        f"client_prefixes = {_list(prefixes)}",
    ]
    if bundle:
        lines.append(f"bundle_dir = {_q(bundle)}  # built front end, scanned for leaked secrets")
    lines += ["", "[env]"]
    if project.framework == "plain":
        lines.append(f"files = {_list(env_files)}")
    else:
        lines += [
            f"framework = {_q(project.framework)}  # reads {', '.join(env_files) or 'its .env files'} "
            "as the build does",
            f"mode = {_q(project.mode)}" + (f"  # from: {project.build}" if project.build else ""),
        ]
    if example:
        lines.append(f"example = {_q(example)}")
    if development:
        lines.append(f"development = {_q(development)}")
    if mode:
        lines += [f"mode_variable = {_q(mode)}", 'mode_expected = "production"']
    if test_mode:
        lines.append(f"test_mode_variable = {_q(test_mode)}")
    lines.append(f"required = {_list(names)}")
    lines.append(f"secrets = {_list(secrets)}")
    if roles:
        lines += ["", "[urls]"]
        for role in ("webhook", "return", "cancel", "api_base", "other"):
            if role in roles:
                lines.append(f"{role} = {_list(roles[role])}")
    lines += _policies(keys, {k for k in (mode, test_mode) if k})
    if has_provider:
        lines += _provider(names)
    lines += check_lines
    return "\n".join(lines) + "\n"


def _provider(names: list[str]) -> list[str]:
    ik = [k for k in names if _IKHOKHA.search(k)]
    app_id = next((k for k in ik if "APP_ID" in k.upper() or "API_KEY" in k.upper()), None)
    secret = next((k for k in ik if "SECRET" in k.upper() and "WEBHOOK" not in k.upper()), None)
    webhook = next((k for k in ik if "WEBHOOK" in k.upper() and "SECRET" in k.upper()), None)
    lines = ["", "[provider]", 'kind = "ikhokha"', 'api_base = "https://api.ikhokha.com/public-api/v1/api"']
    for field_name, var in (
        ("app_id_variable", app_id),
        ("secret_variable", secret),
        ("webhook_secret_variable", webhook),
    ):
        if var:
            lines.append(f"{field_name} = {_q(var)}")
    return lines


def write_profile(
    directory: Path,
    *,
    force: bool = False,
    base_url: str | None = None,
    ask: Callable[[], str | None] | None = None,
) -> Path:
    if not directory.is_dir():
        raise ConfigError(f"{directory}: not a directory")
    path = directory / "opsdash.toml"
    if path.exists() and not force:
        raise ConfigError(f"{path} already exists; pass --force to overwrite it")
    text = build_profile(directory, base_url=base_url, ask=ask)
    _parsed, problems = parse_config(path, text)
    if problems:  # pragma: no cover - a bug in build_profile, not user input
        raise ConfigError(f"generated profile is invalid: {problems[0]}")
    write_file(path, text, 0o644)
    return path


def record_init(path: Path) -> None:
    """Audit the profile `write_profile` wrote, where that profile keeps its data."""
    from opsdash.ops.base import Ops

    try:
        ops = Ops.open(path)
    except OpsdashError:  # settings from the environment may still be broken: record where we can
        ops = Ops.bare()
    ops.audit.event("operator_action", "config-init", subject=str(path), outcome="written")
